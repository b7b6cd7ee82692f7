"""Frames for the node's depth tests: constant-depth images (16UC1 / 32FC1 with holes and
outliers the median ignores), CameraInfo with the test intrinsics, jpeg colour frames, and the
pose check of CONVENTIONS §1 (back-projection with K, rotation about +z, ``width_m = width * z /
fx``)."""
from __future__ import annotations

import math

import numpy as np
import pytest

FX, FY, CX, CY = 600.0, 610.0, 320.0, 240.0
Z_MM = 800


def camera_info(stamp, h=480, w=640, scale=1.0, k=None, d=None, frame_id="rgb_camera_link"):
    from sensor_msgs.msg import CameraInfo

    m = CameraInfo()
    m.header.stamp = stamp
    m.header.frame_id = frame_id
    m.height, m.width = int(h * scale), int(w * scale)
    m.k = k or [FX * scale, 0.0, (CX + 0.5) * scale - 0.5, 0.0, FY * scale,
                (CY + 0.5) * scale - 0.5, 0.0, 0.0, 1.0]
    if d is not None:
        m.distortion_model, m.d = "plumb_bob", d
    return m


def depth_msg(stamp, h=480, w=640, encoding="16UC1", fill=None, z_mm=Z_MM,
              frame_id="rgb_camera_link"):
    """A constant-depth frame (``z_mm``; holes and outliers the median ignores)."""
    from vita_grasp_ros.image_conversions import numpy_to_image_msg

    if encoding == "16UC1":
        d = np.full((h, w), z_mm, np.uint16)
        d[::3, ::3] = 0  # holes: the median ignores them
        d[1::7, 1::7] = 5000  # a few outliers: the median ignores them too
    else:
        d = np.full((h, w), z_mm / 1000.0 if fill is None else fill, np.float32)
        d[::3, ::3] = np.nan
    m = numpy_to_image_msg(d, encoding)
    m.header.stamp = stamp
    m.header.frame_id = frame_id
    return m


def jpeg_msg(stamp, seed=0):
    from vita_grasp_ros.image_conversions import rgb_to_compressed_msg

    rgb = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    m = rgb_to_compressed_msg(rgb, "jpeg", 90)
    m.header.stamp = stamp
    m.header.frame_id = "rgb_camera_link"
    return m


def check_poses(out, z=Z_MM / 1000.0, fx=FX, cx=CX):
    assert out.grasps, "score_threshold 0 must give grasps"
    for g in out.grasps:
        assert g.has_pose
        p = g.pose.position
        assert p.z == pytest.approx(z, abs=1e-4)
        assert p.x == pytest.approx((g.x - cx) * z / fx, abs=2e-4)
        assert p.y == pytest.approx((g.y - CY) * z / FY, abs=2e-4)
        assert g.width_m == pytest.approx(g.width * z / fx, rel=1e-4, abs=1e-6)
        q = g.pose.orientation
        assert (q.x, q.y) == (0.0, 0.0)
        assert q.z == pytest.approx(math.sin(g.angle / 2), abs=1e-5)
        assert q.w == pytest.approx(math.cos(g.angle / 2), abs=1e-5)
