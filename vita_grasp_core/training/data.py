"""The frames a run trains and validates on, for every data format (``data`` section).

- GraspNet-1Billion: scenes by split name and/or ids (``train_split``/``train_scenes``,
  ``val_split``/``val_scenes``).
- Cornell / Jacquard: every frame of the root, minus the test fold when ``data.test_fold`` is set
  (``vita-grasp cv``), split into training and a seeded validation part (``val_fraction``),
  image-wise, object-wise or in blocks of consecutive frame numbers (``split_by``).

Bad frames are dropped before the first epoch (``GraspDataset.check_frames``: the log says how many
of the frames found are usable), and the model's sizes are checked against the data (widths that
channel 3 would clip, frames whose aspect ratio wastes most of the canvas).
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch

from .train_config import ConfigError, FullConfig

log = logging.getLogger("vita_grasp.train")


@dataclass
class RunData:
    """The datasets of a run and where they came from."""

    train: object
    val: object | None
    format: str
    description: str


def split_frames(cfg: FullConfig, frames) -> tuple[list[int], list[int], list[int]]:
    """Cornell / Jacquard: ``(train, val, test)`` frame indices from the ``data`` section."""
    from ..data import get_format, holdout, kfold, split_groups

    d = cfg.data
    by = d.split_by or (get_format(frames[0].format).split_by if frames else "image")
    idx = list(range(len(frames)))
    test: list[int] = []
    if d.test_fold is not None:
        test = kfold(frames, d.folds, seed=d.split_seed, by=by,
                     block_size=d.block_size)[d.test_fold]
        held = set(test)
        idx = [i for i in idx if i not in held]
    groups = None if by == "image" else split_groups(frames, by, d.block_size)
    train, val = holdout(idx, d.val_fraction, seed=d.split_seed, groups=groups)
    return train, val, test


def make_datasets(cfg: FullConfig, model) -> RunData:
    """Training and validation :class:`~vita_grasp_core.data.GraspDataset` of a run."""
    from ..data import GraspDataset, Origin, SampleSpec, evenly_spaced, get_format, scan_dataset

    d = cfg.data
    if not d.root:
        raise ConfigError("no data set: pass --dataset_root or set data.root")
    common = dict(sample=SampleSpec.of(model), targets=d.target_spec(),
                  require_label=d.require_label)
    try:
        fmt_scan = scan_dataset(d.root, d.format, camera=d.camera)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"data.root {d.root}: {e}") from None
    fmt = fmt_scan.format
    if get_format(fmt).scenes:
        def part(split, scenes):
            return scan_dataset(d.root, fmt, camera=d.camera, split=split, scenes=scenes)

        tr = part(d.train_split, d.train_scenes)
        train_frames, faults = tr.frames, tr.faults
        val_frames = None
        if d.val_split is not None or d.val_scenes is not None:
            val_frames = part(d.val_split, d.val_scenes).frames
            train_frames = _without_scenes(train_frames, val_frames)
        desc = (f"{fmt} ({d.camera}) scenes {_scene_ids(train_frames)} for training"
                + (f", {len(val_frames)} validation frames" if val_frames is not None else ""))
    else:
        if d.train_scenes is not None or d.val_scenes is not None:
            raise ConfigError(f"data.train_scenes / data.val_scenes are scene ids; "
                              f"{d.root} is a {fmt} data set (use data.val_fraction, "
                              "data.test_fold)")
        frames, faults = fmt_scan.frames, fmt_scan.faults
        tr_i, va_i, te_i = split_frames(cfg, frames)
        train_frames = [frames[i] for i in tr_i]
        val_frames = [frames[i] for i in va_i]
        desc = (f"{fmt} ({len(frames)} frames): {len(tr_i)} training, {len(va_i)} validation "
                f"({100 * d.val_fraction:.0f} % hold-out, seed {d.split_seed})"
                + (f", fold {d.test_fold} of {d.folds} ({len(te_i)} frames) left out"
                   if d.test_fold is not None else ""))
    if not train_frames:
        raise ConfigError(f"no training frames in {d.root} ({desc})")
    if d.train_max_frames is not None and d.train_max_frames < len(train_frames):
        train_frames = [train_frames[i] for i in evenly_spaced(len(train_frames),
                                                              d.train_max_frames)]
    train = GraspDataset(train_frames, augment=d.make_augment(), seed=cfg.train.seed,
                         origin=Origin(d.root, f"{d.root} (training)", faults), **common)
    val = None
    if val_frames:
        if d.val_max_frames is not None and d.val_max_frames < len(val_frames):
            val_frames = [val_frames[i] for i in evenly_spaced(len(val_frames), d.val_max_frames)]
        val = GraspDataset(val_frames, augment=False, seed=cfg.train.seed,
                           origin=Origin(d.root, f"{d.root} (validation)"), **common)
    return RunData(train, val, fmt, desc)


def _scene_ids(frames) -> list[int]:
    return sorted({f.scene for f in frames})


def _without_scenes(train_frames, val_frames) -> list:
    """The training frames minus every scene that validates: a scene never both trains and
    selects the checkpoint (``train_split: all`` with a list of ``val_scenes`` is a scene
    hold-out)."""
    held = set(_scene_ids(val_frames))
    kept = [f for f in train_frames if f.scene not in held]
    if len(kept) < len(train_frames):
        log.info("data: %d frames of the validation scenes left out of training",
                 len(train_frames) - len(kept))
    return kept


def memory_cached(train, val):
    """``data.memory_cache``: keep decoded samples in RAM (validation always, training only
    without augmentation, whose frames change every epoch)."""
    from .feature_cache import MemoryCachedDataset

    if val is not None:
        val = MemoryCachedDataset(val)
    if train.augment is not None:
        log.warning("data.memory_cache: only the validation set is cached (augmentation "
                    "changes the training frames every epoch)")
        return train, val
    return MemoryCachedDataset(train), val


def check_sizes_against_data(cfg: FullConfig, frames, max_frames: int = 64) -> dict:
    """Warn when the model's sizes do not suit the data: grasp openings that channel 3 clips
    (``width_scale`` too small) or frames whose aspect ratio leaves most of the output canvas as
    padding. Looks at up to ``max_frames`` evenly spaced frames; returns the summary used."""
    from ..data import evenly_spaced, summarize
    from ..geometry import Letterbox

    m = cfg.model
    recs = list(getattr(frames, "frames", frames))
    recs = [recs[i] for i in evenly_spaced(len(recs), max_frames)]
    s = summarize(recs)
    if not s["image_sizes"]:
        return s
    h, w = (int(v) for v in max(s["image_sizes"], key=s["image_sizes"].get).split("x"))
    lb = Letterbox.fit((h, w), m.output_size)
    box = lb.content_box
    used = (box[2] - box[0]) * (box[3] - box[1]) / (m.output_size[0] * m.output_size[1])
    if used < 0.75:
        log.warning("model.output_size %s vs the data's %dx%d frames: only %.0f %% of the maps "
                    "hold image content (the rest is padding); prefer an output_size with the "
                    "frames' aspect ratio", list(m.output_size), h, w, 100 * used)
    if s["width_px"]:
        max_w = m.width_scale * m.output_size[1] / lb.scale  # source px that ch3 = 1 stands for
        p99 = s["width_px"]["p99"]
        if p99 > max_w:
            log.warning("model.width_scale %.3g covers openings up to %.0f px of these %dx%d "
                        "frames, but 1 %% of the openings exceed %.0f px: they are clipped; "
                        "use width_scale >= %.2f", m.width_scale, max_w, h, w, p99,
                        math.ceil(100 * p99 * lb.scale / m.output_size[1]) / 100)
    ratio = s.get("height_width_ratio")
    if ratio and abs(ratio - m.height_ratio) > 0.25 * ratio:
        log.warning("model.height_ratio %.2f differs from the data's median jaw/opening ratio "
                    "%.2f: decoded rectangles will be %s than the labels", m.height_ratio, ratio,
                    "taller" if m.height_ratio > ratio else "flatter")
    return s


@torch.no_grad()
def init_head_biases(model, dataset, max_frames: int = 8) -> dict:
    """Set each output head's final bias to the activation-inverse of the targets' mean value.

    Means over up to ``max_frames`` evenly spaced training frames: position (ch0) and semantic
    (ch4) over all pixels, width (ch3) and cos/sin (ch1, ch2) over owned pixels. Returns the
    means used. Values are clamped to [1e-3, 1 - 1e-3] (sigmoid) / [-0.999, 0.999] (tanh).
    """
    from ..data import evenly_spaced

    idx = evenly_spaced(len(dataset), max_frames)
    sums = torch.zeros(5, dtype=torch.float64)
    n_all = n_owned = 0
    for i in idx:
        item = dataset[i]
        t, o = item["target"].double(), item["owned"]
        sums[0] += t[0].sum()
        sums[4] += t[4].sum()
        sums[1:4] += t[1:4][:, o].sum(dim=1)
        n_all += t[0].numel()
        n_owned += int(o.sum())
    mean = torch.zeros(5, dtype=torch.float64)
    mean[[0, 4]] = sums[[0, 4]] / max(1, n_all)
    mean[1:4] = sums[1:4] / max(1, n_owned)
    bias = torch.empty(5, dtype=torch.float64)
    for c in (0, 3, 4):
        p = float(mean[c].clamp(1e-3, 1 - 1e-3))
        bias[c] = math.log(p / (1 - p))
    for c in (1, 2):
        bias[c] = torch.atanh(mean[c].clamp(-0.999, 0.999))
    for c, head in enumerate(model.decoder.heads):
        head[-1].bias.fill_(float(bias[c]))
    return {"mean": [round(float(v), 5) for v in mean], "bias": [round(float(v), 4) for v in bias]}
