"""CPU rasterizer: C++ kernels vs the torch reference, gradients vs finite differences."""
import pytest
import torch

from gs_recon.eval.bench import random_scene
from gs_recon.geometry import look_at
from gs_recon.gaussians.model import create_params
from gs_recon.render.api import render
from gs_recon.render.projection import project
from gs_recon.render.rasterize_cpu import (
    accumulate_visibility,
    isect_tiles,
    load_cpu_ext,
    rasterize,
)
from gs_recon.render.rasterize_ref import isect_tiles_ref, rasterize_ref, visibility_ref


def _gaussians(n, W, H, seed, max_scale=0.1, focal=45.0, faint=False):
    """n random Gaussians seen from one camera: (means [N,3], quats [N,4], scales [N,3], opacities [N],
    viewmat [1,4,4], K [1,3,3]). Opacities uniform in 0.05..0.95, or with faint=True log-uniform in 1e-3..1:
    some below 1/255 and many just above it, so the rasterizer's skip of pixels where alpha cannot reach
    1/255 and the opacity-aware radii are tested at their edge."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.5
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * max_scale + 0.02
    u = torch.rand(n, generator=g)
    op = torch.exp(u * torch.log(torch.tensor(1e3))) * 1e-3 if faint else u * 0.9 + 0.05
    vm = look_at((0.0, -3.0, 0.3), (0.0, 0.0, 0.0))[None]
    K = torch.tensor([[[focal, 0, W / 2], [0, focal, H / 2], [0, 0, 1]]])
    return means, quats, scales, op, vm, K


def _proj(n=400, W=48, H=40, seed=0):
    """_gaussians projected: (Projection, opacities [1,N], W, H)."""
    means, quats, scales, op, vm, K = _gaussians(n, W, H, seed)
    return project(means, quats, scales, vm, K, W, H), op[None].clone(), W, H


def test_extension_builds():
    assert load_cpu_ext() is not None, "the C++ CPU rasterizer must compile on this machine"


def test_isect_matches_reference():
    p, op, W, H = _proj()
    t = isect_tiles(p.means2d, p.radii, p.depths, W, H)
    off, ids = isect_tiles_ref(p.means2d.detach(), p.radii, p.depths.detach(), 16, t.tile_w, t.tile_h)
    assert torch.equal(t.offsets, off) and torch.equal(t.ids, ids)
    assert t.ids.numel() > 0


def test_forward_backward_match_reference():
    p, op, W, H = _proj()
    t = isect_tiles(p.means2d, p.radii, p.depths, W, H)
    g = torch.Generator().manual_seed(1)
    feats = torch.rand(1, op.shape[1], 5, generator=g)
    wr, wa = torch.randn(1, H, W, 5, generator=g), torch.randn(1, H, W, 1, generator=g)
    ins = [p.means2d.detach().clone().requires_grad_(), p.conics.detach().clone().requires_grad_(),
           op.clone().requires_grad_(), feats.clone().requires_grad_()]
    r, a, med = rasterize(*ins, p.depths.detach(), t, W, H)
    ((r * wr).sum() + (a * wa).sum()).backward()
    g_cpp = [x.grad.clone() for x in ins]
    ins2 = [x.detach().clone().requires_grad_() for x in ins]
    r2, a2, med2 = rasterize_ref(*ins2, p.depths.detach(), t.offsets, t.ids, W, H, 16)
    ((r2 * wr).sum() + (a2[..., None] * wa).sum()).backward()
    assert (r - r2).abs().max() < 1e-5
    assert (a[..., 0] - a2).abs().max() < 1e-5
    assert torch.equal(med[..., 0], med2)
    assert a.max() > 0.5  # the scene is not empty
    for x, gc in zip(ins2, g_cpp):
        assert torch.allclose(x.grad, gc, rtol=1e-3, atol=1e-4), (x.grad - gc).abs().max()


def _faint_scene(n=600, W=64, H=48, seed=5):
    """_gaussians with faint opacities: (means, quats, scales, opacities [N], viewmat, K, W, H)."""
    return (*_gaussians(n, W, H, seed, max_scale=0.15, focal=50.0, faint=True), W, H)


@pytest.mark.parametrize("size", [(64, 48), (37, 29)])
def test_faint_gaussians_match_reference(size):
    """C++ forward, backward and visibility == the torch reference when many Gaussians sit at the 1/255
    alpha cut (the C++ kernels cull per pixel block and skip the exp where alpha cannot reach it; the
    reference evaluates every pixel), also on an image whose tiles and blocks end part-way."""
    means, quats, scales, op, vm, K, W, H = _faint_scene(W=size[0], H=size[1])
    assert (op < 1 / 255).sum() > 50 and ((op > 1 / 255) & (op < 0.02)).sum() > 50
    p = project(means, quats, scales, vm, K, W, H)
    t = isect_tiles(p.means2d, p.radii, p.depths, W, H)
    g = torch.Generator().manual_seed(2)
    feats = torch.rand(1, len(op), 4, generator=g)
    wr, wa = torch.randn(1, H, W, 4, generator=g), torch.randn(1, H, W, 1, generator=g)
    ins = [p.means2d.detach().clone().requires_grad_(), p.conics.detach().clone().requires_grad_(),
           op[None].clone().requires_grad_(), feats.clone().requires_grad_()]
    r, a, med = rasterize(*ins, p.depths.detach(), t, W, H)
    ((r * wr).sum() + (a * wa).sum()).backward()
    ins2 = [x.detach().clone().requires_grad_() for x in ins]
    r2, a2, med2 = rasterize_ref(*ins2, p.depths.detach(), t.offsets, t.ids, W, H, 16)
    ((r2 * wr).sum() + (a2[..., None] * wa).sum()).backward()
    assert (r - r2).abs().max() < 1e-5 and (a[..., 0] - a2).abs().max() < 1e-5
    assert torch.equal(med[..., 0], med2)
    for x, y in zip(ins, ins2):
        assert torch.allclose(x.grad, y.grad, rtol=1e-3, atol=1e-4), (x.grad - y.grad).abs().max()
    vis, cnt, asum = accumulate_visibility(ins[0].detach(), ins[1].detach(), op[None], t, W, H, thresh=0.01)
    vis2, cnt2, asum2 = visibility_ref(ins[0].detach(), ins[1].detach(), op[None], t.offsets, t.ids, W, H, 0.01)
    assert torch.allclose(vis, vis2, rtol=1e-4, atol=1e-5) and torch.allclose(asum, asum2, rtol=1e-4, atol=1e-5)
    assert (vis[op < 1 / 255] == 0).all() and (vis[op > 0.1] > 0).any()


def test_opacity_aware_radii():
    """With the opacities given, the projection's radii bound the box where alpha can reach 1/255 (gsplat's
    rule in gsplat.rasterization): every pixel with alpha >= 1/255 lies inside it, the box is within a pixel
    of that level set's extent, Gaussians below 1/255 get radius 0, and the rendered image is the one the
    3.33-sigma boxes give, from fewer tile entries."""
    means, quats, scales, op, vm, K, W, H = _faint_scene()
    full = project(means, quats, scales, vm, K, W, H)
    tight = project(means, quats, scales, vm, K, W, H, opacities=op)
    assert torch.equal(full.means2d, tight.means2d) and torch.equal(full.conics, tight.conics)
    on = (full.radii > 0).all(-1)[0]
    assert (tight.radii[0][op < 1 / 255] == 0).all()
    assert (tight.radii <= full.radii).all() and (tight.radii < full.radii).any()
    # alpha over a dense pixel grid around each Gaussian: outside its box, alpha < 1/255 everywhere
    a, b, c = full.conics[0].unbind(-1)
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    dx = full.means2d[0, :, 0, None, None] - xs
    dy = full.means2d[0, :, 1, None, None] - ys
    alpha = (op[:, None, None] * torch.exp(-(0.5 * (a[:, None, None] * dx**2 + c[:, None, None] * dy**2)
                                             + b[:, None, None] * dx * dy))).clamp(max=0.99)
    rx, ry = tight.radii[0, :, 0, None, None], tight.radii[0, :, 1, None, None]
    outside = (dx.abs() > rx) | (dy.abs() > ry)
    reach = alpha >= 1 / 255
    assert not (reach & outside & on[:, None, None]).any()
    # tight: the level set sigma = log(255 op) reaches to within a pixel of the box in x (for those the
    # smaller box leaves on screen)
    det = a * c - b * b
    keep = (tight.radii[0] > 0).all(-1)
    assert (op[keep] >= 1 / 255).all() and keep.sum() > 0.5 * on.sum()
    extent = torch.sqrt(2 * torch.log(255 * op[keep]) * (c[keep] / det[keep]))
    assert ((tight.radii[0, keep, 0] - extent) < 1 + 1e-4).all() and ((tight.radii[0, keep, 0] - extent) >= -1e-4).all()
    feats = torch.rand(1, len(op), 3)
    imgs = []
    for pr in (full, tight):
        t = isect_tiles(pr.means2d, pr.radii, pr.depths, W, H)
        img, al, md = rasterize(pr.means2d.detach(), pr.conics.detach(), op[None], feats, pr.depths.detach(), t, W, H)
        imgs.append((img, al, md, t.ids.numel()))
    assert (imgs[0][1] > 0.5).float().mean() > 0.05  # not an empty picture
    assert imgs[1][3] < 0.9 * imgs[0][3]
    for x, y in zip(imgs[0][:3], imgs[1][:3]):
        assert torch.equal(x, y)


def test_reference_gradients_vs_finite_differences():
    """The reference rasterizer (float64) agrees with central finite differences."""
    p, op, W, H = _proj(n=40, W=24, H=20, seed=3)
    t = isect_tiles(p.means2d, p.radii, p.depths, W, H)
    feats = torch.rand(1, 40, 3, dtype=torch.float64)

    def f(m2, cn, o, ft):
        r, a, _ = rasterize_ref(m2, cn, o, ft, p.depths.detach().double(), t.offsets, t.ids, W, H, 16)
        return (r * torch.linspace(0, 1, 3, dtype=torch.float64)).sum() + (a**2).sum()

    ins = (p.means2d.detach().double().requires_grad_(), p.conics.detach().double().requires_grad_(),
           op.double().clamp(max=0.9).requires_grad_(), feats.requires_grad_())
    assert torch.autograd.gradcheck(f, ins, eps=1e-6, atol=1e-5, rtol=1e-3)


def test_full_render_gradients_vs_finite_differences():
    """render() end to end (projection + C++ rasterizer) against central differences on every parameter.

    The Gaussians are anisotropic (per-axis scales x0.4..x2.5) with random rotations, and the loss reads
    colour, alpha, expected depth and normals, so every parameter -- rotation included -- changes it."""
    torch.manual_seed(0)
    n = 30
    params = create_params(torch.randn(n, 3) * 0.3, torch.rand(n, 3), torch.zeros(n, dtype=torch.long), sh_degree=1,
                           init_opacity=0.6)
    with torch.no_grad():
        params["scales"].add_(torch.log(torch.tensor(3.0)) + torch.log(0.4 + 2.1 * torch.rand(n, 3)))
        params["quats"].copy_(torch.randn(n, 4))
        params["shN"].normal_(0, 0.2)
    vm = look_at((0.0, -2.5, 0.4), (0.0, 0.0, 0.0))[None]
    K = torch.tensor([[[30.0, 0, 16], [0, 30.0, 16], [0, 0, 1]]])
    w = torch.rand(1, 32, 32, 3)
    wn = torch.rand(1, 32, 32, 3)

    def loss():
        out = render(params, vm, K, 32, 32, sh_degree=1, background=torch.tensor([0.2, 0.3, 0.4]))
        o = {k: getattr(out, k).double() for k in ("rgb", "alpha", "depth", "normals")}  # float64 sums
        return ((o["rgb"] * w).sum() + o["alpha"].sum() * 0.3 + 0.1 * (o["depth"] * o["alpha"]).sum()
                + 0.3 * (o["normals"] * wn).sum())

    for v in params.values():
        v.grad = None
    loss().backward()
    # rotation must matter: a loss blind to it would compare 0.0 against 0.0 below
    assert params["quats"].grad.abs().max() > 0.05
    g = torch.Generator().manual_seed(5)
    for key in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        flat = params[key].data.view(-1)
        analytic = params[key].grad.view(-1)
        order = torch.argsort(analytic.abs(), descending=True)
        # the 4 strongest entries and 2 random ones among those above a fifth of the strongest: smaller
        # gradients drown in float32 compositing noise and the 1/255 alpha cut-off's per-pixel jumps
        strong = order[: max(5, int((analytic.abs() >= 0.2 * analytic.abs().max()).sum()))]
        idx = torch.cat([order[:4], strong[torch.randint(0, len(strong), (2,), generator=g)]])
        for i in idx.tolist():
            eps = 5e-2 if key == "opacities" else 1e-2  # SH: a larger step can cross the colour clamp at 0
            old = flat[i].item()
            flat[i] = old + eps
            with torch.no_grad():
                lp = loss().item()
            flat[i] = old - eps
            with torch.no_grad():
                lm = loss().item()
            flat[i] = old
            fd = (lp - lm) / (2 * eps)
            a = analytic[i].item()
            assert abs(fd - a) <= 0.05 * max(abs(fd), abs(a)) + 2e-2, (key, i, fd, a)


def _gsplat_torch():
    """gsplat's pure-torch reference implementations (gsplat.cuda._torch_impl: plain torch, runs on CPU)."""
    from gsplat.cuda import _torch_impl

    return _torch_impl


