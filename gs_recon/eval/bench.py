"""Shared synthetic inputs for benchmarks and tests."""
from __future__ import annotations

import torch

from ..gaussians.model import create_params
from ..geometry import look_at


def random_scene(n: int, size: int, seed: int = 0, n_labels: int = 1):
    """n Gaussians in a unit cube in front of one camera: (params, viewmats [1,4,4], Ks [1,3,3]).

    Scales are anisotropic (each axis x0.3..x3 of the 3-NN size) and rotations random, so a rotation
    convention error or a missing rotation gradient changes the image (isotropic scenes hide both)."""
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand(n, 3, generator=g) * 2 - 1
    cols = torch.rand(n, 3, generator=g)
    labels = torch.randint(0, n_labels, (n,), generator=g)
    params = create_params(pts, cols, labels, sh_degree=0, init_opacity=0.5)
    with torch.no_grad():
        params["quats"].copy_(torch.randn(n, 4, generator=g))
        params["scales"].add_(torch.log(0.3 + 2.7 * torch.rand(n, 3, generator=g)))
    vm = look_at((0.0, -3.5, 0.0), (0.0, 0.0, 0.0))[None]
    f = size * 1.2
    Ks = torch.tensor([[[f, 0, size / 2], [0, f, size / 2], [0, 0, 1.0]]])
    return params, vm, Ks


def write_doc_section(doc, name: str, md: str) -> None:
    """Put `md` between <!-- NAME:begin --> and <!-- NAME:end --> in the markdown file `doc` (replacing what is
    there, else appended), atomically; the markers are part of md."""
    from pathlib import Path

    from ..io_utils import atomic_path

    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    doc = Path(doc)
    text = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if begin in text:
        text = text[: text.index(begin)] + md + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + md + "\n"
    with atomic_path(doc) as tmp:
        tmp.write_text(text)
