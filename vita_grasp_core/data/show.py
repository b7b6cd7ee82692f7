"""A matplotlib (Agg) picture of one frame: rectangles, the five target maps, the owned mask."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..geometry import Letterbox
from ..grasp import rect_corners
from .targets import Targets


def subsample(grasps: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """At most ``k`` rows, chosen at random (deterministic), kept in their original order."""
    if k <= 0 or len(grasps) <= k:
        return grasps
    idx = np.random.default_rng(seed).choice(len(grasps), k, replace=False)
    return grasps[np.sort(idx)]


def rect_segments(grasps: np.ndarray):
    """``(jaw_segments (2N, 2, 2), opening_segments (2N, 2, 2))`` of the rectangles (x, y).

    Jaws are the two edges of length ``height`` at +-width/2 (the fingers); the opening edges are
    the two edges of length ``width`` joining them.
    """
    c = rect_corners(np.asarray(grasps)[:, :5])  # corners: +w/2 (two), then -w/2 (two)
    jaws = np.concatenate([c[:, [0, 1]], c[:, [2, 3]]])
    opening = np.concatenate([c[:, [1, 2]], c[:, [3, 0]]])
    return jaws, opening


def show_frame(rgb: np.ndarray, grasps: np.ndarray, targets: Targets, letterbox: Letterbox,
               out, title: str = "", max_rects: int = 300, seed: int = 0) -> Path:
    """Save a 2x4 figure to ``out``: the frame with up to ``max_rects`` rectangles (jaws red,
    opening edges cyan), then ch0..ch4 and the owned mask on the map canvas, each with a colour
    bar, and the heatmap over the letterboxed frame."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 4, figsize=(22, 9.5))
    ax = axes[0, 0]
    ax.imshow(rgb)
    shown = subsample(grasps, max_rects, seed)
    if len(shown):
        jaws, opening = rect_segments(shown)
        ax.add_collection(LineCollection(opening, colors="cyan", linewidths=0.6, alpha=0.8))
        ax.add_collection(LineCollection(jaws, colors="red", linewidths=1.0))
    ax.set_title(f"{title}\n{len(shown)} of {len(grasps)} rectangles "
                 "(red: jaws, cyan: opening edges)", fontsize=9)
    ax.set_xlim(-0.5, rgb.shape[1] - 0.5)
    ax.set_ylim(rgb.shape[0] - 0.5, -0.5)
    m = targets.maps
    panels = [
        (axes[0, 1], m[0], "ch0 position/quality", "inferno", 0, 1),
        (axes[0, 2], np.where(targets.owned, m[1], np.nan), "ch1 cos 2a (owned)", "twilight",
         -1, 1),
        (axes[0, 3], np.where(targets.owned, m[2], np.nan), "ch2 sin 2a (owned)", "twilight",
         -1, 1),
        (axes[1, 0], np.where(targets.owned, m[3], np.nan), "ch3 width (owned)", "viridis", 0, 1),
        (axes[1, 1], m[4], "ch4 semantic mask", "gray", 0, 1),
        (axes[1, 2], targets.owned.astype(np.float32), f"owned ({int(targets.owned.sum())} px)",
         "gray", 0, 1),
    ]
    for a, img, name, cmap, lo, hi in panels:
        im = a.imshow(img, cmap=cmap, vmin=lo, vmax=hi, interpolation="nearest")
        a.set_title(name, fontsize=9)
        fig.colorbar(im, ax=a, fraction=0.035, pad=0.02)
    a = axes[1, 3]
    canvas = letterbox.warp_image(rgb)
    a.imshow(canvas)
    im = a.imshow(np.ma.masked_less(m[0], 0.02), cmap="inferno", vmin=0, vmax=1, alpha=0.7)
    fig.colorbar(im, ax=a, fraction=0.035, pad=0.02)
    a.set_title(f"heatmap over the {letterbox.dst_size[0]}x{letterbox.dst_size[1]} canvas",
                fontsize=9)
    for a in axes.ravel():
        a.set_xticks([])
        a.set_yticks([])
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out
