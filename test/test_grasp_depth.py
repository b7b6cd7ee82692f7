"""The depth check of grasps (vita_grasp_core.grasp_depth): synthetic depth images of boxes on a
table seen from above, no simulator."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vita_grasp_core.grasp import Grasp
from vita_grasp_core.grasp3d import grasp_poses
from vita_grasp_core.grasp_depth import DepthCheckSettings, check_grasps

H, W = 480, 640
FX = FY = 421.0
CX, CY = 319.5, 239.5
K = np.array([[FX, 0, CX], [0, FY, CY], [0, 0, 1.0]])
TABLE = 0.6  # m from the camera


def scene(*boxes, table=TABLE, tilt_deg=0.0):
    """Depth [m] of axis-aligned boxes (x0, x1, y0, y1, height) [m, camera x/y] on a table
    plane (tilted about the camera's x axis by ``tilt_deg``)."""
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    ray_x, ray_y = (u - CX) / FX, (v - CY) / FY
    t = math.tan(math.radians(tilt_deg))
    d = table / (1.0 - t * ray_y)  # plane z = table + t * y
    for x0, x1, y0, y1, height in boxes:
        z = table - height
        X, Y = ray_x * z, ray_y * z
        m = (X >= x0) & (X <= x1) & (Y >= y0) & (Y <= y1)
        d[m] = np.minimum(d[m], z)
    return d.astype(np.float32)


def grasp_at(x_m=0.0, z=0.55, width_m=0.02, angle=0.0, quality=0.9):
    return Grasp(CX + x_m * FX / z, CY, angle, width_m * FX / z, 0.022 * FX / z, quality)


def only(check):
    assert len(check.kept) + len(check.dropped) == 1
    return (check.kept + check.dropped)[0]


BOX = (-0.02, 0.02, -0.03, 0.03, 0.05)  # 4 cm wide along x, 5 cm high


@pytest.mark.parametrize("tilt", [0.0, 15.0])
def test_a_narrow_opening_is_widened_to_clear_the_object(tilt):
    depth = scene(BOX, tilt_deg=tilt)
    c = only(check_grasps([grasp_at(width_m=0.02)], depth, K, (H, W)))
    assert c.status == "ok"
    assert 0.036 <= c.extent_m <= 0.044
    margin = DepthCheckSettings().margin
    assert c.opening_m == pytest.approx(c.extent_m + 2 * margin, abs=0.004)
    # the contract holds for the refined grasp: width_m = width * z / fx, pose = grasp_poses
    assert c.pose.width_m == pytest.approx(c.opening_m, abs=1e-6)
    assert c.pose == grasp_poses([c.grasp], depth, K, (H, W))[0]
    assert "opening 20 ->" in c.note


def test_a_wide_opening_is_fitted_or_kept_with_opening_wider():
    depth = scene(BOX)
    g = grasp_at(width_m=0.09)
    assert only(check_grasps([g], depth, K, (H, W))).opening_m < 0.07
    wider = only(check_grasps([g], depth, K, (H, W), DepthCheckSettings(opening="wider")))
    assert wider.status == "ok" and wider.opening_m == pytest.approx(0.09, abs=0.002)


def test_a_low_object_uses_the_support_surface():
    """A 1.5 cm high object: the fingers stop above the table, the object is still seen."""
    c = only(check_grasps([grasp_at(z=0.585)], scene((-0.02, 0.02, -0.03, 0.03, 0.015)), K,
                          (H, W)))
    assert c.status == "ok" and 0.036 <= c.extent_m <= 0.044


# object 1 cm left and 3 cm right of the grasp centre, a tall thin neighbour 2.5 cm to its left
ASYMMETRIC = ((-0.01, 0.03, -0.03, 0.03, 0.05), (-0.045, -0.035, -0.03, 0.03, 0.06))


def test_a_neighbour_under_a_fingertip_demotes_the_grasp():
    depth = scene(*ASYMMETRIC)
    bad = grasp_at(quality=0.9)
    good = Grasp(CX + 0.01 * FX / 0.55, CY + 0.0, math.pi / 2 - 1e-3, 0.05 * FX / 0.55, 9, 0.5)
    check = check_grasps([bad, good], depth, K, (H, W), DepthCheckSettings(turns=()))
    assert [c.status for c in check.kept] == ["ok", "collision"]
    assert check.kept[0].rank == 1 and check.kept[1].rank == 0  # the clear one goes first
    assert "left finger" in check.kept[1].note
    dropped = check_grasps([bad, good], depth, K, (H, W),
                           DepthCheckSettings(turns=(), failing="drop"))
    assert [c.rank for c in dropped.kept] == [1] and dropped.dropped[0].status == "collision"


def test_a_colliding_grasp_is_turned_when_a_turn_clears_it():
    post = (-0.045, -0.035, -0.008, 0.008, 0.06)  # a thin post beside the closing line
    c = only(check_grasps([grasp_at()], scene(ASYMMETRIC[0], post), K, (H, W)))
    assert c.status == "ok" and "turned" in c.note and "left finger" in c.note
    assert c.grasp.angle != 0.0
    assert c.pose.quaternion == grasp_poses([c.grasp], scene(ASYMMETRIC[0], post), K,
                                            (H, W))[0].quaternion


def test_an_object_wider_than_the_gripper_is_demoted_or_dropped():
    depth = scene((-0.07, 0.07, -0.08, 0.08, 0.03), (0.1, 0.13, 0.1, 0.13, 0.05))
    wide = grasp_at(z=0.57, width_m=0.05, quality=0.9)
    small = Grasp(CX + 0.115 * FX / 0.55, CY + 0.115 * FY / 0.55, 0.0, 20, 9, 0.3)
    check = check_grasps([wide, small], depth, K, (H, W))
    assert [(c.rank, c.status) for c in check.kept] == [(1, "ok"), (0, "too_wide")]
    assert "wider than the gripper" in check.kept[1].note
    assert check.kept[1].grasp == wide  # demoted unchanged: executed only if nothing passes
    dropped = check_grasps([wide, small], depth, K, (H, W), DepthCheckSettings(failing="drop"))
    assert [c.rank for c in dropped.kept] == [1] and dropped.dropped[0].status == "too_wide"


def test_a_grasp_between_objects_is_empty_and_demoted():
    depth = scene((0.07, 0.1, -0.03, 0.03, 0.05))
    c = only(check_grasps([grasp_at(z=TABLE)], depth, K, (H, W)))
    assert c.status == "empty"


def test_nan_depth_is_handled():
    depth = scene(BOX)
    holes = depth.copy()
    holes[::3, ::2] = np.nan  # a third of the pixels invalid everywhere
    c = only(check_grasps([grasp_at()], holes, K, (H, W)))
    assert c.status == "ok" and c.pose is not None
    holes[200:280, 290:350] = np.nan  # no depth at the centre
    c = only(check_grasps([grasp_at(), ], holes, K, (H, W)))
    assert c.status == "no_depth" and c.pose is None
    assert not check_grasps([grasp_at()], np.full((H, W), np.nan, np.float32), K,
                            (H, W)).kept[0].pose
    assert check_grasps([], depth, K, (H, W)).kept == []


def test_a_depth_image_of_another_resolution():
    depth = scene(BOX)[::2, ::2].copy()  # 320x240 registered depth for the 640x480 image
    c = only(check_grasps([grasp_at()], depth, K, (H, W)))
    assert c.status == "ok" and 0.034 <= c.extent_m <= 0.046


def test_bad_settings_are_one_line_errors():
    for bad in ({"margin": -0.01}, {"max_opening": float("nan")}, {"failing": "ignore"},
                {"turns": (120.0,)}, {"opening": "huge"}):
        with pytest.raises(ValueError, match="depth check"):
            DepthCheckSettings(**bad)


def test_a_tall_wall_under_the_palm_demotes_the_grasp():
    """A 10 cm wall 7 cm from the centre: the fingers are clear, the palm (6 cm above the
    fingertips, 16 cm long) is not; a 3 cm wall there is fine."""
    tall = only(check_grasps([grasp_at()], scene(BOX, (0.07, 0.09, -0.1, 0.1, 0.1)), K, (H, W),
                             DepthCheckSettings(turns=())))
    assert tall.status == "collision" and "palm" in tall.note
    low = only(check_grasps([grasp_at()], scene(BOX, (0.07, 0.09, -0.1, 0.1, 0.03)), K, (H, W),
                            DepthCheckSettings(turns=())))
    assert low.status == "ok"


def test_the_defaults_are_the_simulated_gripper():
    from vita_grasp_core.sim import gripper as g

    s = DepthCheckSettings()
    assert (s.max_opening, s.finger_width, s.finger_thickness, s.finger_length,
            s.approach_depth) == (g.MAX_OPENING, g.FINGER_WIDTH, g.FINGER_THICKNESS,
                                  g.FINGER_LENGTH, g.GRASP_DEPTH)
    assert (s.palm_length, s.palm_width) == (2 * g.PALM_HALF[0], 2 * g.PALM_HALF[1])


def test_recentre_moves_the_centre_to_the_middle_of_the_object():
    depth = scene(ASYMMETRIC[0])  # 1 cm left and 3 cm right of the grasp centre
    plain = only(check_grasps([grasp_at()], depth, K, (H, W)))
    moved = only(check_grasps([grasp_at()], depth, K, (H, W), DepthCheckSettings(recentre=True)))
    assert plain.opening_m == pytest.approx(0.08, abs=0.006) and plain.grasp.x == grasp_at().x
    assert moved.opening_m == pytest.approx(0.06, abs=0.006) and "centred +" in moved.note
    assert moved.pose.position[0] == pytest.approx(0.01, abs=0.002)
    assert moved.pose == grasp_poses([moved.grasp], depth, K, (H, W))[0]


def test_align_turns_the_grasp_across_the_narrower_side():
    depth = scene((-0.03, 0.03, -0.012, 0.012, 0.05))  # 6 cm along x, 2.4 cm along y
    g = grasp_at(angle=math.radians(60))  # 2.4 / sin(60) = 2.8 cm across at the model's angle
    plain = only(check_grasps([g], depth, K, (H, W)))
    aligned = only(check_grasps([g], depth, K, (H, W), DepthCheckSettings(align=True)))
    assert plain.grasp.angle == pytest.approx(g.angle)
    assert aligned.grasp.angle == pytest.approx(math.radians(90), abs=1e-6) or \
        aligned.grasp.angle == pytest.approx(-math.radians(90), abs=1e-6)
    assert aligned.extent_m < plain.extent_m and "turned +30 deg" in aligned.note


def test_only_the_best_max_checked_grasps_are_checked():
    gs = [grasp_at(x_m=0.001 * i, quality=1.0 - 0.01 * i) for i in range(5)]
    check = check_grasps(gs, scene(BOX), K, (H, W), DepthCheckSettings(max_checked=2))
    assert [c.status for c in check.kept] == ["ok", "ok", "unchecked", "unchecked", "unchecked"]
    assert [c.grasp for c in check.kept[2:]] == gs[2:] and all(c.pose for c in check.kept)


def test_hostile_depth_values_never_give_a_non_finite_pose():
    depth = scene(BOX)
    rng = np.random.default_rng(0)
    for bad in (np.inf, -np.inf, -1.0, 0.0, 1e30, 3e38):
        d = depth.copy()
        d[rng.random(d.shape) < 0.3] = bad
        for c in check_grasps([grasp_at(), grasp_at(x_m=0.2)], d, K, (H, W)).kept:
            assert c.status in ("ok", "empty", "collision", "too_wide", "no_depth")
            if c.pose is not None:
                assert np.isfinite([*c.pose.position, c.pose.width_m]).all()
    tiny = np.full((3, 4), 0.6, np.float32)  # a 4x3 depth image for the 640x480 frame
    assert check_grasps([grasp_at()], tiny, K, (H, W)).kept[0].status == "empty"


def test_a_grasp_along_an_elongated_object_is_turned_across_it():
    """A 14 x 8.5 cm box grasped along its length is too wide for the gripper at the model's
    angle and up to 60 degrees from it; turned a quarter turn it fits."""
    depth = scene((-0.07, 0.07, -0.0425, 0.0425, 0.04))
    g = grasp_at(z=0.56, width_m=0.08)
    short = only(check_grasps([g], depth, K, (H, W), DepthCheckSettings(turns=(15, 30, 45, 60))))
    assert short.status == "too_wide"
    c = only(check_grasps([g], depth, K, (H, W)))
    assert c.status == "ok" and "turned +90 deg" in c.note
    assert abs(c.grasp.angle) == pytest.approx(math.pi / 2, abs=1e-6)
    assert c.extent_m == pytest.approx(0.085, abs=0.006) and c.opening_m <= 0.11
