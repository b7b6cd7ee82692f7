"""The simulated camera agrees with its K: projected 3-D points land on K's pixels (sub-pixel),
depth back-projects to the true surface (mm), the 4:3 mode is the documented crop of the Kinect,
and poses / CameraInfo follow the optical-frame convention. Skipped without pybullet."""
from __future__ import annotations

import math

import numpy as np
import pytest

pytest.importorskip("pybullet")

from vita_grasp_core.conventions import camera_matrix  # noqa: E402
from vita_grasp_core.sim import pybullet  # noqa: E402
from vita_grasp_core.sim.camera import (  # noqa: E402
    CameraPose,
    SimCamera,
    kinect_intrinsics,
    parse_image_size,
)


def _plates(client, points, half=0.008):
    """Thin square plates facing the camera (their image is a square whose centroid is the
    projection of the centre, exactly, for a plate parallel to the image plane)."""
    p = pybullet()
    ids = []
    for q in points:
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=[half, half, 0.0005],
                                  rgbaColor=[1, 0, 0, 1], physicsClientId=client)
        ids.append(p.createMultiBody(0, -1, vis, basePosition=list(q), physicsClientId=client))
    return ids


@pytest.fixture
def client():
    p = pybullet()
    c = p.connect(p.DIRECT)
    yield c
    p.disconnect(physicsClientId=c)


@pytest.mark.parametrize("size", [(480, 640), (720, 1280)])
def test_projected_points_land_on_K_pixels(client, size):
    cam = SimCamera(size)
    pose = CameraPose.look_at([0, 0, 0], 0.7)  # straight down: plates parallel to the image
    xs, ys = np.meshgrid(np.linspace(-0.15, 0.15, 5), np.linspace(-0.1, 0.1, 4))
    zs = np.resize([0.0, 0.1, 0.25, 0.4], xs.size)
    points = np.stack([xs.ravel(), ys.ravel(), zs], axis=1)
    ids = _plates(client, points)
    obs = cam.render(client, pose)
    K = cam.K
    errors = []
    for body, q in zip(ids, points):
        pc = pose.to_camera(q)
        u, v = K[0, 0] * pc[0] / pc[2] + K[0, 2], K[1, 1] * pc[1] / pc[2] + K[1, 2]
        yy, xx = np.nonzero(obs.segmentation == body)
        assert len(xx) > 20, "a plate is not visible"
        errors.append((xx.mean() - u, yy.mean() - v))
    errors = np.array(errors)
    assert np.abs(errors).max() < 0.6, errors  # every point within a fraction of a pixel
    assert np.abs(errors.mean(axis=0)).max() < 0.2, errors.mean(axis=0)  # no systematic shift


def test_depth_back_projects_to_the_true_surface(client):
    p = pybullet()
    cam = SimCamera((480, 640))
    pose = CameraPose.look_at([0.02, -0.01, 0], 0.6, math.radians(12), 0.7, 0.4)
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=[1, 1, 0.01], physicsClientId=client)
    p.createMultiBody(0, col, -1, [0, 0, -0.01], physicsClientId=client)  # table top z = 0
    box = p.createCollisionShape(p.GEOM_BOX, halfExtents=[0.05, 0.04, 0.03],
                                 physicsClientId=client)
    p.createMultiBody(0, box, -1, [0.05, 0.03, 0.03], physicsClientId=client)  # top z = 0.06
    obs = cam.render(client, pose)
    h, w = obs.depth.shape
    v, u = np.mgrid[0:h, 0:w]
    z = obs.depth.astype(np.float64)
    K = obs.K
    pts_cam = np.stack([(u - K[0, 2]) * z / K[0, 0], (v - K[1, 2]) * z / K[1, 1], z], -1)
    world = pose.to_world(pts_cam)
    table = obs.segmentation == 0
    top = obs.segmentation == 1
    top &= np.abs(world[..., 2] - 0.06) < 0.01  # the box's top face (not its sides)
    assert table.sum() > 1000 and top.sum() > 200
    assert np.abs(world[table][:, 2]).max() < 2e-3  # mm on the table plane
    assert np.median(np.abs(world[top][:, 2] - 0.06)) < 1e-3
    xy = world[top][:, :2]
    assert xy[:, 0].min() > 0.0 - 2e-3 and xy[:, 0].max() < 0.10 + 2e-3
    assert xy[:, 1].min() > -0.01 - 2e-3 and xy[:, 1].max() < 0.07 + 2e-3


def test_four_by_three_mode_is_the_central_crop_of_the_kinect():
    K720 = camera_matrix("kinect")
    K = kinect_intrinsics((480, 640))
    assert K[0, 0] == pytest.approx(K720[0, 0] * 2 / 3)
    assert K[1, 1] == pytest.approx(K720[1, 1] * 2 / 3)
    assert K[0, 0] / K[1, 1] == pytest.approx(K720[0, 0] / K720[1, 1])  # square pixels kept
    # the crop's centre column 160 + 479.5 maps to 319.5, the principal point moves with it
    assert K[0, 2] == pytest.approx((K720[0, 2] - 160 + 0.5) * 2 / 3 - 0.5)
    assert np.allclose(kinect_intrinsics((720, 1280)), K720)
    assert parse_image_size("1280x720") == (720, 1280)
    for bad in ("640x640", "abc", "10x10"):
        with pytest.raises(ValueError):
            parse_image_size(bad)


def test_look_at_and_camera_info():
    pose = CameraPose.look_at([0.1, 0.0, 0.0], 0.5, math.radians(15), 0.0, 0.0)
    assert pose.t[2] == pytest.approx(0.5)
    z_axis = pose.R[:, 2]
    hit = pose.t + z_axis * (-pose.t[2] / z_axis[2])
    assert np.allclose(hit, [0.1, 0.0, 0.0], atol=1e-9)  # the optical axis meets the target
    assert np.allclose(pose.R.T @ pose.R, np.eye(3)) and np.linalg.det(pose.R) > 0
    assert math.degrees(math.acos(-z_axis[2])) == pytest.approx(15)
    p = np.array([[0.01, -0.02, 0.4]])
    assert np.allclose(pose.to_camera(pose.to_world(p)), p)
    down = CameraPose.look_at([0, 0, 0], 0.6)
    assert np.allclose(down.R[:, 0], [1, 0, 0]) and np.allclose(down.R[:, 1], [0, -1, 0])
