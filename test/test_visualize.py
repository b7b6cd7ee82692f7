"""vita_grasp_core.visualize: rectangles where the grasps are, heatmaps aligned with source pixels
through the letterbox (no ROS)."""
from __future__ import annotations

import numpy as np
import pytest

from vita_grasp_core.geometry import Letterbox
from vita_grasp_core.grasp import Grasp, grasps_to_array
from vita_grasp_core.visualize import (
    BEST_COLOR,
    JAW_COLOR,
    OPEN_COLOR,
    draw_grasps,
    grasp_colors,
    heatmap_overlay,
    heatmap_to_source,
    render_prediction,
)


def _blank(h=200, w=300):
    return np.zeros((h, w, 3), np.uint8)


def _near(img, xy, color, r=1):
    x, y = int(round(xy[0])), int(round(xy[1]))
    patch = img[y - r:y + r + 1, x - r:x + r + 1].reshape(-1, 3).astype(int)
    return (np.abs(patch - np.array(color)).sum(1) < 60).any()


def test_edges_are_drawn_in_their_colours():
    # angle 0: opening along +x. Jaws are the vertical edges at x = 150 +- 40.
    g = Grasp(150, 100, 0.0, 80, 40, 0.5)
    other = Grasp(60, 60, 0.0, 40, 20, 0.2)
    out = draw_grasps(_blank(), [other, g], highlight_best=False, thickness=1)
    assert _near(out, (190, 100), JAW_COLOR) and _near(out, (110, 100), JAW_COLOR)
    assert _near(out, (150, 80), OPEN_COLOR) and _near(out, (150, 120), OPEN_COLOR)
    assert not out[100, 150].any()  # inside stays untouched
    # the first grasp of the list is the best one: highlighted jaws and a centre dot
    out = draw_grasps(_blank(), [g, other])
    assert _near(out, (190, 100), BEST_COLOR) and _near(out, (150, 100), BEST_COLOR)
    assert _near(out, (80, 60), JAW_COLOR)


def test_rotated_grasp_jaws_follow_the_angle():
    # angle +90 deg with y down: the opening points down, so the jaws are horizontal at y +- 40
    g = Grasp(150, 100, np.pi / 2 - 1e-9, 80, 40, 0.5)
    out = draw_grasps(_blank(), [g], highlight_best=False)
    assert _near(out, (150, 140), JAW_COLOR) and _near(out, (150, 60), JAW_COLOR)
    assert _near(out, (170, 100), OPEN_COLOR) and _near(out, (130, 100), OPEN_COLOR)


def test_inputs_and_copy_semantics():
    img = _blank()
    arr = grasps_to_array([Grasp(150, 100, 0.3, 80, 40)])
    out = draw_grasps(img, arr)
    assert out is not img and not img.any() and out.any()
    same = draw_grasps(img, arr, copy=False)
    assert same is img and img.any()
    assert not draw_grasps(_blank(), []).any()
    assert not draw_grasps(_blank(), np.zeros((0, 7))).any()
    assert draw_grasps(_blank(), [Grasp(1e12, np.nan, 0, 5, 5)]).shape == (200, 300, 3)
    assert not draw_grasps(_blank(), arr, max_grasps=0).any()
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        draw_grasps(np.zeros((10, 10), np.uint8), arr)
    with pytest.raises(ValueError, match=r"\(N, >=5\)"):
        draw_grasps(_blank(), np.zeros((2, 3)))


def test_heatmap_is_mapped_back_through_the_letterbox():
    src = (360, 640)  # 16:9 into a 4:3 canvas: padding above and below
    lb = Letterbox.fit(src, (120, 160))
    heat = np.zeros(lb.dst_size, np.float32)
    # a peak at the canvas position of source pixel (500, 300)
    cx, cy = lb.to_dst([500, 300])
    heat[int(round(cy)), int(round(cx))] = 1.0
    back = heatmap_to_source(heat, lb)
    assert back.shape == src
    y, x = np.unravel_index(np.argmax(back), back.shape)
    assert abs(x - 500) <= 2 and abs(y - 300) <= 2
    # exact for a smooth map: a linear ramp in canvas x is the same ramp of to_dst(x) in source
    ramp = np.tile(np.arange(160, dtype=np.float32), (120, 1))
    back = heatmap_to_source(ramp, lb)
    xs = np.array([10.0, 320.0, 600.0])
    want = lb.to_dst(np.stack([xs, np.full(3, 100.0)], 1))[:, 0]
    np.testing.assert_allclose(back[100, xs.astype(int)], want, atol=1e-3)


def test_heatmap_overlay_blends_colour_where_the_heat_is():
    lb = Letterbox.fit((200, 300), (60, 80))
    maps = np.zeros((5, 60, 80), np.float32)
    cx, cy = lb.to_dst([250, 150])
    maps[0, int(round(cy)) - 2:int(round(cy)) + 3, int(round(cx)) - 2:int(round(cx)) + 3] = 1.0
    rgb = np.full((200, 300, 3), 100, np.uint8)
    out = heatmap_overlay(rgb, maps, lb, alpha=0.5)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    hot, cold = out[150, 250].astype(int), out[20, 20].astype(int)
    assert hot[0] > hot[2]  # jet: hot is red (RGB order)
    assert cold[2] > cold[0]  # cold is blue
    assert heatmap_overlay(rgb, maps[0], lb, alpha=0.0).tolist() == rgb.tolist()
    with pytest.raises(ValueError, match="letterbox source size"):
        heatmap_overlay(np.zeros((10, 10, 3), np.uint8), maps, lb)
    with pytest.raises(ValueError, match="alpha"):
        heatmap_overlay(rgb, maps, lb, alpha=2)


def test_render_prediction_and_colors():
    from vita_grasp_core.predictor import Prediction

    lb = Letterbox.fit((200, 300), (60, 80))
    pred = Prediction([Grasp(150, 100, 0.0, 80, 40, 0.9)], np.zeros((5, 60, 80), np.float32), lb)
    rgb = np.full((200, 300, 3), 100, np.uint8)
    out = render_prediction(rgb, pred)
    assert out.shape == rgb.shape and (out != rgb).any()
    assert (rgb == 100).all()
    c = grasp_colors(3, [0.9, 0.5, 0.0])
    assert c.shape == (3, 3) and c[0].tolist() == pytest.approx([0.1, 1.0, 0.1])
    assert grasp_colors(0).shape == (0, 3)
