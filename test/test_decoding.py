"""decode_maps: quality at the sub-pixel peak, window-averaged angle/width, calibrated quality,
border and padding rules, and the torch path (non-CPU devices) equal to the CPU path."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vita_grasp_core import Letterbox, decode_maps
from vita_grasp_core import decoding as D
from vita_grasp_core.conventions import angle_difference, angle_to_channels, width_to_channel
from vita_grasp_core.decoding_settings import DecodeConfig

WS = 0.25
H, W = 480, 640
LB = Letterbox.fit((H, W), (H, W))  # identity: source px == map px


def gaussian_maps(peaks, h=H, w=W, sigma=2.0):
    """``(5, h, w)`` maps: one gaussian per ``(x, y, amplitude, angle, width_px)``; angle and
    width of the strongest response own each pixel (channels 1-3), mask 1 there. ``sigma``: one
    value, or ``(sx, sy)`` for blobs elongated along x or y (a handle)."""
    sx, sy = (sigma, sigma) if np.isscalar(sigma) else sigma
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.zeros((5, h, w), np.float32)
    best = np.zeros((h, w))
    for x, y, amp, ang, wd in peaks:
        g = amp * np.exp(-((xx - x) ** 2 / (2 * sx ** 2) + (yy - y) ** 2 / (2 * sy ** 2)))
        own = g > best
        best = np.maximum(best, g)
        c2, s2 = angle_to_channels(ang)
        maps[1][own], maps[2][own] = c2, s2
        maps[3][own] = width_to_channel(wd, WS, w)
        maps[4][own] = 1.0
    maps[0] = best
    return maps


def decode(maps, lb=LB, **kw):
    kw = {"score_threshold": 0.05, "max_grasps": 20, "min_distance": 8, "smooth_sigma": 1.0,
          **kw}
    return decode_maps(torch.from_numpy(np.ascontiguousarray(maps)), lb, width_scale=WS, **kw)[0]


def test_quality_is_read_at_the_subpixel_peak():
    """Two nearly equal peaks: the higher one lies between pixels, so its whole-pixel maximum is
    lower than the other's; ranking by the value at the refined peak puts it first."""
    maps = gaussian_maps([(200.0, 200.0, 0.90, 0.3, 60.0),    # on a pixel centre
                          (400.5, 300.5, 0.92, -0.6, 40.0)])  # half a pixel off in x and y
    assert maps[0, 300, 400] < maps[0, 200, 200]  # the whole-pixel maximum would rank it second
    out = decode(maps)
    assert len(out) == 2
    assert (round(out[0].x, 1), round(out[0].y, 1)) == (400.5, 300.5)
    assert out[0].quality == pytest.approx(0.92, abs=1e-3)
    assert out[1].quality == pytest.approx(0.90, abs=1e-3)


def test_quality_does_not_depend_on_the_peak_width():
    """A narrow and a wide peak of the same height report the same quality (the smoothed map
    would report the narrow one lower)."""
    maps = gaussian_maps([(150.3, 120.7, 0.7, 0.0, 50.0)], sigma=1.3)
    wide = gaussian_maps([(450.6, 330.2, 0.7, 0.0, 50.0)], sigma=3.5)
    maps[0] = np.maximum(maps[0], wide[0])
    out = decode(maps)
    assert len(out) == 2
    assert [g.quality for g in out] == pytest.approx([0.7, 0.7], abs=2e-3)


