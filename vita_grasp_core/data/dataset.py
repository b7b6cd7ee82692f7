"""The torch dataset over frames of any format: image, five target maps, owned mask, GT.

Faults are handled in three places, each reported with one :class:`DataWarning` per process:

- scan time (:func:`~vita_grasp_core.data.formats.scan_dataset`, cheap): missing / empty files.
  Those frames are never used.
- :meth:`GraspDataset.check_frames` (optional, what training calls first): every frame's png
  headers and grasp files are read once; bad frames are REMOVED, so an epoch never repeats a
  neighbour in their place, and the usable count is logged.
- load time (``ds[i]``): a frame that still fails (e.g. pixels that do not decode) is replaced by
  the next good one (``(i + 1) % len``, deterministic) for robustness; this is counted
  (``ds.fallbacks``, ``report()["fallbacks"]``) and the bad frame is remembered.

Rectangle rows that are not finite or have absurd widths / jaw sizes are skipped and counted per
file (``report()["rows_skipped"]``), never clipped. ``ds.skipped`` and ``ds.report()`` hold all
of it. With a multi-worker ``DataLoader`` the load-time faults happen in the workers: every sample
carries them in ``sample["skipped"]`` (kept by :func:`collate_fn`) and
``ds.record_skips(batch["skipped"], batch["fallbacks"])`` merges them into the main process.
"""
from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import DEFAULT_CAMERA
from ..conventions import IMAGENET_MEAN, IMAGENET_STD
from ..geometry import Letterbox
from .augment import Augment
from .common import DataWarning, FaultLog, FrameFault, FrameRecord, NoUsableFrames, inside_image
from .targets import render_targets

