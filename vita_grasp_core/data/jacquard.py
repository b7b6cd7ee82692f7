"""Jacquard dataset: one folder per object, ``<k>_<id>_RGB.png`` + ``<k>_<id>_grasps.txt``.

Layout (object folders directly under the root, or one level deeper, e.g. the archive parts
``Jacquard_Dataset_0/`` ... )::

    ROOT/[part/]<id>/<k>_<id>_RGB.png              RGB image (1024x1024 in the original)
    ROOT/[part/]<id>/<k>_<id>_grasps.txt           one grasp a line: x;y;theta;w;h
    ROOT/[part/]<id>/<k>_<id>_mask.png             object mask (optional: semantic channel)
    ROOT/[part/]<id>/<k>_<id>_perfect_depth.tiff   depth (optional; else _stereo_depth.tiff)

Grasp lines (pixels, x right, y down): ``theta`` in degrees is the direction of the gripper
OPENING, ``(cos theta, sin theta)`` in image pixels with y down, i.e. positive theta turns
clockwise on screen, exactly our angle (GR-ConvNet's ``load_jacquard`` negates it because its
angles are measured with y up); ``w`` = opening width, ``h`` = jaw size. The same grasp repeats
with several jaw sizes: each is a valid ground-truth rectangle and all are kept. Score 1.0,
obj_id 0. Key ``"<folder>/<k>_<id>"``, group = the object folder.
"""
from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from ..conventions import wrap_angle
from .common import (
    FaultLog,
    FrameRecord,
    ScanResult,
    read_number_rows,
    tagged,
    write_png,
    write_tiff,
)
from .formats import DataFormat
from .listing import file_fault, optional_file, walk_folders

#: The registered name of this layout (``--format jacquard``, ``FrameRecord.format``).
NAME = "jacquard"

_GRASPS_RE = re.compile(r"(\d+)_(.+)_grasps\.txt")
_RGB_RE = re.compile(r"(\d+)_(.+)_RGB\.png")
#: Object folders are looked for this many levels below the root (1 = directly under it).
MAX_DEPTH = 2


def read_jacquard_grasps(path) -> np.ndarray:
    """A ``_grasps.txt`` file -> ``(N, 7)`` float64 grasp rows (x, y, angle, width, height, 1, 0).

    ``angle = radians(theta)`` wrapped to [-pi/2, pi/2). Raises :class:`FrameFault`
    (``missing``, ``empty``, ``corrupt``: a line that is not 5 numbers separated by ``;``).
    """
    vals = read_number_rows(path, 5, ";", "x;y;theta;w;h")
    out = np.zeros((len(vals), 7), np.float64)
    out[:, 0], out[:, 1] = vals[:, 0], vals[:, 1]
    with np.errstate(invalid="ignore"):
        out[:, 2] = wrap_angle(np.radians(vals[:, 2]))
    out[:, 3], out[:, 4] = vals[:, 3], vals[:, 4]
    out[:, 5] = 1.0
    return out


def write_jacquard_grasps(path, grasps) -> Path:
    """Write ``(N, >=5)`` grasp rows as a Jacquard ``_grasps.txt`` (theta in degrees)."""
    path = Path(path)
    g = np.asarray(grasps, np.float64)
    rows = g.reshape(len(g), -1)[:, :5] if len(g) else np.zeros((0, 5))
    path.write_text("".join(f"{x:.3f};{y:.3f};{math.degrees(a):.4f};{w:.3f};{h:.3f}\n"
                            for x, y, a, w, h in rows))
    return path


def _object_dirs(root: Path):
    """Yield ``(folder, {name: size})`` of every folder below ``root`` up to MAX_DEPTH."""
    for folder, names in walk_folders(root, MAX_DEPTH):
        if folder != Path(root):
            yield folder, names


