"""Per-Gaussian visibility: kernels vs the torch reference vs the autograd route; normalisation; the
DP-Recon weight mapping."""
import pytest
import torch

from gs_recon.eval.bench import random_scene
from gs_recon.prior.visibility import (
    accumulate,
    accumulate_autograd,
    appearance_weight,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reference_equals_autograd_route(seed):
    """Acceptance (prior issue) 1: torch reference == autograd route, relative error < 1e-4."""
    params, vm, K = random_scene(1500, 48, seed=seed, n_labels=2)
    vm = torch.cat([vm, vm @ torch.tensor([[1, 0, 0, 0.2], [0, 1, 0, -0.1], [0, 0, 1, 0.3], [0, 0, 0, 1.0]])])
    K = torch.cat([K, K])
    ref = accumulate(params, vm, K, 48, 40, impl="reference")
    ag = accumulate_autograd(params, vm, K, 48, 40)
    assert ref.weight_sum.sum() > 10
    rel = (ref.weight_sum - ag).abs().max() / ref.weight_sum.abs().max()
    assert rel < 1e-4, rel
    cpp = accumulate(params, vm, K, 48, 40)  # C++ kernel
    assert torch.allclose(cpp.weight_sum, ref.weight_sum, rtol=1e-4, atol=1e-6)
    assert torch.allclose(cpp.alpha_sum, ref.alpha_sum, rtol=1e-4, atol=1e-6)
    assert (cpp.count - ref.count).abs().max() <= 1


def test_normalised_visibility_separates_seen_and_hidden():
    """A grid of opaque Gaussians seen head-on, each hiding a smaller one straight behind it on the same
    ray: front ~1, back ~0; a Gaussian outside every view stays 0."""
    import math

    from gs_recon.geometry import look_at

    ii = torch.stack(torch.meshgrid(torch.arange(6), torch.arange(6), indexing="ij"), -1).reshape(-1, 2)
    xy = (ii.float() - 2.5) * 0.3
    front = torch.cat([xy, torch.zeros(36, 1)], 1)
    back = torch.cat([xy * 2.3 / 2.0, torch.full((36, 1), -0.3)], 1)  # on the ray from the camera at z=2
    n = 73
    p = {"means": torch.cat([front, back, torch.tensor([[10.0, 10.0, 10.0]])]),
         "scales": torch.cat([torch.full((36, 3), math.log(0.06)), torch.full((37, 3), math.log(0.01))]),
         "quats": torch.tensor([1.0, 0, 0, 0]).repeat(n, 1), "opacities": torch.full((n,), 6.0),
         "sh0": torch.rand(n, 1, 3), "shN": torch.zeros(n, 0, 3), "labels": torch.zeros(n, dtype=torch.long)}
    vm = look_at((0, 0, 2.0), (0, 0, 0), up=(0, 1, 0))[None]
    K = torch.tensor([[120.0, 0, 64], [0, 120.0, 64], [0, 0, 1]])[None]
    vis = accumulate(p, vm, K, 128, 128)
    v = vis.normalised
    assert v[:36].min() > 0.9
    assert v[36:72].max() < 0.05 and vis.alpha_sum[36:72].min() > 0  # reached, but hidden
    assert v[72] == 0 and vis.alpha_sum[72] == 0


def test_appearance_weight():
    """The geometry mapping is pinned in test_prior_maths.py (DP-Recon's released values)."""
    assert appearance_weight(torch.tensor([0.1, 0.29, 0.3, 0.9])).tolist() == [1.0, 1.0, 0.0, 0.0]


def test_gsplat_layout_conversion_matches_cpu_tiles():
    """The converter from gsplat's (isect_offsets, flatten_ids=c*N+g) to the CPU layout, on a layout
    built by hand from our own CPU tiles (so it runs without CUDA)."""
    from gs_recon.render.api import render
    from gs_recon.prior.visibility import _gsplat_tiles_to_ref

    params, vm, K = random_scene(300, 32, seed=5)
    vm = torch.cat([vm, vm])
    K = torch.cat([K, K])
    meta = render(params, vm, K, 32, 32).meta
    t = meta["tiles"]
    C, N = 2, 300
    cam_of = torch.repeat_interleave(torch.arange(C), (t.offsets[:, -1] - t.offsets[:, 0]))
    info = {"isect_offsets": t.offsets[:, :-1].reshape(C, t.tile_h, t.tile_w).int(),
            "flatten_ids": (t.ids.long() + cam_of * N).int()}
    back = _gsplat_tiles_to_ref(info, N)
    assert torch.equal(back.offsets, t.offsets) and torch.equal(back.ids, t.ids)


@pytest.mark.gpu
def test_cuda_kernel_matches_reference():
    """The CUDA kernel (cuda_ext/) on gsplat's projection == the torch reference on the same inputs."""
    from gs_recon.render._cuda_ext import load_cuda_ext

    assert load_cuda_ext() is not None, "CUDA extension failed to build"
    params, vm, K = random_scene(20000, 128, seed=3, n_labels=2)
    params = {k: v.cuda() for k, v in params.items()}
    vm, K = torch.cat([vm, vm]).cuda(), torch.cat([K, K]).cuda()
    vm[1, 0, 3] += 0.3
    ker = accumulate(params, vm, K, 128, 96, impl="kernel")
    ref = accumulate(params, vm, K, 128, 96, impl="reference")
    ag = accumulate_autograd(params, vm, K, 128, 96)
    assert torch.allclose(ker.weight_sum.cpu(), ref.weight_sum.cpu(), rtol=1e-4, atol=1e-5)
    assert torch.allclose(ker.alpha_sum.cpu(), ref.alpha_sum.cpu(), rtol=1e-4, atol=1e-5)
    assert (ker.count.cpu() - ref.count.cpu()).abs().max() <= 1
    assert torch.allclose(ker.weight_sum, ag, rtol=1e-3, atol=1e-4)


@pytest.mark.gpu
def test_cuda_max_view_visibility_one_launch_matches_per_view_reference():
    """max_view_visibility on a GPU (one kernel launch over all views, per-view sums) == the best of the
    per-view ratios of the torch reference on gsplat's projection, view by view."""
    from gs_recon.render._cuda_ext import load_cuda_ext
    from gs_recon.prior.visibility import max_view_visibility

    assert load_cuda_ext() is not None, "CUDA extension failed to build"
    params, vm, K = random_scene(5000, 96, seed=8, n_labels=2)
    params = {k: v.cuda() for k, v in params.items()}
    vm, K = vm.repeat(3, 1, 1).cuda(), K.repeat(3, 1, 1).cuda()
    vm[1, 0, 3] += 0.5
    vm[2, 2, 3] += 1.0
    best = max_view_visibility(params, vm, K, 96, 96)
    per_view = torch.stack([accumulate(params, vm[i:i + 1], K[i:i + 1], 96, 96, impl="reference").normalised.cuda()
                            for i in range(3)])
    assert torch.allclose(best, per_view.max(0).values, rtol=1e-4, atol=1e-5)
    assert (per_view.max(0).values > per_view.mean(0) + 0.05).any()  # the views differ: max is not the mean