def test_projection_matches_gsplat_torch_reference():
    """Our EWA projection == gsplat's _fully_fused_projection (its reference for the CUDA kernel) on
    anisotropic, randomly rotated Gaussians seen by two cameras, including ones clamped at the screen
    limits, behind the camera and off screen."""
    ref = _gsplat_torch()
    g = torch.Generator().manual_seed(11)
    n, W, H = 500, 64, 48
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * 1.2
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = torch.exp(torch.randn(n, 3, generator=g, dtype=torch.float64) * 0.8 - 2.5)
    vms = torch.stack([look_at((0.0, -3.0, 0.5), (0.0, 0.0, 0.0)), look_at((2.0, 1.5, 1.0), (0.1, 0.0, 0.0))]).double()
    Ks = torch.tensor([[[50.0, 0, 31.0], [0, 52.0, 25.0], [0, 0, 1]], [[40.0, 0, 33.0], [0, 40.0, 23.5], [0, 0, 1]]],
                      dtype=torch.float64)
    ours = project(means, quats, scales, vms, Ks, W, H)
    covars, _ = ref._quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, _ = ref._fully_fused_projection(means, covars, vms, Ks, W, H)
    assert torch.equal(ours.radii, radii), (ours.radii != radii).sum()
    vis = radii.sum(-1) > 0
    assert 0.3 < vis.float().mean() < 0.95  # some in view, some culled
    assert torch.allclose(ours.means2d[vis], means2d[vis], rtol=1e-9, atol=1e-9)
    assert torch.allclose(ours.conics[vis], conics[vis], rtol=1e-9, atol=1e-12)
    assert torch.allclose(ours.depths, depths, rtol=1e-12, atol=1e-12)
    # the camera-space axes our normals use are gsplat's rotation applied in camera space
    R = ref._quat_to_rotmat(quats)
    assert torch.allclose(ours.rot_cam, vms[:, None, :3, :3] @ R[None], atol=1e-12)


