"""The camera check's picture: the colour frame with the depth outlines drawn on it (magenta;
registered depth puts them on the object edges), the table plane tinted green, the grasps of a
model when one was given, the depth image beside it, and the verdicts below."""
from __future__ import annotations

import numpy as np

from . import registration as R
from .verdict import FAIL, PASS, WARN

#: Status colours (RGB).
STATUS_RGB = {PASS: (60, 200, 80), WARN: (250, 190, 40), FAIL: (240, 60, 60)}
EDGE_RGB = (255, 0, 255)
FIT_RGB = (0, 255, 255)
PLANE_RGB = (40, 220, 90)
PANEL_WIDTH = 640


def _edges_at(depth_m, size) -> np.ndarray:
    """Depth outlines of ``depth_m`` as a bool mask of ``size`` (h, w)."""
    import cv2

    e = R.depth_edges(R.resize_depth(depth_m, R.work_size(size))).astype(np.uint8)
    return cv2.resize(e, (size[1], size[0]), interpolation=cv2.INTER_NEAREST) > 0


def _moved(mask: np.ndarray, a) -> np.ndarray:
    """``mask`` moved by the alignment's best fit (scale about the centre, then shift)."""
    import cv2

    h, w = mask.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    M = np.array([[a.scale, 0, (1 - a.scale) * cx + a.shift[0]],
                  [0, a.scale, (1 - a.scale) * cy + a.shift[1]]])
    return cv2.warpAffine(mask.astype(np.uint8), M, (w, h), flags=cv2.INTER_NEAREST) > 0


def depth_colormap(depth_m: np.ndarray, size) -> np.ndarray:
    """HxW metres -> ``size`` HxWx3 uint8 RGB (turbo: near blue, far red), black where
    invalid; the range is the 2nd-98th percentile of the valid depth, at least 20 % of its
    median wide (so that sensor noise on a flat table does not fill the colour range)."""
    import cv2

    d = R.resize_depth(depth_m, size)
    ok = np.isfinite(d) & (d > 0)
    out = np.zeros((*size, 3), np.uint8)
    if ok.any():
        lo, med, hi = np.percentile(d[ok], [2, 50, 98])
        span = max(hi - lo, 0.2 * med, 1e-6)
        t = np.clip((d - (hi - span)) / span, 0, 1)
        col = cv2.applyColorMap((255 * np.nan_to_num(t)).astype(np.uint8), cv2.COLORMAP_TURBO)
        out[ok] = cv2.cvtColor(col, cv2.COLOR_BGR2RGB)[ok]
    return out


def _text_rows(verdicts, width: int) -> np.ndarray:
    """The rows as a dark strip: status in its colour, then check and finding, wrapped."""
    import textwrap

    import cv2

    chars = max(20, (width - 70) // 7)
    rows = []
    for v in verdicts:
        if v.status in STATUS_RGB:
            lines = textwrap.wrap(f"{v.check}: {v.finding}", chars) or [""]
            rows += [(v.status if i == 0 else None, line) for i, line in enumerate(lines)]
    img = np.full((20 * len(rows) + 10, width, 3), 24, np.uint8)
    for i, (status, line) in enumerate(rows):
        y = 20 + 20 * i
        if status:
            cv2.putText(img, status.upper(), (8, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5,
                        STATUS_RGB[status], 1, cv2.LINE_AA)
        cv2.putText(img, line, (62, y), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (235, 235, 235), 1,
                    cv2.LINE_AA)
    return img


def render_overlay(report) -> np.ndarray | None:
    """The picture of a :class:`~.run.Report` as HxWx3 uint8 RGB, or ``None`` without a decoded
    frame."""
    import cv2

    from ..visualize import draw_grasps

    sample = report.sample
    if sample is None:
        return None
    h, w = sample.rgb.shape[:2]
    s = PANEL_WIDTH / w
    size = (max(1, int(round(h * s))), PANEL_WIDTH)
    left = cv2.resize(sample.rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
    if report.grasps:
        from ..grasp import Grasp

        scaled = [Grasp(g.x * s, g.y * s, g.angle, g.width * s, g.height * s, g.quality,
                        g.object_score) for g in report.grasps]
        left = draw_grasps(left, scaled, max_grasps=5)
    right = np.zeros_like(left)
    if sample.depth_m is not None:
        right = depth_colormap(sample.depth_m, size)
        plane = report.plane
        if plane is not None and plane.inliers.shape == sample.depth_m.shape:
            m = cv2.resize(plane.inliers.astype(np.uint8), (size[1], size[0]),
                           interpolation=cv2.INTER_NEAREST) > 0
            left[m] = (0.78 * left[m] + 0.22 * np.array(PLANE_RGB)).astype(np.uint8)
        edges = _edges_at(sample.depth_m, size)
        a = report.alignment
        if a is not None and a.displacement > R.REGISTERED * w:
            left[_moved(edges, a)] = FIT_RGB  # where the outlines fit best
        left[edges] = EDGE_RGB
        right[edges] = (255, 255, 255)
    return np.concatenate([np.concatenate([left, right], axis=1),
                           _text_rows(report.verdicts, 2 * size[1])], axis=0)
