"""Tiny data sets in each published layout (GraspNet-1Billion, Cornell, Jacquard), for tests.

Each frame is a small grey image with one or two coloured bars; the ground-truth grasps close
across a bar (opening perpendicular to it) at a few places along it. The files are written
exactly as the real data sets store them, through the same conventions the readers document:

- ``cornell``: ``pcdNNNNr.png`` + ``pcdNNNNcpos.txt`` (4 corners, p0 -> p1 along the opening),
  optional ``pcdNNNNcneg.txt`` (rectangles ALONG the bar: bad grasps) and ``pcdNNNNd.tiff``;
- ``jacquard``: ``<obj>/<k>_<obj>_RGB.png``, ``_grasps.txt`` (``x;y;theta;w;h``, theta in degrees,
  y down; each grasp repeated with two jaw sizes), ``_mask.png``, optional
  ``_perfect_depth.tiff``; ``views`` frames per object folder;
- ``graspnet``: ``scenes/scene_XXXX/kinect/{rgb,label,rect}/NNNN``.

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


def _write_png(path: Path, img) -> None:
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    if img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"cannot write {path}")


def _write_tiff(path: Path, img) -> None:
    import cv2

    if not cv2.imwrite(str(path), img.astype(np.float32)):
        raise OSError(f"cannot write {path}")


def write_toy_dataset(root, format: str = "cornell", *, frames: int = 6, size=(96, 128),
                      seed: int = 0, bars: int = 1, views: int = 2, negatives: bool = False,
                      depth: bool = False, nested: bool = False) -> dict:
    """Write a tiny data set in ``format``'s layout under ``root``; returns key -> ground truth.

    Args:
        frames: number of frames (Jacquard: ``frames`` objects x ``views`` views).
        size: (h, w) of every image.
        bars: bars (objects) per frame, 1 or 2.
        negatives, depth: also write Cornell negatives / depth tiffs (Jacquard: depth).
        nested: Cornell: spread frames over numbered folders ``01/``, ``02/``; Jacquard: put the
            object folders under ``Jacquard_Dataset_0/``.
    """
    from .cornell import write_cornell_rects
    from .jacquard import write_jacquard_grasps

    root = Path(root)
    rng = np.random.default_rng(seed)
    out = {}
    n = frames * (views if format == "jacquard" else 1)
    for i in range(n):
        rgb, mask, g, neg = _frame(rng, size, bars)
        dep = (1.0 - 0.1 * (mask > 0)).astype(np.float32)
        if format == "cornell":
            fid = 100 + i
            d = root / f"{1 + i % 2:02d}" if nested else root
            d.mkdir(parents=True, exist_ok=True)
            _write_png(d / f"pcd{fid:04d}r.png", rgb)
            write_cornell_rects(d / f"pcd{fid:04d}cpos.txt", g)
            if negatives:
                write_cornell_rects(d / f"pcd{fid:04d}cneg.txt", neg)
            if depth:
                _write_tiff(d / f"pcd{fid:04d}d.tiff", dep)
            key = f"pcd{fid:04d}"
        elif format == "jacquard":
            obj, k = f"{i // views:04d}obj", i % views
            d = root / ("Jacquard_Dataset_0" if nested else "") / obj
            d.mkdir(parents=True, exist_ok=True)
            stem = f"{k}_{obj}"
            _write_png(d / f"{stem}_RGB.png", rgb)
            _write_png(d / f"{stem}_mask.png", ((mask > 0) * 255).astype(np.uint8))
            jaws = np.concatenate([g, g * [1, 1, 1, 1, 1.5, 1, 1]])  # same grasp, 2 jaw sizes
            write_jacquard_grasps(d / f"{stem}_grasps.txt", jaws)
            g = jaws
            if depth:
                _write_tiff(d / f"{stem}_perfect_depth.tiff", dep)
            key = f"{obj}/{stem}"
        elif format == "graspnet":
            from ..grasp import grasps_to_graspnet_rects

            sid, fid = i // 4, i % 4
            cam = root / "scenes" / f"scene_{sid:04d}" / "kinect"
            _write_png(cam / "rgb" / f"{fid:04d}.png", rgb)
            _write_png(cam / "label" / f"{fid:04d}.png", mask)
            (cam / "rect").mkdir(parents=True, exist_ok=True)
            g[:, 6] = 0
            np.save(cam / "rect" / f"{fid:04d}.npy", grasps_to_graspnet_rects(g))
            key = f"kinect/s{sid:04d}/f{fid:04d}"
        else:
            raise ValueError(f"unknown format {format!r}")
        out[key] = g.astype(np.float32)
    return out

