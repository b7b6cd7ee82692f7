"""GraspNet-1Billion (planar rectangles) as a PyTorch dataset, with file scanning and faults.

On-disk layout (CONVENTIONS §2)::

    ROOT/scenes/scene_XXXX/{kinect,realsense}/
        rgb/NNNN.png    label/NNNN.png    rect/NNNN.npy    [depth/NNNN.png, camK.npy]

Faults are handled in two places, each reported with one :class:`DataWarning` per process:

- scan time (constructor, cheap): missing camera directories, missing or empty (0 byte) rgb / label
  / rect files. Those frames are never used.
- load time (``ds[i]``): corrupt png / npy files (bad signature, truncated, undecodable), rect
  arrays that are not ``(N, 7)``, a label of another size than the image, frames with no finite
  rectangle whose centre lies inside the image. The dataset then returns the next good frame
  (``(i + 1) % len``, deterministic) and remembers the bad one.

``ds.skipped`` (kind -> list of paths) and ``ds.report()`` hold both kinds. With a multi-worker
``DataLoader`` the load-time faults happen in the workers: every sample carries the faults met
while producing it in ``sample["skipped"]`` (kept by :func:`collate_fn`), and
``ds.record_skips(batch["skipped"])`` merges them into the main process's copy.
"""
from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..conventions import IMAGENET_MEAN, IMAGENET_STD
from ..geometry import Letterbox
from ..grasp import graspnet_rects_to_grasps
from .augment import Augment
from .targets import render_targets, valid_grasp_rows

#: GraspNet-1Billion scene splits (scene ids, inclusive-exclusive ranges).
SPLITS: dict[str, range | None] = {
    "train": range(0, 100),
    "test_seen": range(100, 130),
    "test_similar": range(130, 160),
    "test_novel": range(160, 190),
    "test": range(100, 190),
    "all": None,
}
CAMERAS = ("kinect", "realsense")

_SCENE_RE = re.compile(r"scene_(\d{4})")
_FRAME_RE = re.compile(r"(\d{4})\.(png|npy)")
_PNG_SIG = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"


class DataWarning(UserWarning):
    """Problems found in a data set (files skipped); emitted once per kind of check and process."""


class FrameFault(Exception):
    """A file of a frame cannot be used: ``kind`` (e.g. ``corrupt_rgb``) and ``path``."""

    def __init__(self, kind: str, path, detail: str = ""):
        super().__init__(f"{kind}: {path}" + (f" ({detail})" if detail else ""))
        self.kind, self.path, self.detail = kind, str(path), detail


# --------------------------------------------------------------------------- fault bookkeeping
class FaultLog:
    """Kind -> list of paths, with a short human summary."""

    def __init__(self):
        self.paths: dict[str, list[str]] = {}

    def add(self, kind: str, path) -> None:
        lst = self.paths.setdefault(kind, [])
        if str(path) not in lst:
            lst.append(str(path))

    def merge(self, other) -> None:
        if isinstance(other, FaultLog):
            other = other.paths
        items = other.items() if isinstance(other, dict) else other
        for kind, paths in items:
            for p in ([paths] if isinstance(paths, str) else paths):
                self.add(kind, p)

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in sorted(self.paths.items())}

    def __len__(self) -> int:
        return sum(len(v) for v in self.paths.values())

    def summary(self, examples: int = 3) -> str:
        parts = []
        for kind, paths in sorted(self.paths.items()):
            ex = ", ".join(paths[:examples]) + (", ..." if len(paths) > examples else "")
            parts.append(f"{kind}: {len(paths)} (e.g. {ex})")
        return "; ".join(parts) if parts else "none"


# --------------------------------------------------------------------------- file readers
def png_header(path) -> dict:
    """Read a PNG's signature, IHDR and trailing IEND without decoding it.

    Returns ``{"width", "height", "bit_depth", "color_type"}``; raises :class:`FrameFault`
    (``empty``, ``corrupt``: bad signature, truncated file) with kind prefix left to the caller.
    """
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise FrameFault("empty", path)
    with open(path, "rb") as f:
        head = f.read(33)
        f.seek(max(0, size - 8))
        tail = f.read(8)
    if len(head) < 33 or head[:8] != _PNG_SIG or head[12:16] != b"IHDR":
        raise FrameFault("corrupt", path, "not a PNG")
    if tail != _PNG_END:
        raise FrameFault("corrupt", path, "truncated (no IEND)")
    return {"width": int.from_bytes(head[16:20], "big"),
            "height": int.from_bytes(head[20:24], "big"),
            "bit_depth": head[24], "color_type": head[25]}