def test_angle_and_width_average_a_window_without_blurring_the_angle_map():
    """With pixel noise the window mean is several times closer than one pixel; an angle next to
    the +-90 degree wrap and a neighbouring grasp of another angle do not bias it."""
    rng = np.random.default_rng(0)
    peaks = []
    for i in range(24):
        x, y = 60 + (i % 6) * 100 + rng.uniform(-0.5, 0.5), 60 + (i // 6) * 110 + 0.3
        ang = [np.pi / 2 - 0.01, -np.pi / 2 + 0.01, 0.4, -1.0][i % 4]
        peaks.append((x, y, rng.uniform(0.5, 1.0), ang, rng.uniform(30, 110)))
        # a neighbour 12 px away with a perpendicular angle and another width
        peaks.append((x + 12, y, 0.3, ang + np.pi / 2, 25.0))
    clean = gaussian_maps(peaks)
    noisy = clean + rng.normal(0, 0.02, clean.shape).astype(np.float32)
    noisy[0] = np.clip(noisy[0], 0, 1)
    noisy[1:3] = np.clip(noisy[1:3], -1, 1)
    noisy[3:] = np.clip(noisy[3:], 0, 1)
    out = decode(noisy, score_threshold=0.45, max_grasps=50)
    strong = [p for p in peaks if p[2] >= 0.5]
    assert len(out) == len(strong)
    ang_err, wid_err, pix_err = [], [], []
    for p in strong:
        g = min(out, key=lambda g: np.hypot(g.x - p[0], g.y - p[1]))
        assert np.hypot(g.x - p[0], g.y - p[1]) < 0.3
        ang_err.append(np.degrees(angle_difference(g.angle, p[3])))
        wid_err.append(abs(g.width - p[4]))
        r, c = int(round(p[1])), int(round(p[0]))
        pix_err.append(abs(noisy[3, r, c] * WS * W - p[4]))  # what one pixel says
    assert max(ang_err) < 1.0
    assert np.median(wid_err) < 1.0 and max(wid_err) < 3.0
    assert np.median(wid_err) < 0.5 * np.median(pix_err)


def test_calibrated_quality_is_reported_and_thresholded():
    knots = ((0.0, 0.0), (0.5, 0.1), (1.0, 1.0))
    maps = gaussian_maps([(100.0, 100.0, 0.5, 0.0, 40.0), (300.0, 200.0, 0.8, 0.0, 40.0),
                          (500.0, 300.0, 0.3, 0.0, 40.0)])
    raw = decode(maps, score_threshold=0.01)
    assert [round(g.quality, 3) for g in raw] == [0.8, 0.5, 0.3]
    cal = decode(maps, score_threshold=0.01, quality_knots=knots)
    assert [round(g.quality, 3) for g in cal] == [0.64, 0.1, 0.06]
    assert [(g.x, g.y) for g in cal] == [(g.x, g.y) for g in raw]  # same ranking
    # the threshold compares the calibrated value: raw 0.5 -> 0.1 is dropped at 0.2
    kept = decode_maps(torch.from_numpy(maps), LB, width_scale=WS, decode=DecodeConfig(
        score_threshold=0.2, quality_knots=knots))[0]
    assert [round(g.quality, 3) for g in kept] == [0.64]
    # a flat part of the calibration keeps the raw order among equal calibrated qualities
    flat = ((0.0, 0.0), (0.2, 0.5), (0.9, 0.5), (1.0, 1.0))
    maps2 = gaussian_maps([(100.0, 100.0, 0.57, 0.0, 40.0), (300.5, 200.5, 0.6, 0.0, 40.0)])
    assert maps2[0, 100, 100] > maps2[0, 200, 300]  # the weaker peak has the higher pixel
    tied = decode(maps2, score_threshold=0.01, quality_knots=flat)
    assert [g.quality for g in tied] == [0.5, 0.5] and round(tied[0].x, 1) == 300.5
    # a threshold above the calibration's best quality returns nothing
    none = decode(maps, score_threshold=0.9, quality_knots=((0.0, 0.0), (1.0, 0.85)))
    assert none == []


@pytest.mark.parametrize("src", [(480, 640), (720, 1280)])
def test_heat_rising_to_the_border_is_not_a_grasp(src):
    lb = Letterbox.fit(src, (H, W))
    x0, y0, x1, y1 = lb.content_box
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float64)
    maps = np.zeros((5, H, W), np.float32)
    # rises towards the top edge of the content and towards its middle column: the maximum is
    # on the outermost content row, where nothing says the heat would not keep rising
    ramp = 0.9 - 0.002 * (yy - y0) - 0.0005 * np.abs(xx - 320)
    maps[0] = np.where((yy >= y0) & (yy < y1), ramp, 0.0)
    maps[3] = 0.2
    assert decode(maps, lb) == []
    assert decode(maps, lb, min_distance=0, max_grasps=1000) == []  # every pixel a candidate
    # high padding does not leak in either
    maps[0] = np.where((yy >= y0) & (yy < y1), maps[0], 1.0)
    assert decode(maps, lb, min_distance=0, max_grasps=1000) == []
    # a right edge rise
    maps[0] = np.where((yy >= y0) & (yy < y1), 0.5 + 0.001 * xx - 0.001 * np.abs(yy - 240), 0)
    assert decode(maps, lb) == []