def test_projection_kernel_matches_torch_reference():
    """The C++ projection (float32, render/csrc/projection_cpu.cpp) against project_reference (torch ops and
    autograd, in float64) on three cameras: Gaussians clamped at the screen limits, behind a camera, in a
    camera's plane, faint (opacity below 1/255: radius 0). Forward values, radii exactly, and the gradients
    of means, quats and scales for weighted sums of means2d, conics and depths, element by element (the
    float32 reference is off the float64 one by up to 2e-3 there too); frames=False leaves the camera
    frames out."""
    from gs_recon.render._ext import load_cpu_ext
    from gs_recon.render.projection import project_reference

    if load_cpu_ext() is None:
        pytest.skip("C++ extension not built: the torch reference is the only path")
    g = torch.Generator().manual_seed(3)
    n, W, H = 3000, 128, 96
    means = torch.randn(n, 3, generator=g) * 1.5
    means[:40, 2] = -4.0  # behind the first camera
    means[40:45] = torch.tensor([0.3, 0.2, -3.0])  # in its image plane: depth made safe
    quats = torch.randn(n, 4, generator=g)
    scales = torch.exp(torch.randn(n, 3, generator=g) * 0.8 - 3)
    opac = torch.rand(n, generator=g)
    opac[45:60] = 0.002
    vms = torch.stack([look_at((0.0, 0.0, -3.0), (0.0, 0.0, 0.0)), look_at((2.0, 1.5, 1.0), (0.1, 0.0, 0.0)),
                       look_at((-1.0, -2.5, 0.3), (0.0, 0.0, 0.0))])
    Ks = torch.tensor([[100.0, 0, 64], [0, 100, 48], [0, 0, 1]]).repeat(3, 1, 1)
    a = [t.clone().requires_grad_() for t in (means, quats, scales)]
    b = [t.double().requires_grad_() for t in (means, quats, scales)]
    pk = project(*a, vms, Ks, W, H, opacities=opac, frames=False)
    pr = project_reference(*b, vms.double(), Ks.double(), W, H, opacities=opac.double())
    assert pk.means_cam is None and pk.rot_cam is None
    assert torch.equal(pk.radii, pr.radii)
    shown = pr.radii.sum(-1) > 0
    assert 0.3 < shown.float().mean() < 0.95 and not shown[:, 45:60].any()
    assert torch.allclose(pk.depths.double(), pr.depths, rtol=1e-6, atol=1e-6)
    for x, y, atol in ((pk.means2d, pr.means2d, 1e-3), (pk.conics, pr.conics, 1e-6)):  # px, 1 / px^2
        assert torch.allclose(x[shown].double(), y[shown], rtol=1e-3, atol=atol)
    w = [torch.randn(3, n, k, generator=g, dtype=torch.float64) for k in (2, 3, 1)]
    for p in (pk, pr):
        ((p.means2d * w[0]).sum() + (p.conics * w[1]).sum() + (p.depths * w[2][..., 0]).sum()).backward()
    for x, y in zip(a, b):  # element by element: the Gaussians in a camera's plane have gradients of ~1e12
        err = (x.grad - y.grad).abs() / (y.grad.abs() + 1e-3 * y.grad.abs().median())
        assert err.max() < 1e-2, err.max()
    # a non-finite mean is culled and gets a non-finite gradient, as autograd gives (the trainer's NaN guard
    # reads the gradients; the kernel must not be compiled with fast-math's finite-only assumptions)
    a[0].grad = None
    with torch.no_grad():
        a[0][7] = float("nan")
    p = project(*a, vms, Ks, W, H, opacities=opac, frames=False)
    assert (p.radii[:, 7] == 0).all()
    (p.means2d.sum() + p.depths.sum()).backward()
    assert not torch.isfinite(a[0].grad[7]).any() and torch.isfinite(a[0].grad[8:]).all()


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_matches_gsplat_torch_reference(degree):
    """eval_sh == gsplat's _spherical_harmonics (+0.5, clamped at 0 as gsplat's rasterization does) for
    every degree, with all 16 coefficients non-zero so unused higher bands must be ignored."""
    from gs_recon.render.sh import eval_sh

    ref = _gsplat_torch()
    g = torch.Generator().manual_seed(degree)
    coeffs = torch.randn(300, 16, 3, generator=g, dtype=torch.float64) * 0.5
    dirs = torch.randn(300, 3, generator=g, dtype=torch.float64) * 3.0  # not normalised: both normalise
    want = torch.clamp_min(ref._spherical_harmonics(degree, dirs, coeffs) + 0.5, 0.0)
    got = eval_sh(degree, coeffs, dirs)
    assert (want > 0).any() and (want == 0).any() or degree == 0
    assert torch.allclose(got, want, rtol=1e-12, atol=1e-12), (got - want).abs().max()


