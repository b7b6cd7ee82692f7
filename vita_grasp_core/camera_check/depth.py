"""Depth checks: the unit of the values and the table plane.

Pure numpy (OpenCV only where noted), no ROS. Depth images are ``HxW float32`` metres with NaN
where invalid - what the grasp node computes from a ``16UC1`` (millimetres) or ``32FC1``
(metres) message - plus the message's encoding, so a wrong unit can be named.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Median scene depths [m] that pass for a tabletop camera.
PLAUSIBLE_DEPTH = (0.15, 3.0)
#: Beyond this median depth [m] the check fails (warns between PLAUSIBLE_DEPTH[1] and this).
FAR_DEPTH = 8.0
#: Valid-pixel fractions below which the depth check warns / fails.
VALID_WARN, VALID_FAIL = 0.4, 0.05
#: Units a depth camera may write (metres per value), in the order they are guessed.
UNITS = {"mm": 1e-3, "m": 1.0, "0.1 mm": 1e-4, "cm": 1e-2}
#: A view whose table normal is more than this far from the optical axis is not top-down [deg].
MAX_TILT_DEG = 30.0
#: Plausible camera-table distances [m] (closer: below most depth cameras' range; farther:
#: objects become a few pixels wide).
TABLE_DISTANCE = (0.2, 2.0)
#: A table plane must hold at least this fraction of the valid depth pixels.
MIN_PLANE_FRACTION = 0.25


def valid_depth(depth_m: np.ndarray) -> np.ndarray:
    return np.isfinite(depth_m) & (depth_m > 0)


def _plausible(v: float) -> bool:
    return PLAUSIBLE_DEPTH[0] <= v <= PLAUSIBLE_DEPTH[1]


def implied_unit(encoding: str) -> str:
    """The unit the node reads an encoding's values in: ``mm`` for 16UC1 / mono16, else ``m``."""
    return "mm" if encoding in ("16UC1", "mono16") else "m"


def depth_unit_problem(median_m: float, encoding: str) -> tuple[str, str, str] | None:
    """``(status, finding, fix)`` when a median depth of ``median_m`` (the metres the node reads
    from ``encoding`` values) is implausible for a tabletop camera, else ``None``. When the raw
    values would be plausible in another unit (:data:`UNITS`), the finding names that unit."""
    if _plausible(median_m):
        return None
    implied = implied_unit(encoding)
    raw = median_m / UNITS[implied]
    for unit, factor in UNITS.items():
        if unit != implied and _plausible(raw * factor):
            other = "32FC1 in metres" if implied == "mm" else "16UC1 in millimetres"
            return ("fail", f"median depth {median_m:.4g} m: the {encoding} values (median "
                    f"{raw:.4g}) look like {unit}, but {encoding} means {implied}",
                    f"publish {encoding} in {'millimetres' if implied == 'mm' else 'metres'} "
                    f"(multiply the values by {factor / UNITS[implied]:g}) or {other}")
    if PLAUSIBLE_DEPTH[1] < median_m <= FAR_DEPTH:
        return ("warn", f"median depth {median_m:.3g} m is far for a tabletop camera",
                "move the camera to 0.3-1.5 m from the table, or check the depth unit "
                f"({encoding} = {implied})")
    return ("fail", f"median depth {median_m:.4g} m is implausible ({encoding}, median value "
            f"{raw:.4g} {implied})", "check the depth camera's unit and range (16UC1 = mm, "
            "32FC1 = m)")


@dataclass(frozen=True)
class DepthStats:
    valid_fraction: float
    median_m: float
    p5_m: float
    p95_m: float


def depth_stats(depth_m: np.ndarray) -> DepthStats:
    v = valid_depth(depth_m)
    frac = float(v.mean()) if v.size else 0.0
    if not v.any():
        return DepthStats(frac, float("nan"), float("nan"), float("nan"))
    p5, med, p95 = np.percentile(depth_m[v], [5, 50, 95])
    return DepthStats(frac, float(med), float(p5), float(p95))


# --------------------------------------------------------------------------- table plane
@dataclass(frozen=True)
class Plane:
    """A plane ``n . p = d`` in the camera's optical frame (x right, y down, z forward), with the
    unit normal ``n`` pointing away from the camera (into the table) and ``d > 0`` its
    distance [m].

    Attributes:
        tilt_deg: angle between the plane's normal and the optical axis (0 = top-down view).
        inlier_fraction: fraction of the valid depth pixels on the plane.
        inliers: HxW bool mask at the depth image's size (None: not computed).
    """

    normal: tuple[float, float, float]
    distance: float
    tilt_deg: float
    inlier_fraction: float
    inliers: np.ndarray | None


