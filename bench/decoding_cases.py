"""The maps and reference decoders of ``bench_decoding.py``: synthetic map generators (blobs,
noise, rendered grasps with noise), the GR-ConvNet-style reference decoders and the agreement and
accuracy measures (see ``bench_decoding.py``'s docstring for what each one means)."""
from __future__ import annotations

import numpy as np

H, W = 480, 640
WIDTH_SCALE = 0.25


# --------------------------------------------------------------------------------------------
# Maps
# --------------------------------------------------------------------------------------------
def blob_maps(rng: np.random.Generator, n_blobs: int = 40, noise: float = 0.02) -> np.ndarray:
    """``(5, H, W)`` float32 maps like a trained model's: gaussian blobs (sigma 3-12 px, height
    0.25-1) on a low background + gaussian noise; angle/width/object from the blob that owns
    each pixel (CONVENTIONS §3 ranges)."""
    maps = np.zeros((5, H, W), np.float32)
    q = np.full((H, W), 0.02, np.float64)
    cos2 = np.ones((H, W))
    sin2 = np.zeros((H, W))
    width = np.full((H, W), 0.1)
    for _ in range(n_blobs):
        cx, cy = rng.uniform(0, W - 1), rng.uniform(0, H - 1)
        s = rng.uniform(3, 12)
        amp = rng.uniform(0.25, 1.0)
        a = rng.uniform(-np.pi / 2, np.pi / 2)
        r = int(4 * s) + 1
        x0, x1 = max(0, int(cx) - r), min(W, int(cx) + r + 1)
        y0, y1 = max(0, int(cy) - r), min(H, int(cy) + r + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1]
        g = amp * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
        win = q[y0:y1, x0:x1]
        own = g > win
        win[own] = g[own]
        cos2[y0:y1, x0:x1][own] = np.cos(2 * a)
        sin2[y0:y1, x0:x1][own] = np.sin(2 * a)
        width[y0:y1, x0:x1][own] = rng.uniform(0.05, 0.6)
    q = q + rng.normal(0, noise, q.shape)
    maps[0] = np.clip(q, 0, 1)
    maps[1] = np.clip(cos2 + rng.normal(0, noise, q.shape), -1, 1)
    maps[2] = np.clip(sin2 + rng.normal(0, noise, q.shape), -1, 1)
    maps[3] = np.clip(width + rng.normal(0, noise, q.shape), 0, 1)
    maps[4] = np.clip((q > 0.15).astype(np.float64) + rng.normal(0, noise, q.shape), 0, 1)
    return maps


def noise_maps(rng: np.random.Generator) -> np.ndarray:
    """``(5, H, W)`` uniform random maps (ch1, ch2 in [-1, 1])."""
    maps = rng.random((5, H, W), dtype=np.float32)
    maps[1:3] = 2 * maps[1:3] - 1
    return maps


#: Rendered-maps case: noise levels (std of the gaussian noise added to every channel).
NOISE_LEVELS = (0.0, 0.01, 0.02, 0.05)
#: A decoded grasp matches a known grasp whose centre lies within this distance [px].
MATCH_PX = 3.0


