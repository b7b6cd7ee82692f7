"""One entry point for the three data formats: detection, scanning, frame loading and checking.

Formats (docs/data.md):

- ``graspnet``: GraspNet-1Billion, ``ROOT/scenes/scene_XXXX/<camera>/{rgb,label,rect,depth}``;
- ``cornell``: ``pcdNNNNr.png`` + ``pcdNNNNcpos.txt`` (flat or in numbered sub-folders);
- ``jacquard``: ``<object>/<k>_<id>_RGB.png`` + ``<k>_<id>_grasps.txt``.

Every reader returns grasps as ``(N, 7)`` float32 rows (x, y, angle, width, height, score,
obj_id) in source pixels, y down, angle of the gripper opening in [-pi/2, pi/2).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .common import (
    Frame,
    FrameFault,
    FrameRecord,
    ScanResult,
    clean_grasp_rows,
    inside_image,
    png_header,
    read_depth,
    read_png,
    tagged,
)

FORMATS = ("graspnet", "cornell", "jacquard")


def layout_help(root) -> str:
    """What :func:`detect_format` looks for, in words."""
    return (f"looked in {root} for scenes/scene_XXXX/ or scene_XXXX/ folders (GraspNet-1Billion), "
            "pcdNNNNr.png / pcdNNNNcpos.txt files in it or up to 2 sub-folder levels below "
            "(Cornell), and <object>/<k>_<id>_RGB.png / <k>_<id>_grasps.txt in its sub-folders "
            "(Jacquard)")


def _check_root(root) -> Path:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data set root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"data set root {root} is not a directory")
    return root


def detect_format(root) -> str:
    """``graspnet``, ``cornell`` or ``jacquard`` from the files under ``root``.

    Raises ``FileNotFoundError`` (no such directory), ``NotADirectoryError`` (a file) or
    ``ValueError`` (no layout matches, or Cornell and Jacquard files are both present), naming
    what was looked for where.
    """
    from .cornell import is_cornell
    from .graspnet import is_graspnet
    from .jacquard import is_jacquard

    root = _check_root(root)
    if is_graspnet(root):
        return "graspnet"
    found = [name for name, test in (("cornell", is_cornell), ("jacquard", is_jacquard))
             if test(root)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{root} holds both Cornell and Jacquard files; pass the format "
                         "explicitly (--format cornell / --format jacquard)")
    raise ValueError(f"no known data set layout: {layout_help(root)}")


def scan_dataset(root, format: str = "auto", *, camera: str = "kinect", scenes=None,
                 split=None, require_label: bool = False) -> ScanResult:
    """Find the frames of a data set with cheap checks (existence, size > 0).

    Args:
        root: data set root.
        format: ``auto`` (:func:`detect_format`), ``graspnet``, ``cornell`` or ``jacquard``.
        camera, scenes, split: GraspNet only (camera folder; scene ids; ``train``,
            ``test_seen``, ...). Cornell and Jacquard are split with
            :func:`~vita_grasp_core.data.splits.kfold`; passing ``scenes`` or a ``split`` other
            than ``all`` for them is a ``ValueError``.
        require_label: frames without a mask are faults (``missing_label``). Default False:
            they use the rectangle-union semantic channel (docs/data.md).
    Returns:
        :class:`~vita_grasp_core.data.common.ScanResult` (may hold no frames; the faults say
        why).
    """
    if format in (None, "auto"):
        format = detect_format(root)
    if format not in FORMATS:
        raise ValueError(f"unknown data format {format!r}; choose from auto, {', '.join(FORMATS)}")
    root = _check_root(root)
    if format == "graspnet":
        from .graspnet import scan_graspnet

        return scan_graspnet(root, camera, scenes, split, require_label)
    if scenes is not None or split not in (None, "all"):
        raise ValueError(f"scenes / split select GraspNet-1Billion scenes; a {format} data set "
                         f"is split with kfold() / --fold (got scenes={scenes}, split={split})")
    if format == "cornell":
        from .cornell import scan_cornell

        return scan_cornell(root, require_label)
    from .jacquard import scan_jacquard

    return scan_jacquard(root, require_label)


# --------------------------------------------------------------------------- grasp files
def read_grasp_rows(rec: FrameRecord) -> np.ndarray:
    """The positive grasp file of ``rec`` as unchecked ``(N, 7)`` float64 rows. Raises
    :class:`FrameFault` (``<fault>_rect`` for GraspNet, ``<fault>_grasps`` otherwise)."""
    if rec.format == "graspnet":
        from .graspnet import read_graspnet_grasps

        return read_graspnet_grasps(rec.grasps)
    if rec.format == "cornell":
        from .cornell import read_cornell_rects as fn
    elif rec.format == "jacquard":
        from .jacquard import read_jacquard_grasps as fn
    else:
        raise ValueError(f"unknown data format {rec.format!r} in frame {rec.key}")
    return tagged(fn, "grasps", rec.grasps)


def frame_grasps(rec: FrameRecord, size) -> tuple[np.ndarray, list]:
    """``(grasps (N, 7) float32, row faults)`` of a frame whose image is ``size`` = (h, w).

    Keeps every plausible rectangle (centres outside the image too); raises
    ``FrameFault("no_rects_in_image")`` when the file has no rows or no plausible rectangle
    with its centre inside the image.
    """
    raw = read_grasp_rows(rec)
    if len(raw) == 0:
        raise FrameFault("no_rects_in_image", rec.grasps, "0 rows")
    g, faults = clean_grasp_rows(raw, size, rec.grasps)
    if not inside_image(g, size).any():
        raise FrameFault("no_rects_in_image", rec.grasps,
                         "no plausible rectangle with its centre inside the image")
    return g, faults


def frame_negatives(rec: FrameRecord, size) -> tuple[np.ndarray, list]:
    """``(negatives (M, 7) float32, faults)``; a missing, empty or unreadable negatives file
    gives no negatives (unreadable: a ``<fault>_negatives`` entry, the frame stays usable)."""
    empty = np.zeros((0, 7), np.float32)
    if rec.negatives is None:
        return empty, []
    from .cornell import read_cornell_rects

    try:
        raw = read_cornell_rects(rec.negatives)
    except FrameFault as e:
        if e.kind == "empty":
            return empty, []
        return empty, [(f"{e.kind}_negatives", e.path, None)]
    return clean_grasp_rows(raw, size, rec.negatives)


def load_frame(rec: FrameRecord, *, depth: bool = False, require_label: bool = False) -> Frame:
    """Decode one frame of any format (see :class:`~vita_grasp_core.data.common.Frame`).

    Raises :class:`FrameFault` with kinds ``<fault>_<file>`` (``corrupt_rgb``, ``empty_grasps``,
    ``bad_shape_rect`` ...), ``size_mismatch_label``, ``missing_label`` (``require_label``) or
    ``no_rects_in_image``. Unreadable optional files (negatives, depth) are non-fatal and listed
    in ``frame.faults``.
    """
    rgb = tagged(read_png, "rgb", rec.rgb, True)
    size = rgb.shape[:2]
    label = None
    if rec.label is not None:
        label = tagged(read_png, "label", rec.label, False)
        if label.shape[:2] != size:
            raise FrameFault("size_mismatch_label", rec.label,
                             f"label {label.shape[:2]} vs rgb {size}")
    elif require_label:
        raise FrameFault("missing_label", rec.rgb)
    grasps, faults = frame_grasps(rec, size)
    negatives, neg_faults = frame_negatives(rec, size)
    faults += neg_faults
    dep = None
    if depth and rec.depth is not None:
        try:
            dep = tagged(read_depth, "depth", rec.depth)
            if dep.shape[:2] != size:
                faults.append(("size_mismatch_depth", rec.depth, None))
                dep = None
        except FrameFault as e:
            faults.append((e.kind, e.path, None))
    return Frame(rgb, label, grasps, negatives, dep, faults, rec)


def image_size(path, full: bool = False) -> tuple[int, int]:
    """``(h, w)`` of a PNG from its header (``full``: decode it and compare). Raises
    :class:`FrameFault` without a file suffix in the kind (``corrupt``, ``empty`` ...)."""
    hdr = png_header(path)
    size = (hdr["height"], hdr["width"])
    if full:
        img = read_png(path, color=False)
        if img.shape[:2] != size:
            raise FrameFault("corrupt", path, "decoded size differs from the header")
    return size


def check_frame(rec: FrameRecord, *, full: bool = False, require_label: bool = False) -> dict:
    """Check a frame without decoding its pixels (``full``: decode the pngs too).

    Reads the png headers (signature, size, ``IEND``), the grasp file(s) and, with ``full``, the
    depth image. Returns ``{"size": (h, w), "grasps": (N, 7) float32, "negatives": M,
    "faults": [(kind, path, rows)]}`` (non-fatal faults); raises :class:`FrameFault` for what
    :func:`load_frame` would raise.
    """
    size = tagged(image_size, "rgb", rec.rgb, full)
    if rec.label is not None:
        lsize = tagged(image_size, "label", rec.label, full)
        if lsize != size:
            raise FrameFault("size_mismatch_label", rec.label, f"label {lsize} vs rgb {size}")
    elif require_label:
        raise FrameFault("missing_label", rec.rgb)
    grasps, faults = frame_grasps(rec, size)
    negatives, neg_faults = frame_negatives(rec, size)
    faults += neg_faults
    if rec.depth is not None and full:
        try:
            if tagged(read_depth, "depth", rec.depth).shape[:2] != size:
                faults.append(("size_mismatch_depth", rec.depth, None))
        except FrameFault as e:
            faults.append((e.kind, e.path, None))
    elif rec.depth is not None and rec.depth.endswith(".png"):
        try:
            if tagged(image_size, "depth", rec.depth) != size:
                faults.append(("size_mismatch_depth", rec.depth, None))
        except FrameFault as e:
            faults.append((e.kind, e.path, None))
    return {"size": size, "grasps": grasps, "negatives": len(negatives), "faults": faults}