def back_project(depth_m: np.ndarray, K: np.ndarray, step: int = 1):
    """``(points (N, 3) [m], (rows, cols))`` of the valid pixels of every ``step``-th row and
    column, through the 3x3 ``K`` of the depth image's own size."""
    K = np.asarray(K, np.float64).reshape(3, 3)
    rows, cols = np.mgrid[0:depth_m.shape[0]:step, 0:depth_m.shape[1]:step]
    z = depth_m[rows, cols].astype(np.float64)
    ok = np.isfinite(z) & (z > 0)
    rows, cols, z = rows[ok], cols[ok], z[ok]
    x = (cols - K[0, 2]) * z / K[0, 0]
    y = (rows - K[1, 2]) * z / K[1, 1]
    return np.stack([x, y, z], axis=1), (rows, cols)


def _tolerance(z: np.ndarray) -> np.ndarray:
    """Point-to-plane distance [m] still counted on the plane: 1 cm + 1.5 % of the depth."""
    return 0.01 + 0.015 * z


def fit_plane(depth_m: np.ndarray, K: np.ndarray, *, iterations: int = 150, seed: int = 0,
              max_points: int = 8000, full_mask: bool = True) -> Plane | None:
    """The dominant plane of a depth image (RANSAC over at most ``max_points`` back-projected
    pixels, refined by least squares on its inliers), or ``None`` without enough valid depth.

    Args:
        depth_m: HxW float32 metres (NaN invalid).
        K: 3x3 intrinsics of the depth image at its own size (checked by the caller).
        full_mask: compute ``Plane.inliers`` over every pixel (else None, and the inlier
            fraction is that of the sampled pixels: a few ms instead of tens on 640x480).
    """
    n_valid = int(valid_depth(depth_m).sum())
    if n_valid < 100:
        return None
    step = max(1, int(np.sqrt(n_valid / max_points)))
    pts, _ = back_project(depth_m, K, step)
    if len(pts) < 50:
        return None
    rng = np.random.default_rng(seed)
    tol = _tolerance(pts[:, 2])
    best, best_count = None, -1
    idx = rng.integers(0, len(pts), size=(iterations, 3))
    for i, j, k in idx:
        n = np.cross(pts[j] - pts[i], pts[k] - pts[i])
        norm = np.linalg.norm(n)
        if norm < 1e-12:
            continue
        n /= norm
        count = int((np.abs(pts @ n - n @ pts[i]) < tol).sum())
        if count > best_count:
            best, best_count = (n, float(n @ pts[i])), count
    if best is None:
        return None
    n, d = best
    for _ in range(2):  # least-squares refinement on the inliers
        inl = pts[np.abs(pts @ n - d) < tol]
        if len(inl) < 3:
            break
        c = inl.mean(axis=0)
        n = np.linalg.svd(inl - c, full_matrices=False)[2][-1]
        d = float(n @ c)
    if d < 0:  # normal away from the camera (the origin): n . p = d with d > 0
        n, d = -n, -d
    tilt = float(np.degrees(np.arccos(min(1.0, abs(float(n[2]))))))
    if not full_mask:
        frac = float((np.abs(pts @ n - d) < tol).mean())
        return Plane(tuple(float(v) for v in n), float(d), tilt, frac, None)
    full, (rows, cols) = back_project(depth_m, K, 1)
    mask = np.zeros(depth_m.shape, bool)
    mask[rows, cols] = np.abs(full @ n - d) < _tolerance(full[:, 2])
    return Plane(tuple(float(v) for v in n), float(d), tilt,
                 float(mask.sum()) / max(1, len(full)), mask)


#: ``approach: table``: the table normal may be at most this far from the optical axis [deg]
#: (a parallel gripper approaching a table much more obliquely than this is not a planar grasp).
MAX_APPROACH_TILT_DEG = 60.0


def table_approach(depth_m: np.ndarray, K: np.ndarray) -> tuple[np.ndarray | None, str]:
    """``(approach, note)``: the direction into the table (its normal, optical frame, z > 0)
    from the dominant plane of ``depth_m`` (HxW metres; ``K`` of its own size), or ``(None,
    why)`` when there is no table plane to trust: too little depth, a plane holding less than
    :data:`MIN_PLANE_FRACTION` of the valid pixels, or tilted more than
    :data:`MAX_APPROACH_TILT_DEG` from the optical axis. ``note`` names the tilt."""
    depth_m = np.asarray(depth_m, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # only depths a pose may use (as grasp3d's 0.05-20 m)
        depth_m = np.where((depth_m >= 0.05) & (depth_m <= 20.0), depth_m, np.nan)
    plane = fit_plane(depth_m, K, full_mask=False)
    if plane is None or not np.isfinite(plane.normal).all():
        return None, "no table plane (too little valid depth)"
    if plane.inlier_fraction < MIN_PLANE_FRACTION:
        return None, (f"no table plane (the largest plane holds {plane.inlier_fraction:.0%} of "
                      f"the depth pixels, at least {MIN_PLANE_FRACTION:.0%} needed)")
    if plane.tilt_deg > MAX_APPROACH_TILT_DEG:
        return None, (f"the table plane is {plane.tilt_deg:.0f} deg from the optical axis (at "
                      f"most {MAX_APPROACH_TILT_DEG:.0f})")
    n = np.asarray(plane.normal, dtype=np.float64)
    return (n if n[2] > 0 else -n), f"table normal {plane.tilt_deg:.1f} deg"