log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class SampleSpec:
    """What a sample looks like for a model: its canvases and input normalisation.

    Attributes:
        output_size: (H, W) of the target maps (model ``output_size``).
        input_size: (H, W) of the backbone input canvas (model ``input_size``).
        mean, std: RGB normalisation (0-1 scale) of the backbone.
        width_scale: see :class:`~vita_grasp_core.model_config.ModelConfig`.
    """

    output_size: tuple[int, int]
    input_size: tuple[int, int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    width_scale: float = 0.25

    @classmethod
    def of(cls, model) -> "SampleSpec":
        """The spec of a ``GraspModel`` or ``GraspPredictor`` (its config and mean/std; a
        predictor's own input canvas, which ``input_scale`` enlarges)."""
        c = model.config
        size = getattr(model, "input_size", None) or c.input_size
        return cls(tuple(c.output_size), tuple(size), tuple(model.mean),
                   tuple(model.std), float(c.width_scale))


@dataclass(frozen=True)
class TargetSpec:
    """How the five target maps are rendered (see :func:`.targets.render_targets`).

    Attributes:
        sigma: heatmap gaussian sigma in map px.
        max_rects: keep at most this many best-scoring rectangles per frame (``None`` = all).
        score_scale, min_score, owned_floor: see :func:`render_targets`.
    """

    sigma: float = 2.0
    max_rects: int | None = None
    score_scale: float | None = 1.0
    min_score: float = 0.05
    owned_floor: float = 0.05


@dataclass(frozen=True)
class Origin:
    """Where frames come from, for messages and reports: ``root`` (default: their common
    folder), ``name`` (a label) and the scan-time ``faults`` to report."""

    root: str | Path | None = None
    name: str | None = None
    faults: FaultLog | None = None


try:
    from torch.utils.data import Dataset as _TorchDataset
except ImportError:  # pragma: no cover - torch is a hard dependency of the package
    _TorchDataset = object


class GraspDataset(_TorchDataset):
    """Frames (any format) -> (normalised image, five target maps, owned mask, ground truth).

    Args:
        frames: :class:`~vita_grasp_core.data.common.FrameRecord` list (e.g.
            ``scan_dataset(...).frames`` or a fold of it).
        sample: :class:`SampleSpec` (canvases, normalisation; ``SampleSpec.of(model)``).
        targets: :class:`TargetSpec` (target rendering; default: its defaults).
        augment: ``False``/``None`` (off), ``True`` (default :class:`Augment`) or an ``Augment``.
        seed: base seed of the augmentation; per sample ``(seed, epoch, index)``.
        require_label: frames without a mask are faults (default False: channel 4 is then the
            union of the frame's positive rectangles).
        origin: :class:`Origin` (root, name, scan-time faults: one :class:`DataWarning` if any).

    ``ds[i]`` returns a dict: ``image`` (3 x input_size float32 tensor), ``target`` (5 x H x W
    float32), ``owned`` (H x W bool), ``rects`` ((N, 7) float32 tensor: x, y, angle, width,
    height, score, obj_id in the *augmented* source frame; without augmentation every plausible
    rectangle of the file, including centres outside the image), ``key`` (str), ``scene``,
    ``frame`` (int, -1 where the format has none), ``camera`` (str), ``src_size`` ((h, w) of the
    augmented source), ``index`` (the frame index actually used), ``fallback`` (True when it
    replaced a bad frame) and ``skipped`` (``(kind, path[, rows])`` met while producing it).
    """

    def __init__(self, frames, sample: SampleSpec, targets: TargetSpec | None = None, *,
                 augment=False, seed: int = 0, require_label: bool = False,
                 origin: Origin | None = None):
        targets = targets or TargetSpec()
        origin = origin or Origin()
        root, name, faults = origin.root, origin.name, origin.faults
        self.frames: list[FrameRecord] = list(frames)
        if not self.frames:
            raise ValueError(f"GraspDataset: no frames{f' in {name}' if name else ''}")
        bad = [f for f in self.frames if not isinstance(f, FrameRecord)]
        if bad:
            raise TypeError(f"frames must be FrameRecord objects, got {type(bad[0]).__name__}")
        if root is None:
            try:
                root = os.path.commonpath([f.rgb for f in self.frames])
            except ValueError:
                root = "."
        self.root = Path(root)
        self.name = name or str(self.root)
        cams = {f.camera for f in self.frames}
        self.camera = cams.pop() if len(cams) == 1 else ""
        fmts = {f.format for f in self.frames}
        self.format = fmts.pop() if len(fmts) == 1 else "mixed"
        self.scene_ids = sorted({f.scene for f in self.frames if f.scene >= 0})
        self.sample_spec, self.target_spec = sample, targets
        self.output_size = tuple(int(v) for v in sample.output_size)
        self.input_size = tuple(int(v) for v in sample.input_size)
        self.mean = tuple(float(v) for v in sample.mean)
        self.std = tuple(float(v) for v in sample.std)
        self.width_scale, self.sigma = float(sample.width_scale), float(targets.sigma)
        self.augment = Augment() if augment is True else (augment or None)
        self.seed, self.epoch = int(seed), 0
        self.max_rects = targets.max_rects
        self.require_label = bool(require_label)
        self.render_kw = dict(score_scale=targets.score_scale, min_score=targets.min_score,
                              owned_floor=targets.owned_floor)
        self.frames_found = len(self.frames)
        self.fallbacks = 0
        self._scan_faults = faults if faults is not None else FaultLog()
        self._load_faults = FaultLog()
        self._bad: set[int] = set()
        self._warned_load = False
        if self._scan_faults.paths:
            warnings.warn(f"{self.name}: skipped {len(self._scan_faults)} frame files at scan "
                          f"time: {self._scan_faults.summary()}", DataWarning, stacklevel=3)

    # ---------------------------------------------------------------- bookkeeping
    def __len__(self) -> int:
        return len(self.frames)

    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (call once per epoch, before making the iterator)."""
        self.epoch = int(epoch)

    @property
    def keys(self) -> list[str]:
        return [f.key for f in self.frames]

    @property
    def faults(self) -> FaultLog:
        """Every fault so far (scan time + checks + load time in this process)."""
        out = FaultLog()
        out.merge(self._scan_faults)
        out.merge(self._load_faults)
        return out

    @property
    def skipped(self) -> dict[str, list[str]]:
        """Kind -> paths of every file skipped so far (scan time + load time in this process)."""
        return self.faults.paths

    def record_skips(self, skipped, fallbacks: int = 0) -> None:
        """Merge ``(kind, path[, rows])`` tuples (``batch["skipped"]`` from worker processes) and
        the number of fallbacks they made (``batch["fallbacks"]``)."""
        self._load_faults.merge(list(skipped))
        self.fallbacks += int(fallbacks)

    def report(self) -> dict:
        """Summary: frames (usable now, found), fallbacks and skipped files / rows per kind."""
        f = self.faults
        return {
            "root": str(self.root), "name": self.name, "format": self.format,
            "camera": self.camera, "scenes": list(self.scene_ids), "frames": len(self.frames),
            "frames_found": self.frames_found, "bad_frames_seen": len(self._bad),
            "fallbacks": self.fallbacks, "skipped": f.counts(), "rows_skipped": f.row_counts(),
            "examples": {k: v[:3] for k, v in sorted(f.paths.items())},
        }

    def _fault(self, j: int, e: FrameFault, met: list) -> None:
        self._bad.add(j)
        self._load_faults.add(e.kind, e.path)
        met.append((e.kind, e.path))
        if not self._warned_load:
            self._warned_load = True
            warnings.warn(f"{self.name}: skipping unreadable frame ({e}); further load-time "
                          "problems are counted silently, see ds.report()", DataWarning,
                          stacklevel=3)

    def check_frames(self, *, full: bool = False, progress: bool = False) -> dict:
        """Read every frame once and drop the bad ones from ``frames`` (issue 12, item 7).

        Cheap by default: png headers (signature, size, ``IEND``) and the whole grasp file;
        ``full=True`` decodes every png too. Frames that would raise at load time are removed
        (so no epoch repeats a neighbour in their place); skipped rectangle rows are counted.
        Logs "N usable of M frames" and returns ``{"usable", "found", "removed": [(key, kind)],
        "skipped": kind -> files, "rows_skipped": kind -> rows}``. Raises ``RuntimeError`` when
        no frame is usable.
        """
        from .formats import check_frame

        found = len(self.frames)
        keep, removed = [], []
        it = self.frames
        if progress:
            from tqdm import tqdm

            it = tqdm(self.frames, desc="check frames", unit="frame", leave=False)
        for rec in it:
            try:
                info = check_frame(rec, full=full, require_label=self.require_label)
            except FrameFault as e:
                self._load_faults.add(e.kind, e.path)
                removed.append((rec.key, e.kind))
                continue
            self._load_faults.merge(info["faults"])
            keep.append(rec)
        self.frames = keep
        self._bad = set()
        f = self.faults
        out = {"usable": len(keep), "found": found, "removed": removed,
               "skipped": f.counts(), "rows_skipped": f.row_counts()}
        log.info("%s: %d usable of %d frames", self.name, len(keep), found)
        if removed:
            warnings.warn(f"{self.name}: {len(keep)} usable of {found} frames; removed "
                          f"{len(removed)}: {f.summary()}", DataWarning, stacklevel=2)
        if not keep:
            raise NoUsableFrames(f"no usable frame in {self.name} ({found} checked): "
                               f"{f.summary()}")
        return out

    # ---------------------------------------------------------------- loading
    def rng_for(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def _load(self, index: int):
        """``(rgb, label, grasps, row faults)`` of frame ``index``, augmented."""
        from .formats import load_frame

        fr = load_frame(self.frames[index], require_label=self.require_label)
        rgb, label, g = fr.rgb, fr.label, fr.grasps
        if self.max_rects is not None and len(g) > self.max_rects:
            g = g[np.sort(np.argsort(-g[:, 5], kind="stable")[: int(self.max_rects)])]
        if self.augment is not None:
            # rows whose centre lies outside the image are kept as ground truth only; a
            # geometric augmentation must not move them onto padding as training targets
            g = g[inside_image(g, rgb.shape[:2])]
            rgb, label, g = self.augment(rgb, label, g, self.rng_for(index))
            if len(g) == 0:  # the augmenter keeps >= 1 grasp when it can; never a zero target
                raise FrameFault("no_rects_in_image", self.frames[index].grasps, "after augment")
        return rgb, label, g, fr.faults

    def load_raw(self, index: int):
        """``(rgb, label, grasps)`` of frame ``index``, augmented; may raise FrameFault."""
        rgb, label, g, faults = self._load(index)
        self._load_faults.merge(faults)
        return rgb, label, g

    def make_sample(self, rgb, label, g, rec: FrameRecord, index: int) -> dict:
        import torch

        from ..preprocess import image_to_input

        image, lb = image_to_input(rgb, self.input_size, self.output_size, self.mean, self.std)
        t = render_targets(g, label, lb, self.width_scale, self.sigma, **self.render_kw)
        if t.n_grasps == 0:
            raise FrameFault("no_rects_in_image", rec.grasps)
        return {
            "image": image,
            "target": torch.from_numpy(t.maps),
            "owned": torch.from_numpy(t.owned),
            "rects": torch.from_numpy(np.ascontiguousarray(g, dtype=np.float32)),
            "key": rec.key, "scene": rec.scene, "frame": rec.frame, "camera": rec.camera,
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
                rgb, label, g, faults = self._load(j)
                sample = self.make_sample(rgb, label, g, rec, j)
            except FrameFault as e:
                self._fault(j, e, met)
                continue
            self._load_faults.merge(faults)
            sample["fallback"] = j != i
            self.fallbacks += int(j != i)
            sample["skipped"] = met + list(faults)
            return sample
        raise NoUsableFrames(f"no loadable frame left in {self.name}: {self.faults.summary()}")

    def letterbox(self, src_size) -> Letterbox:
        """Source image (h, w) -> the map canvas of this dataset."""
        return Letterbox.fit(src_size, self.output_size)


class GraspNetDataset(GraspDataset):
    """A GraspNet-1Billion selection as a :class:`GraspDataset` (the former constructor).

    ``root`` holds ``scenes/``; ``camera`` a GraspNet camera; ``scenes`` explicit ids (int or
    iterable, ``None`` = all present); ``split`` ``train`` (0-99), ``test_seen`` (100-129),
    ``test_similar`` (130-159), ``test_novel`` (160-189), ``test`` (100-189) or ``all``,
    intersected with ``scenes``. ``sample`` defaults to the GraspNet-sized canvases (maps 480x640,
    input 448x588, ImageNet normalisation); other arguments as :class:`GraspDataset`. Raises
    ``FileNotFoundError`` when the selection has no frame.
    """

    def __init__(self, root, camera: str = DEFAULT_CAMERA, scenes=None, split=None,
                 sample: SampleSpec | None = None, targets: TargetSpec | None = None, *,
                 augment=False, seed: int = 0, require_label: bool = False):
        from .graspnet import scan_graspnet, scenes_dir

        res = scan_graspnet(root, camera, scenes, split, require_label)
        if not res.frames:
            raise FileNotFoundError(
                f"no usable {camera} frames under {scenes_dir(root)} (scenes={scenes}, "
                f"split={split}, scenes found={res.scene_ids}); problems: "
                f"{res.faults.summary()}")
        super().__init__(res.frames, sample or SampleSpec((480, 640), (448, 588)), targets,
                         augment=augment, seed=seed, require_label=require_label,
                         origin=Origin(root, f"{root} ({camera})", res.faults))
        self.scene_ids = res.scene_ids


def open_dataset(root, format: str = "auto", *, camera: str = DEFAULT_CAMERA, scenes=None,
                 split=None, require_label: bool = False, **dataset_kwargs) -> GraspDataset:
    """:func:`~vita_grasp_core.data.formats.scan_dataset` + :class:`GraspDataset`.

    ``dataset_kwargs`` go to :class:`GraspDataset` (``sample`` is required; ``targets``,
    ``augment``, ``seed``). Raises ``FileNotFoundError`` when nothing usable is
    found (with the scan's problems), ``ValueError`` for an unknown layout or bad selection.
    """
    from .formats import get_format, scan_dataset

    res = scan_dataset(root, format, camera=camera, scenes=scenes, split=split,
                       require_label=require_label)
    has_scenes = get_format(res.format).scenes
    what = f"{res.format} data set {root}" + (f" ({camera})" if has_scenes else "")
    if not res.frames:
        raise FileNotFoundError(f"no usable frames in {what}"
                                + (f" (scenes={scenes}, split={split}, scenes found="
                                   f"{res.scene_ids})" if has_scenes else "")
                                + f"; problems: {res.faults.summary()}")
    ds = GraspDataset(res.frames, require_label=require_label,
                      origin=Origin(root, what, res.faults), **dataset_kwargs)
    if has_scenes:
        ds.scene_ids = res.scene_ids
    return ds


def collate_fn(batch: list[dict]) -> dict:
    """Stack ``image``, ``target``, ``owned``; keep variable-length fields as lists.

    ``rects``: list of (N_i, 7) tensors; ``scene``/``frame``/``index``: int64 tensors;
    ``key``/``camera``/``src_size``: lists; ``skipped``: all samples' faults, concatenated;
    ``fallbacks``: how many samples replaced a bad frame.
    """
    import torch

    return {
        "image": torch.stack([b["image"] for b in batch]),
        "target": torch.stack([b["target"] for b in batch]),
        "owned": torch.stack([b["owned"] for b in batch]),
        "rects": [b["rects"] for b in batch],
        "key": [b.get("key", "") for b in batch],
        "scene": torch.tensor([b["scene"] for b in batch], dtype=torch.int64),
        "frame": torch.tensor([b["frame"] for b in batch], dtype=torch.int64),
        "index": torch.tensor([b["index"] for b in batch], dtype=torch.int64),
        "camera": [b["camera"] for b in batch],
        "src_size": [tuple(b["src_size"]) for b in batch],
        "skipped": [s for b in batch for s in b.get("skipped", [])],
        "fallbacks": sum(int(b.get("fallback", False)) for b in batch),
    }
