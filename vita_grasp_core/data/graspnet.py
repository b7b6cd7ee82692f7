"""GraspNet-1Billion (planar rectangles): layout, scene splits, scanning, rect files.

On-disk layout (CONVENTIONS §2)::

    ROOT/scenes/scene_XXXX/{kinect,realsense}/
        rgb/NNNN.png    label/NNNN.png    rect/NNNN.npy    [depth/NNNN.png, camK.npy]

Scan-time faults (cheap: existence and size only): missing camera directories, missing or empty
(0 byte) rgb / rect files, empty label / depth files (a missing label is a fault only with
``require_label=True``). Load-time faults are raised by the readers as :class:`FrameFault`."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..choices import CAMERAS, DEFAULT_CAMERA
from ..conventions import camera_matrix
from ..fileio import save_npy
from ..grasp import graspnet_rects_to_grasps, grasps_to_graspnet_rects
from .common import (  # noqa: F401
    DataWarning,
    FaultLog,
    FrameFault,
    FrameRecord,
    ScanResult,
    png_header,
    read_png,
    regular_size,
    write_png,
)
from .formats import DataFormat
from .listing import file_fault, folder_sizes, optional_file

#: The registered name of this layout (``--format graspnet``, ``FrameRecord.format``).
NAME = "graspnet"

#: GraspNet-1Billion scene splits (scene ids, inclusive-exclusive ranges).
SPLITS: dict[str, range | None] = {
    "train": range(0, 100),
    "test_seen": range(100, 130),
    "test_similar": range(130, 160),
    "test_novel": range(160, 190),
    "test": range(100, 190),
    "all": None,
}

_SCENE_RE = re.compile(r"scene_(\d{4})")
_FRAME_RE = re.compile(r"(\d{4})\.(png|npy)")


def read_rect(path) -> np.ndarray:
    """Load a GraspNet ``rect/NNNN.npy``: ``(N, 7)`` float rows. Raises :class:`FrameFault`
    (``missing``, ``empty``, ``corrupt``, ``bad_shape``)."""
    path = Path(path)
    try:
        if regular_size(path) == 0:
            raise FrameFault("empty", path)
        arr = np.load(path, allow_pickle=False)
    except FrameFault:
        raise
    except FileNotFoundError:
        raise FrameFault("missing", path) from None
    except (ValueError, OSError, EOFError) as e:
        raise FrameFault("corrupt", path, str(e)[:80]) from None
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "fiu":
        raise FrameFault("corrupt", path, "not a numeric array")
    if arr.ndim != 2 or arr.shape[1] != 7:
        raise FrameFault("bad_shape", path, f"shape {arr.shape}, expected (N, 7)")
    return arr


def read_graspnet_grasps(path) -> np.ndarray:
    """A rect file as ``(N, 7)`` float64 grasp rows (x, y, angle, width, height, score, obj_id),
    unchecked (see :func:`~vita_grasp_core.data.common.clean_grasp_rows`). Raises
    :class:`FrameFault` with kinds ``<fault>_rect``."""
    try:
        raw = read_rect(path)
    except FrameFault as e:
        raise FrameFault(f"{e.kind}_rect", e.path, e.detail) from None
    with np.errstate(all="ignore"):
        return graspnet_rects_to_grasps(raw.astype(np.float64)).astype(np.float64)


# --------------------------------------------------------------------------- scanning
def scenes_dir(root) -> Path:
    """``ROOT/scenes`` if it exists, else ``ROOT`` itself when it holds ``scene_XXXX`` folders."""
    root = Path(root)
    if (root / "scenes").is_dir():
        return root / "scenes"
    if root.is_dir() and any(_SCENE_RE.fullmatch(p.name) for p in root.iterdir()):
        return root
    return root / "scenes"


def is_graspnet(root) -> bool:
    """True when ``root`` (or ``root/scenes``) holds at least one ``scene_XXXX`` folder."""
    d = scenes_dir(root)
    return d.is_dir() and any(_SCENE_RE.fullmatch(p.name) and p.is_dir() for p in d.iterdir())


def select_scenes(available, scenes=None, split=None) -> list[int]:
    """Scene ids among ``available`` that are in ``scenes`` and in ``split`` (each if given)."""
    ids = sorted(set(int(s) for s in available))
    if split is not None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose from {sorted(SPLITS)}")
        rng = SPLITS[split]
        if rng is not None:
            ids = [s for s in ids if s in rng]
    if scenes is not None:
        wanted = {int(s) for s in ([scenes] if isinstance(scenes, int) else scenes)}
        ids = [s for s in ids if s in wanted]
    return ids


def _listdir_sizes(d: Path) -> dict[str, int]:
    """{'0000': size} for the entries NNNN.png / NNNN.npy of ``d`` (:data:`~.listing.NOT_A_FILE`
    for those that are not regular files; missing dir -> {})."""
    return {m.group(1): size for name, size in folder_sizes(d).items()
            if (m := _FRAME_RE.fullmatch(name))}


def _frame_paths(cam: Path, fid: str, tables: dict, require_label: bool, faults: FaultLog):
    """The files of frame ``fid`` (kind -> path), or ``None`` when a needed one is missing,
    empty or not a regular file (recorded in ``faults``)."""
    paths = {k: cam / k / f"{fid}.{'npy' if k == 'rect' else 'png'}" for k in tables}
    bad = [file_fault(faults, kind, paths[kind], tables[kind].get(fid),
                      required=kind != "label" or require_label)
           for kind in ("rgb", "rect", "label")]
    return None if any(bad) else paths


def _scan_camera(cam: Path, sid: int, camera: str, require_label: bool, faults: FaultLog,
                 frames: list) -> int:
    """Append the usable frames of one scene's camera folder; returns how many were found."""
    tables = {k: _listdir_sizes(cam / k) for k in ("rgb", "rect", "label", "depth")}
    fids = sorted(set(tables["rgb"]) | set(tables["rect"]))
    for fid in fids:
        paths = _frame_paths(cam, fid, tables, require_label, faults)
        if paths is None:
            continue
        dep = optional_file(faults, "depth", paths["depth"], tables["depth"].get(fid))
        frames.append(FrameRecord(
            key=f"{camera}/s{sid:04d}/f{fid}", group=f"scene_{sid:04d}",
            rgb=str(paths["rgb"]), grasps=str(paths["rect"]),
            label=str(paths["label"]) if fid in tables["label"] else None, depth=dep,
            format=NAME, scene=sid, frame=int(fid), camera=camera))
    return len(fids)


