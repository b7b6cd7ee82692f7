"""Tiny data sets in each registered layout (GraspNet-1Billion, Cornell, Jacquard, OCID-grasp),
for tests.

Each frame is a small grey image with one or two coloured bars; the ground-truth grasps close
across a bar (opening perpendicular to it) at a few places along it. The files are written
exactly as the real data sets store them, through the same conventions the readers document:

- ``cornell``: ``pcdNNNNr.png`` + ``pcdNNNNcpos.txt`` (4 corners, p0 -> p1 along the opening),
  optional ``pcdNNNNcneg.txt`` (rectangles ALONG the bar: bad grasps) and ``pcdNNNNd.tiff``;
- ``jacquard``: ``<obj>/<k>_<obj>_RGB.png``, ``_grasps.txt`` (``x;y;theta;w;h``, theta in degrees,
  y down; each grasp repeated with two jaw sizes), ``_mask.png``, optional
  ``_perfect_depth.tiff``; ``views`` frames per object folder;
- ``graspnet``: ``scenes/scene_XXXX/kinect/{rgb,label,rect}/NNNN``;
- ``ocid``: ``ARID20/table/top/seqNN/{rgb,Annotations,seg_mask_labeled_combi}/result_NNNN``.

``write_toy_dataset`` returns ``{key: grasps (N, 7) float32}``, the ground truth each key must
load as (source px, angle y down in [-pi/2, pi/2)).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..conventions import wrap_angle


def _frame(rng: np.random.Generator, size, bars: int):
    """``(rgb HxWx3 uint8, mask HxW uint8 (bar id), grasps (N, 7), negatives (M, 7))``."""
    import cv2

    h, w = size
    rgb = np.clip(rng.normal(150, 6, (h, w, 3)), 0, 255).astype(np.uint8)
    mask = np.zeros((h, w), np.uint8)
    grasps, negatives = [], []
    side = min(h, w)
    for b in range(bars):
        phi = rng.uniform(-math.pi / 2, math.pi / 2)
        length, thick = rng.uniform(0.35, 0.5) * side, rng.uniform(0.07, 0.1) * side
        margin = 0.3 * side
        c = np.array([rng.uniform(margin, w - margin), rng.uniform(margin, h - margin)])
        if b:  # a second bar on the other half of the frame
            c = np.array([w, h]) - c
        u = np.array([math.cos(phi), math.sin(phi)])
        v = np.array([-u[1], u[0]])
        poly = np.array([c + su * length / 2 * u + sv * thick / 2 * v
                         for su, sv in ((1, 1), (1, -1), (-1, -1), (-1, 1))])
        colour = tuple(int(x) for x in rng.integers(20, 120, 3))
        cv2.fillConvexPoly(rgb, np.round(poly * 16).astype(np.int32), colour, cv2.LINE_AA, 4)
        cv2.fillConvexPoly(mask, np.round(poly * 16).astype(np.int32), b + 1, cv2.LINE_8, 4)
        width = thick * 1.8 + 4
        for t in (-0.3, 0.3):
            x, y = c + t * length * u
            grasps.append([x, y, wrap_angle(phi + math.pi / 2), width, 0.5 * width, 1.0, 0])
        negatives.append([*c, wrap_angle(phi), width, 0.5 * width, 1.0, 0])
    return rgb, mask, np.array(grasps, np.float32), np.array(negatives, np.float32)


def write_toy_dataset(root, format: str, *, frames: int = 6, size=(96, 128),
                      seed: int = 0, bars: int = 1, views: int = 2, negatives: bool = False,
                      depth: bool = False, nested: bool = False) -> dict:
    """Write a tiny data set in ``format``'s layout under ``root``; returns key -> ground truth.

    Each registered format writes its own frames (``DataFormat.write_toy_frame``).

    Args:
        frames: number of frames (layouts with several views per object, e.g. Jacquard:
            ``frames`` objects x ``views`` views).
        size: (h, w) of every image.
        bars: bars (objects) per frame, 1 or 2.
        negatives, depth: also write negatives (Cornell) / depth images where the layout has
            them.
        nested: Cornell: spread frames over numbered folders ``01/``, ``02/``; Jacquard: put the
            object folders under ``Jacquard_Dataset_0/``.
    """
    from .formats import ToyFrame, get_format

    fmt = get_format(format)
    root = Path(root)
    rng = np.random.default_rng(seed)
    out = {}
    for i in range(frames * (views if fmt.object_views else 1)):
        rgb, mask, g, neg = _frame(rng, size, bars)
        dep = (1.0 - 0.1 * (mask > 0)).astype(np.float32)
        key, truth = fmt.write_toy_frame(root, ToyFrame(i, rgb, mask, g, neg, dep),
                                         views=views, negatives=negatives, depth=depth,
                                         nested=nested)
        out[key] = np.asarray(truth, np.float32)
    return out