def rendered_frames(rng: np.random.Generator, n_frames: int, n_grasps: int = 8,
                    sep: float = 30.0, margin: float = 12.0
                    ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Frames of known grasps and their target maps (``render_targets``, sigma 2 px, identity
    letterbox: source px == map px). Per frame ``n_grasps`` grasps at sub-pixel centres at least
    ``sep`` px apart and ``margin`` px from the border, angle uniform, width 20-120 px, score
    uniform in [0.3, 1] (so the best and second-best grasps are sometimes nearly equal).
    Returns ``[(grasps (N, 7) rows x, y, angle, width, height, score, id), maps (5, H, W))]``."""
    from vita_grasp_core import Letterbox
    from vita_grasp_core.data.targets import render_targets

    lb = Letterbox.fit((H, W), (H, W))
    out = []
    for _ in range(n_frames):
        pts: list[tuple[float, float]] = []
        while len(pts) < n_grasps:
            x, y = rng.uniform(margin, W - 1 - margin), rng.uniform(margin, H - 1 - margin)
            if all(np.hypot(x - a, y - b) >= sep for a, b in pts):
                pts.append((x, y))
        g = np.zeros((n_grasps, 7))
        g[:, :2] = pts
        g[:, 2] = rng.uniform(-np.pi / 2, np.pi / 2, n_grasps)
        g[:, 3] = rng.uniform(20, 120, n_grasps)
        g[:, 4] = 0.5 * g[:, 3]
        g[:, 5] = rng.uniform(0.3, 1.0, n_grasps)
        out.append((g, render_targets(g, None, lb, WIDTH_SCALE).maps))
    return out


def add_noise(maps: np.ndarray, rng: np.random.Generator, std: float) -> np.ndarray:
    """Gaussian noise on every channel, then each channel clipped to its range (CONVENTIONS
    §3)."""
    m = maps + rng.normal(0, std, maps.shape).astype(np.float32) if std > 0 else maps.copy()
    m[0] = np.clip(m[0], 0, 1)
    m[1:3] = np.clip(m[1:3], -1, 1)
    m[3:] = np.clip(m[3:], 0, 1)
    return m


def score_against_truth(pred: np.ndarray, truth: np.ndarray) -> dict:
    """``pred`` rows (x, y, angle, width, quality), best first; ``truth`` rows as
    :func:`rendered_frames`. Each known grasp is matched to the nearest prediction within
    :data:`MATCH_PX`; ``best_first``: the first prediction matches the best-scored grasp."""
    from vita_grasp_core.conventions import angle_difference

    best = int(np.argmax(truth[:, 5]))
    out = {"best_first": bool(len(pred) and np.hypot(pred[0, 0] - truth[best, 0],
                                                     pred[0, 1] - truth[best, 1]) <= MATCH_PX),
           "n_truth": len(truth), "centre": [], "angle": [], "width": [], "quality": []}
    if len(pred) == 0:
        return out
    d = np.hypot(truth[:, None, 0] - pred[None, :, 0], truth[:, None, 1] - pred[None, :, 1])
    j = d.argmin(axis=1)
    hit = d[np.arange(len(truth)), j] <= MATCH_PX
    t, p = truth[hit], pred[j[hit]]
    out["centre"] = d[np.arange(len(truth)), j][hit].tolist()
    out["angle"] = np.degrees(angle_difference(p[:, 2], t[:, 2])).tolist()
    out["width"] = np.abs(p[:, 3] - t[:, 3]).tolist()
    out["quality"] = np.abs(p[:, 4] - t[:, 5]).tolist()
    return out


def rendered_accuracy(n_frames: int, kw: dict, seed: int = 0) -> dict:
    """Accuracy of ours, ref_grconvnet and ref_literal on rendered maps at each noise level
    (the same noisy maps for all three)."""
    import torch

    from vita_grasp_core import Letterbox

    lb = Letterbox.fit((H, W), (H, W))
    frames = rendered_frames(np.random.default_rng(seed), n_frames)
    decoders = {
        "ours (decode_maps)": lambda m: ours_array(ours(torch.from_numpy(m)[None], lb, **kw)),
        "ref_grconvnet": lambda m: ref_grconvnet(m, **kw),
        "ref_literal (GR-ConvNet as written)": lambda m: ref_literal(m, **kw),
    }
    res = {}
    for std in NOISE_LEVELS:
        rng = np.random.default_rng(seed + 1)
        acc = {name: [] for name in decoders}
        for truth, maps in frames:
            noisy = add_noise(maps, rng, std)
            for name, fn in decoders.items():
                acc[name].append(score_against_truth(fn(noisy), truth))
        res[str(std)] = {}
        for name, items in acc.items():
            n_found = sum(len(i["centre"]) for i in items)
            row = {"frames": len(items),
                   "best_first": sum(i["best_first"] for i in items) / len(items),
                   "found": n_found / sum(i["n_truth"] for i in items)}
            for key in ("centre", "angle", "width", "quality"):
                v = [x for i in items for x in i[key]]
                row[key] = {"median": float(np.median(v)) if v else float("nan"),
                            "p95": float(np.percentile(v, 95)) if v else float("nan")}
            res[str(std)][name] = row
    return res


# --------------------------------------------------------------------------------------------
# References
# --------------------------------------------------------------------------------------------
def gauss_same(q: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    if sigma <= 0:
        return q
    return gaussian_filter(q, sigma, mode="nearest", truncate=3.0)


def ref_same(maps: np.ndarray, *, min_distance, score_threshold, max_grasps, smooth_sigma):
    """Our semantics with scipy/skimage. Returns ``(N, 5)``: x, y, angle, width_px, quality.

    Written independently of ``decode_maps`` except for the quality fit itself
    (``fit_peak_value``, imported): peaks of the smoothed map off the outermost row/column ->
    the ``2 * max_grasps + 8`` best by raw heat among those >= half the threshold -> sub-pixel
    offset from the parabola through the smoothed log-heat -> quality at that offset ->
    ``quality >= threshold`` -> best ``max_grasps`` -> heat-weighted 5 x 5 means of
    (cos 2a, sin 2a) and width.
    """
    from skimage.feature import peak_local_max

    from vita_grasp_core.decoding import WEIGHT_FLOOR, WINDOW_RADIUS, fit_peak_value

    q = maps[0]
    qs = gauss_same(q, smooth_sigma)
    pk = peak_local_max(qs, min_distance=max(1, min_distance), threshold_abs=-np.inf,
                        exclude_border=False)
    pk = pk[(pk[:, 0] >= 1) & (pk[:, 0] <= H - 2) & (pk[:, 1] >= 1) & (pk[:, 1] <= W - 2)]
    pk = pk[np.lexsort((pk[:, 1], pk[:, 0]))]  # raster order: ties resolved like ours
    score = q[pk[:, 0], pk[:, 1]]
    ok = score >= 0.5 * score_threshold
    pk, score = pk[ok], score[ok]
    pk = pk[np.argsort(-score, kind="stable")[:2 * max_grasps + 8]]
    r, c = pk[:, 0], pk[:, 1]

    def offset(m, z, p):
        den = m - 2 * z + p
        return np.clip(np.where(den < -1e-9, 0.5 * (m - p) / np.where(den < -1e-9, den, -1), 0),
                       -0.5, 0.5)

    lq = np.log(np.maximum(qs.astype(np.float64), 1e-6))
    dx = offset(lq[r, c - 1], lq[r, c], lq[r, c + 1])
    dy = offset(lq[r - 1, c], lq[r, c], lq[r + 1, c])
    o = np.arange(-WINDOW_RADIUS, WINDOW_RADIUS + 1)
    wy = r[:, None, None] + o[None, :, None] + 0 * o[None, None, :]
    wx = c[:, None, None] + 0 * o[None, :, None] + o[None, None, :]
    wy, wx = wy.reshape(len(r), -1), wx.reshape(len(r), -1)
    inside = (wy >= 0) & (wy < H) & (wx >= 0) & (wx < W)
    wy, wx = wy.clip(0, H - 1), wx.clip(0, W - 1)
    win = maps[:, wy, wx].astype(np.float64)  # (5, N, 25)
    quality = fit_peak_value(win[0], inside, dx, dy)
    keep = np.flatnonzero(quality >= score_threshold)
    keep = keep[np.argsort(-quality[keep], kind="stable")][:max_grasps]
    wts = np.clip(win[0, keep] - WEIGHT_FLOOR * quality[keep, None], 0, None) * inside[keep]
    wts[:, wts.shape[1] // 2] += 1e-12
    mean = [(wts * win[ch, keep]).sum(1) / wts.sum(1) for ch in (1, 2, 3)]
    angle = 0.5 * np.arctan2(mean[1], mean[0])
    width = np.clip(mean[2], 0, 1) * (WIDTH_SCALE * W)
    return np.stack([c[keep] + dx[keep], r[keep] + dy[keep], angle, width, quality[keep]],
                    axis=1).astype(np.float64)


def ref_grconvnet(maps: np.ndarray, *, min_distance, score_threshold, max_grasps, smooth_sigma):
    """gaussian_filter -> peak_local_max(threshold_abs, num_peaks) -> angle/width at the peaks."""
    from skimage.feature import peak_local_max

    qs = gauss_same(maps[0], smooth_sigma)
    pk = peak_local_max(qs, min_distance=max(1, min_distance), threshold_abs=score_threshold,
                        num_peaks=max_grasps, exclude_border=False)
    return _at_peaks(maps, pk, qs[pk[:, 0], pk[:, 1]])


def ref_literal(maps: np.ndarray, *, min_distance, score_threshold, max_grasps, smooth_sigma):
    """GR-ConvNet's post_process_output + detect_grasps as written (timing only)."""
    from skimage.feature import peak_local_max
    from skimage.filters import gaussian

    q = gaussian(maps[0], 2.0, preserve_range=True)
    ang = gaussian(np.arctan2(maps[2], maps[1]) / 2.0, 2.0, preserve_range=True)
    width = gaussian(maps[3] * (WIDTH_SCALE * W), 1.0, preserve_range=True)
    pk = peak_local_max(q, min_distance=max(1, min_distance), threshold_abs=score_threshold,
                        num_peaks=max_grasps)
    r, c = pk[:, 0], pk[:, 1]
    return np.stack([c, r, ang[r, c], width[r, c], q[r, c]], axis=1)


