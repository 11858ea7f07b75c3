from setuptools import find_packages, setup

setup(
    name="gs_recon",
    version="0.1.0",
    description="Decompositional scene reconstruction with 3D Gaussians and a diffusion prior (DP-Recon on gsplat)",
    # configs/ and cuda_ext/ stay at the top of the checkout and are installed inside the package as
    # gs_recon/presets (--config tiny_cpu) and gs_recon/cuda_ext (the CUDA kernel's sources, JIT-built)
    packages=find_packages(include=["gs_recon", "gs_recon.*"]) + ["gs_recon.presets", "gs_recon.cuda_ext"],
    package_dir={"gs_recon.presets": "configs", "gs_recon.cuda_ext": "cuda_ext"},
    package_data={"gs_recon": ["render/csrc/*.cpp", "mesh/csrc/*.cpp"],
                  "gs_recon.presets": ["*.yaml"], "gs_recon.cuda_ext": ["*.cu", "*.cpp", "*.md"]},
    entry_points={"console_scripts": ["gs-recon = gs_recon.cli.main:main"]},
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
        "tyro>=0.9",
        "xatlas>=0.0.9",  # UV unwrap of the meshes
        "fast-simplification>=0.1.7",  # quadric decimation to the face budgets
        "pycolmap>=3.10",  # poses from photos without cameras (gs-recon pose)
    ],
    extras_require={
        "test": ["pytest", "diffusers>=0.30", "transformers>=4.40", "viser>=1.0"],
        "prior": ["diffusers>=0.30", "transformers>=4.40"],
        "viewer": ["viser>=1.0"],
    },
)
