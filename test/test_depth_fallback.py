"""The depth fallback (vita_grasp_core.depth_fallback): grasps from depth alone when the model
has none. Synthetic depth images of boxes on a table (test_grasp_depth's scenes), no simulator."""
from __future__ import annotations

import math

import numpy as np
import pytest
from test_grasp_depth import CX, CY, FX, TABLE, H, K, W, scene

from vita_grasp_core.depth_fallback import FallbackSettings, fallback_grasps, find_bumps
from vita_grasp_core.predictor import GraspPredictor


def pixel_of(x_m, y_m, z):
    return CX + x_m * FX / z, CY + y_m * FX / z


def tray(inner=0.15, wall=0.02, height=0.06):
    """The four walls of a tray (boxes) around the centre: larger than any object."""
    a, b = inner, inner + wall
    return [(-b, b, -b, -a, height), (-b, b, a, b, height), (-b, -a, -a, a, height),
            (a, b, -a, a, height)]


@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_a_small_object_gets_one_grasp_across_its_narrow_side(tilt):
    # 3 cm along x, 1.6 cm along y, 2 cm high, off-centre
    box = (0.05, 0.08, -0.04, -0.024, 0.02)
    grasps, note = fallback_grasps(scene(box, tilt_deg=tilt), K, (H, W))
    assert len(grasps) == 1, note
    g = grasps[0]
    z = TABLE - 0.02
    x0, y0 = pixel_of(0.05, -0.04, z)
    x1, y1 = pixel_of(0.08, -0.024, z)
    assert x0 - 3 <= g.x <= x1 + 3 and y0 - 3 <= g.y <= y1 + 3
    assert abs(abs(g.angle) - math.pi / 2) < math.radians(10)  # closing along y
    assert g.quality == 0.0  # not the model's
    # the opening clears the 1.6 cm side (plus the margins), far less than the 3 cm side + margins
    assert 0.016 * FX / z < g.width < 0.045 * FX / z
    assert "1 object" in note


def test_a_bare_table_and_a_bare_tray_give_no_grasp():
    for depth in (scene(tilt_deg=10.0), scene(*tray())):
        grasps, note = fallback_grasps(depth, K, (H, W))
        assert grasps == [] and "no object" in note


def test_objects_in_a_tray_and_not_its_walls():
    small = (-0.03, 0.0, 0.02, 0.05, 0.025)
    grasps, _ = fallback_grasps(scene(*tray(), small), K, (H, W))
    assert len(grasps) == 1
    x0, y0 = pixel_of(-0.03, 0.02, TABLE - 0.025)
    x1, y1 = pixel_of(0.0, 0.05, TABLE - 0.025)
    assert x0 - 3 <= grasps[0].x <= x1 + 3 and y0 - 3 <= grasps[0].y <= y1 + 3


def test_the_highest_object_comes_first_and_max_grasps_holds():
    low = (-0.10, -0.07, 0.0, 0.03, 0.015)
    high = (0.06, 0.09, 0.0, 0.03, 0.04)
    mid = (-0.02, 0.01, -0.10, -0.07, 0.025)
    bumps = find_bumps(scene(low, high, mid), K, (H, W))
    assert [round(b.height, 3) for b in bumps] == [0.04, 0.025, 0.015]
    grasps, _ = fallback_grasps(scene(low, high, mid), K, (H, W), FallbackSettings(max_grasps=2))
    assert len(grasps) == 2
    assert grasps[0].x > CX  # the high box is right of the centre


def test_too_large_too_flat_and_too_small_things_are_not_objects():
    too_large = (-0.15, 0.05, -0.1, 0.1, 0.03)  # 20 x 20 cm: part of the surface
    too_flat = (0.08, 0.11, 0.0, 0.03, 0.004)  # 4 mm: depth noise, paper
    speck = (-0.002, 0.002, 0.12, 0.124, 0.03)  # 4 x 4 mm
    grasps, note = fallback_grasps(scene(too_large, too_flat, speck), K, (H, W))
    assert grasps == [], note


def test_a_depth_image_of_another_resolution_gives_colour_pixels():
    box = (0.05, 0.08, -0.04, -0.024, 0.02)
    full, _ = fallback_grasps(scene(box), K, (H, W))
    half_depth = scene(box)[::2, ::2]
    half, _ = fallback_grasps(half_depth, K, (H, W))
    assert len(full) == len(half) == 1
    assert abs(full[0].x - half[0].x) < 4 and abs(full[0].y - half[0].y) < 4


@pytest.mark.parametrize("depth", [
    np.full((H, W), np.nan, np.float32), np.zeros((H, W), np.float32),
    np.full((3, 4), 0.6, np.float32), np.full((H, W), np.inf, np.float32),
    np.full((H, W), -1.0, np.float32)])
def test_hostile_depth_gives_no_grasp_and_no_error(depth):
    grasps, note = fallback_grasps(depth, K, (H, W))
    assert grasps == [] and note


@pytest.mark.parametrize("tilt", [0.0, 10.0, 20.0])
def test_holes_in_the_depth_image_are_not_objects(tilt):
    depth = scene(tilt_deg=tilt)
    rng = np.random.default_rng(0)
    depth[rng.random(depth.shape) < 0.3] = np.nan  # 30 % missing pixels
    depth[100:140, 200:260] = 0.0  # a hole (no return)
    for _ in range(30):  # holes of 4-20 px, as a depth camera leaves them
        y, x = rng.integers(0, H - 20), rng.integers(0, W - 20)
        depth[y:y + rng.integers(4, 20), x:x + rng.integers(4, 20)] = np.nan
    assert fallback_grasps(depth, K, (H, W))[0] == []
    box = (0.05, 0.08, -0.04, -0.024, 0.02)  # and an object among the holes is still found
    depth = np.where(np.isnan(depth) | (depth == 0), depth, np.minimum(depth, scene(box)))
    assert len(fallback_grasps(depth, K, (H, W))[0]) == 1


def test_bad_settings_are_one_line_errors():
    for kw in ({"min_height": -1.0}, {"min_height": 0.3, "max_height": 0.2},
               {"max_grasps": 0}, {"margin": float("nan")}):
        with pytest.raises(ValueError, match="depth fallback"):
            FallbackSettings(**kw)


def test_the_predictor_falls_back_only_without_model_grasps_and_without_a_target(
        tiny_model_factory):
    box = (0.05, 0.08, -0.04, -0.024, 0.02)
    depth = scene(box)
    rgb = np.full((H, W, 3), 128, np.uint8)
    none = GraspPredictor(tiny_model_factory(), device="cpu", score_threshold=1.0)
    off = none.predict(rgb, depth=depth, K=K)
    assert off.grasps == [] and off.fallback_note == ""
    on = none.predict(rgb, depth=depth, K=K, fallback=True, approach="table")
    assert len(on.grasps) == 1 and on.grasps[0].quality == 0.0
    assert on.poses[0] is not None and "1 object" in on.fallback_note
    assert abs(on.poses[0].position[2] - (TABLE - 0.02)) < 0.01  # on the box's top
    assert on.depth_check is not None and on.depth_check.kept[0].status == "ok"
    from vita_grasp_core.target_select import BoxTarget

    targeted = none.predict(rgb, BoxTarget(((0, 0, 50, 50),)), depth=depth, K=K, fallback=True)
    assert targeted.grasps == []
    # the model's own grasps (threshold 0) are never replaced
    some = GraspPredictor(tiny_model_factory(), device="cpu", score_threshold=0.0)
    own = some.predict(rgb, depth=depth, K=K, fallback=True)
    assert own.grasps and own.fallback_note == "" and own.grasps[0].quality > 0.0
