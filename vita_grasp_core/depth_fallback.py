"""Grasps from depth alone, for frames where the model scores nothing above its threshold.

In the simulator's clutter runs (docs/sim.md "Depth fallback") half the failures were frames
where the model returned no grasp: the last objects of a tray, small (2-4 cm) and often of the
tray's colour, which neither the model's heatmap nor its object mask showed. The depth image
shows them: they stand above the surface they rest on. This module finds such bumps and proposes
the classic analytic grasp on each (centroid, opening across the bump's narrow side); the depth
check (:mod:`.grasp_depth`) then fits the opening and checks the fingers as for any grasp.

How a bump is found (pure numpy + OpenCV, about 25 ms on 640x480, one core):

1. The depth image is reduced to about 320 px wide (a median of each cell).
2. The surface under the objects is the depth image's grey *closing* with a square window of
   ``max_size`` metres at the median depth: every structure narrower than the window (an
   object) is removed, while larger ones (the table, tray floors and walls, any slope) stay.
3. ``height = surface - depth``; pixels between ``min_height`` and ``max_height`` metres above
   it are bump pixels.
4. Connected bumps whose area lies between ``min_area`` and ``max_area`` (m², at their depth)
   and that are not longer than ``max_size`` are objects; they are ranked by their height (the
   top of a pile first), at most ``max_grasps``.

The grasps carry ``quality = 0`` (they are not the model's) and ``object_score = 1``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from .conventions import wrap_angle
from .grasp import Grasp

#: Width of the reduced depth image the bumps are found in [px].
_WORK_WIDTH = 320


@dataclass(frozen=True)
class FallbackSettings:
    """What counts as an object in the depth image, and the grasps proposed on it.

    Attributes:
        min_height, max_height: an object pixel stands this far above the surface [m].
        min_area, max_area: an object's area as seen by the camera [m²].
        max_size: the largest object side [m]; also the closing window (larger structures are
            surface).
        margin: the analytic opening is the bump's extent plus this on each side [m] (the depth
            check fits it again).
        max_grasps: at most this many objects (one grasp each), highest first.
    """

    min_height: float = 0.008
    max_height: float = 0.2
    min_area: float = 6e-5
    max_area: float = 0.012
    max_size: float = 0.14
    margin: float = 0.01
    max_grasps: int = 3

    def __post_init__(self):
        for name in ("min_height", "max_height", "min_area", "max_area", "max_size", "margin"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ValueError(f"depth fallback: {name} must be in [0, 1], got {v!r}")
        if self.min_height >= self.max_height or self.min_area >= self.max_area:
            raise ValueError("depth fallback: min_height/min_area must be below their maximum")
        if self.max_size <= 0:
            raise ValueError("depth fallback: max_size must be > 0")
        if not 1 <= int(self.max_grasps) <= 100:
            raise ValueError(f"depth fallback: max_grasps must be 1..100, got {self.max_grasps}")


@dataclass
class Bump:
    """One object found in depth: its pixels (in the colour image), height and depth."""

    xy: np.ndarray  # (N, 2) colour-image pixel coordinates of its cells' centres
    height: float  # m, its highest point above the surface (95th percentile)
    z: float  # m, median depth
    area: float  # m², as seen by the camera
    cell: float  # px of the colour image per cell of the reduced depth image


def _reduce(depth: np.ndarray, step: int) -> np.ndarray:
    """Median of each ``step x step`` cell (NaN where the cell has no valid depth)."""
    h, w = depth.shape
    hh, ww = h // step, w // step
    cells = depth[:hh * step, :ww * step].reshape(hh, step, ww, step).swapaxes(1, 2)
    cells = cells.reshape(hh, ww, step * step)
    with warnings.catch_warnings():  # "All-NaN slice": such cells are simply invalid
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(cells, axis=2)


def find_bumps(depth_m: np.ndarray, K, image_size, settings: FallbackSettings | None = None
               ) -> list[Bump]:
    """Objects standing above the surface in ``depth_m`` (HxW metres, registered to the colour
    image of ``image_size`` (h, w), NaN/0 invalid); ``K`` is the colour image's 3x3 intrinsics.
    Highest first."""
    import cv2

    s = settings or FallbackSettings()
    depth = np.asarray(depth_m, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        depth = np.where(np.isfinite(depth) & (depth >= 0.05) & (depth <= 20.0), depth, np.nan)
    dh, dw = depth.shape[:2]
    step = max(1, int(round(dw / _WORK_WIDTH)))
    small = _reduce(depth, step)
    valid = np.isfinite(small)
    if valid.sum() < 50:
        return []
    K = np.asarray(K, np.float64).reshape(3, 3)
    ih, iw = image_size
    f_small = K[0, 0] * (dw / iw) / step  # focal length in reduced pixels
    z_med = float(np.median(small[valid]))
    win = int(np.clip(round(s.max_size * f_small / z_med), 3, max(small.shape)))
    win += 1 - win % 2
    # invalid depth: the nearest valid depth. The dilation (max) never picks it, so a hole never
    # raises the surface around it (a far fill would, and turn a tilted table next to a hole
    # into a bump); holes themselves are never objects (height 0 below)
    filled = np.where(valid, small, float(np.nanmin(small))).astype(np.float32)
    kernel = np.ones((win, win), np.uint8)
    surface = cv2.erode(cv2.dilate(filled, kernel), kernel)  # grey closing
    height = np.where(valid, surface - filled, 0.0)
    mask = ((height >= s.min_height) & (height <= s.max_height)).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    sx, sy = iw / (dw / step * 1.0), ih / (dh / step * 1.0)  # reduced px -> colour px
    bumps = []
    for i in range(1, n):
        sel = labels == i
        z = float(np.median(small[sel]))
        px_m = z / f_small  # metres per reduced pixel at its depth
        area = float(stats[i, cv2.CC_STAT_AREA]) * px_m * px_m
        side = max(stats[i, cv2.CC_STAT_WIDTH], stats[i, cv2.CC_STAT_HEIGHT]) * px_m
        if not (s.min_area <= area <= s.max_area) or side > s.max_size:
            continue
        ys, xs = np.nonzero(sel)
        xy = np.stack([(xs + 0.5) * sx - 0.5, (ys + 0.5) * sy - 0.5], axis=1)
        bumps.append(Bump(xy, float(np.percentile(height[sel], 95)), z, area, sx))
    bumps.sort(key=lambda b: -b.height)
    return bumps


def axis_grasp(pts: np.ndarray, z: float, fx: float, extra_m: float, cell: float = 1.0,
               quality: float = 0.0) -> Grasp:
    """The analytic grasp of an object's pixels ``pts`` ((N, 2) x, y) at depth ``z`` [m]: its
    centroid, the opening along the minor axis, wide enough to clear the pixels on both sides
    of the centroid (plus one ``cell`` [px]) and ``extra_m`` [m] in all; jaws 22 mm."""
    c = pts.mean(axis=0)
    minor = np.array([1.0, 0.0])
    if len(pts) > 2:
        _, vecs = np.linalg.eigh(np.cov((pts - c).T))
        minor = vecs[:, 0]
    proj = (pts - c) @ minor
    width = 2.0 * float(np.abs(proj).max()) + cell + extra_m * fx / z
    return Grasp(float(c[0]), float(c[1]), float(wrap_angle(math.atan2(minor[1], minor[0]))),
                 width, 0.022 * fx / z, quality, 1.0)


def fallback_grasps(depth_m: np.ndarray, K, image_size,
                    settings: FallbackSettings | None = None) -> tuple[list[Grasp], str]:
    """``(grasps, note)``: one analytic grasp on each of the highest objects found in depth
    (:func:`find_bumps`), and a one-line note saying what was found."""
    s = settings or FallbackSettings()
    bumps = find_bumps(depth_m, K, image_size, s)
    if not bumps:
        return [], "depth fallback: no object above the surface"
    fx = float(np.asarray(K, np.float64).reshape(3, 3)[0, 0])
    grasps = [axis_grasp(b.xy, b.z, fx, 2.0 * s.margin, b.cell) for b in bumps[:s.max_grasps]]
    return grasps, (f"depth fallback: {len(bumps)} object(s) above the surface, highest "
                    f"{bumps[0].height * 1000:.0f} mm")
