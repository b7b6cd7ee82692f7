"""Several grasps per object (:func:`vita_grasp_core.decoding.decode_maps` with
``alternatives`` > 0, CONVENTIONS §4).

The position heatmap has one blob per object and one maximum per blob, so peak finding returns
one grasp per object. A planner whose first choice fails (out of reach, in collision, too wide
at depth) wants fall-backs on the same object. Here they are the blob's other high points,
picked greedily: the highest remaining pixel of the smoothed heat that is more than
``min_distance`` (Chebyshev, as the peak suppression) from every maximum and every point picked
before, whose raw score passes the pre-threshold; each such point belongs to the maximum
nearest to it, which takes at most ``per_peak`` of them. They are decoded like the maxima (the
5 x 5 window averages) and ranked by their own quality; they are not local maxima, so they get
no sub-pixel refinement.
"""
from __future__ import annotations

import numpy as np
import torch

#: At most this many greedy passes (points taken or dropped) per image, whatever the settings
#: ask for: bounds the cost of a hostile configuration (``max_grasps`` 1000, ``alternatives``
#: 20, ``min_distance`` 0, pixel noise with hundreds of maxima).
MAX_PASSES = 256


def alternative_points(heat: torch.Tensor, score: torch.Tensor, boxes, rows: torch.Tensor,
                       cols: torch.Tensor, keep: torch.Tensor, *, per_peak: int,
                       min_distance: int, threshold: float, limit: int):
    """Greedy further points of each image's blobs.

    Args:
        heat: ``(B, H, W)`` smoothed heat the maxima were found in (``-inf`` = never a point).
        score: ``(B, H, W)`` map thresholded at the points (the raw heat).
        boxes: one ``(x0, y0, x1, y1)`` per image (exclusive ends): where points may lie.
        rows, cols, keep: the maxima, ``(B, K)`` each (:func:`~.decoding.find_peaks`).
        per_peak: at most this many points per maximum (the nearest one owns a point).
        min_distance: a point is more than this many px (Chebyshev) from maxima and points.
        threshold: minimum ``score`` at a point.
        limit: at most this many points per image (and at most :data:`MAX_PASSES` tried).
    Returns:
        ``(rows, cols, keep)``, ``(B, limit)`` tensors on ``heat``'s device; ``keep`` is False
        for empty slots. Points come best (highest heat) first.
    """
    b, h, w = heat.shape
    n = max(int(limit), 0)
    out_r = np.zeros((b, n), np.int64)
    out_c = np.zeros((b, n), np.int64)
    out_k = np.zeros((b, n), bool)
    hp = heat.detach().float().cpu().numpy()
    sp = score.detach().float().cpu().numpy()
    r_np, c_np, k_np = rows.cpu().numpy(), cols.cpu().numpy(), keep.cpu().numpy()
    d = max(int(min_distance), 0)
    for i in range(b):
        seeds = np.stack([r_np[i][k_np[i]], c_np[i][k_np[i]]], axis=1)
        if not len(seeds) or not n or per_peak <= 0:
            continue
        x0, y0, x1, y1 = (int(v) for v in boxes[i])
        sub = hp[i, y0:y1, x0:x1]
        # The pixels that may become points, highest heat first (equal heat in raster order);
        # `alive` marks those not yet inside a taken window.
        pr, pc = np.nonzero(np.isfinite(sub) & (sp[i, y0:y1, x0:x1] >= threshold))
        order = np.argsort(-sub[pr, pc], kind="stable")
        pr, pc = pr[order] + y0, pc[order] + x0
        alive = np.zeros((h, w), bool)
        alive[pr, pc] = True

        def suppress(r, c):
            alive[max(r - d, 0):r + d + 1, max(c - d, 0):c + d + 1] = False

        for r, c in seeds:
            suppress(r, c)
        owned = np.zeros(len(seeds), np.int64)
        got = passes = k = 0
        # Each pass takes the best live pixel and suppresses its window; a point of a full
        # maximum is dropped, not kept. Passes are bounded by a few per wanted point and by
        # MAX_PASSES; dead pixels are skipped in vectorised chunks.
        while got < n and passes < min(4 * n + len(seeds), MAX_PASSES) and k < len(pr):
            live = np.flatnonzero(alive[pr[k:k + 256], pc[k:k + 256]])
            if not live.size:
                k += 256
                continue
            k += int(live[0]) + 1
            r, c = int(pr[k - 1]), int(pc[k - 1])
            passes += 1
            suppress(r, c)
            owner = int(np.argmin((seeds[:, 0] - r) ** 2 + (seeds[:, 1] - c) ** 2))
            if owned[owner] >= per_peak:
                continue
            owned[owner] += 1
            out_r[i, got], out_c[i, got], out_k[i, got] = r, c, True
            got += 1
    dev = heat.device
    return (torch.from_numpy(out_r).to(dev), torch.from_numpy(out_c).to(dev),
            torch.from_numpy(out_k).to(dev))


def with_alternatives(heat, score, boxes, rows, cols, keep, per_peak: int, min_distance: int,
                      threshold: float, limit: int):
    """The maxima ``(rows, cols, keep)`` followed by their alternatives
    (:func:`alternative_points`), concatenated along the slot axis."""
    alt = alternative_points(heat, score, boxes, rows, cols, keep, per_peak=per_peak,
                             min_distance=min_distance, threshold=threshold, limit=limit)
    return tuple(torch.cat([a, x], dim=1) for a, x in zip((rows, cols, keep), alt))