@pytest.mark.parametrize("src", [(480, 640), (720, 1280)])
def test_a_true_peak_3px_from_the_border_is_returned(src):
    lb = Letterbox.fit(src, (H, W))
    x0, y0, x1, y1 = lb.content_box
    peaks = [(300.0, y0 + 3.0, 0.8, 0.5, 40.0), (x1 - 1 - 3.0, 200.0, 0.7, -0.5, 60.0)]
    maps = gaussian_maps(peaks)
    out = decode(maps, lb)
    assert len(out) == 2
    for g, (x, y, q, a, wd) in zip(out, peaks):
        sx, sy = lb.to_src([x, y])
        assert np.hypot(g.x - sx, g.y - sy) < 0.3 / lb.scale
        assert g.quality == pytest.approx(q, abs=0.02)
        assert np.degrees(angle_difference(g.angle, a)) < 0.5
        assert g.width == pytest.approx(lb.length_to_src(wd), rel=0.01)


def test_torch_path_matches_the_cpu_path(monkeypatch):
    """The code path for non-CPU maps (torch filters, torch peak selection) gives the CPU
    path's grasps (OpenCV filters, numpy selection), letterboxed and batched."""
    rng = np.random.default_rng(3)
    lb = [Letterbox.fit((720, 1280), (H, W)), LB]
    batch = []
    for i in range(2):
        peaks = [(rng.uniform(20, 620), rng.uniform(80, 400), rng.uniform(0.3, 1.0),
                  rng.uniform(-1.5, 1.5), rng.uniform(20, 120)) for _ in range(12)]
        m = gaussian_maps(peaks) + rng.normal(0, 0.02, (5, H, W)).astype(np.float32)
        batch.append(np.clip(m, 0, 1))
    maps = torch.from_numpy(np.stack(batch))
    kw = dict(width_scale=WS, score_threshold=0.2, max_grasps=15, min_distance=6)
    fast = decode_maps(maps, lb, **kw)

    real_find = D.find_peaks

    def torch_find(heat, *, boxes=None, **k):  # the non-CPU branch: a validity mask
        valid = torch.zeros(heat.shape, dtype=torch.bool)
        for i, (x0, y0, x1, y1) in enumerate(boxes):
            valid[i, y0:y1, x0:x1] = True
        return real_find(heat, valid=valid, **k)

    monkeypatch.setattr(D, "_cv2_per_map", lambda x, fn: None)
    monkeypatch.setattr(D, "find_peaks", torch_find)
    slow = decode_maps(maps, lb, **kw)
    assert [len(a) for a in fast] == [len(a) for a in slow] and all(len(a) > 5 for a in fast)
    for a, b in zip(fast, slow):
        np.testing.assert_allclose([[g.x, g.y, g.angle, g.width, g.quality] for g in a],
                                   [[g.x, g.y, g.angle, g.width, g.quality] for g in b],
                                   atol=1e-4)


def test_degenerate_maps_do_not_fail():
    """Zeros, a single-pixel spike, saturated plateaus and NaN: no exception, sane values."""
    z = np.zeros((5, H, W), np.float32)
    flat = decode(z, score_threshold=0.0, max_grasps=3)  # a plateau: any pixels, quality ~0
    assert len(flat) <= 3 and all(g.quality < 1e-3 for g in flat)
    spike = z.copy()
    spike[0, 100, 100] = 0.9
    spike[0, 100, 101] = 0.45
    out = decode(spike, smooth_sigma=0.0)
    assert len(out) == 1 and 0.8 <= out[0].quality <= 1.0 and abs(out[0].x - 100.2) < 0.4
    sat = z.copy()
    sat[0, 200:220, 300:330] = 1.0
    for g in decode(sat):
        assert 0.99 <= g.quality <= 1.0 and 300 <= g.x <= 330 and 200 <= g.y <= 220
    nan = z.copy()
    nan[0, 50:60, 50:60] = np.nan
    decode(nan, score_threshold=0.0, max_grasps=5)
