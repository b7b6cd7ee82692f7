"""Maps -> grasps (CONVENTIONS §4). Pure tensor functions; they run on the maps' device
(on CPU the smoothing and max filter are OpenCV's SIMD kernels, elsewhere torch ops; the few
per-peak numbers are gathered on the device and finished in numpy, the same code for both).

heatmap -> optional gaussian smoothing -> local maxima within ``min_distance`` (max-pool NMS)
inside the letterbox content, never on its outermost row or column -> candidates by raw heat ->
sub-pixel peak (parabola through the smoothed log-heat, exact for gaussian peaks) -> quality =
raw heat at that sub-pixel peak (weighted log-quadratic fit over 5 x 5 px), calibrated by
``quality_knots`` when given -> ``quality >= score_threshold`` -> best ``max_grasps`` ->
angle from the heat-weighted mean ``(cos 2a, sin 2a)`` over the same 5 x 5 window, width and
``object_score`` heat-weighted means there, ``height = height_ratio * width`` -> back to source
pixels through the letterbox -> best first.

Why a window and not the peak pixel: with pixel noise one pixel's angle and width are as noisy as
the map, and a whole-pixel maximum under-reads a peak that lies between pixels, which reorders
grasps of nearly equal quality (``bench/bench_decoding.py``, rendered-maps section). The angle
and width maps themselves are never blurred (blurring an angle map mixes angles across the
+-90 degree wrap and across neighbouring grasps).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from .conventions import channel_to_width, channels_to_angle
from .decoding_alternatives import with_alternatives
from .decoding_regions import region_tensor, window_in_region
from .decoding_settings import DecodeConfig
from .geometry import Letterbox
from .grasp import Grasp
from .quality_calibration import apply_quality_calibration, raw_threshold


def gaussian_kernel1d(sigma: float, device=None, dtype=torch.float32) -> torch.Tensor:
    r = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-r, r + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _cv2_per_map(x: torch.Tensor, fn):
    """Apply an OpenCV filter ``fn(cv2, src, dst)`` to each (H, W) map of a CPU float32
    ``(B, H, W)`` tensor, writing into one preallocated output; None when OpenCV cannot serve
    (other device or dtype): the torch path is used then."""
    if x.device.type != "cpu" or x.dtype != torch.float32 or x.ndim != 3:
        return None
    import cv2

    src = x.detach().contiguous().numpy()
    out = torch.empty(src.shape, dtype=torch.float32)
    dst = out.numpy()
    for i in range(src.shape[0]):
        fn(cv2, src[i], dst[i])
    return out


def smooth(heat: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable gaussian blur of ``(B, H, W)`` maps (replicate padding, radius ceil(3 sigma)).

    On CPU this is OpenCV's SIMD ``GaussianBlur`` with the same truncated, normalised kernel;
    on other devices the torch code below, written as in-place sums of shifted slices (one fused
    multiply-add per tap). Why: docs/benchmarks.md, "Measurements behind design choices".
    """
    if sigma <= 0:
        return heat
    r = max(1, int(math.ceil(3 * sigma)))
    fast = _cv2_per_map(heat, lambda cv2, src, dst: cv2.GaussianBlur(
        src, (2 * r + 1, 2 * r + 1), sigma, dst=dst, sigmaY=sigma,
        borderType=cv2.BORDER_REPLICATE))
    if fast is not None:
        return fast
    k = gaussian_kernel1d(sigma, dtype=torch.float64).tolist()
    r = len(k) // 2
    h, w = heat.shape[-2:]
    x = F.pad(heat.unsqueeze(1), (r, r, 0, 0), mode="replicate").squeeze(1)
    acc = x[..., 0:w] * k[0]
    for i in range(1, len(k)):
        acc.add_(x[..., i:i + w], alpha=k[i])
    x = F.pad(acc.unsqueeze(1), (0, 0, r, r), mode="replicate").squeeze(1)
    acc = x[..., 0:h, :] * k[0]
    for i in range(1, len(k)):
        acc.add_(x[..., i:i + h, :], alpha=k[i])
    return acc


