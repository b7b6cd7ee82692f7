"""Pixel grasps from a rendered frame's depth and segmentation, and their 3-D poses.

- :func:`antipodal_candidates`: the labeller's candidates. On each visible object's contour a
  point is drawn, a closing line is cast inwards along the contour normal (turned by a random
  angle up to ``max_turn``) to where it leaves the object's mask; the pair is kept when the
  outward normal there faces the other way within ``antipodal_tolerance`` (an antipodal pair, as
  friction-cone samplers use). The grasp is centred between the two points, opened along the
  line to their distance plus a margin drawn from ``margins_m`` (several widths), with a jaw
  size of the finger width; widths and jaws are converted to pixels at the depth there.
- :func:`pixel_to_pose`: a pixel grasp -> its 3-D pose in the camera's optical frame with the
  project's documented convention (:func:`vita_grasp_core.grasp3d.grasp_poses`, CONVENTIONS §1),
  the same function the ROS node uses.

All pixel quantities follow CONVENTIONS §1 (x = column, y = row, y down, angle of the opening
from +x towards +y, wrapped to [-pi/2, pi/2)).
"""
from __future__ import annotations

import math

import numpy as np

from ..approach import orient_poses
from ..conventions import wrap_angle
from ..grasp import Grasp
from ..grasp3d import GraspPose, grasp_poses
from .gripper import FINGER_WIDTH, MAX_OPENING


def pixel_to_pose(grasp: Grasp, depth: np.ndarray, K, window: int = 5,
                  approach: str = "camera") -> GraspPose | None:
    """3-D pose of ``grasp`` (pixels of an image registered to ``depth``, metres) or ``None``
    when the depth around its centre is missing; approaching along ``approach``
    (:func:`vita_grasp_core.approach.orient_poses`)."""
    h, w = depth.shape[:2]
    poses = grasp_poses([grasp], depth, K, (h, w), window=window)
    return orient_poses(poses, [grasp], depth, K, (h, w), approach)[0][0]


def median_depth(depth: np.ndarray, mask: np.ndarray, default: float = float("nan")) -> float:
    """Median of the valid (> 0) depth values [m] under ``mask``, ``default`` when none."""
    d = depth[mask]
    d = d[d > 0]
    return float(np.median(d)) if d.size else float(default)


def object_masks(segmentation: np.ndarray, object_ids, min_pixels: int = 40) -> dict:
    """``{body id: HxW bool mask}`` of the objects with at least ``min_pixels`` visible."""
    out = {}
    for b in object_ids:
        m = segmentation == int(b)
        if int(m.sum()) >= min_pixels:
            out[int(b)] = m
    return out


def _outward_normals(mask: np.ndarray):
    """Contour pixels (N, 2) x, y of ``mask`` and their outward unit normals (N, 2)."""
    import cv2

    m8 = mask.astype(np.uint8)
    contours, _ = cv2.findContours(m8, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return np.zeros((0, 2)), np.zeros((0, 2))
    pts = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    blur = cv2.GaussianBlur(m8.astype(np.float32), (0, 0), 2.0)
    gy, gx = np.gradient(blur)
    xi, yi = pts[:, 0].astype(int), pts[:, 1].astype(int)
    n = -np.stack([gx[yi, xi], gy[yi, xi]], axis=1)
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-6
    return pts[ok], n[ok] / norm[ok, None]


def _cast(mask: np.ndarray, start, direction, max_len: float):
    """Walk from ``start`` along ``direction`` while inside ``mask``; the last inside point
    (or ``None`` when the walk never enters the mask or runs longer than ``max_len`` px)."""
    h, w = mask.shape
    last, entered = None, False
    for t in np.arange(0.5, max_len, 0.5):
        x, y = start + direction * t
        xi, yi = int(round(x)), int(round(y))
        if not (0 <= xi < w and 0 <= yi < h):
            break
        if mask[yi, xi]:
            entered, last = True, np.array([x, y])
        elif entered:
            return last
    return None


def antipodal_candidates(obs, object_ids, rng: np.random.Generator, n: int = 24, *,
                         margins_m=(0.01, 0.02, 0.035), max_turn: float = math.radians(20),
                         antipodal_tolerance: float = math.radians(35)) -> list[tuple[Grasp, int]]:
    """Up to ``n`` ``(pixel grasp, body id)`` candidates spread evenly over the visible objects
    of ``obs`` (an :class:`~vita_grasp_core.sim.camera.Observation`) whose body ids are
    ``object_ids``. See the module docstring."""
    masks = object_masks(obs.segmentation, object_ids)
    if not masks:
        return []
    fx = float(obs.K[0, 0])
    edges = {b: _outward_normals(m) for b, m in masks.items()}
    bodies = [b for b in masks if len(edges[b][0])]
    out: list[tuple[Grasp, int]] = []
    tries = 0
    while len(out) < n and bodies and tries < 30 * n:
        b = bodies[tries % len(bodies)]
        tries += 1
        pts, nrm = edges[b]
        i = int(rng.integers(len(pts)))
        turn = rng.uniform(-max_turn, max_turn)
        c, s = math.cos(turn), math.sin(turn)
        d = -np.array([c * nrm[i, 0] - s * nrm[i, 1], s * nrm[i, 0] + c * nrm[i, 1]])
        p1 = pts[i]
        z = _depth_near(obs.depth, p1)
        if not np.isfinite(z):
            continue
        max_px = MAX_OPENING * fx / z
        p2 = _cast(masks[b], p1 - d * 1.0, d, max_px)
        if p2 is None or np.linalg.norm(p2 - p1) < 2:
            continue
        j = int(np.argmin(np.sum((pts - p2) ** 2, axis=1)))
        if float(nrm[j] @ d) < math.cos(antipodal_tolerance):
            continue
        centre = (p1 + p2) / 2
        zc = _depth_near(obs.depth, centre)
        if not np.isfinite(zc):
            continue
        margin = float(rng.choice(margins_m)) * fx / zc
        width = float(np.linalg.norm(p2 - p1)) + margin
        angle = float(wrap_angle(math.atan2(d[1], d[0])))
        out.append((Grasp(float(centre[0]), float(centre[1]), angle, width,
                          FINGER_WIDTH * fx / zc, 1.0, 1.0), b))
    return out


def _depth_near(depth: np.ndarray, xy, r: int = 2) -> float:
    """Median valid depth [m] in the (2r+1)^2 patch at (x, y) (the node's window rule)."""
    from ..grasp3d import robust_depth

    z = robust_depth(depth, float(xy[0]), float(xy[1]), 2 * r + 1)
    return z if z > 0 else float("nan")
