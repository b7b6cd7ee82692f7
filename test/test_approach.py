"""``approach: table``: poses that come straight down onto the table a tilted camera sees.

CONVENTIONS §1 orients a grasp about the optical axis; with ``approach="table"`` the API, the
node and the simulator turn it to approach along the fitted table normal, keeping the position,
``width_m`` and the opening direction as seen in the image.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from fixtures.camera_scenes import _camera, render

from vita_grasp_core.approach import orient_poses
from vita_grasp_core.camera_check.depth import table_approach
from vita_grasp_core.geometry import Letterbox
from vita_grasp_core.grasp import Grasp
from vita_grasp_core.grasp3d import approach_quaternion, grasp_poses, quaternion_about_z
from vita_grasp_core.predictor import Prediction, add_poses


def _matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _deg(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    c = a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def _down(tilt: float, yaw: float) -> np.ndarray:
    """World down (into the table) in the optical frame of the fixture's camera."""
    Rwc, _ = _camera(tilt, 0.6, yaw)
    return Rwc.T @ np.array([0.0, 0.0, -1.0])


@pytest.mark.parametrize("angle", np.linspace(-math.pi / 2, math.pi / 2, 13)[:-1])
def test_the_camera_axis_gives_the_documented_rotation(angle):
    q1, q2 = approach_quaternion(angle, (0, 0, 1)), quaternion_about_z(angle)
    assert abs(abs(float(np.dot(q1, q2))) - 1.0) < 1e-12


@pytest.mark.parametrize("approach", [(0, 0, -1), (1, 0, 0), (0, 0, 0), (np.nan, 0, 1)])
def test_an_approach_that_does_not_point_away_from_the_camera_is_refused(approach):
    with pytest.raises(ValueError, match="approach"):
        approach_quaternion(0.3, approach)


@pytest.mark.parametrize("tilt,yaw", [(0.0, 0.0), (12.0, 30.0), (20.0, 200.0), (40.0, 90.0)])
def test_the_table_normal_of_a_tilted_view(tilt, yaw):
    sc = render((240, 320), seed=int(tilt) + 1, tilt_deg=tilt, yaw_deg=yaw, distance=0.6)
    vec, note = table_approach(sc.depth_m, sc.K)
    assert vec is not None, note
    assert _deg(vec, _down(tilt, yaw)) < 1.0
    assert f"{tilt:.0f}" in note.split()[2].split(".")[0] or abs(tilt) < 1


def test_table_poses_come_straight_down_and_keep_position_width_and_opening():
    tilt, yaw = 18.0, 60.0
    sc = render((240, 320), seed=4, tilt_deg=tilt, yaw_deg=yaw, distance=0.6)
    grasps = [Grasp(160.0 + 30 * i, 120.0 - 20 * i, a, 25.0, 10.0, 0.9)
              for i, a in enumerate((-1.2, 0.0, 0.7))]
    poses = grasp_poses(grasps, sc.depth_m, sc.K, sc.depth_m.shape)
    turned, note = orient_poses(poses, grasps, sc.depth_m, sc.K, sc.depth_m.shape, "table")
    assert note.startswith("table normal"), note
    down = _down(tilt, yaw)
    for g, p, t in zip(grasps, poses, turned):
        assert t.position == p.position and t.width_m == p.width_m and t.depth == p.depth
        R = _matrix(t.quaternion)
        assert _deg(R[:, 2], down) < 1.0  # approach along the table normal
        assert abs(float(np.linalg.det(R)) - 1.0) < 1e-9
        d = np.array([math.cos(g.angle), math.sin(g.angle), 0.0])
        # the opening stays in the plane of the image opening direction and the approach
        assert abs(float(np.linalg.det(np.stack([R[:, 0], d, R[:, 2]])))) < 1e-9
        assert float(R[:, 0] @ d) > 0.9
        # and it is what the camera axis gives on a straight-down view
        assert _deg(_matrix(p.quaternion)[:, 2], (0, 0, 1)) < 1e-6


def _pred(size) -> Prediction:
    g = Grasp(size[1] / 2, size[0] / 2, 0.4, 20.0, 8.0, 0.9)
    return Prediction([g], np.zeros((5, 8, 8), np.float32), Letterbox.fit(size, (8, 8)))


def test_without_a_table_plane_the_poses_keep_the_camera_axis_and_say_why():
    sc = render((240, 320), seed=2, tilt_deg=10.0, distance=0.6)
    holes = np.full_like(sc.depth_m, np.nan)
    holes[116:124, 156:164] = sc.depth_m[116:124, 156:164]  # 64 pixels: no table to trust
    pred = add_poses(_pred(holes.shape), holes, sc.K, depth_check=False, approach="table")
    assert pred.approach_note.startswith("camera axis: no table plane"), pred.approach_note
    assert pred.poses[0].quaternion == quaternion_about_z(0.4)
    pred = add_poses(_pred(holes.shape), sc.depth_m, sc.K, depth_check=False, approach="camera")
    assert pred.approach_note == "camera axis"
    assert pred.poses[0].quaternion == quaternion_about_z(0.4)


def test_a_steep_plane_is_not_taken_for_a_table():
    h, w = 240, 320
    sc = render((h, w), seed=1)
    n = np.array([0.0, -math.sin(math.radians(70)), math.cos(math.radians(70))])
    u, v = np.meshgrid(np.arange(w), np.arange(h))
    rays = np.stack([(u - sc.K[0, 2]) / sc.K[0, 0], (v - sc.K[1, 2]) / sc.K[1, 1],
                     np.ones((h, w))], -1)
    with np.errstate(divide="ignore"):
        depth = (0.5 / (rays @ n)).astype(np.float32)
    depth[(depth <= 0) | (depth > 5)] = np.nan
    vec, note = table_approach(depth, sc.K)
    assert vec is None and "deg from the optical axis" in note, note


def test_an_unknown_approach_is_one_line():
    sc = render((120, 160), seed=0)
    with pytest.raises(ValueError, match="approach must be one of camera, table, got 'side'"):
        add_poses(_pred(sc.depth_m.shape), sc.depth_m, sc.K, approach="side")


@pytest.mark.parametrize("value", [np.inf, -np.inf, -1.0, 1e30, 0.0, np.nan])
def test_hostile_depth_never_gives_a_non_finite_pose(value):
    sc = render((120, 160), seed=5, tilt_deg=12.0, distance=0.6)
    depth = sc.depth_m.copy()
    depth[::2] = value  # half the rows hostile, the other half a real table
    g = Grasp(80.0, 61.0, 0.3, 20.0, 8.0, 0.9)
    poses, note = orient_poses(grasp_poses([g], depth, sc.K, depth.shape), [g], depth, sc.K,
                               depth.shape, "table")
    assert poses[0] is not None and np.isfinite(poses[0].quaternion).all(), note
    depth[:] = value
    vec, note = table_approach(depth, sc.K)
    assert vec is None and note.startswith("no table plane")
