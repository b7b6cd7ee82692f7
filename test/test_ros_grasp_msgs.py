"""Prediction -> GraspArray / markers / debug image, and the 3-D pose maths (CONVENTIONS §1)."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vita_grasp_core.geometry import Letterbox
from vita_grasp_core.grasp import Grasp
from vita_grasp_core.grasp3d import (
    check_distortion,
    check_intrinsics,
    check_size,
    grasp_poses,
    has_distortion,
    intrinsics_for_image,
    quaternion_about_z,
    robust_depth,
    scale_intrinsics,
    valid_intrinsics,
)

K = np.array([[600.0, 0, 320.0], [0, 610.0, 240.0], [0, 0, 1]])
GRASPS = [Grasp(100.0, 50.0, 0.3, 80.0, 40.0, 0.9, 0.7), Grasp(400.5, 300.25, -1.2, 30.0, 15.0,
                                                             0.4, 0.1)]


# ---------------------------------------------------------------- grasp3d (no ROS)
def test_pose_back_projection_and_width():
    depth = np.full((480, 640), 0.8, np.float32)
    poses = grasp_poses(GRASPS, depth, K, (480, 640))
    for g, p in zip(GRASPS, poses):
        z = 0.8
        assert p.position == pytest.approx(((g.x - 320) * z / 600, (g.y - 240) * z / 610, z))
        assert p.width_m == pytest.approx(g.width * z / 600)
        assert p.quaternion == pytest.approx((0, 0, math.sin(g.angle / 2), math.cos(g.angle / 2)))
        # the quaternion turns +x (opening) towards +y by the angle, as in the image
        qz, qw = p.quaternion[2], p.quaternion[3]
        rot_x = (1 - 2 * qz * qz, 2 * qz * qw)
        assert rot_x == pytest.approx((math.cos(g.angle), math.sin(g.angle)))


def test_robust_depth_is_the_median_of_valid_pixels():
    d = np.full((20, 20), 1.0, np.float32)
    d[8:13, 8:13] = [[0.5, np.nan, 0.0, 2.0, 1.0]] * 5  # 5x5 window around (10, 10)
    # valid: 0.5, 2.0, 1.0 per row -> median 1.0
    assert robust_depth(d, 10, 10, 5) == pytest.approx(1.0)
    d[8:13, 8:13] = np.nan
    assert math.isnan(robust_depth(d, 10, 10, 5))
    assert robust_depth(d, 10, 10, 7) == pytest.approx(1.0)  # wider window reaches valid pixels
    assert math.isnan(robust_depth(d, -5, 3, 5))  # outside the image


def test_missing_depth_gives_none():
    depth = np.full((480, 640), np.nan, np.float32)
    assert grasp_poses(GRASPS, depth, K, (480, 640)) == [None, None]
    depth[:] = 50.0  # beyond max_depth
    assert grasp_poses(GRASPS, depth, K, (480, 640)) == [None, None]


def test_other_resolutions():
    # depth at half resolution, K given for the image size
    depth = np.full((240, 320), 1.2, np.float32)
    p = grasp_poses(GRASPS[:1], depth, K, (480, 640))[0]
    assert p.position[2] == pytest.approx(1.2)
    assert p.position[0] == pytest.approx((100 - 320) * 1.2 / 600)
    # K of a 1280x960 CameraInfo scaled to the 640x480 image
    K2 = np.array([[1200.0, 0, 640.5], [0, 1220.0, 480.5], [0, 0, 1]])
    Ks = scale_intrinsics(K2, (960, 1280), (480, 640))
    np.testing.assert_allclose(Ks, K)
    assert valid_intrinsics(K) and not valid_intrinsics(np.zeros(9))


KV = [600.0, 0, 320.0, 0, 610.0, 240.0, 0, 0, 1]


@pytest.mark.parametrize("k,info_size,reason", [
    # the hostile values of issue 12: a pose at x = 2e32 m, a 192 km opening, silent rescaling
    ([1e-30, 0, 320, 0, 1e-30, 240, 0, 0, 1], (480, 640),
     "fx = 1e-30 px is implausible for a 640 px wide image (expected 64 .. 64000)"),
    (KV, (4_000_000_000, 4_000_000_000),
     "CameraInfo size 4000000000x4000000000 is implausible for a 640x480 image"),
    (KV, (720, 1280), "CameraInfo aspect ratio 1.778 (1280x720) differs from the image's 1.333"),
    ([float("nan"), 0, 320, 0, 610, 240, 0, 0, 1], (480, 640), "fx is NaN"),
    ([600, 0, 320, 0, 610, float("inf"), 0, 0, 1], (480, 640), "cy is inf"),
    ([600, 0, 320, 0, 610, 240, 0, float("nan"), 1], (480, 640), "K[2][1] is NaN"),
    ([0.0] * 9, (480, 640), "K is all zeros (an uncalibrated camera driver)"),
    ([600, 0, 320, 0, -610, 240, 0, 0, 1], (480, 640), "fy is -610; focal lengths must be"),
    ([600, 0, 5000, 0, 610, 240, 0, 0, 1], (480, 640), "principal point (cx, cy) = (5000, 240)"),
    ([600, 0, 320, 0, 610, 240, 0, 0, 1], (0, 640), "CameraInfo size 640x0 has a zero side"),
    ([600, 0, 320], (480, 640), "K has 3 values, expected 9"),
    ([6e6, 0, 320, 0, 6e6, 240, 0, 0, 1], (480, 640), "fx = 6e+06 px is implausible"),
    # the pinhole form the back-projection assumes (issue 21 item 2)
    ([600, 3.0, 320, 0, 610, 240, 0, 0, 1], (480, 640), "K has skew K[0][1] = 3"),
    ([600, 0, 320, 0, 610, 240, 0, 0, 2], (480, 640), "K's bottom row is (0, 0, 2), expected"),
    ([600, 0, 320, 0, 610, 240, 0.1, 0, 1], (480, 640), "K's bottom row is (0.1, 0, 1)"),
    ([600, 0, 320, 7.0, 610, 240, 0, 0, 1], (480, 640), "K[1][0] is 7, expected 0"),
])
def test_implausible_intrinsics_are_rejected_with_the_real_cause(k, info_size, reason):
    got = check_intrinsics(k, info_size, (480, 640))
    assert got is not None and got.startswith(reason), got
    K, why = intrinsics_for_image(k, info_size, (480, 640))
    assert K is None and why == got


@pytest.mark.parametrize("size,reason", [
    ((1, 1), "depth image size 1x1 is implausible for a 640x480 image"),
    ((10, 10000), "depth image size 10000x10 is implausible"),
    ((360, 640), "depth image aspect ratio 1.778 (640x360) differs from the image's 1.333"),
    ((0, 640), "depth image size 640x0 has a zero side"),
    ((480, 640), None), ((240, 320), None), ((960, 1280), None), ((481, 640), None),
])
def test_a_depth_image_must_be_the_same_camera_mode(size, reason):
    got = check_size("depth image", size, (480, 640))
    assert got == reason if reason is None else got.startswith(reason), got


def test_distortion_must_be_finite_and_is_reported():
    assert check_distortion([]) is None and not has_distortion([])
    assert check_distortion([0.1, -0.2, 0, 0, 0.01]) is None
    assert has_distortion([0.1, -0.2, 0, 0, 0.01]) and not has_distortion([0.0] * 5)
    assert check_distortion([0.1, float("nan"), 0, 0, 0]) == "distortion coefficient D[1] is NaN"
    assert "at most 64" in check_distortion([0.0] * 1000)


def test_plausible_intrinsics_pass_and_are_scaled_to_the_image():
    assert check_intrinsics(KV, (480, 640), (480, 640)) is None
    assert check_intrinsics(KV, (0, 0), (480, 640)) is None  # size unknown: the image's
    # the same camera at 2x (pixel-centre aware), within the aspect tolerance
    K2 = [1200.0, 0, 640.5, 0, 1220.0, 480.5, 0, 0, 1]
    K, why = intrinsics_for_image(K2, (960, 1280), (480, 640))
    assert why is None
    np.testing.assert_allclose(K, np.array(KV).reshape(3, 3))
    # a fisheye-like short focal length and a slightly off-centre principal point are fine
    assert check_intrinsics([100, 0, 700, 0, 100, -100, 0, 0, 1], None, (480, 640)) is None
    assert valid_intrinsics(KV) and not valid_intrinsics([float("nan")] + KV[1:])


def test_no_pose_has_a_non_finite_number():
    depth = np.full((480, 640), 0.8, np.float32)
    g = [Grasp(float("nan"), 50.0, 0.3, 80.0, 40.0, 0.9, 0.7), GRASPS[0]]
    poses = grasp_poses(g, depth, K, (480, 640))
    assert poses[0] is None and poses[1] is not None


def test_quaternion_about_z():
    assert quaternion_about_z(0.0) == (0.0, 0.0, 0.0, 1.0)
    q = quaternion_about_z(math.pi / 2)
    assert q[2] == pytest.approx(math.sqrt(0.5)) and q[3] == pytest.approx(math.sqrt(0.5))


# ---------------------------------------------------------------- ROS messages
rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")


def _header(frame="rgb_camera_link", sec=5, nsec=7):
    from std_msgs.msg import Header

    h = Header(frame_id=frame)
    h.stamp.sec, h.stamp.nanosec = sec, nsec
    return h


def test_grasp_array_fields_and_serialization():
    from rclpy.serialization import deserialize_message, serialize_message
    from vita_grasp.msg import GraspArray

    from vita_grasp_ros.grasp_msgs import copy_header, grasps_to_msg, msg_to_grasp_rows

    h = _header()
    msg = grasps_to_msg(GRASPS, copy_header(h), (480, 640))
    back = deserialize_message(serialize_message(msg), GraspArray)
    assert back.header.stamp.sec == 5 and back.header.stamp.nanosec == 7
    assert back.header.frame_id == "rgb_camera_link"
    assert (back.image_height, back.image_width) == (480, 640)
    rows = msg_to_grasp_rows(back)
    want = np.array([[g.x, g.y, g.angle, g.width, g.height, g.quality, g.object_score]
                     for g in GRASPS], np.float32)
    np.testing.assert_allclose(rows, want, rtol=1e-6)
    for g in back.grasps:
        assert not g.has_pose and g.width_m == 0.0 and g.pose.orientation.w == 1.0
    assert copy_header(h, "other").frame_id == "other"
    assert copy_header(h, "").frame_id == "rgb_camera_link"
    assert msg_to_grasp_rows(grasps_to_msg([], h, (1, 1))).shape == (0, 7)


def test_grasp_array_with_poses_and_markers():
    from visualization_msgs.msg import Marker

    from vita_grasp_ros.grasp_msgs import grasps_to_markers, grasps_to_msg

    depth = np.full((480, 640), 0.6, np.float32)
    poses = grasp_poses(GRASPS, depth, K, (480, 640))
    poses[1] = None
    msg = grasps_to_msg(GRASPS, _header(), (480, 640), poses)
    g0, g1 = msg.grasps
    assert g0.has_pose and not g1.has_pose
    assert g0.pose.position.z == pytest.approx(0.6)
    assert g0.width_m == pytest.approx(80 * 0.6 / 600)
    assert g0.pose.orientation.z == pytest.approx(math.sin(0.15))
    ma = grasps_to_markers(msg)
    assert ma.markers[0].action == Marker.DELETEALL
    assert len(ma.markers) == 2  # DELETEALL + the one posed grasp
    m = ma.markers[1]
    assert m.type == Marker.LINE_LIST and m.header.frame_id == "rgb_camera_link"
    assert m.header.stamp.sec == 5 and len(m.points) == 8
    xs = sorted({round(p.x, 9) for p in m.points})
    assert xs[0] == pytest.approx(-g0.width_m / 2) and xs[-1] == pytest.approx(g0.width_m / 2)
    assert max(p.z for p in m.points) == 0.0  # fingertips at the grasp point, body towards camera
    assert m.color.g > 0.9  # the best grasp is green
    assert grasps_to_markers(grasps_to_msg(GRASPS, _header(), (480, 640))) is None


def test_debug_image_msg():
    from vita_grasp_core.predictor import Prediction
    from vita_grasp_ros.grasp_msgs import debug_image_msg
    from vita_grasp_ros.image_conversions import image_msg_to_numpy

    rgb = np.full((480, 640, 3), 80, np.uint8)
    lb = Letterbox.fit((480, 640), (120, 160))
    maps = np.zeros((5, 120, 160), np.float32)
    pred = Prediction(GRASPS, maps, lb)
    msg = debug_image_msg(rgb, pred, _header())
    assert msg.encoding == "bgr8" and (msg.height, msg.width) == (480, 640)
    assert msg.header.frame_id == "rgb_camera_link"
    bgr = image_msg_to_numpy(msg)
    # the best grasp's centre dot is drawn in green (BGR order in the message)
    b, g, r = bgr[50, 100]
    assert g > 200 and r < 100 and b < 100
