"""Predictor, decoding and input handling (issue #2)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vita_grasp_core import GraspPredictor, Letterbox, decode_maps
from vita_grasp_core.decoding import max_pool_same, smooth
from vita_grasp_core.grasp import (
    angle_difference,
    graspnet_rects_to_grasps,
    rect_corners,
    wrap_angle,
)
from vita_grasp_core.preprocess import image_to_input

WIDTH_SCALE = 0.25


def render(grasps_src, lb: Letterbox, sigma=2.0):
    """Minimal independent renderer: per-grasp gaussian at the mapped centre, the owner's angle
    and width."""
    h, w = lb.dst_size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.zeros((5, h, w), np.float32)
    best = np.zeros((h, w))
    for x, y, a, wd, q in grasps_src:
        cx, cy = lb.to_dst([x, y])
        g = q * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sigma**2))
        own = g > best
        best = np.maximum(best, g)
        maps[1][own], maps[2][own] = np.cos(2 * a), np.sin(2 * a)
        maps[3][own] = lb.length_to_dst(wd) / (WIDTH_SCALE * w)
        maps[4][own] = 1.0
    maps[0] = best
    return torch.from_numpy(maps)


@pytest.mark.parametrize("src", [(720, 1280), (480, 640), (1080, 1440)])
def test_round_trip_known_grasps(src):
    rng = np.random.default_rng(1)
    h, w = src
    grasps = []
    for i in range(6):  # well separated on a grid, sub-pixel centres, varied angles incl. +-90 deg
        x = (i % 3 + 0.5) * w / 3 + rng.uniform(-5, 5)
        y = (i // 3 + 0.5) * h / 2 + rng.uniform(-5, 5)
        a = wrap_angle([-np.pi / 2, -1.2, -0.3, 0.0, 0.7, 1.5][i])
        grasps.append((x, y, a, rng.uniform(40, 120), 1.0 - 0.05 * i))
    lb = Letterbox.fit(src, (480, 640))
    maps = render(grasps, lb)
    out = decode_maps(maps, lb, width_scale=WIDTH_SCALE, score_threshold=0.3, max_grasps=20,
                      min_distance=8, smooth_sigma=1.0)[0]
    assert len(out) == len(grasps)
    for g, (x, y, a, wd, q) in zip(out, grasps):  # best first = input order
        assert np.hypot(g.x - x, g.y - y) < 1.0, (g, x, y)
        assert np.degrees(angle_difference(g.angle, a)) < 1.0
        assert abs(g.width - wd) / wd < 0.01
        assert g.height == pytest.approx(0.5 * g.width)
        assert g.quality == pytest.approx(q, abs=0.005)  # heat at the sub-pixel peak


def test_decoding_ignores_padding_and_respects_limits():
    lb = Letterbox.fit((720, 1280), (480, 640))  # 60 px of padding top and bottom
    maps = torch.zeros(5, 480, 640)
    maps[0, 10, 300] = 1.0  # a peak in the padding: must be ignored
    maps[0, 200, 100] = 0.9
    maps[0, 200, 104] = 0.8  # within min_distance of a better peak
    maps[0, 300, 500] = 0.1  # below threshold
    out = decode_maps(maps, lb, width_scale=WIDTH_SCALE, score_threshold=0.2, min_distance=8,
                      smooth_sigma=0.0)[0]
    expect = lb.to_src([100, 200]).round().astype(int)
    assert [(round(g.x), round(g.y)) for g in out] == [(expect[0], expect[1])]
    one = decode_maps(torch.rand(5, 480, 640), lb, width_scale=WIDTH_SCALE, score_threshold=0.0,
                      max_grasps=3, min_distance=2, smooth_sigma=0.0)[0]
    assert len(one) == 3


def test_fast_filters_match_reference():
    h = torch.rand(2, 60, 70)
    for k in (1, 3, 5, 17):
        ref = torch.nn.functional.max_pool2d(h.unsqueeze(1), k, 1, k // 2).squeeze(1)
        assert torch.equal(max_pool_same(h, k), ref)
    from scipy.ndimage import gaussian_filter

    ref = gaussian_filter(h[0].double().numpy(), 1.5, mode="nearest", truncate=3.0)
    np.testing.assert_allclose(smooth(h[:1].double(), 1.5)[0].numpy(), ref, atol=1e-3)


def test_graspnet_rect_parsing():
    # centre (100, 50), open point (110, 60): 45 deg towards +y (y down), width 2*sqrt(200)
    rect = np.array([[100, 50, 110, 60, 20, 0.9, 3], [10, 10, 5, 10, 8, 0.1, 0],
                     [10, 10, 10, 20, 8, 0.1, 0], [10, 10, 20, 0, 8, 0.1, 0]], np.float32)
    g = graspnet_rects_to_grasps(rect)
    assert g[0, :2].tolist() == [100, 50]
    assert g[0, 2] == pytest.approx(np.pi / 4)
    assert g[0, 3] == pytest.approx(2 * np.sqrt(200), rel=1e-6)
    assert g[0, 4:].tolist() == pytest.approx([20, 0.9, 3])
    assert g[1, 2] == pytest.approx(0.0)  # opening towards -x: pi wraps to 0
    assert g[2, 2] == pytest.approx(-np.pi / 2)  # straight down (+y): +pi/2 wraps to -pi/2
    assert g[3, 2] == pytest.approx(-np.pi / 4)  # up and right: y down, so negative
    corners = rect_corners(np.array([[0, 0, 0, 10, 4]]))[0]
    assert sorted(map(tuple, corners.round(6).tolist())) == [(-5, -2), (-5, 2), (5, -2), (5, 2)]


def test_image_to_input_layout():
    img = np.zeros((720, 1280, 3), np.uint8)
    img[:, :, 0] = 255
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    x, lb = image_to_input(img, (224, 294), (480, 640), mean, std)
    assert x.shape == (3, 224, 294) and lb.scale == 0.5 and lb.pad_y == 60
    # padding (top rows) is the mean colour -> 0 after normalisation; content red = +2 / -2
    assert torch.allclose(x[:, 0, :], torch.zeros(3, 294), atol=1e-2)
    assert x[0, 112, 147] == pytest.approx(2.0, abs=1e-2) and x[1, 112, 147] == pytest.approx(-2.0)


@pytest.mark.parametrize("bad,match", [
    (np.zeros((10, 10, 3), np.float32), "uint8"),
    (np.zeros((10, 10), np.uint8), "HxWx3"),
    (np.zeros((10, 10, 4), np.uint8), "3 channels"),
    (np.zeros((0, 10, 3), np.uint8), "empty"),
    (np.zeros((10, 10, 3), np.uint8)[:, :, ::-1], "C-contiguous"),
    (np.zeros((10, 20, 3), np.uint8)[:, ::2], "C-contiguous"),
    ([[1, 2, 3]], "numpy array"),
])
def test_bad_input_is_value_error(tiny_model_factory, bad, match):
    pred = GraspPredictor(tiny_model_factory(), device="cpu")
    with pytest.raises(ValueError, match=match):
        pred.predict(bad)


def test_predictor_settings_validation(tiny_model_factory):
    pred = GraspPredictor(tiny_model_factory(), device="cpu")
    with pytest.raises(ValueError, match="score_threshold"):
        pred.set_decoding(score_threshold=1.5)
    with pytest.raises(ValueError, match="max_grasps"):
        pred.set_decoding(max_grasps=0)
    with pytest.raises(ValueError, match="dtype"):
        GraspPredictor(tiny_model_factory(), device="cpu", dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            GraspPredictor(tiny_model_factory(), device="cuda")
    bf = GraspPredictor(tiny_model_factory(), device="cpu", dtype="bfloat16")
    p = bf.predict(np.zeros((48, 64, 3), np.uint8))
    assert p.maps.dtype == np.float32


def test_checkpoint_predictor_matches_model(tiny_checkpoint, tiny_model_factory):
    pred = GraspPredictor.from_checkpoint(tiny_checkpoint, device="cpu", score_threshold=0.0)
    ref = GraspPredictor(tiny_model_factory(), device="cpu", score_threshold=0.0)
    img = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    a, b = pred.predict(img), ref.predict(img)
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-6)
    assert a.grasp_array().tolist() == b.grasp_array().tolist()


def test_cpu_peak_selection_matches_torch_path():
    """The CPU fast path (OpenCV filters, numpy selection) finds the torch path's peaks."""
    from vita_grasp_core.decoding import find_peaks

    rng = np.random.default_rng(0)
    lb = Letterbox.fit((720, 1280), (480, 640))
    x0, y0, x1, y1 = lb.content_box
    for trial in range(20):
        heat = torch.from_numpy(np.round(rng.random((2, 480, 640)), 2).astype(np.float32))
        md, thr, k = int(rng.integers(0, 9)), float(rng.random() * 0.5), int(rng.integers(1, 40))
        fast = find_peaks(heat, min_distance=md, score_threshold=thr, max_peaks=k,
                          boxes=[lb.content_box] * 2)
        valid = torch.zeros((2, 480, 640), dtype=torch.bool)
        valid[:, y0:y1, x0:x1] = True
        ref = find_peaks(heat, min_distance=md, score_threshold=thr, max_peaks=k, valid=valid)
        for i in range(2):
            assert torch.equal(fast[3][i], ref[3][i])
            keep = fast[3][i]
            assert torch.equal(fast[0][i][keep], ref[0][i][keep])  # same scores, best first
            a = set(zip(fast[1][i][keep].tolist(), fast[2][i][keep].tolist()))
            b = set(zip(ref[1][i][keep].tolist(), ref[2][i][keep].tolist()))
            cut = fast[0][i][keep].min().item() if keep.any() else 0.0
            assert all(abs(heat[i, r, c].item() - cut) < 1e-6 for r, c in a ^ b)  # ties at the cut
