"""Image metrics: PSNR and SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def psnr_tensor(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> Tensor:
    """pred, gt [..., 3] in [0,1]; optional mask [...] bool -> PSNR in dB as a 0-d tensor on their device
    (no host sync: the training step reads it only on logging steps)."""
    d = (pred.clamp(0, 1) - gt) ** 2
    mse = d[mask].mean() if mask is not None else d.mean()
    return -10 * torch.log10(mse.clamp(min=1e-12))


def psnr(pred: Tensor, gt: Tensor, mask: Tensor | None = None) -> float:
    """pred, gt [..., 3] in [0,1]; optional mask [...] bool -> PSNR in dB."""
    return float(psnr_tensor(pred, gt, mask))


def _gauss_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32, device=None) -> Tensor:
    x = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    return g[:, None] * g[None, :]


_WINDOWS: dict = {}


def _window(channels: int, size: int, sigma: float, dtype, device) -> Tensor:
    """The depthwise conv2d weight [channels, 1, size, size], built once per (channels, size, sigma, dtype, device)
    (the training step calls SSIM every step; rebuilding it was a dozen small ops each time)."""
    key = (channels, size, sigma, dtype, str(device))
    w = _WINDOWS.get(key)
    if w is None:
        w = _WINDOWS[key] = _gauss_window(size, sigma, dtype, device)[None, None].repeat(channels, 1, 1, 1)
    return w


def ssim_map(pred: Tensor, gt: Tensor, size: int = 11, sigma: float = 1.5) -> Tensor:
    """pred, gt [B, H, W, 3] -> SSIM map [B, H', W', 3] (valid convolution, no padding). The five local
    statistics (means of x, y, x^2, y^2, xy) come from one depthwise convolution of the stacked maps (one kernel
    forward and one backward, where five separate convolutions were five each)."""
    x = pred.permute(0, 3, 1, 2)
    y = gt.permute(0, 3, 1, 2).to(x.dtype)
    Cn = x.shape[1]
    stats = F.conv2d(torch.cat([x, y, x * x, y * y, x * y], dim=1), _window(5 * Cn, size, sigma, x.dtype, x.device),
                     groups=5 * Cn)
    mu_x, mu_y, exx, eyy, exy = stats.split(Cn, dim=1)
    mxx, myy, mxy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mxy + c1) * (2 * (exy - mxy) + c2)) / ((mxx + myy + c1) * ((exx - mxx) + (eyy - myy) + c2))
    return m.permute(0, 2, 3, 1)


def ssim(pred: Tensor, gt: Tensor) -> Tensor:
    """Mean SSIM of [B, H, W, 3] images (differentiable)."""
    return ssim_map(pred, gt).mean()


def instance_miou(pred: Tensor, gt: Tensor) -> float | None:
    """DP-Recon's novel-view mask metric (eval/eval_mask.py) for one view: the mean over the ground-truth
    instances present (background 0 excluded) of IoU(pred == id, gt == id). pred, gt [H, W] int labels.
    None when the view shows only background or its mask is unknown (any gt < 0)."""
    if bool((gt < 0).any()):
        return None
    ids = [int(i) for i in torch.unique(gt).tolist() if i != 0]
    if not ids:
        return None
    ious = []
    for i in ids:
        p, g = pred == i, gt == i
        ious.append(float((p & g).sum()) / float((p | g).sum()))
    return sum(ious) / len(ious)


def label_map(object_alpha: Tensor, thresh: float = 0.5) -> Tensor:
    """Rendered labels [..., H, W] from per-label alpha [..., H, W, L]: the label with the most alpha,
    background (0) where the total alpha is below thresh."""
    lab = object_alpha.argmax(-1)
    return torch.where(object_alpha.sum(-1) >= thresh, lab, torch.zeros_like(lab))