def test_visibility_kernel_matches_reference_and_autograd():
    p, op, W, H = _proj(n=300)
    t = isect_tiles(p.means2d, p.radii, p.depths, W, H)
    vis, cnt, asum = accumulate_visibility(p.means2d.detach(), p.conics.detach(), op, t, W, H, thresh=0.01)
    vis2, cnt2, asum2 = visibility_ref(p.means2d.detach(), p.conics.detach(), op, t.offsets, t.ids, W, H, 0.01)
    assert vis.sum() > 1.0
    assert torch.allclose(vis, vis2, rtol=1e-4, atol=1e-5)
    assert torch.allclose(asum, asum2, rtol=1e-4, atol=1e-5) and (asum >= vis).all()
    assert (cnt - cnt2).abs().max() <= 1  # threshold ties can flip one pixel in float32
    # autograd route: vis[g] = d/d c_g of the rendered all-ones... channel c scaled per Gaussian
    ch = torch.ones(1, op.shape[1], 1, requires_grad=True)
    r, _, _ = rasterize(p.means2d.detach(), p.conics.detach(), op, ch, p.depths.detach(), t, W, H)
    r.sum().backward()
    assert torch.allclose(ch.grad[0, :, 0], vis, rtol=1e-4, atol=1e-5)


def test_render_outputs_and_meta():
    params, vm, K = random_scene(2000, 64, seed=2, n_labels=3)
    out = render(params, vm, K, 64, 64, n_labels=3, background=torch.zeros(3))
    assert out.rgb.shape == (1, 64, 64, 3) and out.alpha.shape == (1, 64, 64, 1)
    assert out.object_alpha.shape == (1, 64, 64, 3)
    assert torch.allclose(out.object_alpha.sum(-1, keepdim=True), out.alpha, atol=1e-5)
    m = out.meta
    assert m["means2d"].shape == (1, 2000, 2) and m["means2d"].requires_grad
    assert m["radii"].shape == (1, 2000, 2) and m["width"] == 64 and m["n_cameras"] == 1
    fg = out.alpha[..., 0] > 0.9
    # expected depth lies between the nearest and farthest Gaussian depths
    assert (out.depth[fg] > 2.0).all() and (out.depth[fg] < 5.0).all()
    assert out.median_depth is None  # only on request (mesh extraction reads it)
    med = render(params, vm, K, 64, 64, n_labels=3, background=torch.zeros(3), median=True)
    assert torch.equal(med.rgb, out.rgb) and med.median_depth.shape == (1, 64, 64, 1)
    assert (med.median_depth[fg] > 2.0).all()
    # a mask renders one label alone: its alpha covers at least the composite's per-label alpha
    alone = render(params, vm, K, 64, 64, n_labels=3, mask=params["labels"] == 1)
    assert (alone.alpha[..., 0] + 1e-5 >= out.object_alpha[..., 1]).all()


