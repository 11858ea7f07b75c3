"""Splat files: standard 3DGS PLY (Kerbl et al. layout, read by SuperSplat, viser, the 3DGS viewers)
and antimatter15 ``.splat`` (32 bytes per Gaussian). Both written atomically, in the input's world frame.

PLY properties, in order: x y z nx ny nz f_dc_0..2 f_rest_0..(3*(K-1)-1) opacity scale_0..2 rot_0..3,
with f_rest stored channel-major (all R coefficients, then G, then B) as the 3DGS code writes them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict

import numpy as np
import torch
from torch import Tensor

from ..errors import SceneError
from ..io_utils import atomic_path
from ..render.sh import C0


def valid_mask(g: Dict[str, Tensor]) -> Tensor:
    """[N] bool: finite parameters, non-degenerate quaternion and scales."""
    ok = torch.ones(g["means"].shape[0], dtype=torch.bool)
    for k in ("means", "scales", "quats", "opacities", "sh0", "shN"):
        v = g[k].detach().cpu()
        ok &= torch.isfinite(v.reshape(v.shape[0], -1)).all(1) if v.numel() else ok
    ok &= g["quats"].detach().cpu().norm(dim=-1) > 1e-8
    ok &= g["scales"].detach().cpu().max(-1).values > -30
    return ok


def write_ply(path: str | Path, g: Dict[str, Tensor]) -> int:
    """Write Gaussians (dict as in gaussians.model, already in the output frame) as a 3DGS PLY.
    Invalid Gaussians are dropped. Returns the count written."""
    from plyfile import PlyData, PlyElement

    keep = valid_mask(g)
    means = g["means"].detach().cpu()[keep].numpy()
    N = means.shape[0]
    sh0 = g["sh0"].detach().cpu()[keep].reshape(N, 3).numpy()
    shN = g["shN"].detach().cpu()[keep]
    rest = shN.transpose(1, 2).reshape(N, 3 * shN.shape[1]).numpy()  # [N, 3*(K-1)] channel-major
    cols = [("x", means[:, 0]), ("y", means[:, 1]), ("z", means[:, 2])]
    cols += [(n, np.zeros(N, np.float32)) for n in ("nx", "ny", "nz")]
    cols += [(f"f_dc_{i}", sh0[:, i]) for i in range(3)]
    cols += [(f"f_rest_{i}", rest[:, i]) for i in range(rest.shape[1])]
    cols += [("opacity", g["opacities"].detach().cpu()[keep].numpy())]
    sc = g["scales"].detach().cpu()[keep].numpy()
    cols += [(f"scale_{i}", sc[:, i]) for i in range(3)]
    q = torch.nn.functional.normalize(g["quats"].detach().cpu()[keep], dim=-1).numpy()
    cols += [(f"rot_{i}", q[:, i]) for i in range(4)]
    arr = np.empty(N, dtype=[(n, "f4") for n, _ in cols])
    for n, v in cols:
        arr[n] = v
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(arr, "vertex")], text=False).write(str(tmp))
    return N


def read_ply(path: str | Path) -> Dict[str, Tensor]:
    """Read a 3DGS PLY back into the Gaussian dict (labels all 0). Clear errors on malformed files."""
    from plyfile import PlyData

    path = Path(path)
    try:
        ply = PlyData.read(str(path))
        v = ply["vertex"]
    except Exception as e:  # plyfile raises several types on bad headers
        raise SceneError(f"{path}: not a readable PLY ({type(e).__name__}: {str(e)[:120]})") from None
    names = set(v.data.dtype.names)
    need = {"x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
            "rot_0", "rot_1", "rot_2", "rot_3"}
    if not need <= names:
        raise SceneError(f"{path}: not a 3DGS PLY (missing {', '.join(sorted(need - names))})")
    n_rest = len([n for n in names if n.startswith("f_rest_")])
    N = len(v.data)
    f = lambda n: torch.from_numpy(np.asarray(v[n], dtype=np.float32))  # noqa: E731
    rest = torch.stack([f(f"f_rest_{i}") for i in range(n_rest)], -1) if n_rest else torch.zeros(N, 0)
    return {
        "means": torch.stack([f("x"), f("y"), f("z")], -1),
        "sh0": torch.stack([f(f"f_dc_{i}") for i in range(3)], -1)[:, None, :],
        "shN": rest.reshape(N, 3, n_rest // 3).transpose(1, 2).contiguous(),
        "opacities": f("opacity"),
        "scales": torch.stack([f(f"scale_{i}") for i in range(3)], -1),
        "quats": torch.stack([f(f"rot_{i}") for i in range(4)], -1),
        "labels": torch.zeros(N, dtype=torch.long),
    }


def write_splat(path: str | Path, g: Dict[str, Tensor]) -> int:
    """antimatter15 .splat: per Gaussian position 3xf32, scale 3xf32 (linear), RGBA 4xu8, rotation 4xu8
    ((q+1)*128, w first), sorted by descending exp(sum scales)*opacity as that viewer expects."""
    keep = valid_mask(g)
    means = g["means"].detach().cpu()[keep].float()
    scales = torch.exp(g["scales"].detach().cpu()[keep].float())
    op = torch.sigmoid(g["opacities"].detach().cpu()[keep].float())
    rgb = (0.5 + C0 * g["sh0"].detach().cpu()[keep].reshape(-1, 3)).clamp(0, 1)
    q = torch.nn.functional.normalize(g["quats"].detach().cpu()[keep].float(), dim=-1)
    order = torch.argsort(-(scales.prod(-1) * op))
    N = means.shape[0]
    rec = np.zeros(N, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    rec["pos"] = means[order].numpy()
    rec["scale"] = scales[order].numpy()
    rgba = torch.cat([rgb, op[:, None]], -1)[order]
    rec["rgba"] = (rgba * 255).round().clamp(0, 255).to(torch.uint8).numpy()
    rec["rot"] = (q[order] * 128 + 128).round().clamp(0, 255).to(torch.uint8).numpy()
    with atomic_path(path) as tmp:
        tmp.write_bytes(rec.tobytes())
    return N


def read_splat(path: str | Path) -> Dict[str, np.ndarray]:
    raw = Path(path).read_bytes()
    if len(raw) % 32:
        raise SceneError(f"{path}: size {len(raw)} is not a multiple of 32 bytes; not a .splat file")
    rec = np.frombuffer(raw, dtype=[("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])
    return {k: rec[k] for k in rec.dtype.names}


# ---------------------------------------------------------------- .spz (Niantic, version 3)
# gzip of: 16-byte header (magic 0x5053474e "NGSP", version 3, count, SH degree, 12 fractional bits,
# flags, reserved), then per attribute for all Gaussians: positions (3 x 24-bit signed fixed point),
# alphas (u8 sigmoid), colours (u8: f_dc * 0.15 * 255 + 127.5), scales (u8: (log s + 10) * 16), rotations
# (u32 smallest three: index of the largest |component| in 2 bits, 3 x (sign bit + 9-bit magnitude / (1/sqrt2))
# over x, y, z, w), SH bands 1..3 (u8, coefficient-major, channel inner; 5 bits kept for band 1, 4 above).
# .spz stores right-up-back (RUB, three.js) axes; our files, like every 3DGS PLY, are right-down-front
# (RDF). The conversion, as the reference library's coordinateConverter(RDF, RUB) does it: negate y and z
# of positions, of the quaternions' y and z, and of the SH coefficients odd in y or z (SPZ_RDF_RUB_SH).
# Spec: github.com/nianticlabs/spz (README, load-spz.cc); read back by PlayCanvas splat-transform in the tests.
SPZ_MAGIC, SPZ_VERSION, SPZ_FRACTIONAL_BITS = 0x5053474E, 3, 12
SPZ_RDF_RUB_SH = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], np.float32)  # bands 1-3
SPZ_RDF_RUB_P = np.array([1.0, -1.0, -1.0])


def _u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def _sh_u8(x: np.ndarray, bits: int) -> np.ndarray:
    q = np.round((x + 1.0) / 2.0 * 255.0).astype(np.int64)
    bucket = 1 << (8 - bits)
    return np.clip((q + bucket // 2) // bucket * bucket, 0, 255).astype(np.uint8)


def write_spz(path: str | Path, g: Dict[str, Tensor]) -> int:
    """Gaussians (already in the output frame) -> .spz version 3. Invalid ones are dropped. Returns the count."""
    import gzip

    keep = valid_mask(g)
    means = g["means"].detach().cpu()[keep].double().numpy() * SPZ_RDF_RUB_P
    N = means.shape[0]
    shN = g["shN"].detach().cpu()[keep].float().numpy()  # [N, K-1, 3]
    shN = shN * SPZ_RDF_RUB_SH[: shN.shape[1], None]
    deg = {0: 0, 3: 1, 8: 2, 15: 3}[shN.shape[1]]
    if np.abs(means).max(initial=0.0) >= 2 ** (23 - SPZ_FRACTIONAL_BITS):
        raise SceneError(f"{path}: a Gaussian lies beyond +-2048 units, outside .spz's fixed-point range")
    fixed = np.round(means * (1 << SPZ_FRACTIONAL_BITS)).astype(np.int64).reshape(-1) & 0xFFFFFF
    pos = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], -1).astype(np.uint8)
    alpha = _u8(torch.sigmoid(g["opacities"].detach().cpu()[keep].float()).numpy() * 255.0)
    col = _u8(g["sh0"].detach().cpu()[keep].reshape(N, 3).float().numpy() * (0.15 * 255.0) + 127.5)
    scl = _u8((g["scales"].detach().cpu()[keep].float().numpy() + 10.0) * 16.0)
    q = torch.nn.functional.normalize(g["quats"].detach().cpu()[keep].double(), dim=-1).numpy()
    xyzw = np.concatenate([q[:, 1:] * SPZ_RDF_RUB_P, q[:, :1]], -1)
    big = np.abs(xyzw).argmax(-1)
    negate = xyzw[np.arange(N), big] < 0
    comp = big.astype(np.uint64)
    for i in range(4):
        others = big != i
        neg = ((xyzw[:, i] < 0) ^ negate).astype(np.uint64)
        mag = np.floor(511.0 * np.abs(xyzw[:, i]) / np.sqrt(0.5) + 0.5).astype(np.uint64)
        comp = np.where(others, (comp << np.uint64(10)) | (neg << np.uint64(9)) | mag, comp)
    rot = (comp.astype(np.uint32)[:, None] >> np.array([0, 8, 16, 24], np.uint32)).astype(np.uint8) & 0xFF
    sh = np.zeros((N, 0), np.uint8)
    if deg:
        flat = shN.reshape(N, -1)
        bits = np.full(flat.shape[1], 4)
        bits[:9] = 5
        sh = np.stack([_sh_u8(flat[:, j], int(bits[j])) for j in range(flat.shape[1])], -1)
    header = np.array([SPZ_MAGIC, SPZ_VERSION, N], "<u4").tobytes() + bytes([deg, SPZ_FRACTIONAL_BITS, 0, 0])
    body = b"".join(a.tobytes() for a in (pos, alpha, col, scl, rot, sh))
    with atomic_path(path) as tmp:
        tmp.write_bytes(gzip.compress(header + body, mtime=0))
    return N
