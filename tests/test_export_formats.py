"""Splat files decoded independently of our readers: .splat byte by byte with struct, the 3DGS PLY
column by column with plyfile (the f_rest order is what splat viewers get wrong most often)."""
import struct

import numpy as np
import torch

from gs_recon.export.splats import read_ply, write_ply, write_splat
from gs_recon.render.sh import C0


def _gaussians(n=7, sh_degree=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    K = (sh_degree + 1) ** 2
    return {
        "means": torch.randn(n, 3, generator=g),
        "scales": torch.randn(n, 3, generator=g) * 0.5 - 2,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.randn(n, generator=g),
        "sh0": torch.randn(n, 1, 3, generator=g) * 0.5,
        # every coefficient distinct: shN[i, k, c] = i + k / 100 + c / 1000 identifies its slot
        "shN": (torch.arange(n)[:, None, None] + torch.arange(K - 1)[None, :, None] / 100
                + torch.arange(3)[None, None, :] / 1000).float(),
        "labels": torch.zeros(n, dtype=torch.long),
    }


def test_ply_columns_follow_the_3dgs_layout(tmp_path):
    """Raw plyfile columns: x y z nx ny nz f_dc_0..2 f_rest_0..3(K-1)-1 opacity scale_0..2 rot_0..3, f_rest
    channel-major (f_rest_j = coefficient j % (K-1) of channel j // (K-1)), scales log, opacity logit,
    quaternion normalised w-first."""
    from plyfile import PlyData

    g = _gaussians()
    path = tmp_path / "g.ply"
    assert write_ply(path, g) == 7
    v = PlyData.read(str(path))["vertex"].data
    K1 = 8  # (2 + 1)^2 - 1
    want = (["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"] + [f"f_rest_{j}" for j in range(3 * K1)]
            + ["opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"])
    assert list(v.dtype.names) == want
    assert all(v.dtype[n] == np.float32 for n in want)
    for j in range(3 * K1):
        c, k = divmod(j, K1)
        assert np.allclose(v[f"f_rest_{j}"], g["shN"][:, k, c].numpy()), j
    for i in range(3):
        assert np.allclose(v[f"f_dc_{i}"], g["sh0"][:, 0, i].numpy())
        assert np.allclose(v[f"scale_{i}"], g["scales"][:, i].numpy())
    assert np.allclose(np.stack([v["x"], v["y"], v["z"]], 1), g["means"].numpy())
    assert np.allclose(v["opacity"], g["opacities"].numpy())
    q = torch.nn.functional.normalize(g["quats"], dim=-1).numpy()
    assert np.allclose(np.stack([v[f"rot_{i}"] for i in range(4)], 1), q, atol=1e-6)
    back = read_ply(path)  # and our reader inverts it
    assert torch.allclose(back["shN"], g["shN"])


def test_splat_bytes_decode_field_by_field(tmp_path):
    """antimatter15 .splat, 32 bytes per Gaussian: position 3 x f32, linear scale 3 x f32, RGBA u8
    (0.5 + C0 * f_dc, sigmoid opacity), rotation 4 x u8 as round(q * 128 + 128) w-first; sorted by
    descending exp(sum of log scales) * opacity."""
    g = _gaussians(n=9, sh_degree=0, seed=3)
    g["sh0"][0, 0] = torch.tensor([10.0, -10.0, 0.0])  # clamped to 255 / 0; 0 -> 0.5 -> 128
    path = tmp_path / "g.splat"
    assert write_splat(path, g) == 9
    raw = path.read_bytes()
    assert len(raw) == 9 * 32
    scales = torch.exp(g["scales"])
    op = torch.sigmoid(g["opacities"])
    order = torch.argsort(-(scales.prod(-1) * op)).tolist()
    q = torch.nn.functional.normalize(g["quats"], dim=-1)
    for row, i in enumerate(order):
        rec = raw[32 * row: 32 * (row + 1)]
        pos = struct.unpack("<3f", rec[0:12])
        sc = struct.unpack("<3f", rec[12:24])
        r, gg, b, a = rec[24:28]
        rot = np.array(list(rec[28:32]))
        assert np.allclose(pos, g["means"][i].numpy(), atol=1e-7), (row, i)
        assert np.allclose(sc, scales[i].numpy(), rtol=1e-6)
        rgb = (0.5 + C0 * g["sh0"][i, 0]).clamp(0, 1)
        assert np.allclose([r, gg, b], (rgb * 255).round().numpy(), atol=0.51)
        assert abs(a - float(op[i]) * 255) <= 0.51
        assert np.abs(rot - (q[i].numpy() * 128 + 128)).max() <= 0.51
        assert rot.max() <= 255
    first = raw[32 * order.index(0): 32 * order.index(0) + 32]
    assert tuple(first[24:27]) == (255, 0, 128)
    # the viewer's decoding, (byte - 128) / 128, gives back the rotation to within quantisation
    dec = (np.frombuffer(raw, np.uint8).reshape(9, 32)[:, 28:32].astype(float) - 128) / 128
    assert np.abs(dec - q[order].numpy()).max() < 1 / 128 + 1e-6