@pytest.mark.gpu
def test_gsplat_matches_cpu_backend():
    params, vm, K = random_scene(5000, 96, seed=4, n_labels=2)
    cpu = render(params, vm, K, 96, 96, n_labels=2, backend="cpu")
    pc = {k: v.cuda() for k, v in params.items()}
    gs = render(pc, vm.cuda(), K.cuda(), 96, 96, n_labels=2, backend="gsplat")
    assert gs.meta["backend"] == "gsplat"
    assert (gs.rgb.cpu() - cpu.rgb).abs().max() < 2e-3
    assert (gs.alpha.cpu() - cpu.alpha).abs().max() < 2e-3
    # view-dependent colour: gsplat's fused SH kernel on CUDA vs our torch SH on CPU, degree 3, with gradients
    g = torch.Generator().manual_seed(9)
    params = dict(params, shN=torch.nn.Parameter(0.3 * torch.randn(5000, 15, 3, generator=g)))
    cpu = render(params, vm, K, 96, 96, sh_degree=3, backend="cpu", depth=False, normals=False)
    cpu.rgb.sum().backward()
    pc = {k: (torch.nn.Parameter(v.detach().cuda()) if v.is_floating_point() else v.cuda()) for k, v in params.items()}
    gs = render(pc, vm.cuda(), K.cuda(), 96, 96, sh_degree=3, backend="gsplat", depth=False, normals=False)
    gs.rgb.sum().backward()
    assert (gs.rgb.detach().cpu() - cpu.rgb.detach()).abs().max() < 2e-3
    assert torch.allclose(pc["shN"].grad.cpu(), params["shN"].grad, rtol=1e-2, atol=1e-3)


