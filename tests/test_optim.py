"""train/optim.adam_step against torch.optim.Adam(fused=True).step(): the same parameters and state bit for bit,
through lazy initialisation, steps without a gradient, a cleared state (a new stage) and gsplat's densification
ops replacing the parameters; the means' LR decay against torch's ExponentialLR."""
import pytest
import torch

from gs_recon.train.optim import _lean, adam_step

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def _pair(device, sizes=((50, 3), (50, 4), (50,), (50, 1, 3)), lrs=(1.6e-4, 5e-3, 1e-3, 2.5e-3), **kw):
    """Two identical sets of parameters with one fused Adam each (the trainer's layout)."""
    g = torch.Generator().manual_seed(0)
    init = [torch.randn(s, generator=g) for s in sizes]
    sets = []
    for _ in range(2):
        ps = {f"p{i}": torch.nn.Parameter(x.clone().to(device)) for i, x in enumerate(init)}
        opts = {k: torch.optim.Adam([{"params": p, "lr": lr, "name": k}], eps=1e-15, fused=True, **kw)
                for (k, p), lr in zip(ps.items(), lrs)}
        sets.append((ps, opts))
    return sets


def _grads(ps, step, skip=()):
    g = torch.Generator().manual_seed(100 + step)
    for k, p in ps.items():
        p.grad = None if k in skip else torch.randn(p.shape, generator=g).to(p.device) * (1 + step % 3)


def _same(a, b):
    (pa, oa), (pb, ob) = a, b
    for k in pa:
        assert torch.equal(pa[k], pb[k]), k
        sa, sb = oa[k].state[oa[k].param_groups[0]["params"][0]], ob[k].state[ob[k].param_groups[0]["params"][0]]
        assert sorted(sa) == sorted(sb), k
        for key in sa:
            assert sa[key].dtype == sb[key].dtype and sa[key].device == sb[key].device and torch.equal(sa[key], sb[key])


@pytest.mark.parametrize("device", DEVICES)
def test_adam_step_is_torch_fused_adam_bit_for_bit(device):
    from gsplat.strategy.ops import duplicate, remove

    ref, ours = _pair(device)
    assert all(_lean(o) for o in ours[1].values())
    for step in range(40):
        skip = ("p2",) if step % 7 == 3 else ()  # a parameter without a gradient this step (not trained)
        for ps, _ in (ref, ours):
            _grads(ps, step, skip)
        for o in ref[1].values():
            o.step()
            o.zero_grad(set_to_none=True)
        adam_step(ours[1], list(ours[1]))
        assert all(p.grad is None for p in ours[0].values())
        _same(ref, ours)
        if step == 12:  # a new stage: fresh moments for two of the parameters
            for ps, opts in (ref, ours):
                for k in ("p0", "p3"):
                    opts[k].state.clear()
        if step in (20, 30):  # gsplat's densification replaces every parameter and carries its Adam state along
            for ps, opts in (ref, ours):
                n = ps["p0"].shape[0]
                mask = torch.zeros(n, dtype=torch.bool, device=device)
                mask[::5] = True
                (duplicate if step == 20 else remove)(ps, opts, {}, mask)
            _same(ref, ours)
    assert ref[0]["p0"].shape[0] != 50  # the densification ops ran


def test_adam_step_leaves_other_optimizers_to_their_own_step():
    """An optimizer it does not cover (amsgrad here; SGD) is stepped by its own step(), same result."""
    ref, ours = _pair("cpu", amsgrad=True)
    assert not any(_lean(o) for o in ours[1].values())
    sgd = [torch.nn.Parameter(torch.ones(4)) for _ in range(2)]
    opt_sgd = [torch.optim.SGD([p], lr=0.1) for p in sgd]
    for step in range(5):
        for ps, _ in (ref, ours):
            _grads(ps, step)
        for p in sgd:
            p.grad = torch.full((4,), float(step))
        for o in ref[1].values():
            o.step()
        opt_sgd[0].step()
        adam_step({**ours[1], "sgd": opt_sgd[1]}, [*ours[1], "sgd"])
        _same(ref, ours)
        assert torch.equal(sgd[0], sgd[1])


def test_means_lr_decay_matches_exponential_lr():
    """The trainer decays the means' LR by gamma after each stage-1 step (no scheduler object wrapping step()):
    the LR torch's ExponentialLR gives, exactly, for 7000 steps; and a trainer's LR after 6 steps is that."""
    from conftest import DEMO

    from gs_recon.config import load_config
    from gs_recon.data import load_scene
    from gs_recon.train.recon import Trainer

    def exponential_lr(lr0, gamma, steps):
        a = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr0)
        sch = torch.optim.lr_scheduler.ExponentialLR(a, gamma=gamma)
        out = []
        for _ in range(steps):
            a.step()
            sch.step()
            out.append(a.param_groups[0]["lr"])
        return out

    gamma = 0.01 ** (1.0 / 7000)
    lr = 1.6e-4 * 3.1
    for want in exponential_lr(lr, gamma, 7000):
        lr *= gamma
        assert lr == want
    assert lr == pytest.approx(1.6e-4 * 3.1 * 0.01, rel=1e-6)
    cfg = load_config("configs/tiny_cpu.yaml", ["train.iterations=40"])
    tr = Trainer(load_scene(DEMO, cfg.data), cfg)
    lr0 = tr.optimizers["means"].param_groups[0]["lr"]
    tr.fit(6, progress=False)
    assert tr.optimizers["means"].param_groups[0]["lr"] == exponential_lr(lr0, tr.means_gamma, 6)[-1] < lr0