def is_jacquard(root) -> bool:
    """True when some folder below ``root`` holds a ``<k>_<id>_grasps.txt`` or ``_RGB.png``."""
    return any(_GRASPS_RE.fullmatch(n) or _RGB_RE.fullmatch(n)
               for _, names in _object_dirs(Path(root)) for n in names)


def scan_jacquard(root, require_label: bool = False) -> ScanResult:
    """Find Jacquard frames with cheap checks (existence, size > 0).

    Faults: ``missing_rgb`` / ``missing_grasps``, ``empty_rgb`` / ``empty_grasps``,
    ``empty_label`` (a 0-byte mask: frame skipped), ``missing_label`` (with ``require_label``),
    ``not_a_file_<file>`` (a FIFO, a directory ...: frame skipped; a depth: dropped),
    ``duplicate_key``.
    """
    root = Path(root)
    faults = FaultLog()
    frames: dict[str, FrameRecord] = {}
    n_found = 0
    for d, names in _object_dirs(root):
        stems = sorted({f"{m.group(1)}_{m.group(2)}" for n in names
                        for m in [_GRASPS_RE.fullmatch(n) or _RGB_RE.fullmatch(n)] if m})
        n_found += len(stems)
        for stem in stems:
            rgb, gr = d / f"{stem}_RGB.png", d / f"{stem}_grasps.txt"
            mask = d / f"{stem}_mask.png"
            if any([file_fault(faults, kind, p, names.get(p.name), required)
                    for kind, p, required in (("rgb", rgb, True), ("grasps", gr, True),
                                              ("label", mask, require_label))]):
                continue
            key = f"{d.name}/{stem}"
            if key in frames:
                faults.add("duplicate_key", rgb)
                continue
            dep = d / next((n for n in (f"{stem}_perfect_depth.tiff", f"{stem}_stereo_depth.tiff")
                            if n in names), f"{stem}_perfect_depth.tiff")
            k = stem.split("_", 1)[0]
            frames[key] = FrameRecord(
                key=key, group=d.name, rgb=str(rgb), grasps=str(gr),
                label=str(mask) if mask.name in names else None,
                depth=optional_file(faults, "depth", dep, names.get(dep.name)), format=NAME,
                frame=int(k))
    return ScanResult([frames[k] for k in sorted(frames)], faults, NAME, str(root),
                      found=n_found)


def write_toy_frame(root, frame, *, views: int = 2, nested: bool = False, depth: bool = False,
                    **_) -> tuple[str, np.ndarray]:
    """A generated frame as view ``index % views`` of object ``index // views``: ``_RGB.png``,
    ``_mask.png``, ``_grasps.txt`` (each grasp with two jaw sizes), optional depth."""
    obj, k = f"{frame.index // views:04d}obj", frame.index % views
    d = Path(root) / ("Jacquard_Dataset_0" if nested else "") / obj
    d.mkdir(parents=True, exist_ok=True)
    stem = f"{k}_{obj}"
    write_png(d / f"{stem}_RGB.png", frame.rgb)
    write_png(d / f"{stem}_mask.png", ((frame.mask > 0) * 255).astype(np.uint8))
    jaws = np.concatenate([frame.grasps, frame.grasps * [1, 1, 1, 1, 1.5, 1, 1]])
    write_jacquard_grasps(d / f"{stem}_grasps.txt", jaws)
    if depth:
        write_tiff(d / f"{stem}_perfect_depth.tiff", frame.depth)
    return f"{obj}/{stem}", jaws


FORMAT = DataFormat(
    name=NAME, description="Jacquard: <object>/<k>_<id>_RGB.png + _grasps.txt",
    layout="<object>/<k>_<id>_RGB.png / <k>_<id>_grasps.txt in its sub-folders",
    detect=is_jacquard, scan=scan_jacquard,
    read_grasps=lambda path: tagged(read_jacquard_grasps, "grasps", path),
    write_grasps=write_jacquard_grasps, write_toy_frame=write_toy_frame, split_by="object",
    object_views=True)