def read_png(path, color: bool) -> np.ndarray:
    """Decode a PNG fully: ``color=True`` -> ``HxWx3 uint8 RGB``; else the stored array (label,
    depth; a multi-channel label is reduced to its first channel). Raises :class:`FrameFault`."""
    import cv2

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FrameFault("missing", path) from None
    if not data:
        raise FrameFault("empty", path)
    if data[:8] != _PNG_SIG:
        raise FrameFault("corrupt", path, "not a PNG")
    if data[-8:] != _PNG_END:
        raise FrameFault("corrupt", path, "truncated (no IEND)")
    buf = np.frombuffer(data, np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise FrameFault("corrupt", path, "undecodable")
    if color:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return img[..., 0] if img.ndim == 3 else img


def read_rect(path) -> np.ndarray:
    """Load a GraspNet ``rect/NNNN.npy``: ``(N, 7)`` float rows. Raises :class:`FrameFault`
    (``missing``, ``empty``, ``corrupt``, ``bad_shape``)."""
    path = Path(path)
    try:
        if path.stat().st_size == 0:
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


# --------------------------------------------------------------------------- scanning
@dataclass(frozen=True)
class FrameRecord:
    """Paths of one frame (strings; ``label``/``depth`` may be ``None``)."""

    scene: int
    frame: int
    rgb: str
    rect: str
    label: str | None
    depth: str | None


def scenes_dir(root) -> Path:
    """``ROOT/scenes`` if it exists, else ``ROOT`` itself when it holds ``scene_XXXX`` folders."""
    root = Path(root)
    if (root / "scenes").is_dir():
        return root / "scenes"
    if root.is_dir() and any(_SCENE_RE.fullmatch(p.name) for p in root.iterdir()):
        return root
    return root / "scenes"


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
    """{'0000': size} for files NNNN.png / NNNN.npy in ``d`` (missing dir -> {})."""
    out = {}
    try:
        with os.scandir(d) as it:
            for e in it:
                m = _FRAME_RE.fullmatch(e.name)
                if m and e.is_file():
                    out[m.group(1)] = e.stat().st_size
    except FileNotFoundError:
        pass
    return out


def scan(root, camera: str = "kinect", scenes=None, split=None, require_label: bool = True):
    """Find the frames of a GraspNet-layout tree with cheap checks (existence, size > 0).

    Returns ``(frames: list[FrameRecord], faults: FaultLog, scene_ids: list[int])`` where
    ``scene_ids`` are the selected scenes found on disk. Frames come sorted by (scene, frame).
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
    for sid in ids:
        cam = found[sid] / camera
        if not cam.is_dir():
            faults.add("missing_camera", cam)
            continue
        rgb = _listdir_sizes(cam / "rgb")
        rect = _listdir_sizes(cam / "rect")
        label = _listdir_sizes(cam / "label")
        depth = _listdir_sizes(cam / "depth")
        for fid in sorted(set(rgb) | set(rect)):
            paths = {k: cam / k / f"{fid}.{'npy' if k == 'rect' else 'png'}"
                     for k in ("rgb", "rect", "label", "depth")}
            bad = False
            for kind, table in (("rgb", rgb), ("rect", rect)) + ((("label", label),)
                                                               if require_label else ()):
                if fid not in table:
                    faults.add(f"missing_{kind}", paths[kind])
                    bad = True
                elif table[fid] == 0:
                    faults.add(f"empty_{kind}", paths[kind])
                    bad = True
            if bad:
                continue
            lab = str(paths["label"]) if label.get(fid, 0) > 0 else None
            dep = str(paths["depth"]) if depth.get(fid, 0) > 0 else None
            frames.append(FrameRecord(sid, int(fid), str(paths["rgb"]), str(paths["rect"]),
                                      lab, dep))
    return frames, faults, ids


# --------------------------------------------------------------------------- frame loading
def load_frame(rec: FrameRecord, require_label: bool = True):
    """Decode one frame: ``(rgb HxWx3 uint8 RGB, label HxW or None, grasps (N, 7) float32)``.

    ``grasps`` are :func:`graspnet_rects_to_grasps` rows (x, y, angle, width, height, score,
    obj_id) in source px, only finite rows with width > 0 and the centre inside the image.
    Raises :class:`FrameFault` with kinds ``<fault>_<file>`` (e.g. ``corrupt_rgb``,
    ``bad_shape_rect``), ``size_mismatch_label`` or ``no_rects_in_image``.
    """
    def tagged(fn, what, *a):
        try:
            return fn(*a)
        except FrameFault as e:
            raise FrameFault(f"{e.kind}_{what}", e.path, e.detail) from None

    rgb = tagged(read_png, "rgb", rec.rgb, True)
    label = None
    if rec.label is not None:
        label = tagged(read_png, "label", rec.label, False)
        if label.shape[:2] != rgb.shape[:2]:
            raise FrameFault("size_mismatch_label", rec.label,
                             f"label {label.shape[:2]} vs rgb {rgb.shape[:2]}")
    elif require_label:
        raise FrameFault("missing_label", rec.rgb)
    raw = tagged(read_rect, "rect", rec.rect)
    if raw.shape[0] == 0:
        raise FrameFault("no_rects_in_image", rec.rect, "0 rows")
    with np.errstate(all="ignore"):
        g = graspnet_rects_to_grasps(raw.astype(np.float64))
    g = g[valid_grasp_rows(g, rgb.shape[:2])]
    if len(g) == 0:
        raise FrameFault("no_rects_in_image", rec.rect, "no finite rectangle inside the image")
    return rgb, label, g


# --------------------------------------------------------------------------- the dataset
_THREADS_LIMITED = False


def _limit_worker_threads() -> None:
    """In a DataLoader worker, keep OpenCV to one thread (workers already run in parallel)."""
    global _THREADS_LIMITED
    if _THREADS_LIMITED:
        return
    _THREADS_LIMITED = True
    try:
        from torch.utils.data import get_worker_info

        if get_worker_info() is not None:
            import cv2

            cv2.setNumThreads(1)
    except ImportError:  # pragma: no cover
        pass


try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - torch is a hard dependency of the package
    _TorchDataset = object


class GraspNetDataset(_TorchDataset):
    """GraspNet-1Billion frames -> (normalised image, five target maps, owned mask, ground truth).

    Args:
        root: data set root (holding ``scenes/``).
        camera: ``kinect`` or ``realsense``.
        scenes: explicit scene ids (int or iterable); ``None`` = all present.
        split: ``train`` (0-99), ``test_seen`` (100-129), ``test_similar`` (130-159),
            ``test_novel`` (160-189), ``test`` (100-189) or ``all``; combined with ``scenes`` by
            intersection. Only scenes that exist on disk are used.
        output_size: (H, W) of the target maps (model ``output_size``).
        input_size: (H, W) of the backbone input canvas (model ``input_size``).
        mean, std: RGB normalisation (0-1 scale) of the backbone.
        width_scale: see :class:`~vita_grasp_core.config.ModelConfig`.
        sigma: heatmap gaussian sigma in map px.
        augment: ``False``/``None`` (off), ``True`` (default :class:`Augment`) or an ``Augment``.
        seed: base seed of the augmentation; per sample ``(seed, epoch, index)``.
        max_rects: keep at most this many best-scoring rectangles per frame (``None`` = all);
            applies to both the targets and ``rects``.
        require_label: frames without a label png are faults (default); if False they use the
            rectangle-union fallback for channel 4.
        score_scale, min_score, owned_floor: see :func:`render_targets`.

    ``ds[i]`` returns a dict: ``image`` (3 x input_size float32 tensor), ``target`` (5 x H x W
    float32), ``owned`` (H x W bool), ``rects`` ((N, 7) float32 tensor: x, y, angle, width,
    height, score, obj_id in the *augmented* source frame), ``scene``, ``frame`` (int),
    ``camera`` (str), ``src_size`` ((h, w) of the augmented source), ``index`` (the frame index
    actually used) and ``skipped`` (list of (kind, path) met while producing it).
    """

    def __init__(self, root, camera: str = "kinect", scenes=None, split=None,
                 output_size=(480, 640), input_size=(448, 588), mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, width_scale: float = 0.25, sigma: float = 2.0, augment=False,
                 seed: int = 0, max_rects: int | None = None, require_label: bool = True,
                 score_scale: float | None = 1.0, min_score: float = 0.05,
                 owned_floor: float = 0.05):
        self.root = Path(root)
        self.camera = camera
        self.output_size = tuple(int(v) for v in output_size)
        self.input_size = tuple(int(v) for v in input_size)
        self.mean, self.std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        self.width_scale, self.sigma = float(width_scale), float(sigma)
        self.augment = Augment() if augment is True else (augment or None)
        self.seed, self.epoch = int(seed), 0
        self.max_rects = max_rects
        self.require_label = require_label
        self.render_kw = dict(score_scale=score_scale, min_score=min_score,
                              owned_floor=owned_floor)
        self.frames, self._scan_faults, self.scene_ids = scan(
            root, camera, scenes, split, require_label)
        self._load_faults = FaultLog()
        self._bad: set[int] = set()
        self._warned_load = False
        if self._scan_faults.paths:
            warnings.warn(f"{self.root} ({camera}): skipped {len(self._scan_faults)} frame files "
                          f"at scan time: {self._scan_faults.summary()}", DataWarning,
                          stacklevel=2)
        if not self.frames:
            raise FileNotFoundError(
                f"no usable {camera} frames under {scenes_dir(root)} (scenes={scenes}, "
                f"split={split}, scenes found={self.scene_ids}); problems: "
                f"{self._scan_faults.summary()}")

    # ---------------------------------------------------------------- bookkeeping
    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (call once per epoch, before making the iterator)."""
        self.epoch = int(epoch)

    @property
    def skipped(self) -> dict[str, list[str]]:
        """Kind -> paths of every file skipped so far (scan time + load time in this process)."""
        log = FaultLog()
        log.merge(self._scan_faults)
        log.merge(self._load_faults)
        return log.paths

    def record_skips(self, skipped) -> None:
        """Merge ``(kind, path)`` pairs (``batch["skipped"]`` from worker processes)."""
        for kind, path in skipped:
            self._load_faults.add(kind, path)

    def report(self) -> dict:
        """Summary: scenes, frame counts and skipped files per kind (with a few examples)."""
        sk = self.skipped
        return {
            "root": str(self.root), "camera": self.camera, "scenes": list(self.scene_ids),
            "frames": len(self.frames), "bad_frames_seen": len(self._bad),
            "skipped": {k: len(v) for k, v in sorted(sk.items())},
            "examples": {k: v[:3] for k, v in sorted(sk.items())},
        }

    def _fault(self, j: int, e: FrameFault, met: list) -> None:
        self._bad.add(j)
        self._load_faults.add(e.kind, e.path)
        met.append((e.kind, e.path))
        if not self._warned_load:
            self._warned_load = True
            warnings.warn(f"{self.root}: skipping unreadable frame ({e}); further load-time "
                          "problems are counted silently, see ds.report()", DataWarning,
                          stacklevel=3)

    # ---------------------------------------------------------------- loading
    def rng_for(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def load_raw(self, index: int):
        """``(rgb, label, grasps)`` of frame ``index``, augmented; may raise FrameFault."""
        rgb, label, g = load_frame(self.frames[index], self.require_label)
        if self.max_rects is not None and len(g) > self.max_rects:
            g = g[np.sort(np.argsort(-g[:, 5], kind="stable")[: int(self.max_rects)])]
        if self.augment is not None:
            rgb, label, g = self.augment(rgb, label, g, self.rng_for(index))
            if len(g) == 0:  # the augmenter keeps >= 1 grasp when it can; never a zero target
                raise FrameFault("no_rects_in_image", self.frames[index].rect, "after augment")
        return rgb, label, g

    def make_sample(self, rgb, label, g, rec: FrameRecord, index: int) -> dict:
        import torch

        from ..preprocess import image_to_input

        image, lb = image_to_input(rgb, self.input_size, self.output_size, self.mean, self.std)
        t = render_targets(g, label, lb, self.width_scale, self.sigma, **self.render_kw)
        if t.n_grasps == 0:
            raise FrameFault("no_rects_in_image", rec.rect)
        return {
            "image": image,
            "target": torch.from_numpy(t.maps),
            "owned": torch.from_numpy(t.owned),
            "rects": torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32)),
            "scene": rec.scene, "frame": rec.frame, "camera": self.camera,
            "src_size": tuple(int(v) for v in rgb.shape[:2]), "index": int(index),
        }

    def __getitem__(self, i: int) -> dict:
        _limit_worker_threads()
        n = len(self.frames)
        if not -n <= i < n:
            raise IndexError(f"index {i} out of range for {n} frames")
        i %= n
        met: list = []
        for step in range(n):
            j = (i + step) % n
            if j in self._bad:
                continue
            rec = self.frames[j]
            try:
                rgb, label, g = self.load_raw(j)
                sample = self.make_sample(rgb, label, g, rec, j)
            except FrameFault as e:
                self._fault(j, e, met)
                continue
            sample["skipped"] = met
            return sample
        log = FaultLog()
        log.merge(self.skipped)
        raise RuntimeError(f"no loadable frame left in {self.root}: {log.summary()}")

    def letterbox(self, src_size) -> Letterbox:
        """Source image (h, w) -> the map canvas of this dataset."""
        return Letterbox.fit(src_size, self.output_size)


def collate_fn(batch: list[dict]) -> dict:
    """Stack ``image``, ``target``, ``owned``; keep variable-length fields as lists.

    ``rects``: list of (N_i, 7) tensors; ``scene``/``frame``/``index``: int64 tensors;
    ``camera``/``src_size``: lists; ``skipped``: all samples' (kind, path) pairs, concatenated.
    """
    import torch

    return {
        "image": torch.stack([b["image"] for b in batch]),
        "target": torch.stack([b["target"] for b in batch]),
        "owned": torch.stack([b["owned"] for b in batch]),
        "rects": [b["rects"] for b in batch],
        "scene": torch.tensor([b["scene"] for b in batch], dtype=torch.int64),
        "frame": torch.tensor([b["frame"] for b in batch], dtype=torch.int64),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.int64),
        "camera": [b["camera"] for b in batch],
        "src_size": [tuple(b["src_size"]) for b in batch],
        "skipped": [s for b in batch for s in b.get("skipped", [])],
    }