def _at_peaks(maps, pk, score):
    r, c = pk[:, 0], pk[:, 1]
    angle = 0.5 * np.arctan2(maps[2, r, c], maps[1, r, c])
    width = np.clip(maps[3, r, c], 0, 1) * (WIDTH_SCALE * W)
    return np.stack([c, r, angle, width, score], axis=1).astype(np.float64)


def ours(maps_t, lb, **kw):
    from vita_grasp_core import decode_maps

    return decode_maps(maps_t, lb, width_scale=WIDTH_SCALE, **kw)[0]


def ours_array(grasps) -> np.ndarray:
    return np.array([[g.x, g.y, g.angle, g.width, g.quality] for g in grasps],
                    np.float64).reshape(-1, 5)


# --------------------------------------------------------------------------------------------
# Agreement
# --------------------------------------------------------------------------------------------
def _on_plateau(qs: np.ndarray, x: float, y: float, d: int) -> bool:
    """True when another pixel within the (2d+1) window has exactly the peak's smoothed value."""
    r, c = int(round(y)), int(round(x))
    win = qs[max(0, r - d):r + d + 1, max(0, c - d):c + d + 1]
    return int((win == qs[r, c]).sum()) > 1


def agreement(a: np.ndarray, b: np.ndarray, qs: np.ndarray, d: int, tol: float = 1.0) -> dict:
    """Peaks of ``a`` (ours) vs ``b`` (reference), rows (x, y, angle, width, quality)."""
    if len(a) == 0 or len(b) == 0:
        same = len(a) == len(b)
        return {"n_ours": len(a), "n_ref": len(b), "ref_found_by_ours": 1.0 if same else 0.0,
                "ours_found_by_ref": 1.0 if same else 0.0, "unmatched_on_plateau": 0,
                "unmatched": abs(len(a) - len(b)), "max_angle_diff_deg": 0.0,
                "max_width_diff_px": 0.0}
    dist = np.hypot(a[:, None, 0] - b[None, :, 0], a[:, None, 1] - b[None, :, 1])
    a_hit = dist.min(axis=1) <= tol
    b_hit = dist.min(axis=0) <= tol
    un = [p for p in a[~a_hit]] + [p for p in b[~b_hit]]
    plateau = sum(_on_plateau(qs, p[0], p[1], d) for p in un)
    j = dist.argmin(axis=1)
    pairs = a_hit
    dang = np.abs(np.mod(a[pairs, 2] - b[j[pairs], 2] + np.pi / 2, np.pi) - np.pi / 2)
    dwid = np.abs(a[pairs, 3] - b[j[pairs], 3])
    return {"n_ours": int(len(a)), "n_ref": int(len(b)),
            "ref_found_by_ours": float(b_hit.mean()), "ours_found_by_ref": float(a_hit.mean()),
            "unmatched": len(un), "unmatched_on_plateau": int(plateau),
            "max_angle_diff_deg": float(np.degrees(dang.max())) if pairs.any() else 0.0,
            "max_width_diff_px": float(dwid.max()) if pairs.any() else 0.0}