@pytest.mark.gpu
def test_cuda_median_depth_matches_cpu_traversal():
    """cuda_ext/median_depth.cu on gsplat's projection == our C++ traversal of the same projection (same
    definition: depth where transmittance first falls to <= 0.5, else the last contributing Gaussian).
    Opacities stay below gsplat's 0.999 and our 0.99 alpha clamps, so only __expf vs exp rounding can move
    a pixel's crossing to the neighbouring Gaussian."""
    from gs_recon.render._cuda_ext import load_cuda_ext
    from gs_recon.render.api import _median_cpu, median_depth_gsplat, project_gaussians

    assert load_cuda_ext() is not None, "CUDA extension failed to build"
    params, vm, K = random_scene(20000, 128, seed=6, n_labels=2)
    params = {k: v.cuda() for k, v in params.items()}
    vm, K = torch.cat([vm, vm]).cuda(), torch.cat([K, K]).cuda()
    vm[1, 0, 3] += 0.4
    K[:, 1, 2] = 48
    p = project_gaussians(params, vm, K, 128, 96, True)
    op = torch.sigmoid(params["opacities"])
    ker = median_depth_gsplat(p.means2d, p.conics, op, p.depths, p.radii, 128, 96)
    ref = _median_cpu(p.means2d, p.radii, p.depths, p.conics, op[None].expand(2, -1), 128, 96)
    assert ker.shape == (2, 96, 128, 1) and (ref > 0).float().mean() > 0.5  # most pixels covered
    same = ((ker - ref).abs() <= 1e-4 * ref.abs().clamp(min=1)).float().mean()
    assert same > 0.999, f"{float(same):.5f} of pixels agree"
    # and through render(): gsplat + kernel vs the CPU backend on the same Gaussians
    gs = render(params, vm, K, 128, 96, backend="gsplat", median=True)
    cpu = render({k: v.cpu() for k, v in params.items()}, vm.cpu(), K.cpu(), 128, 96, backend="cpu", median=True)
    close = ((gs.median_depth.cpu() - cpu.median_depth).abs() < 1e-3).float().mean()
    assert close > 0.99, f"{float(close):.4f} of pixels within 1e-3"


