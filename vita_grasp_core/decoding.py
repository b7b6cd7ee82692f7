"""Maps -> grasps (CONVENTIONS §4). Pure tensor functions; they run on the maps' device
(on CPU the smoothing and max filter are OpenCV's SIMD kernels, elsewhere torch ops).

heatmap -> optional gaussian smoothing -> local maxima within ``min_distance`` (max-pool NMS) ->
peaks whose raw heatmap value is above ``score_threshold`` inside the image content ->
best ``max_grasps`` -> sub-pixel peak refinement (parabola through the log-heatmap, exact for gaussian peaks) ->
``angle = 0.5 * atan2(sin, cos)``, width from channel 3, ``height = height_ratio * width``,
``object_score`` = channel 4 -> back to source pixels through the letterbox -> best first.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch.nn import functional as F

from .conventions import channel_to_width, channels_to_angle
from .decode_config import DecodeConfig
from .geometry import Letterbox
from .grasp import Grasp


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

    On CPU this is OpenCV's SIMD ``GaussianBlur`` with the same truncated, normalised kernel
    (~3x faster); on other devices the torch code below.

    Written as in-place sums of shifted slices (one fused multiply-add per tap): on CPU this is
    ~20x faster than ``conv2d`` with a 1-D kernel and ~2x faster than summing temporaries.
    """
    if sigma <= 0:
        return heat
    r = max(1, int(math.ceil(3 * sigma)))
    fast = _cv2_per_map(heat, lambda cv2, src, dst: cv2.GaussianBlur(
        src, (2 * r + 1, 2 * r + 1), sigma, dst=dst, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE))
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
        vals = sc.reshape(-1)[cand]
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


#: (row, col) offsets of the samples used for sub-pixel refinement: centre, left, right, up, down.
_NEIGHBOURS = ((0, 0), (0, -1), (0, 1), (-1, 0), (1, 0))


def _parabola_offset(m: np.ndarray, z: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Vertex of the parabola through (-1, m), (0, z), (1, p), clipped to [-0.5, 0.5]; 0 unless
    the parabola has a maximum."""
    den = m - 2 * z + p
    is_max = den < -1e-9
    off = np.where(is_max, 0.5 * (m - p) / np.where(is_max, den, -1.0), 0.0)
    return np.clip(off, -0.5, 0.5)


def decode_maps(maps: torch.Tensor, letterboxes, *, width_scale: float, height_ratio: float = 0.5,
                decode: DecodeConfig | None = None, **settings) -> list[list[Grasp]]:
    """Decode ``(B, 5, H, W)`` (or ``(5, H, W)``) maps into grasps in source-image pixels.

    Args:
        maps: model outputs in range (CONVENTIONS §3), any device/dtype.
        letterboxes: one :class:`Letterbox` per image (source -> map canvas), or a single one.
        width_scale: channel 3 value 1.0 = ``width_scale * W`` map pixels (from the model config).
        height_ratio: jaw size as a fraction of the opening width.
        decode: :class:`~vita_grasp_core.decode_config.DecodeConfig` (default: its defaults);
            ``settings`` (``score_threshold=``, ``max_grasps=``, ``min_distance=``,
            ``smooth_sigma=``) override single fields. ``score_threshold`` is the minimum
            heatmap value of a peak; ``min_distance`` the NMS radius (map px, Chebyshev);
            ``smooth_sigma`` the smoothing before peak finding (map px, 0 = off).
    Returns:
        per image, a list of :class:`Grasp` sorted by quality, best first. ``quality`` is the
        heatmap value at the peak (smoothing only locates maxima), ``object_score`` channel 4.
    """
    cfg = (decode or DecodeConfig()).replace(**settings)
    score_threshold, max_grasps = cfg.score_threshold, cfg.max_grasps
    min_distance, smooth_sigma = cfg.min_distance, cfg.smooth_sigma
    if maps.ndim == 3:
        maps = maps.unsqueeze(0)
    if maps.ndim != 4 or maps.shape[1] != 5:
        raise ValueError(f"maps must be (B, 5, H, W), got {tuple(maps.shape)}")
    b, _, h, w = maps.shape
    if isinstance(letterboxes, Letterbox):
        letterboxes = [letterboxes] * b
    if len(letterboxes) != b:
        raise ValueError(f"got {len(letterboxes)} letterboxes for {b} map sets")
    maps = maps.float()
    heat = smooth(maps[:, 0], smooth_sigma)
    boxes = []
    for lb in letterboxes:
        if tuple(lb.dst_size) != (h, w):
            raise ValueError(f"letterbox canvas {lb.dst_size} does not match the maps {(h, w)}")
        boxes.append(lb.content_box)
    score, r, c, keep = find_peaks(heat, min_distance=min_distance, score_threshold=score_threshold,
                                   max_peaks=max_grasps, boxes=boxes, score=maps[:, 0])
    # Gather everything needed per peak on the device, then one small transfer; the per-peak
    # arithmetic (K values) runs in numpy, where it costs microseconds instead of op launches.
    dev = maps.device
    dr = torch.tensor([o[0] for o in _NEIGHBOURS], device=dev)
    dc = torch.tensor([o[1] for o in _NEIGHBOURS], device=dev)
    bi = torch.arange(b, device=dev).view(-1, 1)
    around = heat[bi.unsqueeze(-1), (r.unsqueeze(-1) + dr).clamp(0, h - 1),
                  (c.unsqueeze(-1) + dc).clamp(0, w - 1)]  # (B, K, 5) smoothed heat
    chans = maps[bi, 1:, r, c]  # (B, K, 4): cos 2a, sin 2a, width, object
    packed = torch.cat([around, chans, score.unsqueeze(-1), r.unsqueeze(-1).to(around.dtype),
                        c.unsqueeze(-1).to(around.dtype), keep.unsqueeze(-1).to(around.dtype)], -1)
    packed = packed.cpu().numpy().astype(np.float64)  # one small transfer per batch
    out = []
    for i, lb in enumerate(letterboxes):
        p = packed[i][packed[i][:, 12] > 0]
        logh = np.log(np.maximum(p[:, 0:5], 1e-6))  # parabola through the log: exact for gaussians
        rows, cols = p[:, 10], p[:, 11]
        dx = _parabola_offset(logh[:, 1], logh[:, 0], logh[:, 2])
        dy = _parabola_offset(logh[:, 3], logh[:, 0], logh[:, 4])
        dx = np.where((cols > 0) & (cols < w - 1), dx, 0.0)
        dy = np.where((rows > 0) & (rows < h - 1), dy, 0.0)
        xy = lb.to_src(np.stack([cols + dx, rows + dy], axis=1))
        ang = channels_to_angle(p[:, 5], p[:, 6])
        wid = lb.length_to_src(channel_to_width(p[:, 7], width_scale, w))
        out.append([
            Grasp(float(q[0]), float(q[1]), float(a), float(wd), float(height_ratio * wd),
                  float(np.clip(sc, 0, 1)), float(np.clip(o, 0, 1)))
            for q, a, wd, sc, o in zip(xy, ang, wid, p[:, 9], p[:, 8])
        ])
    return out
