"""The scene around one grasp in a depth image (the geometry of the depth check).

Pure numpy. The depth pixels around a grasp centre are back-projected (:func:`local_points`), the
surface the objects rest on is a small seeded RANSAC plane (:func:`support_plane`), and
:class:`GraspFrame` expresses the points in the frame of a grasp at some angle (``x`` along the
opening, ``y`` along the jaws, ``z`` along the approach) and marks the obstacles a finger would
hit; :func:`object_extent` and :func:`finger_hits` read the object's extent along the closing
line and what lies under each finger. The gripper's geometry comes in as a
:class:`~vita_grasp_core.grasp_depth.DepthCheckSettings` (any object with its attributes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

BIN = 0.002  # m, resolution of the scan along the closing line
_MAX_POINTS = 20000  # back-projected points per grasp at most (a stride keeps it bounded)
_RANSAC_TRIES = 64
_TIP_CLEARANCE = 0.003  # m: executors stop the fingertips this far above the support


@dataclass
class LocalScene:
    """The scene around one grasp centre: points ``d`` (N, 3) relative to the pose position
    and the support plane ``z = a x + b y + c`` in those coordinates (None). The coordinates
    are the camera's axes, or with ``axes`` (3x3, columns = the local x, y, z in the camera
    frame, :func:`~.grasp3d.approach_frame`) those axes: ``z`` the direction the gripper
    approaches along."""

    d: np.ndarray
    plane: tuple[float, float, float] | None
    axes: np.ndarray | None = None

    def angle(self, image_angle: float) -> float:
        """The angle, about the local ``z``, of the image opening direction ``image_angle``
        (CONVENTIONS §1) made perpendicular to that ``z`` (as
        :func:`~.grasp3d.approach_quaternion` does for the executed pose)."""
        if self.axes is None:
            return image_angle
        u = np.array([math.cos(image_angle), math.sin(image_angle), 0.0])
        return math.atan2(float(u @ self.axes[:, 1]), float(u @ self.axes[:, 0]))



def local_points(depth: np.ndarray, Kd: np.ndarray, centre, z: float, radius: float) -> np.ndarray:
    """Back-projected valid depth pixels within ``radius`` [m] (laterally) of the pixel
    ``centre`` of the depth image, for points up to 12 cm nearer than ``z``; (N, 3) [m]."""
    fx, fy, cx, cy = Kd[0, 0], Kd[1, 1], Kd[0, 2], Kd[1, 2]
    z_near = max(0.5 * z, z - 0.12, 0.02)
    rx, ry = int(math.ceil(radius * fx / z_near)), int(math.ceil(radius * fy / z_near))
    h, w = depth.shape[:2]
    u0, v0 = int(round(centre[0])), int(round(centre[1]))
    cols = np.arange(max(0, u0 - rx), min(w, u0 + rx + 1))
    rows = np.arange(max(0, v0 - ry), min(h, v0 + ry + 1))
    stride = max(1, int(math.ceil(math.sqrt(len(cols) * len(rows) / _MAX_POINTS))))
    cols, rows = cols[::stride], rows[::stride]
    patch = depth[rows[0]:rows[-1] + 1:stride, cols[0]:cols[-1] + 1:stride].astype(np.float64) \
        if len(cols) and len(rows) else np.zeros((0, 0))
    uu, vv = np.meshgrid(cols, rows)
    ok = np.isfinite(patch) & (patch > 0)
    zz = patch[ok]
    return np.stack([(uu[ok] - cx) * zz / fx, (vv[ok] - cy) * zz / fy, zz], axis=1)


def support_plane(d: np.ndarray, tol: float) -> tuple[float, float, float] | None:
    """RANSAC plane ``z = a x + b y + c`` facing the camera (slope at most 50 degrees) that
    has the most points within ``tol`` and few beyond it (the surface objects rest on is the
    farthest large plane); None when no plane holds a tenth of the points."""
    if len(d) < 30:
        return None
    rng = np.random.default_rng(0)
    sample = d[rng.choice(len(d), min(len(d), 3000), replace=False)]
    best, best_score = None, len(sample) * 0.1
    max_slope = math.tan(math.radians(50.0))
    for _ in range(_RANSAC_TRIES):
        p = sample[rng.choice(len(sample), 3, replace=False)]
        A = np.c_[p[:, :2], np.ones(3)]
        if abs(np.linalg.det(A)) < 1e-9:
            continue
        a, b, c = np.linalg.solve(A, p[:, 2])
        if math.hypot(a, b) > max_slope:
            continue
        res = sample[:, 2] - (a * sample[:, 0] + b * sample[:, 1] + c)
        score = np.count_nonzero(np.abs(res) <= tol) - 5 * np.count_nonzero(res > 2 * tol)
        if score > best_score:
            best, best_score = (a, b, c), score
    if best is None:
        return None
    res = sample[:, 2] - (best[0] * sample[:, 0] + best[1] * sample[:, 1] + best[2])
    inl = sample[np.abs(res) <= tol]  # refit on the inliers (least squares)
    coef, *_ = np.linalg.lstsq(np.c_[inl[:, :2], np.ones(len(inl))], inl[:, 2], rcond=None)
    return tuple(float(v) for v in coef)


class GraspFrame:
    """The local scene in the frame of a grasp at the image ``angle``: ``q`` (N, 3) = x
    opening, y jaws, z approach (the local scene's ``z``)."""

    def __init__(self, local: LocalScene, angle: float, s, shift: float = 0.0):
        local_angle = local.angle(angle)
        c, si = math.cos(local_angle), math.sin(local_angle)
        d = local.d
        self.q = np.stack([c * d[:, 0] + si * d[:, 1] - shift, -si * d[:, 0] + c * d[:, 1],
                           d[:, 2]], 1)
        self.angle, self.local, self.s, self.shift = angle, local, s, shift
        self.band = np.abs(self.q[:, 1]) <= s.finger_width / 2
        self.obs = self.obstacles()
        tip = s.approach_depth  # the fingertips' depth under the centre; the palm's above it
        if local.plane is not None:
            tip = min(tip, local.plane[2] - _TIP_CLEARANCE)
        q = self.q
        self.palm = int(np.count_nonzero(
            (np.abs(q[:, 0]) <= s.palm_length / 2) & (np.abs(q[:, 1]) <= s.palm_width / 2)
            & (q[:, 2] < tip - s.finger_length - s.tolerance)))

    def obstacles(self) -> np.ndarray:
        """Points a finger would hit: nearer than the fingertips' depth (the approach depth)
        and clearly (by the tolerance) above the support surface."""
        s, plane, q = self.s, self.local.plane, self.q
        limit = np.full(len(q), s.approach_depth)
        if plane is not None:
            d = self.local.d
            limit = np.minimum(limit, plane[0] * d[:, 0] + plane[1] * d[:, 1] + plane[2])
        return q[:, 2] < limit - s.tolerance


def side_extent(xs: np.ndarray, gap: float) -> float:
    """Distance from the centre to the farthest obstacle of ``xs`` (>= 0, one side) reached
    before a free run of at least ``gap``; 0 when nothing is there."""
    if not len(xs):
        return 0.0
    bins = np.unique(np.floor(xs / BIN).astype(np.int64))
    jumps = np.flatnonzero(np.diff(bins) * BIN > gap)
    if bins[0] * BIN > gap:
        return 0.0
    last = bins[jumps[0]] if len(jumps) else bins[-1]
    return float((last + 1) * BIN)


def object_extent(fr: GraspFrame) -> tuple[float, float]:
    """The object's extent (left, right) [m] along the closing line."""
    obs = fr.obs & fr.band
    x = fr.q[obs, 0]
    gap = fr.s.finger_thickness + 2 * fr.s.tolerance  # room for a finger
    return side_extent(-x[x < 0], gap), side_extent(x[x >= 0], gap)


def finger_hits(fr: GraspFrame, h: float) -> tuple[int, int, float]:
    """Obstacle points under the (left, right) finger at half opening ``h`` and the free space
    beside the fingers (nearest obstacle outside them, capped at 5 cm)."""
    obs = fr.obs & (np.abs(fr.q[:, 1]) <= fr.s.finger_width / 2 + 0.005)
    x = np.abs(fr.q[obs, 0])
    left, right = fr.q[obs, 0] < 0, fr.q[obs, 0] >= 0
    inside = (x >= h) & (x <= h + fr.s.finger_thickness)
    beyond = x[x > h + fr.s.finger_thickness] - (h + fr.s.finger_thickness)
    free = float(min(0.05, beyond.min())) if len(beyond) else 0.05
    return int(np.count_nonzero(inside & left)), int(np.count_nonzero(inside & right)), free
