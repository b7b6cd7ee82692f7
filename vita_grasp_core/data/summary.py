"""What a data set looks like: image sizes, rectangles per frame, opening widths, jaw sizes.

Used by ``vita-grasp data check`` and to choose the model's sizes, ``width_scale`` and
``height_ratio`` from the data instead of guessing. Reads png headers and grasp files only (no
pixels are decoded), so it is cheap.
"""
from __future__ import annotations

from collections import Counter

import numpy as np

from .common import FaultLog, FrameFault, inside_image

#: Percentiles reported for widths and jaw sizes.
PERCENTILES = (5, 50, 95, 99)


def _pct(values) -> dict | None:
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return None
    return {f"p{p}": float(np.percentile(v, p)) for p in PERCENTILES}


def summarize(frames, max_frames: int | None = None, *, full: bool = False,
              progress: bool = False, faults: FaultLog | None = None) -> dict:
    """Statistics of a data set's frames.

    Args:
        frames: FrameRecords, a :class:`~vita_grasp_core.data.dataset.GraspDataset` or a
            :class:`~vita_grasp_core.data.common.ScanResult`.
        max_frames: look at this many frames, evenly spaced (``None`` = all).
        full: decode every png too (slower; finds pixel data that does not decode).
        progress: show a progress bar.
        faults: a :class:`FaultLog` to record into (e.g. holding the scan's faults, which then
            count in ``problems`` too); default a new one.
    Returns:
        dict with ``frames`` (looked at), ``frames_usable``, ``image_sizes`` ("HxW" -> count),
        ``rects_total``, ``rects_per_frame`` (min / median / mean / max), ``width_px`` and
        ``height_px`` (opening width and jaw size: percentiles 5 / 50 / 95 / 99),
        ``width_rel`` (width / longer image side, same percentiles), ``height_width_ratio``
        (median of height / width), ``outside_count`` / ``outside_fraction`` (rectangles whose
        centre lies outside the image: kept as ground truth, never matchable), ``negatives``
        (total), ``frames_without_mask`` (usable frames whose channel 4 is the rectangle union),
        ``rows_skipped`` (kind -> rows, e.g. ``nonfinite_rect``), ``problems`` (kind ->
        files), ``examples`` and ``usable_scenes`` (GraspNet scene ids with a usable frame).
    """
    from .formats import check_frame
    from .splits import evenly_spaced

    recs = list(getattr(frames, "frames", frames))
    recs = [recs[i] for i in evenly_spaced(len(recs), max_frames)]
    faults = FaultLog() if faults is None else faults
    sizes: Counter = Counter()
    per_frame, widths, heights, rel, ratios = [], [], [], [], []
    outside = negatives = no_mask = 0
    scenes = set()
    it = recs
    if progress:
        from tqdm import tqdm

        it = tqdm(recs, desc="summarize", unit="frame", leave=False)
    for rec in it:
        try:
            info = check_frame(rec, full=full)
        except FrameFault as e:
            faults.add(e.kind, e.path)
            continue
        faults.merge(info["faults"])
        h, w = info["size"]
        g = info["grasps"].astype(np.float64)
        sizes[f"{h}x{w}"] += 1
        per_frame.append(len(g))
        widths.append(g[:, 3])
        heights.append(g[:, 4])
        rel.append(g[:, 3] / max(h, w))
        ratios.append(g[:, 4] / g[:, 3])
        outside += int((~inside_image(g, (h, w))).sum())
        negatives += info["negatives"]
        no_mask += rec.label is None
        if rec.scene >= 0:
            scenes.add(int(rec.scene))

    def cat(parts):
        return np.concatenate(parts) if parts else np.zeros(0)

    n_rects = int(sum(per_frame))
    pf = np.asarray(per_frame, np.float64)
    return {
        "frames": len(recs), "frames_usable": len(per_frame),
        "image_sizes": dict(sizes.most_common()),
        "rects_total": n_rects,
        "rects_per_frame": ({"min": int(pf.min()), "median": float(np.median(pf)),
                             "mean": float(pf.mean()), "max": int(pf.max())} if len(pf) else None),
        "width_px": _pct(cat(widths)), "height_px": _pct(cat(heights)),
        "width_rel": _pct(cat(rel)),
        "height_width_ratio": float(np.median(cat(ratios))) if n_rects else None,
        "outside_count": outside,
        "outside_fraction": outside / n_rects if n_rects else 0.0,
        "negatives": negatives, "frames_without_mask": no_mask,
        "rows_skipped": faults.row_counts(),
        "problems": faults.counts(),
        "examples": {k: v[:3] for k, v in sorted(faults.paths.items())},
        "usable_scenes": sorted(scenes),
    }


def format_summary(s: dict) -> str:
    """Human-readable lines of :func:`summarize`."""
    def pct(d):
        return " / ".join(f"{d[f'p{p}']:.1f}" for p in PERCENTILES) if d else "-"

    lines = [f"frames: {s['frames_usable']} usable of {s['frames']} looked at"]
    if s["image_sizes"]:
        lines.append("image sizes: " + ", ".join(f"{k} ({v})" for k, v in
                                                 s["image_sizes"].items()))
    if s["rects_per_frame"]:
        r = s["rects_per_frame"]
        lines.append(f"rectangles: {s['rects_total']} total; per frame min {r['min']} / median "
                     f"{r['median']:g} / mean {r['mean']:.1f} / max {r['max']}")
        p = "/".join(str(v) for v in PERCENTILES)
        lines.append(f"opening width px (p{p}): {pct(s['width_px'])}")
        lines.append(f"jaw size px (p{p}): {pct(s['height_px'])}")
        lines.append(f"width / longer image side (p{p}): "
                     + " / ".join(f"{s['width_rel'][f'p{q}']:.3f}" for q in PERCENTILES))
        lines.append(f"median jaw / width ratio: {s['height_width_ratio']:.3f}")
        lines.append(f"centres outside the image: {s['outside_count']} "
                     f"({100 * s['outside_fraction']:.2f} %; kept as ground truth, unmatchable)")
    if s["negatives"]:
        lines.append(f"negative rectangles: {s['negatives']}")
    if s["frames_without_mask"]:
        lines.append(f"frames without a mask: {s['frames_without_mask']} (semantic channel = "
                     "union of their rectangles)")
    rows = s["rows_skipped"]
    lines.append("rows skipped: " + (", ".join(f"{k} {v}" for k, v in rows.items())
                                     if rows else "none"))
    return "\n".join(lines)
