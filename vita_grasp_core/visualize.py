"""Drawing grasps and heatmaps on frames (numpy + OpenCV only, no ROS).

Shared by the ROS node's ``debug/heatmap`` topic, the inference CLI and the bag tools, so every
tool draws the same rectangles. All images here are ``HxWx3 uint8 RGB`` and colours are RGB
triples; convert to BGR only when writing a file with OpenCV or publishing ``bgr8``.

Rectangle drawing follows CONVENTIONS §1 (:func:`vita_grasp_core.grasp.rect_corners`): the two
*jaw* edges (where the fingers close, perpendicular to the opening, ``height`` long) are drawn in
``jaw_color``; the two *opening* edges (parallel to the opening direction, ``width`` long) in
``open_color``. The best grasp (the first one; lists are best first) is drawn thicker, in
``best_color`` for its jaws, with a dot at its centre.
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from .geometry import Letterbox
from .grasp import Grasp, grasps_to_array, rect_corners

#: Default colours (RGB).
JAW_COLOR = (255, 40, 40)
OPEN_COLOR = (40, 110, 255)
BEST_COLOR = (40, 255, 40)

#: Fixed-point bits for sub-pixel cv2 drawing (cv2.line's ``shift``).
_SHIFT = 4


def _as_rows(grasps) -> np.ndarray:
    """list[Grasp] or ``(N, >=5)`` array -> ``(N, >=5)`` float64 rows (x, y, angle, w, h...)."""
    if isinstance(grasps, np.ndarray):
        arr = np.asarray(grasps, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 5), np.float64)
        arr = np.atleast_2d(arr)
        if arr.ndim != 2 or arr.shape[1] < 5:
            raise ValueError(f"grasp array must be (N, >=5), got {arr.shape}")
        return arr
    grasps = list(grasps)
    if not grasps:
        return np.zeros((0, 5), np.float64)
    if isinstance(grasps[0], Grasp):
        return grasps_to_array(grasps).astype(np.float64)
    return _as_rows(np.asarray(grasps, dtype=np.float64))


def _check_rgb(rgb: np.ndarray) -> None:
    ok = isinstance(rgb, np.ndarray) and rgb.ndim == 3 and rgb.shape[2] == 3
    if not ok or rgb.dtype != np.uint8:
        raise ValueError("expected an HxWx3 uint8 RGB image, got "
                         f"{getattr(rgb, 'shape', type(rgb).__name__)} "
                         f"{getattr(rgb, 'dtype', '')}")


def draw_grasps(rgb: np.ndarray, grasps, *, jaw_color: Sequence[int] = JAW_COLOR,
                open_color: Sequence[int] = OPEN_COLOR, best_color: Sequence[int] = BEST_COLOR,
                thickness: int | None = None, highlight_best: bool = True,
                max_grasps: int | None = None, copy: bool = True) -> np.ndarray:
    """Draw grasp rectangles on an ``HxWx3 uint8 RGB`` image.

    Args:
        rgb: the source image; grasps are in its pixels (CONVENTIONS §1).
        grasps: list of :class:`Grasp` or ``(N, >=5)`` rows (x, y, angle, width, height, ...),
            best first.
        jaw_color / open_color / best_color: RGB colours (see module docstring).
        thickness: line thickness in px; default scales with the image (1 px at 640x480, 2 px at
            1280x720). The best grasp is drawn one px thicker.
        highlight_best: draw the first grasp in ``best_color`` with a centre dot, on top.
        max_grasps: draw only the first ``max_grasps``.
        copy: draw on a copy (default) or in place.
    Returns:
        the image with the rectangles (RGB, same shape).
    """
    import cv2

    _check_rgb(rgb)
    out = rgb.copy() if copy or not rgb.flags["C_CONTIGUOUS"] else rgb
    rows = _as_rows(grasps)
    if max_grasps is not None:
        rows = rows[: max(0, int(max_grasps))]
    if len(rows) == 0:
        return out
    if thickness is None:
        thickness = max(1, int(round(max(out.shape[:2]) / 720)))
    corners = rect_corners(rows[:, :5])  # (N, 4, 2): jaw(+w/2): c0-c1, jaw(-w/2): c2-c3
    finite = np.isfinite(corners).all(axis=(1, 2))
    lim = float(1 << 30)
    pts = np.clip(np.nan_to_num(corners * (1 << _SHIFT)), -lim, lim).round().astype(np.int32)
    order = list(range(len(rows)))[::-1]  # worst first, so the best ends on top
    for i in order:
        if not finite[i]:
            continue
        best = highlight_best and i == 0
        t = thickness + (1 if best else 0)
        jc = tuple(int(v) for v in (best_color if best else jaw_color))
        oc = tuple(int(v) for v in open_color)
        p = pts[i]
        cv2.line(out, tuple(p[1]), tuple(p[2]), oc, t, cv2.LINE_AA, _SHIFT)
        cv2.line(out, tuple(p[3]), tuple(p[0]), oc, t, cv2.LINE_AA, _SHIFT)
        cv2.line(out, tuple(p[0]), tuple(p[1]), jc, t, cv2.LINE_AA, _SHIFT)
        cv2.line(out, tuple(p[2]), tuple(p[3]), jc, t, cv2.LINE_AA, _SHIFT)
        if best:
            c = np.clip(rows[i, :2] * (1 << _SHIFT), -lim, lim).round().astype(np.int32)
            cv2.circle(out, (int(c[0]), int(c[1])), (t + 2) << _SHIFT, jc, -1, cv2.LINE_AA, _SHIFT)
    return out


def heatmap_to_source(heat: np.ndarray, letterbox: Letterbox) -> np.ndarray:
    """Resample a map on the model's output canvas back onto the source image's pixel grid.

    Args:
        heat: ``(H_out, W_out)`` float map (e.g. channel 0) with ``(H_out, W_out) ==
            letterbox.dst_size``.
        letterbox: the source -> canvas mapping of the frame (``Prediction.letterbox``).
    Returns:
        ``(H_src, W_src)`` float32, bilinear; exact inverse of :meth:`Letterbox.to_dst`.
    """
    import cv2

    heat = np.asarray(heat, dtype=np.float32)
    if heat.ndim != 2 or tuple(heat.shape) != tuple(letterbox.dst_size):
        raise ValueError(f"heatmap {heat.shape} does not match the letterbox canvas "
                         f"{letterbox.dst_size}")
    # Maps each *source* pixel (the output here) to canvas coordinates: exactly Letterbox.to_dst.
    m = letterbox.cv_matrix()
    h, w = letterbox.src_size
    return cv2.warpAffine(heat, m, (int(w), int(h)), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_REPLICATE)


def heatmap_overlay(rgb: np.ndarray, maps_or_heat: np.ndarray, letterbox: Letterbox, *,
                    alpha: float = 0.45, colormap: int | None = None,
                    vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Blend a colour-mapped heatmap over the source frame.

    Args:
        rgb: ``HxWx3 uint8 RGB`` source image (``H x W == letterbox.src_size``).
        maps_or_heat: ``(5, H_out, W_out)`` maps (channel 0 is used) or one ``(H_out, W_out)`` map.
        letterbox: ``Prediction.letterbox`` (source -> map canvas); the heatmap is mapped back into
            source pixels through it, so padding never shows and rectangles line up.
        alpha: heatmap weight in the blend, in [0, 1].
        colormap: an OpenCV colormap id (default ``cv2.COLORMAP_JET``).
        vmin, vmax: heat values mapped to the ends of the colormap.
    Returns:
        a new ``HxWx3 uint8 RGB`` image.
    """
    import cv2

    _check_rgb(rgb)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    if tuple(rgb.shape[:2]) != tuple(letterbox.src_size):
        raise ValueError(f"image {rgb.shape[:2]} does not match the letterbox source size "
                         f"{letterbox.src_size}")
    heat = np.asarray(maps_or_heat)
    if heat.ndim == 3:
        heat = heat[0]
    src_heat = heatmap_to_source(heat, letterbox)
    span = max(float(vmax) - float(vmin), 1e-12)
    # (heat - vmin) * 255 / span, saturated to uint8 in one OpenCV call (NaN -> 0).
    heat_u8 = cv2.convertScaleAbs(np.nan_to_num(src_heat, nan=vmin) - vmin, alpha=255.0 / span)
    colored = cv2.applyColorMap(heat_u8, cv2.COLORMAP_JET if colormap is None else colormap)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    return cv2.addWeighted(colored, float(alpha), np.ascontiguousarray(rgb), 1.0 - float(alpha),
                           0.0)


def render_prediction(rgb: np.ndarray, prediction, *, heatmap: bool = True, alpha: float = 0.45,
                      max_grasps: int | None = None, **draw_kwargs) -> np.ndarray:
    """Heatmap overlay (optional) + grasp rectangles for a :class:`~.predictor.Prediction`."""
    out = heatmap_overlay(rgb, prediction.maps, prediction.letterbox, alpha=alpha) if heatmap \
        else rgb
    return draw_grasps(out, prediction.grasps, max_grasps=max_grasps, copy=not heatmap,
                       **draw_kwargs)


def grasp_colors(n: int, qualities: Iterable[float] | None = None) -> np.ndarray:
    """``(n, 3)`` float RGB in [0, 1]: green for the best (index 0), red -> yellow by quality for
    the rest (for RViz markers and plots)."""
    q = np.ones(n) if qualities is None else np.clip(np.asarray(list(qualities), float), 0, 1)
    out = np.stack([np.ones(n), q, np.zeros(n)], axis=1) if n else np.zeros((0, 3))
    if n:
        out[0] = (0.1, 1.0, 0.1)
    return out
