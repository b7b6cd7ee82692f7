"""The data format registry and one entry point for every format: detection, scanning, frame
loading and checking.

Each layout is one module that describes itself with a :class:`DataFormat` (reader, writer,
scanner, detection, how its frames are split) and one registration: an entry of
:data:`vita_grasp_core.choices.FORMATS` (``name -> "module:attribute"``, loaded on first use) or
:func:`register_format` at run time. Nothing outside the format modules branches on a format
name; code asks the registry (:func:`get_format`) instead. Built in (docs/data.md):
GraspNet-1Billion, Cornell, Jacquard and OCID-grasp.

Every reader returns grasps as ``(N, 7)`` float rows (x, y, angle, width, height, score,
obj_id) in source pixels, y down, angle of the gripper opening in [-pi/2, pi/2).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .. import choices
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


@dataclass(frozen=True)
class ToyFrame:
    """One generated frame for :attr:`DataFormat.write_toy_frame` (``data/toy.py``).

    ``rgb`` HxWx3 uint8; ``mask`` HxW uint8 instance mask; ``grasps`` (N, 7) float rows;
    ``negatives`` (M, 7) rows; ``depth`` HxW float32 (metres-like values).
    """

    index: int
    rgb: np.ndarray
    mask: np.ndarray
    grasps: np.ndarray
    negatives: np.ndarray
    depth: np.ndarray


@dataclass(frozen=True)
class DataFormat:
    """Everything the project knows about one data set layout.

    Attributes:
        name: registry name (``--format``, ``data.format``, ``FrameRecord.format``).
        description: one line for help texts.
        layout: what :attr:`detect` looks for, in words (error messages).
        detect: ``fn(root: Path) -> bool``: this layout's files are under ``root``.
        scan: ``fn(root: Path, require_label: bool, **selection) -> ScanResult`` with cheap
            checks (existence, size); ``selection`` = ``camera, scenes, split`` when
            :attr:`scenes` is true, else nothing.
        read_grasps: ``fn(path) -> (N, 7)`` unchecked rows of a frame's grasp file; raises
            :class:`FrameFault` with kinds ``<fault>_<file>`` (``corrupt_grasps`` ...).
        write_grasps: ``fn(path, grasps) -> Path``, the inverse of :attr:`read_grasps`.
        write_toy_frame: ``fn(root, frame: ToyFrame, **options) -> (key, grasps)``: write one
            generated frame in this layout (tests, examples); returns its key and ground truth.
        read_negatives: ``fn(path) -> rows`` for ``FrameRecord.negatives`` files (raising plain
            :class:`FrameFault` kinds), or ``None`` when the layout has none.
        scenes: frames are chosen by scene ids, named splits and a camera folder (GraspNet),
            not by k folds.
        split_by: the fold kind used when ``data.split_by`` / ``--split_by`` is not given
            (``object`` where a layout knows which frames show the same objects).
        intrinsics: ``fn(record, camera, (h, w)) -> 3x3 K`` of a frame (bag CameraInfo), or
            ``None``: the layout carries no intrinsics.
        metric_depth: the depth files hold metric depth usable for 3-D poses (bags publish it).
        object_views: the layout holds several views per object or scene, so a toy data set of
            ``frames`` objects has ``frames * views`` frames (:func:`.toy.write_toy_dataset`).
    """

    name: str
    description: str
    layout: str
    detect: Callable[[Path], bool]
    scan: Callable[..., ScanResult]
    read_grasps: Callable[[str], np.ndarray]
    write_grasps: Callable
    write_toy_frame: Callable
    read_negatives: Callable | None = None
    scenes: bool = False
    split_by: str = "image"
    intrinsics: Callable | None = None
    metric_depth: bool = False
    object_views: bool = False


_LOADED: dict[str, DataFormat] = {}


def register_format(fmt: DataFormat | str, target: str | None = None) -> None:
    """Register a layout: a :class:`DataFormat`, or a name and its ``"module:attribute"``
    (loaded on first use). Registration order is detection order."""
    if isinstance(fmt, DataFormat):
        name, target = fmt.name, fmt
    else:
        name = fmt
    if name in choices.FORMATS or name == "auto":
        raise ValueError(f"data format {name!r} registered twice")
    choices.FORMATS[name] = target
    _LOADED.pop(name, None)


def unregister_format(name: str) -> None:
    """Remove a run-time registration (tests)."""
    choices.FORMATS.pop(name, None)
    _LOADED.pop(name, None)


def format_names() -> list[str]:
    """Registered format names, in detection order."""
    return list(choices.FORMATS)


def get_format(name: str) -> DataFormat:
    """The :class:`DataFormat` registered as ``name`` (its module is imported on first use)."""
    if name in _LOADED:
        return _LOADED[name]
    target = choices.FORMATS.get(name)
    if target is None:
        raise ValueError(f"unknown data format {name!r}; choose from auto, "
                         f"{', '.join(format_names())}")
    if isinstance(target, str):
        module, attr = target.split(":")
        target = getattr(importlib.import_module(module), attr)
    if not isinstance(target, DataFormat) or target.name != name:
        raise TypeError(f"data format {name!r}: {target!r} is not its DataFormat")
    _LOADED[name] = target
    return target


def layout_help(root) -> str:
    """What :func:`detect_format` looks for, in words."""
    return f"looked in {root} for " + "; ".join(
        f"{get_format(n).layout} ({get_format(n).description.split(':')[0]})"
        for n in format_names())


def _check_root(root) -> Path:
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"data set root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"data set root {root} is not a directory")
    return root


def detect_format(root) -> str:
    """The registered format whose files are under ``root``.

    Raises ``FileNotFoundError`` (no such directory), ``NotADirectoryError`` (a file) or
    ``ValueError`` (no layout matches, or several do), naming what was looked for where.
    """
    root = _check_root(root)
    found = [n for n in format_names() if get_format(n).detect(root)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{root} holds files of several layouts ({', '.join(found)}); pass the "
                         f"format explicitly ({' / '.join(f'--format {n}' for n in found)})")
    raise ValueError(f"no known data set layout: {layout_help(root)}")


def scan_dataset(root, format: str = "auto", *, camera: str = choices.DEFAULT_CAMERA,
                 scenes=None, split=None, require_label: bool = False) -> ScanResult:
    """Find the frames of a data set with cheap checks (existence, size > 0).

    Args:
        root: data set root.
        format: ``auto`` (:func:`detect_format`) or a registered format name.
        camera, scenes, split: for layouts with scenes (GraspNet: camera folder; scene ids;
            ``train``, ``test_seen``, ...). Other layouts are split with
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
    fmt = get_format(format)
    root = _check_root(root)
    if fmt.scenes:
        return fmt.scan(root, require_label, camera=camera, scenes=scenes, split=split)
    if scenes is not None or split not in (None, "all"):
        raise ValueError(f"scenes / split select the scenes of a layout with scene splits; a "
                         f"{format} data set is split with kfold() / --fold (got scenes={scenes}, "
                         f"split={split})")
    return fmt.scan(root, require_label)


# --------------------------------------------------------------------------- grasp files
def read_grasp_rows(rec: FrameRecord) -> np.ndarray:
    """The positive grasp file of ``rec`` as unchecked ``(N, 7)`` float64 rows (its format's
    reader). Raises :class:`FrameFault` (``<fault>_rect`` for GraspNet, ``<fault>_grasps``
    otherwise)."""
    return get_format(rec.format).read_grasps(rec.grasps)


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
    reader = get_format(rec.format).read_negatives
    if rec.negatives is None or reader is None:
        return empty, []
    try:
        raw = reader(rec.negatives)
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
