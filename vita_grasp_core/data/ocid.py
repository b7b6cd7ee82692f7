"""OCID-grasp (Ainetter & Fraundorfer, ICRA 2021): cluttered table-top sequences of the Object
Clutter Indoor Dataset with hand-annotated grasp rectangles.

Layout (sequence folders at any depth up to :data:`MAX_DEPTH` below the root, e.g.
``ARID20/table/top/seq08``)::

    <sequence>/rgb/<name>.png                       RGB image (640x480)
    <sequence>/Annotations/<name>.txt               rectangles: 4 lines "x y" each (as Cornell)
    <sequence>/seg_mask_labeled_combi/<name>.png    object label mask (optional: semantic channel)
    <sequence>/depth/<name>.png                     depth (optional)

Rectangles are read exactly as Cornell's ``cpos.txt`` (p0 -> p1 is the gripper opening, p1 -> p2
the jaw; the reference loader computes width and angle from the same edges). Score 1.0, obj_id
0. Key ``"<sequence>/<name>"``; group = the sequence folder, so object-wise folds (the default)
never put frames of one scene on both sides of a split. The data set's own ``data_split`` lists
are not read: cross-validation uses :func:`~vita_grasp_core.data.splits.kfold`.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .common import FaultLog, FrameRecord, ScanResult, tagged, write_png
from .cornell import read_cornell_rects, write_cornell_rects
from .formats import DataFormat
from .listing import file_fault, folder_sizes, optional_file

#: The registered name of this layout (``--format ocid``, ``FrameRecord.format``).
NAME = "ocid"

#: Sub-folders of a sequence.
RGB, ANNOTATIONS, MASKS, DEPTH = "rgb", "Annotations", "seg_mask_labeled_combi", "depth"
#: How deep below the root sequence folders are looked for (ARID20/table/top/seq08 = 4).
MAX_DEPTH = 5


def sequences(root) -> list[Path]:
    """Sequence folders (holding ``rgb/`` and ``Annotations/``) below ``root``, sorted."""
    root = Path(root)
    found = []
    for here, dirs, _ in os.walk(root):
        depth = len(Path(here).relative_to(root).parts)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        if RGB in dirs and ANNOTATIONS in dirs:
            found.append(Path(here))
            dirs[:] = []
        elif depth >= MAX_DEPTH:
            dirs[:] = []
    return sorted(found)


def is_ocid(root) -> bool:
    """True when some folder below ``root`` has ``rgb/`` and ``Annotations/`` sub-folders."""
    return bool(sequences(root))


def _sizes(folder: Path, suffix: str) -> dict[str, int]:
    """``{name stem: size}`` of the ``*suffix`` entries of ``folder``
    (:data:`~.listing.NOT_A_FILE` for those that are not regular files; missing folder -> {})."""
    return {name[: -len(suffix)]: size for name, size in folder_sizes(folder).items()
            if name.endswith(suffix)}


def scan_ocid(root, require_label: bool = False) -> ScanResult:
    """Find OCID-grasp frames with cheap checks (existence, size > 0).

    Faults: ``missing_rgb`` / ``missing_grasps`` (one of the pair absent), ``empty_rgb`` /
    ``empty_grasps`` / ``empty_label``, ``missing_label`` (with ``require_label``),
    ``not_a_file_<file>`` (a FIFO, a directory ...: frame skipped; a depth: dropped).
    """
    root = Path(root)
    faults = FaultLog()
    frames: list[FrameRecord] = []
    n_found = 0
    for seq in sequences(root):
        group = seq.relative_to(root).as_posix()
        rgb, ann = _sizes(seq / RGB, ".png"), _sizes(seq / ANNOTATIONS, ".txt")
        masks, depth = _sizes(seq / MASKS, ".png"), _sizes(seq / DEPTH, ".png")
        for stem in sorted(set(rgb) | set(ann)):
            n_found += 1
            paths = {"rgb": seq / RGB / f"{stem}.png", "grasps": seq / ANNOTATIONS / f"{stem}.txt",
                     "label": seq / MASKS / f"{stem}.png"}
            sizes = {"rgb": rgb.get(stem), "grasps": ann.get(stem), "label": masks.get(stem)}
            if any([file_fault(faults, kind, paths[kind], sizes[kind],
                               required=kind != "label" or require_label)
                    for kind in ("rgb", "grasps", "label")]):
                continue
            frames.append(FrameRecord(
                key=f"{group}/{stem}", group=group, rgb=str(paths["rgb"]),
                grasps=str(paths["grasps"]),
                label=str(paths["label"]) if stem in masks else None,
                depth=optional_file(faults, "depth", seq / DEPTH / f"{stem}.png", depth.get(stem)),
                format=NAME, frame=len(frames)))
    return ScanResult(frames, faults, NAME, str(root), found=n_found)


def write_toy_frame(root, frame, *, views: int = 2, **_) -> tuple[str, np.ndarray]:
    """A generated frame as view ``index % views`` of sequence ``index // views``."""
    seq = Path(root) / "ARID20" / "table" / "top" / f"seq{frame.index // views:02d}"
    stem = f"result_{frame.index:04d}"
    write_png(seq / RGB / f"{stem}.png", frame.rgb)
    write_png(seq / MASKS / f"{stem}.png", frame.mask)
    (seq / ANNOTATIONS).mkdir(parents=True, exist_ok=True)
    write_cornell_rects(seq / ANNOTATIONS / f"{stem}.txt", frame.grasps)
    return f"{seq.relative_to(root).as_posix()}/{stem}", frame.grasps


FORMAT = DataFormat(
    name=NAME, description="OCID-grasp: <sequence>/rgb/<name>.png + Annotations/<name>.txt",
    layout="<sequence>/rgb/ and <sequence>/Annotations/ folders up to 5 levels below",
    detect=is_ocid, scan=scan_ocid,
    read_grasps=lambda path: tagged(read_cornell_rects, "grasps", path),
    write_grasps=write_cornell_rects, write_toy_frame=write_toy_frame, split_by="object",
    object_views=True)
