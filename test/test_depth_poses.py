"""The shared path from grasps + depth to executed poses (vita_grasp_core.depth_poses): the depth
check judged along the approach the pose is executed with."""
from __future__ import annotations

import math

import numpy as np
import pytest
from fixtures.camera_scenes import _box_hits, _camera, kinect_like_K
from test_grasp_depth import CX, CY, H, K, W, scene

from vita_grasp_core.approach import approach_vector
from vita_grasp_core.depth_poses import depth_poses
from vita_grasp_core.grasp import Grasp
from vita_grasp_core.grasp_depth import DepthCheckSettings, check_grasps

SIZE = (480, 640)


def tilted_box(tilt_deg: float, box=(0.0, 0.0, 0.04, 0.10, 0.06, 0.0), K=None):
    """Depth of one box (centre x, y, length along world x, width, height, yaw) standing on a
    table, seen by a camera (intrinsics ``K``, 640x480) tilted ``tilt_deg`` towards +x from
    0.6 m away; its ``K``, the pixel of the box's top centre and the image angle of the world x
    axis there."""
    Kc = kinect_like_K(SIZE) if K is None else np.asarray(K, np.float64)
    R, o = _camera(tilt_deg, 0.6, 0.0)
    u, v = np.meshgrid(np.arange(SIZE[1], dtype=np.float64), np.arange(SIZE[0], dtype=np.float64))
    d = np.stack([(u - Kc[0, 2]) / Kc[0, 0], (v - Kc[1, 2]) / Kc[1, 1], np.ones_like(u)], -1) @ R.T
    t_table = np.where(d[..., 2] < 0, -o[2] / np.minimum(d[..., 2], -1e-9), np.nan)
    t_box, _ = _box_hits(o, d, box)
    depth = np.where(t_box < t_table, t_box, t_table).astype(np.float32)

    def pixel(p):
        c = R.T @ (np.asarray(p, np.float64) - o)
        return Kc[0, 0] * c[0] / c[2] + Kc[0, 2], Kc[1, 1] * c[1] / c[2] + Kc[1, 2]

    top = (box[0], box[1], box[4])
    (x0, y0), (x1, y1) = pixel(top), pixel((box[0] + 0.01, box[1], box[4]))
    return depth, Kc, (x0, y0), math.atan2(y1 - y0, x1 - x0)


@pytest.mark.parametrize("tilt", [20.0, 30.0])
def test_along_the_table_normal_the_opening_fits_the_object_not_its_visible_side(tilt):
    """A tilted camera sees one side of a box: along the camera axis that side lies across the
    closing line and widens the opening; the gripper comes straight down the table normal, where
    the box is as wide as it is."""
    depth, Kc, (x, y), angle = tilted_box(tilt)
    g = Grasp(x, y, angle, 30.0, 12.0, 0.9)
    vec, note = approach_vector(depth, Kc, SIZE, "table")
    assert vec is not None, note
    along_camera = check_grasps([g], depth, Kc, SIZE).kept[0]
    along_normal = check_grasps([g], depth, Kc, SIZE, approach=vec).kept[0]
    assert along_normal.status == "ok"
    assert along_normal.extent_m == pytest.approx(0.04, abs=0.006)
    # along the camera axis the upper part of the visible side (the fingertips reach 25 mm
    # below the top) lies across the closing line: about 25 mm x tan(tilt) wider
    assert along_camera.extent_m >= along_normal.extent_m + 0.006
    assert along_camera.opening_m > along_normal.opening_m + 0.01
    out = depth_poses([g], depth, Kc, SIZE, check=DepthCheckSettings(), approach="table")
    assert out.poses[0].width_m == pytest.approx(along_normal.opening_m, abs=1e-6)
    assert out.approach_note.startswith("table normal")


def test_a_straight_down_approach_judges_as_the_camera_axis():
    depth = scene((-0.02, 0.02, -0.03, 0.03, 0.05), (-0.045, -0.035, -0.03, 0.03, 0.06))
    grasps = [Grasp(CX + dx, CY, a, 25.0, 10.0, 0.9) for dx, a in ((0, 0.0), (8, 1.2))]
    plain = check_grasps(grasps, depth, K, (H, W))
    down = check_grasps(grasps, depth, K, (H, W), approach=(0.0, 0.0, 2.0))
    assert [c.to_dict() for c in plain.kept] == [c.to_dict() for c in down.kept]
    assert plain.poses == down.poses


def test_the_summary_counts_too_wide_grasps_as_failing():
    wide = scene((-0.07, 0.07, -0.03, 0.03, 0.05))
    check = check_grasps([Grasp(CX, CY, 0.0, 40.0, 12.0, 0.9)], wide, K, (H, W),
                         DepthCheckSettings(turns=()))
    assert check.kept[0].status == "too_wide"
    assert check.summary().startswith("0 clear (0 changed), 1 failing")