def running_max(x: torch.Tensor, k: int, dim: int) -> torch.Tensor:
    """Centred sliding-window max of odd width ``k`` along ``dim`` (-inf outside the map).

    Doubling windows (1, 2, 4, ...) need O(log k) elementwise maxima instead of O(k).
    """
    r = k // 2
    n = x.shape[dim]
    pad = (r, r) if dim in (-1, x.ndim - 1) else (0, 0, r, r)
    x = F.pad(x, pad, value=float("-inf"))
    w = 1
    while w * 2 <= k:
        m = x.shape[dim] - w
        x = torch.maximum(x.narrow(dim, 0, m), x.narrow(dim, w, m))
        w *= 2
    if w < k:
        x = torch.maximum(x.narrow(dim, 0, n), x.narrow(dim, k - w, n))
    return x.narrow(dim, 0, n)


def max_pool_same(x: torch.Tensor, k: int) -> torch.Tensor:
    """``(B, H, W)`` max filter of size k x k, same size output (== max_pool2d(k, 1, k // 2)).

    On CPU: OpenCV's ``dilate`` with a k x k box (separable, SIMD; the border never wins).
    """
    kernel = np.ones((k, k), np.uint8)
    fast = _cv2_per_map(x, lambda cv2, src, dst: cv2.dilate(src, kernel, dst=dst))
    if fast is not None:
        return fast
    return running_max(running_max(x, k, -1), k, -2)


