"""Target rendering (CONVENTIONS §3): brute-force reference, encode/decode round trip, masks."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vita_grasp_core.data.targets import render_targets
from vita_grasp_core.decoding import decode_maps
from vita_grasp_core.geometry import Letterbox
from vita_grasp_core.grasp import angle_difference

LB = Letterbox.fit((720, 1280), (480, 640))


def _reference(g, lb, width_scale, sigma, score_scale=1.0, min_score=0.05, floor=0.05):
    """Loop-per-grasp reference of the documented formulas (no dedupe, no vectorisation).

    Returns (maps, owned, responses (N, H, W)).
    """
    h, w = lb.dst_size
    r = math.ceil(3 * sigma)
    yy, xx = np.mgrid[0:h, 0:w]
    resp = np.zeros((len(g), h, w))
    for i, row in enumerate(g):
        cx, cy = lb.to_dst(row[:2])
        s = np.clip(row[5] / score_scale, min_score, 1)
        win = (np.abs(xx - round(cx)) <= r) & (np.abs(yy - round(cy)) <= r)
        resp[i] = np.where(win, s * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma ** 2)),
                           0)
    best = resp.max(axis=0)
    owner = resp.argmax(axis=0)
    maps = np.zeros((5, h, w))
    maps[0] = best
    owned = best > floor
    o = owner[owned]
    maps[1][owned] = np.cos(2 * g[o, 2])
    maps[2][owned] = np.sin(2 * g[o, 2])
    maps[3][owned] = np.clip(g[o, 3] * lb.scale / (width_scale * w), 0, 1)
    return maps, owned, resp


def _random_grasps(n, rng, src=(720, 1280)):
    h, w = src
    return np.column_stack([rng.uniform(0, w - 1, n), rng.uniform(0, h - 1, n),
                            rng.uniform(-np.pi / 2, np.pi / 2, n), rng.uniform(10, 400, n),
                            rng.uniform(5, 50, n), rng.uniform(0.0, 1.0, n),
                            rng.integers(0, 88, n)]).astype(np.float32)


@pytest.mark.parametrize("sigma", [1.0, 2.0, 3.5])
def test_matches_bruteforce_reference(sigma):
    rng = np.random.default_rng(int(sigma * 10))
    lb = Letterbox.fit((120, 200), (96, 128))
    g = _random_grasps(40, rng, (120, 200))
    g = np.concatenate([g, g[:5] * [1, 1, 0, 1, 1, 0.5, 1]])  # shared centres, worse scores
    t = render_targets(g, None, lb, 0.25, sigma)
    ref, owned, resp = _reference(g.astype(np.float64), lb, 0.25, sigma)
    np.testing.assert_allclose(t.maps[0], ref[0], atol=1e-5)  # float32 inside
    assert (t.owned == owned).all()
    assert (t.owner[ref[0] > 0] >= 0).all() and (t.owner[ref[0] == 0] == -1).all()
    # the owner has the highest response (up to float32 ties) and its angle/width are written
    yy, xx = np.nonzero(owned)
    chosen = resp[t.owner[yy, xx], yy, xx]
    np.testing.assert_allclose(chosen, ref[0][yy, xx], atol=1e-5)
    o = t.owner[yy, xx]
    np.testing.assert_allclose(t.maps[1][yy, xx], np.cos(2 * g[o, 2]), atol=1e-6)
    np.testing.assert_allclose(t.maps[2][yy, xx], np.sin(2 * g[o, 2]), atol=1e-6)
    np.testing.assert_allclose(t.maps[3][yy, xx],
                               np.clip(g[o, 3] * lb.scale / (0.25 * lb.dst_size[1]), 0, 1),
                               atol=1e-6)
    top2 = np.sort(resp[:, yy, xx], axis=0)[-2:]
    clear = top2[1] - top2[0] > 1e-4  # no near-tie: the owner is the reference's argmax
    assert clear.mean() > 0.9
    assert (o[clear] == resp[:, yy, xx].argmax(0)[clear]).all()
    assert not t.maps[1:4][:, ~owned].any()
    assert t.n_grasps == len(g)


def test_encode_decode_round_trip():
    """Well separated grasps, 1280x720 source -> 480x640 maps -> decode_maps -> source px."""
    rng = np.random.default_rng(0)
    xs, ys = np.meshgrid(np.linspace(120, 1160, 5), np.linspace(100, 620, 3))
    n = xs.size
    g = np.column_stack([xs.ravel() + rng.uniform(-0.5, 0.5, n),
                         ys.ravel() + rng.uniform(-0.5, 0.5, n),
                         np.linspace(-np.pi / 2, np.pi / 2 - 0.05, n), rng.uniform(30, 300, n),
                         rng.uniform(10, 40, n), rng.uniform(0.3, 1.0, n), np.arange(n)])
    t = render_targets(g.astype(np.float32), None, LB, width_scale=0.25, sigma=2.0)
    out = decode_maps(torch.from_numpy(t.maps), LB, width_scale=0.25, score_threshold=0.1,
                      max_grasps=50, min_distance=8, smooth_sigma=1.0)[0]
    assert len(out) == n
    for p in out:
        i = int(np.argmin(np.hypot(g[:, 0] - p.x, g[:, 1] - p.y)))
        assert math.hypot(p.x - g[i, 0], p.y - g[i, 1]) < 1.5
        assert math.degrees(angle_difference(p.angle, g[i, 2])) < 2.0
        assert abs(p.width - g[i, 3]) / g[i, 3] < 0.03
        assert g[i, 5] * 0.93 <= p.quality <= g[i, 5] + 1e-6  # raw heat at the peak pixel


def test_score_normalisation_and_widths():
    g = np.array([[100.5, 100.5, 0, 100, 20, 0.01, 0],  # tiny score -> min_score, still > 0
                  [600.5, 300.5, 0, 2000, 20, 0.5, 1],  # huge width -> ch3 clipped to 1
                  [1000.5, 500.5, 0.5, 160, 20, 2.0, 2]],  # score above the scale -> 1
                 np.float32)
    t = render_targets(g, None, LB, 0.25)
    peaks = [t.maps[0][int(round(y)), int(round(x))] for x, y in LB.to_dst(g[:, :2])]
    assert peaks == pytest.approx([0.05, 0.5, 1.0], abs=1e-3)
    cx, cy = np.rint(LB.to_dst(g[1, :2])).astype(int)
    assert t.maps[3][cy, cx] == 1.0
    cx, cy = np.rint(LB.to_dst(g[2, :2])).astype(int)
    assert t.maps[3][cy, cx] == pytest.approx(160 * 0.5 / (0.25 * 640))
    assert t.maps[1][cy, cx] == pytest.approx(math.cos(1.0), abs=1e-6)
    assert t.maps[2][cy, cx] == pytest.approx(math.sin(1.0), abs=1e-6)
    t2 = render_targets(g, None, LB, 0.25, score_scale=None)  # per-frame max: 2.0 -> 1
    cx, cy = np.rint(LB.to_dst(g[1, :2])).astype(int)
    assert t2.maps[0][cy, cx] == pytest.approx(0.25, abs=1e-3)


def test_owner_is_the_strongest_response():
    # two overlapping grasps; pixel nearer the weak one is still owned by the strong one
    g = np.array([[600, 300, 0.0, 100, 20, 1.0, 0], [606, 300, 1.0, 50, 20, 0.2, 1]], np.float32)
    t = render_targets(g, None, LB, 0.25, sigma=2.0)
    cx, cy = np.rint(LB.to_dst(g[1, :2])).astype(int)  # on the weak grasp's centre
    assert t.owner[cy, cx] == 0
    assert t.maps[1][cy, cx] == pytest.approx(1.0)


def test_label_mask_and_fallback():
    label = np.zeros((720, 1280), np.uint8)
    label[200:300, 400:600] = 5
    g = np.array([[500, 250, 0, 120, 30, 1, 4], [1100, 650, 0.3, 80, 20, 1, 2]], np.float32)
    t = render_targets(g, label, LB, 0.25)
    m = t.maps[4]
    assert set(np.unique(m)) == {0.0, 1.0}
    x0, y0 = LB.to_dst([400, 200])
    x1, y1 = LB.to_dst([599, 299])
    assert m[int(y0) + 1:int(y1), int(x0) + 1:int(x1)].all()
    assert m.sum() == pytest.approx(100 * 200 * LB.scale ** 2, rel=0.05)
    cx, cy = np.rint(LB.to_dst(g[1, :2])).astype(int)
    assert m[cy, cx] == 0  # the label decides, not the rectangles
    t2 = render_targets(g, None, LB, 0.25)  # fallback: union of rectangles
    assert t2.maps[4][cy, cx] == 1
    area = (120 * 30 + 80 * 20) * LB.scale ** 2
    assert t2.maps[4].sum() == pytest.approx(area, rel=0.15)


def test_invalid_rows_are_ignored_and_empty_input():
    g = np.array([[np.nan, 10, 0, 50, 20, 1, 0], [-5, 10, 0, 50, 20, 1, 0],
                  [100, 800, 0, 50, 20, 1, 0], [100, 100, 0, 0, 20, 1, 0],
                  [300, 300, 0, 50, 20, 1, 0]], np.float32)
    t = render_targets(g, None, LB, 0.25)
    assert t.n_grasps == 1
    assert set(np.unique(t.owner)) == {-1, 4}
    e = render_targets(np.zeros((0, 7), np.float32), None, LB, 0.25)
    assert e.n_grasps == 0 and not e.maps.any() and not e.owned.any()
    with pytest.raises(ValueError):
        render_targets(np.zeros((3, 4)), None, LB, 0.25)
