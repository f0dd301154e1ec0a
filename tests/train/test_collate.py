from __future__ import annotations

import numpy as np
import torch

from hrvs_ray.plan.padding import geometry
from hrvs_ray.train.collate import MEAN, STD, collate


def _img(h, w, seed):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_collate_writes_each_image_once_centred_and_pads_with_zero():
    shapes = {"a": (5, 8), "b": (9, 3)}
    imgs = {"a": _img(5, 8, 0), "b": _img(9, 3, 1)}
    g = geometry(["a", "b"], shapes)
    x, fp = collate(g, [imgs["a"], imgs["b"]])
    assert x.shape == (2, 3, 9, 8) and x.dtype == torch.float32
    pa, pb = g.placements
    region = x[0, :, pa.top:pa.top + 5, pa.left:pa.left + 8]
    expect = (torch.from_numpy(imgs["a"]).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN)[:, None, None]) \
        / torch.tensor(STD)[:, None, None]
    assert torch.allclose(region, expect, atol=1e-5)
    mask = torch.ones_like(x[0], dtype=torch.bool)
    mask[:, pa.top:pa.top + 5, pa.left:pa.left + 8] = False
    assert (x[0][mask] == 0).all()                       # padding is exactly zero
    assert (x[1, :, :, :pb.left] == 0).all() and (x[1, :, :, pb.left + 3:] == 0).all()


def test_fingerprint_changes_with_pixels_order_and_is_stable():
    shapes = {"a": (4, 4), "b": (4, 4)}
    a, b = _img(4, 4, 0), _img(4, 4, 1)
    fp1 = collate(geometry(["a", "b"], shapes), [a, b])[1]
    assert fp1 == collate(geometry(["a", "b"], shapes), [a.copy(), b.copy()])[1]
    assert fp1 != collate(geometry(["b", "a"], shapes), [b, a])[1]
    b2 = b.copy()
    b2[0, 0, 0] ^= 1
    assert fp1 != collate(geometry(["a", "b"], shapes), [a, b2])[1]


def test_preallocated_buffer_is_reused_and_cleared():
    shapes = {"a": (4, 6), "b": (2, 2)}
    g = geometry(["a", "b"], shapes)
    x, _ = collate(g, [_img(4, 6, 0), _img(2, 2, 1)])
    ptr = x.data_ptr()
    g2 = geometry(["b", "a"], shapes)
    y, _ = collate(g2, [_img(2, 2, 1), _img(4, 6, 0)], out=x)
    assert y.data_ptr() == ptr
    assert (y[0, :, :1, :] == 0).all()    # old content of slot 0 did not survive
