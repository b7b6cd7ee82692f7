"""3-D grasp poses from an aligned depth image and pinhole intrinsics (CONVENTIONS §1, 3-D).

Pure numpy, no ROS. Frames: the camera's *optical* frame (x right, y down, z forward), the frame of
the image's ``header.frame_id``. Units: metres.

- position = back-projection of the grasp centre ``(x, y)`` (source pixels, pixel centres at
  integer coordinates as in OpenCV/ROS ``K``) with a robust depth ``z`` = median of the valid depth
  pixels in a ``window x window`` patch around it;
- orientation = rotation about +z by ``angle`` (so the gripper's local +x is the opening direction,
  local +z the approach direction = the camera's viewing direction);
- ``width_m = width * z / fx``.

The depth image must be *registered* to the colour image (same viewpoint, e.g. Azure Kinect
``depth_to_rgb``); when its resolution differs, grasp pixels are scaled into it proportionally.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conventions import scale_intrinsics  # noqa: F401  (re-exported)


@dataclass(frozen=True)
class GraspPose:
    """A grasp in 3-D: ``position`` (x, y, z) [m] in the optical frame, ``quaternion``
    (x, y, z, w), ``width_m`` [m] and the depth ``z`` used [m]."""

    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    width_m: float
    depth: float


def valid_intrinsics(K) -> bool:
    """True when ``K`` has positive, finite focal lengths (uncalibrated CameraInfo: zeros)."""
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    return bool(np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0)


def robust_depth(depth_m: np.ndarray, x: float, y: float, window: int = 5) -> float:
    """Median of the valid (finite, > 0) depth values in a ``window x window`` patch centred on
    pixel ``(x, y)`` of ``depth_m`` (HxW float metres). NaN when the patch has no valid value."""
    h, w = depth_m.shape[:2]
    r = max(0, int(window) // 2)
    c, rr = int(round(x)), int(round(y))
    if not (0 <= c < w and 0 <= rr < h):
        return float("nan")
    patch = depth_m[max(0, rr - r): rr + r + 1, max(0, c - r): c + r + 1]
    vals = patch[np.isfinite(patch) & (patch > 0)]
    return float(np.median(vals)) if vals.size else float("nan")


def quaternion_about_z(angle: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``angle`` [rad] about +z."""
    return (0.0, 0.0, float(np.sin(angle / 2.0)), float(np.cos(angle / 2.0)))


def grasp_poses(grasps, depth_m: np.ndarray, K, image_size, *, window: int = 5,
                min_depth: float = 0.05, max_depth: float = 20.0) -> list[GraspPose | None]:
    """3-D poses of grasps; ``None`` where the depth around the centre is missing.

    Args:
        grasps: list of :class:`~vita_grasp_core.grasp.Grasp` (or objects with x, y, angle, width)
            in pixels of the colour image.
        depth_m: ``HxW`` float depth in metres (NaN/0 invalid), registered to the colour image.
        K: 3x3 intrinsics of the colour image *at* ``image_size``.
        image_size: (h, w) of the colour image the grasps are in.
        window: side of the median window in depth pixels.
        min_depth, max_depth: depths outside this range [m] count as missing.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    ih, iw = int(image_size[0]), int(image_size[1])
    dh, dw = depth_m.shape[:2]
    sx, sy = dw / iw, dh / ih
    out: list[GraspPose | None] = []
    for g in grasps:
        dx, dy = (g.x + 0.5) * sx - 0.5, (g.y + 0.5) * sy - 0.5
        z = robust_depth(depth_m, dx, dy, window)
        if not (np.isfinite(z) and min_depth <= z <= max_depth):
            out.append(None)
            continue
        px = (g.x - cx) * z / fx
        py = (g.y - cy) * z / fy
        out.append(GraspPose((float(px), float(py), float(z)), quaternion_about_z(g.angle),
                             float(g.width * z / fx), float(z)))
    return out
