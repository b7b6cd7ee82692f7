"""Planar grasp records and rectangle geometry (docs/CONVENTIONS.md section 1).

All quantities are in pixels of the *source* image: x = column, y = row, y down. ``angle`` is the
direction of the gripper opening in radians in [-pi/2, pi/2), measured from +x towards +y
(clockwise on screen). ``width`` is the full opening, ``height`` the jaw size.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .conventions import angle_difference, wrap_angle  # noqa: F401  (re-exported)

#: Column order of grasp arrays: ``(N, 7)`` float arrays use exactly these fields.
GRASP_FIELDS = ("x", "y", "angle", "width", "height", "quality", "object_score")


@dataclass
class Grasp:
    """One planar grasp in source-image pixels (see module docstring for units)."""

    x: float
    y: float
    angle: float
    width: float
    height: float
    quality: float = 1.0
    object_score: float = 0.0
    #: which selected target (object) the grasp is on; "" = no target selection (whole scene)
    target: str = ""

    def to_dict(self) -> dict:
        """Numbers as floats; ``target`` only when the grasp has one."""
        d = {k: float(v) for k, v in asdict(self).items() if k != "target"}
        if self.target:
            d["target"] = self.target
        return d

    def corners(self) -> np.ndarray:
        """4x2 float array of the rectangle's corners (x, y), in order around the rectangle."""
        return rect_corners(np.array([[self.x, self.y, self.angle, self.width, self.height]]))[0]


def grasps_to_array(grasps) -> np.ndarray:
    """List of :class:`Grasp` -> ``(N, 7)`` float32 array in :data:`GRASP_FIELDS` order."""
    if len(grasps) == 0:
        return np.zeros((0, len(GRASP_FIELDS)), np.float32)
    return np.array([[getattr(g, f) for f in GRASP_FIELDS] for g in grasps], dtype=np.float32)


def grasps_from_array(arr) -> list[Grasp]:
    """``(N, >=5)`` array (x, y, angle, width, height[, quality[, object_score]]) -> Grasps."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 5:
        raise ValueError(f"grasp array must be (N, >=5), got {arr.shape}")
    names = list(GRASP_FIELDS)[: arr.shape[1]]
    return [Grasp(**{n: float(v) for n, v in zip(names, row)}) for row in arr]


def rect_corners(rects) -> np.ndarray:
    """``(N, >=5)`` rows (x, y, angle, width, height, ...) -> ``(N, 4, 2)`` corners (x, y).

    Corner order: the two jaw ends at +width/2, then at -width/2 (a closed convex polygon).
    """
    r = np.atleast_2d(np.asarray(rects, dtype=np.float64))
    x, y, a, w, h = (r[:, i] for i in range(5))
    ux, uy = np.cos(a) * w / 2, np.sin(a) * w / 2  # along the opening
    vx, vy = -np.sin(a) * h / 2, np.cos(a) * h / 2  # along the jaws
    cx = np.stack([x + ux + vx, x + ux - vx, x - ux - vx, x - ux + vx], axis=1)
    cy = np.stack([y + uy + vy, y + uy - vy, y - uy - vy, y - uy + vy], axis=1)
    return np.stack([cx, cy], axis=2)


def graspnet_rects_to_grasps(rect: np.ndarray) -> np.ndarray:
    """GraspNet ``rect/NNNN.npy`` rows -> ``(N, 7)`` float32 (x, y, angle, width, height, score,
    obj).

    Input columns: center_x, center_y, open_x, open_y, height, score, object_id (CONVENTIONS §2).
    ``angle = atan2(open_y - center_y, open_x - center_x)`` wrapped to [-pi/2, pi/2);
    ``width = 2 * |open - center|``. Score and object id are passed through unchanged.
    """
    rect = np.asarray(rect)
    if rect.ndim != 2 or rect.shape[1] != 7:
        raise ValueError(f"GraspNet rect array must be (N, 7), got {rect.shape}")
    rect = rect.astype(np.float64)
    dx, dy = rect[:, 2] - rect[:, 0], rect[:, 3] - rect[:, 1]
    out = np.empty((rect.shape[0], 7), np.float64)
    out[:, 0], out[:, 1] = rect[:, 0], rect[:, 1]
    out[:, 2] = wrap_angle(np.arctan2(dy, dx))
    out[:, 3] = 2.0 * np.hypot(dx, dy)
    out[:, 4], out[:, 5], out[:, 6] = rect[:, 4], rect[:, 5], rect[:, 6]
    return out.astype(np.float32)


def grasps_to_graspnet_rects(grasps: np.ndarray) -> np.ndarray:
    """Inverse of :func:`graspnet_rects_to_grasps`: ``(N, 7)`` -> GraspNet rect rows, float32."""
    g = np.asarray(grasps, dtype=np.float64)
    out = np.empty((g.shape[0], 7), np.float64)
    out[:, 0], out[:, 1] = g[:, 0], g[:, 1]
    out[:, 2] = g[:, 0] + np.cos(g[:, 2]) * g[:, 3] / 2
    out[:, 3] = g[:, 1] + np.sin(g[:, 2]) * g[:, 3] / 2
    out[:, 4], out[:, 5], out[:, 6] = g[:, 4], g[:, 5], g[:, 6]
    return out.astype(np.float32)