def find_peaks(heat: torch.Tensor, *, min_distance: int, score_threshold: float, max_peaks: int,
               valid: torch.Tensor | None = None, score: torch.Tensor | None = None,
               boxes=None):
    """Local maxima of ``(B, H, W)`` heat maps (max-pool NMS).

    A pixel is a peak when it equals the maximum of its ``(2 * min_distance + 1)`` square window
    (Chebyshev distance; every pixel of an equal-valued plateau counts) and its ``score`` is
    >= ``score_threshold``. ``score`` (default ``heat``) is the map that is thresholded and ranked
    at the peaks, e.g. the raw heatmap when ``heat`` is a smoothed copy used only to locate maxima.
    ``valid`` (``(B, H, W)`` bool) or ``boxes`` (one ``(x0, y0, x1, y1)`` per image, exclusive
    ends) restrict where peaks may lie.
    Returns ``(scores (B, K), rows (B, K), cols (B, K), keep (B, K) bool)`` with K = max_peaks,
    best first (equal scores in raster order); ``keep`` is False for slots without a peak.
    """
    b, h, w = heat.shape
    score = heat if score is None else score
    pooled = max_pool_same(heat, 2 * int(min_distance) + 1)
    if heat.device.type == "cpu" and valid is None:
        return _find_peaks_numpy(heat, pooled, score, score_threshold, max_peaks, boxes)
    is_peak = heat >= pooled
    if valid is not None:
        is_peak &= valid
    # Candidates only (a few hundred on a real heatmap): ~3x cheaper than top-k over all pixels.
    flat = is_peak.view(-1).nonzero().squeeze(1)  # ascending, hence grouped by image
    s = score.reshape(-1)[flat]
    ok = s >= score_threshold
    if boxes is not None:
        bx = torch.as_tensor(boxes, dtype=torch.long, device=heat.device).view(b, 4)
        bx = bx[flat // (h * w)]
        r, c = (flat % (h * w)) // w, flat % w
        ok &= (c >= bx[:, 0]) & (c < bx[:, 2]) & (r >= bx[:, 1]) & (r < bx[:, 3])
    flat, s = flat[ok], s[ok]
    kk = min(int(max_peaks), h * w)
    top = torch.full((b, kk), -1.0, dtype=score.dtype, device=heat.device)
    idx = torch.zeros((b, kk), dtype=torch.long, device=heat.device)
    counts = torch.bincount(flat // (h * w), minlength=b).tolist() if b > 1 else [flat.numel()]
    start = 0
    for i, n in enumerate(counts):
        if n:
            seg_s, seg_i = s[start:start + n], flat[start:start + n] - i * h * w
            t, j = seg_s.topk(min(kk, n))
            j = j.sort().values  # raster order, then a stable sort by score: deterministic ties
            t, order = seg_s[j].sort(descending=True, stable=True)
            top[i, :len(t)] = t
            idx[i, :len(t)] = seg_i[j[order]]
        start += n
    return top, idx // w, idx % w, top >= 0


def _find_peaks_numpy(heat, pooled, score, score_threshold, max_peaks, boxes):
    """CPU branch of :func:`find_peaks` (same results): masks and ranking in numpy on the
    content box only, which avoids torch's slow ``nonzero`` over the whole map."""
    b, h, w = heat.shape
    hp, pp = heat.detach().numpy(), pooled.detach().numpy()
    sp = score.detach().float().numpy()
    kk = min(int(max_peaks), h * w)
    top = np.full((b, kk), -1.0, np.float32)
    idx = np.zeros((b, kk), np.int64)
    for i in range(b):
        x0, y0, x1, y1 = (0, 0, w, h) if boxes is None else (int(v) for v in boxes[i])
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        if x1 <= x0 or y1 <= y0:
            continue
        sc = sp[i, y0:y1, x0:x1]
        m = (hp[i, y0:y1, x0:x1] >= pp[i, y0:y1, x0:x1]) & (sc >= score_threshold)
        cand = np.flatnonzero(m)  # raster order inside the box
        if cand.size == 0:
            continue
        vals = sc[m]  # (a boolean mask does not copy a strided box, unlike reshape)
        if cand.size > kk:  # keep the kk best (ties at the cut: earliest in raster order)
            part = np.argpartition(-vals, kk - 1)[:kk]
            part.sort()
            cand, vals = cand[part], vals[part]
        order = np.argsort(-vals, kind="stable")  # best first, equal scores in raster order
        cand, vals = cand[order], vals[order]
        bw = x1 - x0
        top[i, :len(cand)] = vals
        idx[i, :len(cand)] = (cand // bw + y0) * w + (cand % bw + x0)
    top_t, idx_t = torch.from_numpy(top).to(score.dtype), torch.from_numpy(idx)
    return top_t, idx_t // w, idx_t % w, top_t >= 0


#: Radius of the square window around a peak (map px): the quality fit and the angle, width and
#: object averages use the (2 R + 1)^2 = 5 x 5 pixels around the integer peak.
WINDOW_RADIUS = 2
#: Pixels whose raw heat is below this fraction of the peak's quality get no weight in the
#: angle / width / object averages (keeps the background and neighbouring grasps out).
WEIGHT_FLOOR = 0.1
#: Candidates taken from the peak finder before the final ranking: ``2 * max_grasps + 8``, with
#: a raw pre-threshold of half the threshold (the refined quality can exceed the pixel value).
_CANDIDATE_FACTOR, _CANDIDATE_EXTRA, _PRE_THRESHOLD = 2, 8, 0.5
#: Ridge on the non-constant coefficients of the quality fit, relative to the normalised
#: weights (numerical safety for windows with one bright pixel; negligible otherwise).
_FIT_RIDGE = 1e-4

_DEFAULT_DECODE = DecodeConfig()
_OFF = np.arange(-WINDOW_RADIUS, WINDOW_RADIUS + 1)
_WIN_DY, _WIN_DX = (a.reshape(-1) for a in np.meshgrid(_OFF, _OFF, indexing="ij"))
_N_WIN = _WIN_DY.size
_CENTRE = _N_WIN // 2
#: Design matrix of the log-quadratic ``c0 + c1 x + c2 y + c3 x^2 + c4 y^2 + c5 x y``.
_DESIGN = np.stack([np.ones(_N_WIN), _WIN_DX, _WIN_DY, _WIN_DX ** 2, _WIN_DY ** 2,
                    _WIN_DX * _WIN_DY], axis=1).astype(np.float64)
#: Per-pixel outer products of the design rows, ``(25, 36)``: normal matrices as one matmul.
_DESIGN_OUTER = (_DESIGN[:, :, None] * _DESIGN[:, None, :]).reshape(_N_WIN, -1)
#: Window indices of the smoothed-heat samples of the sub-pixel refinement: centre, left,
#: right, up, down.
_CROSS = [_CENTRE, _CENTRE - 1, _CENTRE + 1, _CENTRE - len(_OFF), _CENTRE + len(_OFF)]


def _parabola_offset(m: np.ndarray, z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vertex of the parabola through (-1, m), (0, z), (1, p), clipped to [-0.5, 0.5]; 0 unless
    the parabola has a maximum."""
    den = m - 2 * z + p
    is_max = den < -1e-9
    off = np.where(is_max, 0.5 * (m - p) / np.where(is_max, den, -1.0), 0.0)
    return np.clip(off, -0.5, 0.5)


def fit_peak_value(window: np.ndarray, inside: np.ndarray, dx: np.ndarray,
                   dy: np.ndarray) -> np.ndarray:
    """Heat at the sub-pixel peak from a weighted least-squares fit of the log heat.

    A quadratic in the log (a gaussian peak, any width or elongation) is fitted to the 5 x 5
    window around each integer peak with weights ``heat^2`` (Guo's weighting: least squares on
    the heat itself, so low, noisy pixels count little) and evaluated at the refined offset.
    Exact for noise-free gaussian peaks; with pixel noise it averages ~25 samples instead of
    trusting one, and unlike the smoothed map's value it does not depend on the peak's width.

    Args:
        window: ``(N, 25)`` raw heat of each window, row-major from offset (-2, -2).
        inside: ``(N, 25)`` bool, window pixels inside the content box (others get no weight).
        dx, dy: ``(N,)`` refined offsets of the peak from the window centre [map px].
    Returns:
        ``(N,)`` float64 values in [0, 1]; the centre pixel's value where the fit is not finite
        or the pixels do not resolve the peak (narrower than about 0.7 px, or a 4-neighbour
        below a tenth of the centre).
    """
    y = np.clip(window, 1e-6, None)
    w = (np.clip(window, 0.0, None) ** 2 + 1e-12) * inside
    w /= w.sum(axis=1, keepdims=True)  # the centre is always inside: the sum is > 0
    k = _DESIGN.shape[1]
    m = (w @ _DESIGN_OUTER).reshape(-1, k, k)
    idx = np.arange(1, k)
    m[:, idx, idx] += _FIT_RIDGE  # the constant is never shrunk (log 1 would pull it up)
    b = (w * np.log(y)) @ _DESIGN
    coef = np.linalg.solve(m, b[..., None])[..., 0]
    at = np.stack([np.ones_like(dx), dx, dy, dx * dx, dy * dy, dx * dy], axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        val = np.exp(np.sum(coef * at, axis=1))
    # A peak the pixels do not resolve - narrower than ~0.7 px (log-curvature below -1 on an
    # axis), or with a 4-neighbour near zero (such pixels carry no weight, so the fit could not
    # see the fall) - is read at its own pixel. So is a fit that failed numerically.
    centre = window[:, _CENTRE]
    lone = (window[:, _CROSS[1:]] < 0.1 * centre[:, None]).any(axis=1)
    sharp = (coef[:, 3] < -1.0) | (coef[:, 4] < -1.0) | lone | ~np.isfinite(val)
    val = np.where(sharp, centre, val)
    return np.clip(val, 0.0, 1.0)


def _one_per_plateau(rows: np.ndarray, cols: np.ndarray, order: np.ndarray, d: int
                     ) -> np.ndarray:
    """Keep the first of candidates (``order``, best first) that lie within ``d`` px (Chebyshev)
    of each other. The max filter lets only equal-valued pixels come that close (a plateau, or a
    peak exactly between pixels), and they are one peak."""
    if d <= 0 or len(order) < 2:
        return order
    r, c = rows[order], cols[order]
    close = (np.abs(r[:, None] - r[None]) <= d) & (np.abs(c[:, None] - c[None]) <= d)
    np.fill_diagonal(close, False)
    if not close.any():
        return order
    keep = np.ones(len(order), bool)
    for i in np.flatnonzero(close.any(axis=1)):
        if keep[i]:
            keep[i + 1:] &= ~close[i, i + 1:]
    return order[keep]


def _smooth_content(raw: torch.Tensor, sigma: float, boxes) -> torch.Tensor:
    """Smoothed ``(B, H, W)`` heat in which the padding plays no part.

    Each image's content box is smoothed on its own (replicated edges), so low padding cannot
    turn a heatmap that rises towards the content's edge into an inner maximum, nor high padding
    leak in; the padding itself is set to -inf so the max filter never lets it win.
    """
    b, h, w = raw.shape
    if all(tuple(bx) == (0, 0, w, h) for bx in boxes):
        return smooth(raw, sigma)
    heat = torch.full_like(raw, float("-inf"))
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        if x1 > x0 and y1 > y0:
            heat[i, y0:y1, x0:x1] = smooth(raw[i:i + 1, y0:y1, x0:x1].contiguous(), sigma)[0]
    return heat


def _heat_and_score(raw: torch.Tensor, region: torch.Tensor | None, sigma: float, boxes):
    """The smoothed heat the peaks are found in and the map they are scored on: the content's
    (no region), or the region's pixels alone.

    With a region: normalised convolution (``smooth(heat * region) / smooth(region)``), so a
    strong peak of a neighbouring object does not bleed into the region's border. Outside the
    region the heat is -inf (never a peak, never a neighbour that wins the max filter) and the
    score -1 (below any threshold)."""
    if region is None:
        return _smooth_content(raw, sigma, boxes), raw
    inside = region.to(raw.dtype)
    num = _smooth_content(raw * inside, sigma, boxes)
    den = _smooth_content(inside, sigma, boxes)
    heat = (num / den.clamp_min(1e-6)).masked_fill(~region, float("-inf"))
    return heat, raw.masked_fill(~region, -1.0)


def decode_maps(maps: torch.Tensor, letterboxes, *, width_scale: float, height_ratio: float = 0.5,
                decode: DecodeConfig | None = None, regions=None,
                **settings) -> list[list[Grasp]]:
    """Decode ``(B, 5, H, W)`` (or ``(5, H, W)``) maps into grasps in source-image pixels.

    Args:
        maps: model outputs in range (CONVENTIONS §3), any device/dtype.
        letterboxes: one :class:`Letterbox` per image (source -> map canvas), or a single one.
        width_scale: channel 3 value 1.0 = ``width_scale * W`` map pixels (from the model config).
        height_ratio: jaw size as a fraction of the opening width.
        decode: :class:`~vita_grasp_core.decoding_settings.DecodeConfig` (default: its defaults);
            ``settings`` (``score_threshold=``, ``max_grasps=``, ``min_distance=``,
            ``smooth_sigma=``, ``alternatives=``, ``quality_knots=``) override single fields
            (:data:`~vita_grasp_core.decoding_settings.DECODE_FIELDS`; ``alternatives``:
            :mod:`.decoding_alternatives`).
        regions: optional, one ``(H, W)`` bool mask per image (or ``None`` for the whole
            frame): grasps of that object only (target selection, :mod:`.target_select`). The
            heat outside the region plays no part: the region's own local maxima are found (a
            stronger peak next door does not suppress them), and the quality fit and the angle,
            width and object averages use only the region's pixels.
    Returns:
        per image, a list of :class:`Grasp` sorted by quality, best first. The raw quality is
        the heat at the sub-pixel peak (:func:`fit_peak_value`); ``quality`` is that value
        through the calibration ``quality_knots`` (:mod:`.calibration`; the raw value without
        knots). Angle, width and ``object_score`` are heat-weighted means over the 5 x 5 window
        around the peak (the angle from the mean ``(cos 2a, sin 2a)`` vector). Peaks on the
        outermost row or column of the letterbox content, in the padding, or that are not a
        maximum of the smoothed heat among their 4 neighbours are never returned.
    """
    cfg = decode or _DEFAULT_DECODE
    if settings:
        cfg = cfg.replace(**settings)
    max_grasps, knots = cfg.max_grasps, cfg.quality_knots
    if maps.ndim == 3:
        maps = maps.unsqueeze(0)
    if maps.ndim != 4 or maps.shape[1] != 5:
        raise ValueError(f"maps must be (B, 5, H, W), got {tuple(maps.shape)}")
    b, _, h, w = maps.shape
    if isinstance(letterboxes, Letterbox):
        letterboxes = [letterboxes] * b
    if len(letterboxes) != b:
        raise ValueError(f"got {len(letterboxes)} letterboxes for {b} map sets")
    boxes, inner = [], []
    for lb in letterboxes:
        if tuple(lb.dst_size) != (h, w):
            raise ValueError(f"letterbox canvas {lb.dst_size} does not match the maps {(h, w)}")
        x0, y0, x1, y1 = (int(v) for v in lb.content_box)
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
        boxes.append((x0, y0, x1, y1))
        inner.append((x0 + 1, y0 + 1, x1 - 1, y1 - 1))  # the outermost rows/columns: unverified
    t_raw = raw_threshold(cfg.score_threshold, knots)
    if not math.isfinite(t_raw):
        return [[] for _ in range(b)]
    maps = maps.float()
    region = region_tensor(regions, b, h, w, maps.device)
    heat, score = _heat_and_score(maps[:, 0], region, cfg.smooth_sigma, boxes)
    n_cand = _CANDIDATE_FACTOR * max_grasps + _CANDIDATE_EXTRA
    _, r, c, keep = find_peaks(heat, min_distance=cfg.min_distance,
                               score_threshold=_PRE_THRESHOLD * t_raw, max_peaks=n_cand,
                               boxes=inner, score=score)
    n_max = r.shape[1]  # slots after these are alternatives: points beside a maximum
    if cfg.alternatives:
        r, c, keep = with_alternatives(heat, score, inner, r, c, keep, cfg.alternatives,
                                       cfg.min_distance, _PRE_THRESHOLD * t_raw, n_cand)
    # Gather the 5 x 5 windows of every candidate on the device, then small transfers; the
    # per-peak arithmetic (K candidates) runs in numpy: microseconds instead of op launches.
    dev = maps.device
    k = r.shape[1]
    rows = (r.unsqueeze(-1) + torch.as_tensor(_WIN_DY, device=dev)).clamp(0, h - 1)
    cols = (c.unsqueeze(-1) + torch.as_tensor(_WIN_DX, device=dev)).clamp(0, w - 1)
    flat = (rows * w + cols).view(b, 1, -1)  # (B, 1, K * 25), row-major windows
    win = torch.gather(maps.flatten(2), 2, flat.expand(b, 5, -1))  # (B, 5, K * 25)
    sm = torch.gather(heat.flatten(1), 1, flat[:, 0])  # (B, K * 25) smoothed heat
    # Small transfers (free on CPU); the rest is numpy.
    win_np = win.cpu().numpy().reshape(b, 5, k, _N_WIN)
    sm_np = sm.cpu().numpy().reshape(b, k, _N_WIN)[:, :, _CROSS]
    r_np, c_np, keep_np = r.cpu().numpy(), c.cpu().numpy(), keep.cpu().numpy()
    in_region = window_in_region(region, flat[:, 0], (b, k, _N_WIN))
    out = []
    for i, lb in enumerate(letterboxes):
        sel = keep_np[i]
        chans = win_np[i][:, sel].astype(np.float64)  # (5, K, 25)
        sm = sm_np[i][sel].astype(np.float64)
        if not (np.isfinite(chans).all() and np.isfinite(sm).all()):  # a broken map: no crash
            chans, sm = (np.nan_to_num(a, nan=0.0, posinf=1.0, neginf=0.0) for a in (chans, sm))
        rows_i, cols_i = r_np[i][sel].astype(np.float64), c_np[i][sel].astype(np.float64)
        # A verified maximum: the smoothed heat at the peak is >= its 4 neighbours (min_distance
        # 0 keeps every pixel as a candidate), so the refined position lies within half a pixel.
        # Alternatives are not maxima: taken as they are, at their pixel.
        is_alt = np.flatnonzero(sel) >= n_max
        interior = (sm[:, 0:1] >= sm[:, 1:5]).all(axis=1) | is_alt
        logh = np.log(np.maximum(sm, 1e-6))  # parabola through the log: exact for gaussians
        dx = np.where(is_alt, 0.0, _parabola_offset(logh[:, 1], logh[:, 0], logh[:, 2]))
        dy = np.where(is_alt, 0.0, _parabola_offset(logh[:, 3], logh[:, 0], logh[:, 4]))
        x0, y0, x1, y1 = boxes[i]
        wy = rows_i[:, None] + _WIN_DY[None]
        wx = cols_i[:, None] + _WIN_DX[None]
        inside = (wy >= y0) & (wy < y1) & (wx >= x0) & (wx < x1) & in_region[i][sel]
        q_raw = fit_peak_value(chans[0], inside, dx, dy)
        quality = np.asarray(apply_quality_calibration(q_raw, knots), dtype=np.float64)
        ok = interior & (quality >= cfg.score_threshold)
        order = np.flatnonzero(ok)
        # best first; equal calibrated qualities (a flat part of the calibration) by raw heat
        order = order[np.lexsort((-q_raw[order], -quality[order]))]
        order = _one_per_plateau(rows_i, cols_i, order, cfg.min_distance)[:max_grasps]
        wts = np.clip(chans[0, order] - WEIGHT_FLOOR * q_raw[order, None], 0.0, None)
        wts *= inside[order]
        wts[:, _CENTRE] += 1e-12  # an all-zero window falls back to the peak pixel
        wsum = wts.sum(axis=1)
        mean = np.einsum("kn,ckn->kc", wts, chans[1:, order]) / wsum[:, None]
        xy = lb.to_src(np.stack([cols_i[order] + dx[order], rows_i[order] + dy[order]], axis=1))
        ang = channels_to_angle(mean[:, 0], mean[:, 1])
        wid = lb.length_to_src(channel_to_width(mean[:, 2], width_scale, w))
        qual, obj = np.clip(quality[order], 0, 1).tolist(), np.clip(mean[:, 3], 0, 1).tolist()
        out.append([Grasp(q[0], q[1], a, wd, height_ratio * wd, sc, o) for q, a, wd, sc, o
                    in zip(xy.tolist(), ang.tolist(), wid.tolist(), qual, obj)])
    return out
