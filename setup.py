from setuptools import find_packages, setup

setup(
    name="gs_recon",
    version="0.1.0",
    description="Decompositional scene reconstruction with 3D Gaussians and a diffusion prior (DP-Recon on gsplat)",
    packages=find_packages(include=["gs_recon", "gs_recon.*"]),
    package_data={"gs_recon": ["render/csrc/*.cpp", "mesh/csrc/*.cpp"]},
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.4",
        "gsplat==1.5.3",
        "numpy",
        "scipy",
        "pillow",
        "plyfile",
        "trimesh",
        "embreex; platform_machine=='x86_64'",
        "rich",
        "pyyaml",
        "ninja",
        "scikit-image",
    ],
    extras_require={
        "test": ["pytest", "diffusers>=0.30", "transformers>=4.40", "viser>=1.0"],
        "prior": ["diffusers>=0.30", "transformers>=4.40"],
        "viewer": ["viser>=1.0"],
    },
)