@pytest.mark.gpu
def test_cuda_training_step_syncs():
    """A CUDA training step waits for the GPU a bounded number of times (torch's sync debug mode counts
    them): the combined finite check plus what gsplat's tile intersection needs; metrics are read only on
    logging steps. Before: 13+ per step (one finite check per loss and per parameter, float() per metric)."""
    import warnings

    from conftest import DEMO
    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.train.recon import Trainer

    cfg = load_config("configs/tiny_cpu.yaml", ["train.iterations=30", "train.device=cuda"])
    tr = Trainer(load_scene(DEMO, cfg.data), cfg)
    assert all(o.defaults.get("fused") for o in tr.optimizers.values())
    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        tr.train_step(gen, densify=False)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            for _ in range(10):
                tr.train_step(gen, densify=False)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    syncs = [x for x in w if "synchroniz" in str(x.message)]
    print(f"{len(syncs) / 10:.1f} host syncs per step:", {str(x.message)[:80] for x in syncs})
    assert len(syncs) / 10 <= 4, len(syncs)


def test_kernels_run_without_the_gil():
    """The C++ entry points release the GIL: while one thread is inside rasterize_fwd, another keeps running
    Python (a viewer thread's render, a background import). Checked over the middle third of a >= 0.1 s call,
    which a held GIL would leave empty (a thread switch can only delay the call's start by one switch interval)."""
    import threading
    import time

    ext = load_cpu_ext()
    params, vm, K = random_scene(60000, 384, seed=1)
    p = project(params["means"].detach(), params["quats"].detach(), torch.exp(params["scales"].detach()), vm, K, 384, 384)
    t = isect_tiles(p.means2d, p.radii, p.depths, 384, 384)
    op = torch.sigmoid(params["opacities"].detach())[None].contiguous()
    m2, con, dep = (x.detach().contiguous() for x in (p.means2d, p.conics, p.depths))
    for ch in (3, 12, 48, 192):  # more feature channels until the call is long enough to split into thirds
        args = (m2, con, op, torch.rand(1, op.shape[1], ch), dep, t.offsets, t.ids, 384, 384, 16)
        t0 = time.perf_counter()
        ext.rasterize_fwd(*args)
        if time.perf_counter() - t0 >= 0.15:
            break
    window = []

    def work():
        t0 = time.perf_counter()
        ext.rasterize_fwd(*args)
        window.extend([t0, time.perf_counter()])

    th = threading.Thread(target=work)
    ticks = []
    th.start()
    while th.is_alive():
        ticks.append(time.perf_counter())
    th.join()
    t0, t1 = window
    assert t1 - t0 >= 0.1, t1 - t0
    lo, hi = t0 + (t1 - t0) / 3, t1 - (t1 - t0) / 3
    assert sum(lo < x < hi for x in ticks) > 100
