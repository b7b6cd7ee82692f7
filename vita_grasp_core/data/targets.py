"""Training targets: grasps in source pixels -> the five output maps (CONVENTIONS §3).

Units and frames: grasps are ``(N, 7)`` rows ``(x, y, angle, width, height, score, obj_id)`` in
*source* pixels (x = column, y = row, y down, angle in radians from +x towards +y), i.e. the output
of :func:`vita_grasp_core.grasp.graspnet_rects_to_grasps`. Maps are ``(5, H, W)`` float32 on the
letterbox canvas (the model's output size, default 480x640).

Definitions (``c_g`` = grasp centre on the map, ``sigma`` in map pixels, ``p`` a map pixel)::

    s_g        = clip(score_g / score_scale, min_score, 1)          # score_scale=None: frame max
    r_g(p)     = s_g * exp(-|p - c_g|^2 / (2 sigma^2))   for |p - c_g|_inf <= ceil(3 sigma), else 0
    ch0(p)     = max_g r_g(p)
    owner(p)   = argmax_g r_g(p)                                     # the grasp that owns p
    owned(p)   = ch0(p) > owned_floor
    ch1, ch2   = cos(2 a_owner), sin(2 a_owner)                      # 0 where not owned
    ch3        = clip(width_owner * letterbox.scale / (width_scale * W), 0, 1)  # 0: not owned
    ch4        = 1 where the label mask (nearest-neighbour through the letterbox) is > 0

Score normalisation: GraspNet scores are ``1.1 - mu`` with the friction coefficient ``mu`` in
0.1 ... 1.0, so they already live in [0.1, 1.0]; the default fixed ``score_scale=1.0`` keeps the
heatmap peaks equal to the dataset's absolute grasp quality (comparable across frames) and
``min_score`` keeps any grasp, however poor, strictly positive. Pass ``score_scale=None`` to divide
by the frame's best score instead.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..conventions import CHANNELS, angle_to_channels, width_to_channel  # noqa: F401
from ..geometry import Letterbox
from ..grasp import rect_corners


@dataclass
class Targets:
    """Rendered training targets on the map canvas.

    Attributes:
        maps: ``(5, H, W)`` float32, channels as in :data:`CHANNELS`.
        owned: ``(H, W)`` bool, pixels whose heatmap exceeds ``owned_floor``; angle (ch1, ch2)
            and width (ch3) losses should count only here.
        owner: ``(H, W)`` int32 index into the *input* grasp rows of the owning grasp, -1 where no
            grasp responds (debugging and tests).
        n_grasps: number of input grasps that were valid and inside the source image.
    """

    maps: np.ndarray
    owned: np.ndarray
    owner: np.ndarray
    n_grasps: int


def valid_grasp_rows(grasps: np.ndarray, src_size) -> np.ndarray:
    """Bool ``(N,)``: finite rows with width > 0 whose centre lies inside the source image.

    The image covers ``[-0.5, w - 0.5) x [-0.5, h - 0.5)`` (pixel centres at integers).
    """
    g = np.asarray(grasps)
    if g.ndim != 2 or g.shape[0] == 0:
        return np.zeros(0 if g.ndim != 2 else g.shape[0], bool)
    h, w = src_size
    ok = np.isfinite(g[:, :6]).all(axis=1) & (g[:, 3] > 0)
    x, y = g[:, 0], g[:, 1]
    with np.errstate(invalid="ignore"):
        ok &= (x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)
    return ok


def warp_label_nearest(label: np.ndarray, lb: Letterbox) -> np.ndarray:
    """Place an ``HxW`` integer mask on the letterbox canvas with nearest-neighbour sampling."""
    import cv2

    if tuple(label.shape[:2]) != tuple(lb.src_size):
        raise ValueError(f"label is {label.shape[:2]}, letterbox expects {lb.src_size}")
    m = lb.cv_matrix()
    src = label if label.dtype in (np.uint8, np.uint16, np.int16, np.float32) else \
        label.astype(np.int32).astype(np.float32)
    dh, dw = lb.dst_size
    return cv2.warpAffine(src, m, (dw, dh), flags=cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def rect_union_mask(grasps: np.ndarray, lb: Letterbox) -> np.ndarray:
    """``(H, W)`` uint8 union of the grasps' rectangles (width x height) drawn on the canvas."""
    import cv2

    dh, dw = lb.dst_size
    mask = np.zeros((dh, dw), np.uint8)
    if len(grasps) == 0:
        return mask
    g = np.asarray(grasps, dtype=np.float64)
    corners = rect_corners(g[:, :5])  # (N, 4, 2) source px
    pts = lb.to_dst(corners)
    # 4 bits of sub-pixel precision; polygons drawn one by one so overlaps are filled (not XORed).
    pts = np.round(pts * 16).astype(np.int32)
    for p in pts:
        cv2.fillConvexPoly(mask, p, 1, lineType=cv2.LINE_8, shift=4)
    return mask


