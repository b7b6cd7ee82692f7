"""The simulated RGB-D camera: Kinect-like intrinsics, a pose over the table, pybullet matrices
that agree with ``K``, and rendering into RGB, metric depth registered to RGB and segmentation.

Intrinsics (:func:`kinect_intrinsics`): the Azure Kinect colour camera of GraspNet-1Billion
(``vita_grasp_core.conventions.camera_matrix("kinect")``, 1280x720). A 16:9 size is that image
resized. A 4:3 size (e.g. 640x480) is the *central 960x720 crop* of it (the same lens and rows,
the 160 px at each side cut off), then resized: square pixels and the same vertical field of
view, as a 4:3 mode of a 16:9 sensor gives. At 640x480: fx 421.0, fy 420.8, cx 318.8, cy 244.2.

Projection: pixel centres at integer coordinates (OpenCV / ROS ``K``). pybullet's CPU renderer
(``ER_TINY_RENDERER``) samples column ``u`` at window x = ``u`` and row ``v`` at window
y = ``H - 1 - v``; :func:`projection_matrix` is built for exactly that, and a test finds
projected 3-D points at ``K``'s pixels (sub-pixel) and back-projects depth to the true surface.

Depth: ``z`` along the optical axis in metres (what :mod:`vita_grasp_core.grasp3d` expects), from
the non-linear depth buffer ``d``: ``z = far * near / (far - (far - near) * d)``; pixels at the
far plane are 0 (invalid, as a real sensor reports no return).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..choices import DEFAULT_CAMERA
from ..conventions import CAMERA_SIZE, camera_matrix, scale_intrinsics
from . import pybullet

#: Camera modes by name: (height, width).
IMAGE_MODES = {"640x480": (480, 640), "1280x720": (720, 1280)}
#: Optical frame id written into the CameraInfo-like dict and the ROS headers.
FRAME_ID = "sim_camera_optical_frame"


def kinect_intrinsics(image_size=(480, 640)) -> np.ndarray:
    """3x3 ``K`` of the Kinect colour camera at ``image_size`` (h, w), 16:9 or 4:3 (see the
    module docstring for how the 4:3 mode is derived)."""
    h, w = int(image_size[0]), int(image_size[1])
    K = camera_matrix(DEFAULT_CAMERA)
    H0, W0 = CAMERA_SIZE
    if abs(w * 9 - h * 16) <= 16:  # 16:9
        return scale_intrinsics(K, (H0, W0), (h, w))
    if abs(w * 3 - h * 4) <= 4:  # 4:3: central crop 960x720, then resize
        crop_w = H0 * 4 // 3
        K = K.copy()
        K[0, 2] -= (W0 - crop_w) / 2.0
        return scale_intrinsics(K, (H0, crop_w), (h, w))
    raise ValueError(f"camera size {w}x{h} is neither 16:9 nor 4:3; use one of "
                     f"{', '.join(IMAGE_MODES)}")


def parse_image_size(text: str) -> tuple[int, int]:
    """``"640x480"`` (width x height) -> (h, w), checked against the supported aspect ratios."""
    try:
        w, h = (int(v) for v in str(text).lower().split("x"))
    except ValueError:
        raise ValueError(f"image size {text!r} is not WIDTHxHEIGHT (e.g. 640x480)") from None
    if not (64 <= w <= 4096 and 48 <= h <= 4096):
        raise ValueError(f"image size {text!r} is outside 64x48 .. 4096x4096")
    kinect_intrinsics((h, w))  # raises for other aspect ratios
    return h, w


@dataclass(frozen=True)
class CameraPose:
    """Camera-to-world transform: ``R`` (3x3, columns = optical x, y, z axes in the world) and
    ``t`` (optical centre in the world) [m]."""

    R: np.ndarray
    t: np.ndarray

    @property
    def matrix(self) -> np.ndarray:
        """4x4 homogeneous ``T_world_camera``."""
        T = np.eye(4)
        T[:3, :3], T[:3, 3] = self.R, self.t
        return T

    def to_world(self, p_cam) -> np.ndarray:
        """Optical-frame points (..., 3) -> world points (..., 3)."""
        return np.asarray(p_cam, np.float64) @ self.R.T + self.t

    def to_camera(self, p_world) -> np.ndarray:
        """World points (..., 3) -> optical-frame points (..., 3)."""
        return (np.asarray(p_world, np.float64) - self.t) @ self.R

    @classmethod
    def look_at(cls, target, height: float, tilt: float = 0.0, tilt_azimuth: float = 0.0,
                yaw: float = 0.0) -> "CameraPose":
        """A camera ``height`` m above ``target`` (world z), its optical axis through ``target``,
        tilted ``tilt`` rad from straight down (the camera moves towards ``tilt_azimuth``, rad
        from world +x), and turned ``yaw`` rad about its axis (0: image x = world +x, image
        y = world -y when looking straight down)."""
        target = np.asarray(target, np.float64)
        d = height / max(math.cos(tilt), 1e-6)
        offset = np.array([math.sin(tilt) * math.cos(tilt_azimuth),
                           math.sin(tilt) * math.sin(tilt_azimuth), math.cos(tilt)])
        t = target + d * offset
        z = -offset
        x0 = np.array([math.cos(yaw), math.sin(yaw), 0.0])
        x = x0 - z * (x0 @ z)
        if np.linalg.norm(x) < 1e-6:
            x = np.array([0.0, 1.0, 0.0]) - z * z[1]
        x /= np.linalg.norm(x)
        y = np.cross(z, x)
        return cls(np.stack([x, y, z], axis=1), t)


@dataclass(frozen=True)
class Lighting:
    """Renderer light: direction (towards the light, world), colour, ambient/diffuse/specular
    coefficients and shadows."""

    direction: tuple[float, float, float] = (0.3, 0.2, 1.0)
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    ambient: float = 0.6
    diffuse: float = 0.5
    specular: float = 0.1
    shadow: bool = False


@dataclass
class Observation:
    """One rendered frame.

    Attributes:
        rgb: ``HxWx3 uint8`` RGB.
        depth: ``HxW float32`` metres along the optical axis, registered to ``rgb``; 0 invalid.
        segmentation: ``HxW int32`` pybullet body id per pixel, -1 background.
        K: 3x3 intrinsics of ``rgb`` (pixel centres at integers).
        pose: :class:`CameraPose` (camera-to-world) at the time of the frame.
    """

    rgb: np.ndarray
    depth: np.ndarray
    segmentation: np.ndarray
    K: np.ndarray
    pose: CameraPose
    frame_id: str = FRAME_ID
    extra: dict = field(default_factory=dict)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.rgb.shape[:2]

    def camera_info(self) -> dict:
        """A ``sensor_msgs/CameraInfo``-like dict: size, ``K`` (9, row-major), ``D`` (no
        distortion: the simulated image is rectified), ``R``, ``P`` and the frame id."""
        h, w = self.image_size
        K = np.asarray(self.K, np.float64)
        P = np.zeros((3, 4))
        P[:, :3] = K
        return {"width": int(w), "height": int(h), "K": K.reshape(-1).tolist(),
                "D": [0.0] * 5, "distortion_model": "plumb_bob",
                "R": np.eye(3).reshape(-1).tolist(), "P": P.reshape(-1).tolist(),
                "frame_id": self.frame_id}


def projection_matrix(K, image_size, near: float, far: float) -> list[float]:
    """pybullet (OpenGL, column-major) projection for ``K`` at ``image_size`` (h, w)."""
    K = np.asarray(K, np.float64)
    h, w = image_size
    P = np.zeros((4, 4))
    P[0, 0] = 2.0 * K[0, 0] / w
    P[0, 2] = 1.0 - 2.0 * K[0, 2] / w
    P[1, 1] = 2.0 * K[1, 1] / h
    P[1, 2] = 2.0 * (K[1, 2] + 1.0) / h - 1.0
    P[2, 2] = -(far + near) / (far - near)
    P[2, 3] = -2.0 * far * near / (far - near)
    P[3, 2] = -1.0
    return P.T.reshape(-1).tolist()


def view_matrix(pose: CameraPose) -> list[float]:
    """pybullet (OpenGL, column-major) view matrix of ``pose`` (OpenGL eye axes: x, -y, -z of
    the optical frame)."""
    R_gl = pose.R @ np.diag([1.0, -1.0, -1.0])
    V = np.eye(4)
    V[:3, :3] = R_gl.T
    V[:3, 3] = -R_gl.T @ pose.t
    return V.T.reshape(-1).tolist()


def depth_buffer_to_metres(buf: np.ndarray, near: float, far: float) -> np.ndarray:
    """pybullet's non-linear depth buffer (0..1) -> metres along the optical axis; 0 where
    nothing was hit (the far plane)."""
    buf = np.asarray(buf, np.float64)
    z = far * near / (far - (far - near) * buf)
    z[buf >= 1.0 - 1e-7] = 0.0
    return z.astype(np.float32)


@dataclass(frozen=True)
class SimCamera:
    """Intrinsics and clipping planes of the simulated camera at ``image_size`` (h, w)."""

    image_size: tuple[int, int] = IMAGE_MODES["640x480"]
    near: float = 0.05
    far: float = 3.0

    @property
    def K(self) -> np.ndarray:
        return kinect_intrinsics(self.image_size)

    def render(self, client: int, pose: CameraPose, light: Lighting = Lighting()) -> Observation:
        """Render RGB, depth and segmentation of the world of ``client`` seen from ``pose``."""
        p = pybullet()
        h, w = self.image_size
        K = self.K
        img = p.getCameraImage(
            w, h, view_matrix(pose), projection_matrix(K, (h, w), self.near, self.far),
            lightDirection=list(light.direction), lightColor=list(light.color),
            lightAmbientCoeff=light.ambient, lightDiffuseCoeff=light.diffuse,
            lightSpecularCoeff=light.specular, shadow=int(light.shadow),
            renderer=p.ER_TINY_RENDERER, physicsClientId=client)
        rgb = np.asarray(img[2], np.uint8).reshape(h, w, 4)[..., :3].copy()
        depth = depth_buffer_to_metres(np.asarray(img[3]).reshape(h, w), self.near, self.far)
        seg = np.asarray(img[4], np.int64).reshape(h, w)
        seg = np.where(seg < 0, -1, seg & ((1 << 24) - 1)).astype(np.int32)
        return Observation(rgb, depth, seg, K, pose)
