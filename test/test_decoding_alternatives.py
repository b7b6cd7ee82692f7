"""decode_maps ``alternatives``: further grasps on the same blob (issue 18: several peaks per
object), spaced like the maxima, within the threshold, the region and the per-maximum cap, and
the best grasp unchanged."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from test_decoding import WS, gaussian_maps

from vita_grasp_core import Letterbox, decode_maps
from vita_grasp_core.decoding_settings import DecodeConfig

H, W = 200, 240
LB = Letterbox.fit((H, W), (H, W))  # identity: source px == map px
RIDGE = (25.0, 3.0)  # gaussian sigmas (x, y) of a handle lying along x


def ridge_maps(blobs, sigma=RIDGE):
    """``(5, H, W)`` maps of blobs ``(x, y, amplitude, angle, width_px)`` elongated along x."""
    return gaussian_maps(blobs, H, W, sigma)


def decode(maps, regions=None, **kw):
    kw = {"score_threshold": 0.2, "max_grasps": 20, "min_distance": 8, "smooth_sigma": 1.0, **kw}
    return decode_maps(torch.from_numpy(maps), LB, width_scale=WS, regions=regions, **kw)[0]


HANDLE = (120.0, 100.0, 0.9, 0.4, 30.0)  # a ridge about 50 px along x at y = 100


def test_off_by_default_one_grasp_per_blob():
    assert DecodeConfig().alternatives == 0
    assert len(decode(ridge_maps([HANDLE]))) == 1


def test_a_ridge_gives_spaced_grasps_along_it_best_first_and_the_best_unchanged():
    maps = ridge_maps([HANDLE])
    only = decode(maps)[0]
    out = decode(maps, alternatives=4)
    assert len(out) == 5
    assert (out[0].x, out[0].y, out[0].quality) == (only.x, only.y, only.quality)
    q = [g.quality for g in out]
    assert q == sorted(q, reverse=True) and q[-1] >= 0.2
    for g in out:  # on the ridge, with the blob's angle and width
        assert abs(g.y - 100.0) <= 1.0
        assert g.angle == pytest.approx(0.4, abs=1e-3)
        assert g.width == pytest.approx(30.0, rel=1e-3)
    xs = sorted(g.x for g in out)
    assert min(np.diff(xs)) > 8  # more than min_distance apart, as the maxima are


def test_the_threshold_bounds_the_alternatives():
    """The ridge falls below 0.6 at |x - 120| > 25 * sqrt(2 ln 1.5) = 22.5 px."""
    out = decode(ridge_maps([HANDLE]), alternatives=20, score_threshold=0.6)
    assert 1 < len(out) < 6
    assert all(g.quality >= 0.6 and abs(g.x - 120.0) <= 23.0 for g in out)


def test_each_maximum_takes_at_most_its_share():
    maps = ridge_maps([HANDLE, (120.0, 40.0, 0.8, -0.7, 20.0)])
    out = decode(maps, alternatives=2)
    assert len(out) == 6
    assert sum(abs(g.y - 100.0) <= 1.0 for g in out) == 3
    assert sum(abs(g.y - 40.0) <= 1.0 for g in out) == 3


def test_alternatives_respect_max_grasps_and_the_region():
    maps = ridge_maps([HANDLE])
    assert len(decode(maps, alternatives=10, max_grasps=3)) == 3
    region = np.zeros((H, W), bool)
    region[90:110, 110:180] = True  # the right half of the handle only
    out = decode(maps, regions=[region], alternatives=10)
    assert len(out) >= 2
    assert all(110 <= g.x < 180 and 90 <= g.y < 110 for g in out)


def test_a_round_blob_keeps_its_alternatives_above_the_threshold_only():
    """A narrow round blob (sigma 3 px) has nothing above half its height beyond min_distance:
    no alternatives, however many are asked for."""
    out = decode(ridge_maps([(120.0, 100.0, 0.9, 0.0, 30.0)], sigma=3.0), alternatives=5,
                 score_threshold=0.45)
    assert len(out) == 1


def test_a_noise_map_with_the_largest_settings_stays_bounded():
    """Pixel noise (a broken or hostile model: hundreds of maxima) with the largest settings:
    the greedy search stops after MAX_PASSES points, and the answer keeps max_grasps."""
    from vita_grasp_core.decoding_alternatives import MAX_PASSES

    maps = np.ones((5, H, W), np.float32)
    maps[0] = np.random.default_rng(0).uniform(0.5, 1.0, (H, W))
    plain = decode(maps, max_grasps=1000, min_distance=0)
    out = decode(maps, max_grasps=1000, min_distance=0, alternatives=20)
    assert len(plain) < len(out) <= min(1000, len(plain) + MAX_PASSES)