def _dedupe_best(cx: np.ndarray, cy: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Indices keeping, for each exactly repeated centre, the row with the highest score.

    A grasp at the same centre with a lower score never wins a pixel, so this is exact.
    """
    order = np.lexsort((-s, cy, cx))
    xs, ys = cx[order], cy[order]
    first = np.ones(len(order), bool)
    first[1:] = (xs[1:] != xs[:-1]) | (ys[1:] != ys[:-1])
    return order[first]


def render_targets(grasps_src, label_mask_src, letterbox: Letterbox, width_scale: float,
                   sigma: float = 2.0, *, score_scale: float | None = 1.0,
                   min_score: float = 0.05, owned_floor: float = 0.05) -> Targets:
    """Render the five target maps for one frame (see the module docstring for the formulas).

    Args:
        grasps_src: ``(N, >=6)`` rows (x, y, angle, width, height, score[, obj_id]) in source px.
            Rows that are not finite, have width <= 0 or a centre outside the source image are
            ignored.
        label_mask_src: ``(h, w)`` instance mask of the source image (0 = background) or ``None``.
            Without it, channel 4 falls back to the union of the grasp rectangles (width x height),
            which over-covers the gaps between the object and the open fingers.
        letterbox: source image -> map canvas (``letterbox.dst_size`` is the map size).
        width_scale: channel 3 value 1.0 = ``width_scale * W`` map pixels (model config).
        sigma: gaussian standard deviation in map pixels.
        score_scale: scores are divided by this (GraspNet: 1.0); ``None`` = the frame's best score.
        min_score: lower bound of the normalised score, so poor grasps still appear (> 0).
        owned_floor: heatmap value above which a pixel counts as owned.
    Returns:
        :class:`Targets` (maps ``(5, H, W)`` float32, owned ``(H, W)`` bool, owner ``(H, W)``).
    """
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    if not 0 < width_scale <= 1:
        raise ValueError(f"width_scale must be in (0, 1], got {width_scale}")
    if not 0 < min_score <= 1:
        raise ValueError(f"min_score must be in (0, 1], got {min_score}")
    h, w = letterbox.dst_size
    maps = np.zeros((5, h, w), np.float32)
    owner = np.full(h * w, -1, np.int64)

    g = np.asarray(grasps_src, dtype=np.float64)
    if g.ndim != 2 or (g.shape[0] and g.shape[1] < 6):
        raise ValueError(f"grasps must be (N, >=6), got {g.shape}")
    idx = np.flatnonzero(valid_grasp_rows(g, letterbox.src_size)) if len(g) else np.zeros(0, int)
    n_valid = int(len(idx))

    if label_mask_src is not None:
        maps[4] = warp_label_nearest(np.asarray(label_mask_src), letterbox) > 0
    else:
        maps[4] = rect_union_mask(g[idx], letterbox)

    if len(idx):
        sel = g[idx]
        raw = sel[:, 5]
        scale = float(raw.max()) if score_scale is None else float(score_scale)
        s = np.clip(raw / scale if scale > 0 else np.ones_like(raw), min_score, 1.0)
        c = letterbox.to_dst(sel[:, :2])
        keep = _dedupe_best(c[:, 0], c[:, 1], s)
        idx, s, c = idx[keep], s[keep], c[keep]

        r = int(math.ceil(3 * sigma))
        k = 2 * r + 1
        cx = c[:, 0].astype(np.float32)
        cy = c[:, 1].astype(np.float32)
        off = np.arange(-r, r + 1, dtype=np.int32)
        # (N, k) pixel coordinates and separable gaussian factors of each window; factors of
        # rows/columns outside the canvas are 0 and their (clipped) pixel gets a 0 response,
        # which never wins a pixel that some grasp reaches (responses there are > 0).
        px = np.rint(cx).astype(np.int32)[:, None] + off[None, :]
        py = np.rint(cy).astype(np.int32)[:, None] + off[None, :]
        inv = np.float32(-0.5 / (sigma * sigma))
        gx = np.exp(inv * np.square(px.astype(np.float32) - cx[:, None]))
        gy = np.exp(inv * np.square(py.astype(np.float32) - cy[:, None]))
        gx[(px < 0) | (px >= w)] = 0
        gy[(py < 0) | (py >= h)] = 0
        gy *= s.astype(np.float32)[:, None]
        resp = (gy[:, :, None] * gx[:, None, :]).reshape(-1)
        flat = ((np.clip(py, 0, h - 1) * w)[:, :, None]
                + np.clip(px, 0, w - 1)[:, None, :]).reshape(-1)

        heat = np.zeros(h * w, np.float32)
        np.maximum.at(heat, flat, resp)
        win = np.flatnonzero(resp >= heat[flat])  # the (possibly tied) best response per pixel
        owner_local = np.empty(h * w, np.int64)
        owner_local[flat[win]] = win // (k * k)
        hit = heat > 0
        owner[hit] = idx[owner_local[hit]]

        maps[0] = heat.reshape(h, w)
        own_rows = g[owner[hit]]
        cos2a, sin2a = angle_to_channels(own_rows[:, 2])
        wn = width_to_channel(own_rows[:, 3] * letterbox.scale, width_scale, w)
        owned = hit & (heat > owned_floor)
        ow = owned[hit]
        for ch, val in ((1, cos2a), (2, sin2a), (3, wn)):
            flat_ch = maps[ch].reshape(-1)
            flat_ch[np.flatnonzero(hit)[ow]] = val[ow]
        owned = owned.reshape(h, w)
    else:
        owned = np.zeros((h, w), bool)
    return Targets(maps=maps, owned=owned, owner=owner.reshape(h, w).astype(np.int32),
                   n_grasps=n_valid)
