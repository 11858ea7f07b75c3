"""Run under torchrun (gloo, CPU): sharded rendering vs one process rendering everything.

Every rank builds the same random scene (SH degree 1, 3 labels) and 2*world cameras. Rank r owns an
uneven block of the Gaussians and cameras [2r, 2r+1]; it renders them with render_sharded and
backpropagates a fixed random weighting of all outputs. The reference renders all Gaussians into all
cameras in this process and backpropagates the sum of every camera's weighting (= the sum of all ranks'
losses). Rank r writes OUT/rank{r}.json with the largest differences on its cameras and its shard.

    python -m torch.distributed.run --nproc_per_node=2 tests/_sharded_worker.py OUT [cpu|gsplat]
gsplat: NCCL, one GPU per rank (LOCAL_RANK), gsplat's CUDA ops on both sides.
"""
import json
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from gs_recon.eval.bench import random_scene  # noqa: E402
from gs_recon.geometry import look_at  # noqa: E402
from gs_recon.render.api import render  # noqa: E402
from gs_recon.render.sharded import render_sharded  # noqa: E402

W = H = 40
N = 300
FIELDS = ("rgb", "alpha", "depth", "normals", "object_alpha")


def scene(world):
    params, _, Ks = random_scene(N, W, seed=3, n_labels=3)
    g = torch.Generator().manual_seed(4)
    params["shN"] = torch.nn.Parameter(torch.randn(N, 3, 3, generator=g) * 0.2)
    params["opacities"] = torch.nn.Parameter(torch.randn(N, generator=g))
    angles = torch.linspace(0, 5.5, 2 * world)
    vms = torch.stack([look_at((3.5 * float(torch.sin(a)), -3.5 * float(torch.cos(a)), 0.4 * float(a) - 1),
                               (0.0, 0.0, 0.0)) for a in angles])
    return params, vms, Ks.expand(2 * world, 3, 3).clone()


def weighted(out, cams):
    total = 0.0
    for k in FIELDS:
        v = getattr(out, k)
        for j, c in enumerate(cams):
            w = torch.randn(v.shape[1:], generator=torch.Generator().manual_seed(100 * c + FIELDS.index(k))).to(v)
            total = total + (v[j] * w).sum()
    return total


def main(out_dir, backend="cpu"):
    if backend == "gsplat":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dev = torch.device("cuda", torch.cuda.current_device())
    else:
        dev = torch.device("cpu")
    dist.init_process_group("nccl" if backend == "gsplat" else "gloo")
    r, world = dist.get_rank(), dist.get_world_size()
    params, vms, Ks = scene(world)
    params = {k: torch.nn.Parameter(v.detach().to(dev), requires_grad=v.requires_grad) for k, v in params.items()}
    vms, Ks = vms.to(dev), Ks.to(dev)
    bounds = [0] + [int(N * (0.4 + 0.6 * (q + 1) / world)) if q < world - 1 else N for q in range(world)]
    lo, hi = bounds[r], bounds[r + 1]
    cams = [2 * r, 2 * r + 1]
    bg = torch.tensor([0.2, 0.3, 0.4], device=dev)
    shard = {k: torch.nn.Parameter(v.detach()[lo:hi].clone(), requires_grad=v.dtype.is_floating_point)
             for k, v in params.items()}
    out = render_sharded(shard, vms[cams], Ks[cams], W, H, sh_degree=1, background=bg, n_labels=3, backend=backend)
    out.meta["means2d"].retain_grad()
    weighted(out, cams).backward()

    full = {k: torch.nn.Parameter(v.detach().clone(), requires_grad=v.dtype.is_floating_point)
            for k, v in params.items()}
    ref = render(full, vms, Ks, W, H, sh_degree=1, background=bg, n_labels=3, backend=backend)
    ref.meta["means2d"].retain_grad()
    weighted(ref, list(range(2 * world))).backward()

    res = {"n_local": hi - lo, "alpha_max": float(out.alpha.detach().max()), "backend": out.meta["backend"]}
    for k in FIELDS:
        a, b = getattr(out, k), getattr(ref, k)[cams]
        res[f"img_{k}"] = float((a - b).abs().max())
    for k in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        gs, gr = shard[k].grad, full[k].grad[lo:hi]
        res[f"grad_{k}"] = float((gs - gr).abs().max() / gr.abs().max().clamp(min=1e-12))
        res[f"gradmag_{k}"] = float(gr.abs().max())
    gm, gmr = out.meta["means2d"].grad, ref.meta["means2d"].grad[:, lo:hi]
    res["grad_means2d"] = float((gm - gmr).abs().max() / gmr.abs().max())
    res["means2d_shape"] = list(out.meta["means2d"].shape)
    with open(os.path.join(out_dir, f"rank{r}.json"), "w") as f:
        json.dump(res, f)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