def scan_graspnet(root, camera: str = DEFAULT_CAMERA, scenes=None, split=None,
                  require_label: bool = False) -> ScanResult:
    """Find the frames of a GraspNet-layout tree with cheap checks (existence, size > 0).

    Frames come sorted by (scene, frame); keys ``"<camera>/sNNNN/fNNNN"``, groups
    ``"scene_NNNN"``; ``scene_ids`` are the selected scenes found on disk.
    """
    if camera not in CAMERAS:
        raise ValueError(f"camera must be one of {CAMERAS}, got {camera!r}")
    sdir = scenes_dir(root)
    found = {}
    if sdir.is_dir():
        for p in sdir.iterdir():
            m = _SCENE_RE.fullmatch(p.name)
            if m and p.is_dir():
                found[int(m.group(1))] = p
    ids = select_scenes(found, scenes, split)
    faults = FaultLog()
    frames: list[FrameRecord] = []
    n_found = 0
    for sid in ids:
        cam = found[sid] / camera
        if not cam.is_dir():
            faults.add("missing_camera", cam)
            continue
        n_found += _scan_camera(cam, sid, camera, require_label, faults, frames)
    return ScanResult(frames, faults, NAME, str(sdir), ids, n_found)


def scan(root, camera: str = DEFAULT_CAMERA, scenes=None, split=None,
         require_label: bool = False) -> ScanResult:
    """Former name of :func:`scan_graspnet`; the result unpacks as ``frames, faults,
    scene_ids``."""
    return scan_graspnet(root, camera, scenes, split, require_label)


def write_graspnet_grasps(path, grasps) -> Path:
    """Write ``(N, 7)`` grasp rows as a GraspNet ``rect/NNNN.npy`` (inverse of
    :func:`read_graspnet_grasps` up to the angle's half turn)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_npy(path, grasps_to_graspnet_rects(np.asarray(grasps, np.float64)))
    return path


def camera_intrinsics(rec: FrameRecord, camera: str, size) -> np.ndarray:
    """3x3 K of a frame of ``size`` (h, w): ``camK.npy`` beside the camera folder when it is a
    valid 3x3, else the CONVENTIONS intrinsics of ``camera`` scaled to ``size``."""
    f = Path(rec.rgb).parent.parent / "camK.npy"
    if f.is_file():
        try:
            K = np.load(f, allow_pickle=False).astype(np.float64)
            if K.shape == (3, 3) and np.isfinite(K).all() and K[0, 0] > 0 and K[1, 1] > 0:
                return K
        except (OSError, ValueError):
            pass
    return camera_matrix(camera, tuple(size))


def write_toy_frame(root, frame, **_) -> tuple[str, np.ndarray]:
    """A generated frame as ``scenes/scene_XXXX/<first camera>/{rgb,label,rect}/NNNN`` (4 frames
    a scene)."""
    sid, fid = frame.index // 4, frame.index % 4
    cam = Path(root) / "scenes" / f"scene_{sid:04d}" / DEFAULT_CAMERA
    write_png(cam / "rgb" / f"{fid:04d}.png", frame.rgb)
    write_png(cam / "label" / f"{fid:04d}.png", frame.mask)
    g = frame.grasps.copy()
    g[:, 6] = 0
    write_graspnet_grasps(cam / "rect" / f"{fid:04d}.npy", g)
    return f"{DEFAULT_CAMERA}/s{sid:04d}/f{fid:04d}", g


def _scan(root, require_label, *, camera, scenes, split) -> ScanResult:
    return scan_graspnet(root, camera, scenes, split, require_label)


FORMAT = DataFormat(
    name=NAME, description="GraspNet-1Billion: scenes/scene_XXXX/<camera>/{rgb,label,rect}",
    layout="scenes/scene_XXXX/ or scene_XXXX/ folders", detect=is_graspnet, scan=_scan,
    read_grasps=read_graspnet_grasps, write_grasps=write_graspnet_grasps,
    write_toy_frame=write_toy_frame, scenes=True,
    intrinsics=camera_intrinsics, metric_depth=True)
