"""Cornell grasping dataset: ``pcdNNNNr.png`` + ``pcdNNNNcpos.txt`` (+ optional files).

Layout (flat, or the original numbered sub-folders ``01/`` ... ``10/``, found up to two levels
below the root)::

    ROOT/[01/]pcdNNNNr.png       RGB image (any size; the original frames are 640x480)
    ROOT/[01/]pcdNNNNcpos.txt    positive rectangles: 4 lines "x y" per rectangle
    ROOT/[01/]pcdNNNNcneg.txt    negative rectangles (optional; kept apart, never positives)
    ROOT/[01/]pcdNNNNd.tiff      depth (optional)

In each rectangle p0 -> p1 is the gripper OPENING (its direction is the grasp angle, its length
the opening width), p1 -> p2 the jaw size (height); the centre is the mean of the four corners.
Pixels: x right, y down. Rectangles with NaN corners (the original files have some) are skipped
and counted (``nonfinite_rect``); a file whose line count is not a multiple of 4, or with a line
that is not two numbers, is corrupt (``corrupt_grasps``: the frame is skipped). Every rectangle
gets score 1.0 and obj_id 0. Key ``"pcdNNNN"``, group = the key (object ids are not known).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .common import (
    FaultLog,
    FrameFault,
    FrameRecord,
    ScanResult,
    corners_to_grasps,
    grasps_to_corners,
    read_number_rows,
    tagged,
    write_png,
    write_tiff,
)
from .formats import DataFormat
from .listing import file_fault, optional_file, walk_folders

#: The registered name of this layout (``--format cornell``, ``FrameRecord.format``).
NAME = "cornell"

_RGB_RE = re.compile(r"pcd(\d+)r\.png")
_POS_RE = re.compile(r"pcd(\d+)cpos\.txt")
#: How deep below the root the reader looks for pcd files (root itself = 0).
MAX_DEPTH = 2


def read_cornell_rects(path) -> np.ndarray:
    """A ``cpos.txt`` / ``cneg.txt`` file -> ``(N, 7)`` float64 grasp rows (rows with a NaN
    corner stay NaN). Raises :class:`FrameFault` (``missing``, ``empty``, ``corrupt``)."""
    pts = read_number_rows(path, 2, None, "x y")
    if len(pts) % 4:
        raise FrameFault("corrupt", path, f"{len(pts)} lines, not a multiple of 4")
    return corners_to_grasps(pts.reshape(-1, 4, 2))


def write_cornell_rects(path, grasps) -> Path:
    """Write ``(N, >=5)`` grasp rows as a Cornell rectangle file (4 lines ``x y`` each, p0 -> p1
    along the opening). Inverse of :func:`read_cornell_rects` up to the angle's half turn."""
    path = Path(path)
    corners = grasps_to_corners(np.asarray(grasps, np.float64))
    path.write_text("".join(f"{x:.3f} {y:.3f}\n" for x, y in corners.reshape(-1, 2)))
    return path


def _walk(root: Path):
    """``(directory, {name: size})`` for ``root`` and its sub-folders up to MAX_DEPTH."""
    return walk_folders(root, MAX_DEPTH)


def is_cornell(root) -> bool:
    """True when a ``pcdNNNNcpos.txt`` or ``pcdNNNNr.png`` lies within MAX_DEPTH of ``root``."""
    return any(_POS_RE.fullmatch(n) or _RGB_RE.fullmatch(n)
               for _, names in _walk(Path(root)) for n in names)


def scan_cornell(root, require_label: bool = False) -> ScanResult:
    """Find Cornell frames with cheap checks (existence, size > 0).

    Faults: ``missing_rgb`` / ``missing_grasps`` (one of the pair absent), ``empty_rgb`` /
    ``empty_grasps`` (0 bytes), ``not_a_file_<file>`` (a FIFO, a directory ...; for the optional
    ``negatives`` / ``depth`` the frame is kept without it), ``duplicate_key`` (the same pcd id
    in two folders: the first in path order is used), ``missing_label`` (only with
    ``require_label``: Cornell has no masks).
    """
    root = Path(root)
    faults = FaultLog()
    frames: dict[str, FrameRecord] = {}
    n_found = 0
    for d, names in _walk(root):
        ids = sorted({m.group(1) for n in names for m in [_RGB_RE.fullmatch(n) or
                                                          _POS_RE.fullmatch(n)] if m})
        n_found += len(ids)
        for fid in ids:
            rgb, pos = d / f"pcd{fid}r.png", d / f"pcd{fid}cpos.txt"
            key = f"pcd{fid}"
            bad = any([file_fault(faults, kind, p, names.get(p.name))
                       for kind, p in (("rgb", rgb), ("grasps", pos))])
            if require_label:
                faults.add("missing_label", rgb)
                bad = True
            if bad:
                continue
            if key in frames:
                faults.add("duplicate_key", rgb)
                continue
            neg = d / f"pcd{fid}cneg.txt"
            dep = d / next((n for n in (f"pcd{fid}d.tiff", f"pcd{fid}d.tif") if n in names),
                           f"pcd{fid}d.tiff")
            frames[key] = FrameRecord(
                key=key, group=key, rgb=str(rgb), grasps=str(pos),
                negatives=optional_file(faults, "negatives", neg, names.get(neg.name)),
                depth=optional_file(faults, "depth", dep, names.get(dep.name)), format=NAME,
                frame=int(fid))
    return ScanResult([frames[k] for k in sorted(frames)], faults, NAME, str(root),
                      found=n_found)


def read_cornell_grasps(path) -> np.ndarray:
    """A ``cpos.txt`` file as grasp rows; :class:`FrameFault` kinds ``<fault>_grasps``."""
    return tagged(read_cornell_rects, "grasps", path)


def write_toy_frame(root, frame, *, nested: bool = False, negatives: bool = False,
                    depth: bool = False, **_) -> tuple[str, np.ndarray]:
    """A generated frame as ``[NN/]pcdNNNNr.png`` + ``cpos.txt`` (+ ``cneg.txt``, ``d.tiff``)."""
    fid = 100 + frame.index
    d = Path(root) / f"{1 + frame.index % 2:02d}" if nested else Path(root)
    d.mkdir(parents=True, exist_ok=True)
    write_png(d / f"pcd{fid:04d}r.png", frame.rgb)
    write_cornell_rects(d / f"pcd{fid:04d}cpos.txt", frame.grasps)
    if negatives:
        write_cornell_rects(d / f"pcd{fid:04d}cneg.txt", frame.negatives)
    if depth:
        write_tiff(d / f"pcd{fid:04d}d.tiff", frame.depth)
    return f"pcd{fid:04d}", frame.grasps


FORMAT = DataFormat(
    name=NAME, description="Cornell: pcdNNNNr.png + pcdNNNNcpos.txt",
    layout="pcdNNNNr.png / pcdNNNNcpos.txt files in it or up to 2 sub-folder levels below",
    detect=is_cornell, scan=scan_cornell, read_grasps=read_cornell_grasps,
    write_grasps=write_cornell_rects, write_toy_frame=write_toy_frame,
    read_negatives=read_cornell_rects)
