"""Training of the grasp decoder (optionally the encoder): scripts/train.py / ``vita-grasp train``.

Single process::

    python scripts/train.py --model_type internvit --dataset_root data/graspnet \\
        --output_dir runs/internvit [--config config/internvit_grasp.yaml] [--resume auto] \\
        [--device auto] [--seed 42] [--set train.batch_size=4 --set data.augment=false ...]

Several processes (DistributedDataParallel; gloo on CPU, nccl on CUDA)::

    torchrun --nproc_per_node 4 scripts/train.py ...

Outputs in ``--output_dir``: ``config.yaml`` (resolved), ``best_model.pt`` (best validation top-1),
``last.pt`` (+ optimizer, scheduler, epoch, RNG: ``--resume`` continues from it exactly),
``metrics.jsonl`` (one line per epoch), ``tb/`` (TensorBoard), ``train.log``. See docs/training.md.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import os
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..checkpoint import save_checkpoint
from .config import REPO_ROOT, ConfigError, FullConfig, build_config, load_raw
from .losses import GraspLoss

log = logging.getLogger("vita_grasp.train")


# ----------------------------------------------------------------------------- distributed
class Dist:
    """Process-group facts (a single process is rank 0 of 1)."""

    def __init__(self, device_arg: str = "auto"):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.local_world_size = int(os.environ.get("LOCAL_WORLD_SIZE", str(self.world_size)))
        from ..predictor import resolve_device

        dev = resolve_device(device_arg)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
        self.device = dev
        self.enabled = self.world_size > 1
        if self.enabled and not torch.distributed.is_initialized():
            backend = "nccl" if dev.type == "cuda" else "gloo"
            if dev.type == "cuda":
                torch.cuda.set_device(dev)
            torch.distributed.init_process_group(backend=backend)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_sum(self, values: list[float]) -> list[float]:
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64,
                         device=self.device if self.device.type == "cuda" else "cpu")
        torch.distributed.all_reduce(t)
        return t.cpu().tolist()

    def any(self, flag: bool) -> bool:
        return self.all_reduce_sum([float(flag)])[0] > 0 if self.enabled else bool(flag)

    def close(self) -> None:
        if self.enabled and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


# ----------------------------------------------------------------------------- helpers
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _worker_init(worker_id: int) -> None:
    s = torch.initial_seed() % 2**32  # differs per worker, epoch and rank (loader generator)
    random.seed(s)
    np.random.seed(s)


def rng_state() -> dict:
    """All RNG states as tensors and plain types (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()
    st = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
          "python_version": random.getstate()[0],
          "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)),
                    "pos": int(np_state[2]),
                    "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])}}
    if torch.cuda.is_available():
        st["cuda"] = [s for s in torch.cuda.get_rng_state_all()]
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    random.setstate((st["python_version"], tuple(st["python"]), None))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def lr_lambda_factory(warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warmup from ~0 to 1 over ``warmup_steps``, then cosine down to ``min_ratio``."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms and other 1-D parameters."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def params_finite(model: nn.Module) -> bool:
    return all(torch.isfinite(p).all() for p in model.parameters() if p.requires_grad)


@torch.no_grad()
def init_head_biases(model, dataset, max_frames: int = 8) -> dict:
    """Set each output head's final bias to the activation-inverse of the targets' mean value.

    Means over up to ``max_frames`` evenly spaced training frames: position (ch0) and semantic
    (ch4) over all pixels, width (ch3) and cos/sin (ch1, ch2) over owned pixels. Returns the
    means used. Values are clamped to [1e-3, 1 - 1e-3] (sigmoid) / [-0.999, 0.999] (tanh).
    """
    from ..evaluation import evenly_spaced

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


class _TrainStep(nn.Module):
    """The module DDP wraps: image or cached features -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values=None, features=None):
        feats = features if features is not None else self.model.backbone_features(pixel_values)
        return self.model.decode_logits(feats)


def _base_dataset(ds):
    from .feature_cache import base_dataset

    return base_dataset(ds)


def _tensorboard(logdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # tensorboard is in requirements/core.txt; do not fail without it
        warnings.warn(f"TensorBoard logging disabled: {e} (pip install tensorboard, or run "
                      "`make setup`)", RuntimeWarning, stacklevel=2)
        return None
    return SummaryWriter(str(logdir))


# ----------------------------------------------------------------------------- data
def make_datasets(cfg: FullConfig, model):
    """(train dataset, validation dataset or None) from ``cfg.data`` and the model's geometry."""
    from torch.utils.data import Subset

    from ..data.graspnet import GraspNetDataset
    from ..evaluation import evenly_spaced

    d, m = cfg.data, cfg.model
    if not d.root:
        raise ConfigError("no data set: pass --dataset_root or set data.root")
    common = dict(camera=d.camera, output_size=m.output_size, input_size=m.input_size,
                  mean=model.mean, std=model.std, width_scale=m.width_scale, sigma=d.sigma,
                  max_rects=d.max_rects, score_scale=d.score_scale, min_score=d.min_score,
                  owned_floor=d.owned_floor)
    train = GraspNetDataset(d.root, scenes=d.train_scenes, split=d.train_split,
                            augment=d.make_augment(), seed=cfg.train.seed, **common)
    if d.train_max_frames is not None and d.train_max_frames < len(train):
        train = Subset(train, evenly_spaced(len(train), d.train_max_frames))
    val = None
    if d.val_split is not None or d.val_scenes is not None:
        val = GraspNetDataset(d.root, scenes=d.val_scenes, split=d.val_split, augment=False,
                              seed=cfg.train.seed, **common)
        if d.val_max_frames is not None and d.val_max_frames < len(val):
            val = Subset(val, evenly_spaced(len(val), d.val_max_frames))
    if d.memory_cache:
        from .feature_cache import MemoryCachedDataset

        if val is not None:
            val = MemoryCachedDataset(val)
        if d.augment:
            log.warning("data.memory_cache: only the validation set is cached (augmentation "
                        "changes the training frames every epoch)")
        else:
            train = MemoryCachedDataset(train)
    return train, val


# ----------------------------------------------------------------------------- the trainer
class Trainer:
    """One training run (see module docstring). ``run()`` returns a summary dict."""

    def __init__(self, cfg: FullConfig, output_dir, *, device: str = "auto", resume=None,
                 progress: bool = True):
        self.cfg = cfg
        self.out = Path(output_dir)
        self.progress = progress
        self.dist = Dist(device)
        self.device = self.dist.device
        t = cfg.train
        per_proc = (os.cpu_count() or 1) // max(1, self.dist.local_world_size)
        threads = t.torch_threads or max(1, per_proc)
        torch.set_num_threads(threads)
        self._setup_logging()
        seed_everything(t.seed + self.dist.rank)

        resume_path = self._resolve_resume(resume)
        from ..model import build_model

        if resume_path is not None:
            from ..checkpoint import load_model

            self.model, blob = load_model(resume_path)
            self._check_resume_config(blob, resume_path)
        else:
            blob = None
            self.model = build_model(cfg.model)
        self.model.to(self.device)
        self.model.train()
        log.info("model: %s backbone (%s, %s), decoder %d ch, input %s -> maps %s; trainable "
                 "parameters %.2f M", cfg.model.backbone,
                 cfg.model.pretrained_model or "random init",
                 "frozen" if self.model.backbone.frozen else "trainable",
                 cfg.model.decoder_channels, cfg.model.input_size, cfg.model.output_size,
                 self.model.trainable_parameters() / 1e6)

        self.train_ds, self.val_ds = make_datasets(cfg, self.model)
        if t.head_bias_init and resume_path is None:
            info = init_head_biases(self.model, self.train_ds)
            log.info("output head biases set from the training targets' means %s", info["mean"])
        self.cached = self._setup_feature_cache()
        self.step_module = _TrainStep(self.model)
        if self.dist.enabled:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.criterion = GraspLoss(t.loss)
        self.loader, self.sampler, self.loader_gen = self._make_loader()
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * t.epochs
        self.optimizer = torch.optim.AdamW(param_groups(self.model, t.weight_decay),
                                           lr=t.learning_rate, betas=tuple(t.betas))
        warmup = int(round(t.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda_factory(warmup, self.total_steps, t.min_lr_ratio))
        self.epoch = 0
        self.global_step = 0
        self.best = -1.0
        self.best_epoch = None
        self.nonfinite_total = 0
        if blob is not None:
            self._restore(blob, resume_path)
        self.amp = (torch.autocast("cuda", dtype=torch.bfloat16)
                    if t.amp and self.device.type == "cuda" else contextlib.nullcontext())
        self.tb = None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            for stale in self.out.glob(".*.pt.*.tmp"):  # left by a process killed mid-write
                stale.unlink(missing_ok=True)
            (self.out / "config.yaml").write_text(
                "# Resolved configuration of this run (vita-grasp train).\n" + cfg.to_yaml())
            self.tb = _tensorboard(self.out / "tb")
            self._sync_metrics_file()
        self.dist.barrier()

    # ---------------------------------------------------------------- setup
    def _setup_logging(self) -> None:
        """INFO on rank 0 (WARNING elsewhere) to stderr - unless the caller already attached a
        handler to the ``vita_grasp.train`` logger - and to ``<output_dir>/train.log``."""
        if self.dist.is_main:
            log.setLevel(logging.INFO)
        elif log.level in (logging.NOTSET,) or log.level < logging.WARNING:
            log.setLevel(logging.WARNING)
        fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S")
        if not log.handlers:
            h = logging.StreamHandler(sys.stderr)
            h.setFormatter(fmt)
            log.addHandler(h)
            log.propagate = False
        self._file_handler = None
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            fh = logging.FileHandler(self.out / "train.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(fh)
            self._file_handler = fh
        if self.dist.enabled:
            log.info("distributed: %d processes (%s), this is rank %d", self.dist.world_size,
                     torch.distributed.get_backend(), self.dist.rank)

    def _resolve_resume(self, resume):
        if resume is None:
            if (self.out / "last.pt").is_file() and self.dist.is_main:
                log.warning("%s already holds a last.pt: starting a NEW run that overwrites it "
                            "(pass --resume to continue that run instead)", self.out)
            return None
        if resume == "auto":
            p = self.out / "last.pt"
            if p.is_file():
                return p
            log.info("--resume auto: no %s yet, starting a new run", p)
            return None
        p = Path(resume)
        if p.is_dir():
            p = p / "last.pt"
        if not p.is_file():
            raise FileNotFoundError(f"--resume: checkpoint not found: {p}")
        return p

    def _check_resume_config(self, blob: dict, path) -> None:
        ck = blob["model_config"]
        now = self.cfg.model.to_dict()
        diff = sorted(k for k in set(ck) | set(now) if ck.get(k) != now.get(k))
        if diff:
            raise ConfigError(f"--resume {path}: the checkpoint's model config differs from this "
                              f"run's in {diff} (checkpoint: {[ck.get(k) for k in diff]}, now: "
                              f"{[now.get(k) for k in diff]})")
        old = (blob.get("meta") or {}).get("config") or {}
        new = self.cfg.to_dict()
        for sec in ("data", "train"):
            d = sorted(k for k in set(old.get(sec, {})) | set(new[sec])
                       if old.get(sec, {}).get(k) != new[sec].get(k))
            if d:
                log.warning("resuming with different %s settings: %s", sec,
                            {k: (old.get(sec, {}).get(k), new[sec].get(k)) for k in d})

    def _setup_feature_cache(self) -> bool:
        t = self.cfg.train
        if not t.feature_cache:
            return False
        if not self.model.backbone.frozen:
            log.warning("train.feature_cache ignored: the encoder is trainable "
                        "(freeze_vit: false)")
            return False
        if _base_dataset(self.train_ds).augment is not None:
            log.warning("train.feature_cache ignored for training: augmentation changes every "
                        "frame each epoch (set data.augment: false to cache)")
            return False
        from .feature_cache import (
            CachedFeatureDataset,
            FeatureCache,
            build_cache,
            dataset_signature,
            stored_bytes,
        )

        root = Path(t.feature_cache_dir) if t.feature_cache_dir else self.out / "feature_cache"
        cache = FeatureCache(root, self.cfg.model, dataset_signature(_base_dataset(self.train_ds)))
        t0 = time.perf_counter()
        n = build_cache(self.model, self.train_ds, cache, device=self.device,
                        batch_size=t.batch_size, num_workers=t.num_workers, rank=self.dist.rank,
                        world_size=self.dist.world_size,
                        progress=self.progress and self.dist.is_main)
        self.dist.barrier()
        cached = CachedFeatureDataset(cache, self.train_ds)
        missing = cached.missing()
        if missing:
            raise RuntimeError(f"feature cache {cache.dir} lacks {len(missing)} frames after "
                               "building (a shared file system is needed with several nodes)")
        log.info("feature cache %s: %d frames (%d computed now in %.1f s, %.1f MB on disk)",
                 cache.dir, len(cached), n, time.perf_counter() - t0, stored_bytes(cache) / 1e6)
        self.train_ds = cached
        return True

    def _make_loader(self):
        from torch.utils.data import DataLoader, DistributedSampler

        from ..data.graspnet import collate_fn
        from .feature_cache import cached_collate

        t = self.cfg.train
        sampler = DistributedSampler(self.train_ds, num_replicas=self.dist.world_size,
                                     rank=self.dist.rank, shuffle=True, seed=t.seed,
                                     drop_last=False)
        gen = torch.Generator()
        loader = DataLoader(self.train_ds, batch_size=t.batch_size, sampler=sampler,
                            num_workers=t.num_workers, collate_fn=cached_collate if self.cached
                            else collate_fn, worker_init_fn=_worker_init, generator=gen,
                            pin_memory=self.device.type == "cuda", drop_last=False,
                            persistent_workers=False)
        if len(loader) == 0:
            raise ConfigError("the training set is empty")
        return loader, sampler, gen

    def _restore(self, blob: dict, path) -> None:
        extra = blob.get("extra") or {}
        need = ("optimizer", "scheduler", "epoch")
        if any(k not in extra for k in need):
            raise ValueError(f"--resume {path}: not a resumable checkpoint (no optimizer/"
                             "scheduler state); use last.pt")
        self.optimizer.load_state_dict(extra["optimizer"])
        self.scheduler.load_state_dict(extra["scheduler"])
        self.epoch = int(extra["epoch"])
        self.global_step = int(extra.get("global_step", 0))
        self.best = float(extra.get("best_metric", -1.0))
        self.best_epoch = extra.get("best_epoch")
        self.nonfinite_total = int(extra.get("nonfinite_steps", 0))
        self._resume_record = (blob.get("meta") or {}).get("record")
        rng = extra.get("rng")
        if isinstance(rng, dict) and self.dist.rank in rng:
            set_rng_state(rng[self.dist.rank])
        elif rng is not None:
            log.warning("last.pt has no RNG state for rank %d (different number of processes): "
                        "RNG re-seeded", self.dist.rank)
            seed_everything(self.cfg.train.seed + self.dist.rank + 7919 * self.epoch)
        log.info("resumed from %s: %d epochs done, step %d, best top-1 %.4f", path, self.epoch,
                 self.global_step, self.best)

    def _sync_metrics_file(self) -> None:
        """On resume: keep metrics.jsonl lines of epochs <= the resumed epoch (+ the last one)."""
        path = self.out / "metrics.jsonl"
        if self.epoch == 0:
            if path.exists() and self.global_step == 0:
                path.rename(path.with_suffix(".jsonl.old"))
            return
        rows = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if r.get("epoch", 0) <= self.epoch:
                    rows.append(r)
        rec = getattr(self, "_resume_record", None)
        if rec and not any(r.get("epoch") == self.epoch for r in rows):
            rows.append(rec)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    # ---------------------------------------------------------------- steps
    def train_step(self, batch) -> tuple[dict | None, bool]:
        """One optimisation step. Returns ``(loss parts or None, skipped)``; a non-finite loss or
        gradient (on any rank) skips the update on every rank."""
        dev = self.device
        target = batch["target"].to(dev, non_blocking=True)
        owned = batch["owned"].to(dev, non_blocking=True)
        with self.amp:
            if self.cached:
                logits = self.step_module(features=[f.to(dev, non_blocking=True)
                                                    for f in batch["features"]])
            else:
                logits = self.step_module(pixel_values=batch["image"].to(dev, non_blocking=True))
        loss, parts = self.criterion(logits.float(), target, owned)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces gradients here: a NaN on one rank reaches every rank
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        bad = not (torch.isfinite(loss) and torch.isfinite(norm))
        if self.dist.enabled:
            bad = self.dist.any(bad)
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            return None, True
        self.optimizer.step()
        self.scheduler.step()
        parts = {k: float(v) for k, v in parts.items()}
        parts["grad_norm"] = float(norm)
        return parts, False

    def validate(self) -> dict | None:
        if self.val_ds is None:
            return None
        from ..evaluation import evaluate

        e = self.cfg.train.eval
        res = evaluate(self.model, self.val_ds,
                       batch_size=e.batch_size or self.cfg.train.batch_size,
                       device=self.device,
                       num_workers=self.cfg.train.num_workers, score_threshold=e.score_threshold,
                       max_grasps=e.max_grasps, min_distance=e.min_distance,
                       smooth_sigma=e.smooth_sigma, progress=self.progress,
                       distributed=self.dist.enabled)
        self.model.train()
        return res

    # ---------------------------------------------------------------- checkpoints
    def _meta(self, record: dict) -> dict:
        return {"epoch": self.epoch, "global_step": self.global_step, "best_metric": self.best,
                "best_epoch": self.best_epoch, "record": record, "config": self.cfg.to_dict()}

    def save(self, record: dict, improved: bool) -> None:
        """Rank 0: best_model.pt (when improved) then last.pt, atomically; never with non-finite
        weights (the previous good files stay)."""
        rng = rng_state()
        if self.dist.enabled:  # every rank's RNG, so a resumed DDP run continues exactly
            states = [None] * self.dist.world_size
            torch.distributed.all_gather_object(states, rng)
            rngs = dict(enumerate(states))
        else:
            rngs = {0: rng}
        if not self.dist.is_main:
            return
        if not params_finite(self.model):
            log.error("weights are not finite after epoch %d: checkpoints NOT written (the last "
                      "good ones are kept)", self.epoch)
            return
        meta = self._meta(record)
        if improved:
            save_checkpoint(self.out / "best_model.pt", self.model, meta=meta)
        extra = {"optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
                 "global_step": self.global_step, "best_metric": self.best,
                 "best_epoch": self.best_epoch, "nonfinite_steps": self.nonfinite_total,
                 "rng": rngs}
        save_checkpoint(self.out / "last.pt", self.model, meta=meta, extra=extra)

    # ---------------------------------------------------------------- the loop
    def run(self, stop_after: int | None = None) -> dict:
        """Train until ``train.epochs`` (or, for tests and time-limited jobs, ``stop_after``
        more epochs; the schedule still spans ``train.epochs``, so ``--resume`` continues it)."""
        t = self.cfg.train
        start_epoch = self.epoch
        end_epoch = t.epochs if stop_after is None else min(t.epochs,
                                                            start_epoch + int(stop_after))
        t_run = time.perf_counter()
        log.info("training %d epochs x %d steps (batch %d x %d process(es)), %d train frames%s, "
                 "%s validation frames, device %s, %d threads", t.epochs, self.steps_per_epoch,
                 t.batch_size, self.dist.world_size, len(self.train_ds),
                 " (cached features)" if self.cached else "",
                 "no" if self.val_ds is None else len(self.val_ds), self.device,
                 torch.get_num_threads())
        if start_epoch >= t.epochs:
            log.info("nothing to do: %d epochs already done", start_epoch)
        consecutive_bad = 0
        last_val = None
        for epoch in range(start_epoch, end_epoch):
            t_ep = time.perf_counter()
            self.sampler.set_epoch(epoch)
            base = _base_dataset(self.train_ds)
            if hasattr(base, "set_epoch"):
                base.set_epoch(epoch)
            self.loader_gen.manual_seed(t.seed * 1_000_003 + epoch * 1009 + self.dist.rank)
            sums = {}
            n_ok = n_bad = 0
            it = self.loader
            bar = None
            if self.progress and self.dist.is_main:
                from tqdm import tqdm

                bar = it = tqdm(self.loader, desc=f"epoch {epoch + 1}/{t.epochs}", unit="step",
                                dynamic_ncols=True, leave=False)
            for batch in it:
                parts, skipped = self.train_step(batch)
                self.global_step += 1
                if skipped:
                    n_bad += 1
                    consecutive_bad += 1
                    self.nonfinite_total += 1
                    log.warning("non-finite loss or gradient at step %d: update skipped "
                                "(%d in a row)", self.global_step, consecutive_bad)
                    if consecutive_bad >= t.max_nonfinite_steps:
                        raise FloatingPointError(
                            f"{consecutive_bad} consecutive non-finite steps: aborting (last good "
                            f"checkpoints are in {self.out})")
                    continue
                consecutive_bad = 0
                n_ok += 1
                for k, v in parts.items():
                    sums[k] = sums.get(k, 0.0) + v
                lr = self.scheduler.get_last_lr()[0]
                if bar is not None:
                    bar.set_postfix(loss=f"{sums['total'] / n_ok:.4f}", lr=f"{lr:.2e}")
                if self.tb is not None and self.global_step % t.log_every == 0:
                    for k, v in parts.items():
                        self.tb.add_scalar(f"train/{k}", v, self.global_step)
                    self.tb.add_scalar("train/lr", lr, self.global_step)
            keys = sorted(sums)
            red = self.dist.all_reduce_sum([sums[k] for k in keys] + [n_ok, n_bad])
            n_ok_all, n_bad_all = red[-2], red[-1]
            train_means = {k: red[i] / max(1.0, n_ok_all) for i, k in enumerate(keys)}
            self.epoch = epoch + 1
            do_eval = (self.epoch % t.eval_every == 0) or self.epoch == t.epochs
            val = self.validate() if do_eval else None
            if val is not None:
                last_val = val
            improved = False
            if val is not None and val["num_images"] > 0:
                if val["top1_accuracy"] > self.best:
                    self.best, self.best_epoch, improved = val["top1_accuracy"], self.epoch, True
            elif self.val_ds is None:
                improved = True  # no validation data: best_model.pt follows the latest epoch
            dt = time.perf_counter() - t_ep
            record = {"epoch": self.epoch, "step": self.global_step,
                      "lr": self.scheduler.get_last_lr()[0], "train": train_means,
                      "nonfinite_steps": int(n_bad_all), "epoch_seconds": round(dt, 3),
                      "val": None if val is None else {k: v for k, v in val.items()},
                      "best_top1": self.best, "best_epoch": self.best_epoch}
            self.save(record, improved)
            if self.dist.is_main:
                with open(self.out / "metrics.jsonl", "a") as f:
                    f.write(json.dumps(record) + "\n")
                if self.tb is not None:
                    for k, v in train_means.items():
                        self.tb.add_scalar(f"epoch/train_{k}", v, self.epoch)
                    if val is not None:
                        for k in ("top1_accuracy", "precision@1", "precision@5", "precision@10"):
                            self.tb.add_scalar(f"val/{k}", val[k], self.epoch)
                    self.tb.flush()
                elapsed = time.perf_counter() - t_run
                done = self.epoch - start_epoch
                eta = elapsed / done * (end_epoch - self.epoch)
                vs = ("" if val is None else f" | val top-1 {100 * val['top1_accuracy']:.1f} % "
                      f"P@5 {100 * val['precision@5']:.1f} % (best {100 * self.best:.1f} % @ "
                      f"epoch {self.best_epoch})")
                tm = {k: train_means.get(k, float("nan"))
                      for k in ("total", "position", "angle", "width", "semantic")}
                log.info("epoch %d/%d: loss %.4f (pos %.4f ang %.4f wid %.4f sem %.4f) lr %.2e "
                         "%.1f s%s | ETA %s", self.epoch, t.epochs, tm["total"], tm["position"],
                         tm["angle"], tm["width"], tm["semantic"], record["lr"], dt, vs,
                         _fmt_time(eta))
            self.dist.barrier()
        summary = {"output_dir": str(self.out), "epochs": self.epoch, "steps": self.global_step,
                   "best_top1": self.best, "best_epoch": self.best_epoch, "last_val": last_val,
                   "seconds": round(time.perf_counter() - t_run, 2),
                   "nonfinite_steps": self.nonfinite_total}
        if self.dist.is_main:
            log.info("done: best validation top-1 %.2f %% (epoch %s); %s", 100 * max(self.best, 0),
                     self.best_epoch, self.out)
        return summary

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if getattr(self, "_file_handler", None) is not None:
            log.removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None
        self.dist.close()


def _fmt_time(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


# ----------------------------------------------------------------------------- entry points
def resolve_run_config(model_type: str | None, config: str | None, dataset_root: str | None,
                       seed: int | None, overrides) -> FullConfig:
    """The run's config from the CLI arguments (``--config`` or ``config/<model_type>_grasp.yaml``,
    then ``--set`` overrides, then ``--dataset_root`` / ``--seed``)."""
    if config is None:
        config = str(REPO_ROOT / "config" / f"{model_type or 'internvit'}_grasp.yaml")
    raw = load_raw(config)
    ovr = list(overrides or [])
    if dataset_root is not None:
        ovr.append(f"data.root={json.dumps(str(dataset_root))}")
    if seed is not None:
        ovr.append(f"train.seed={int(seed)}")
    cfg = build_config(raw, ovr)
    if model_type is not None and cfg.model.backbone != model_type:
        raise ConfigError(f"--model_type {model_type} but {config} has model.backbone "
                          f"{cfg.model.backbone!r}: pass the matching --config "
                          f"(config/{model_type}_grasp.yaml) or omit --model_type")
    return cfg


def train(cfg: FullConfig, output_dir, *, resume=None, device: str = "auto",
          progress: bool = True) -> dict:
    """Programmatic entry point: run a whole training and return its summary."""
    trainer = Trainer(cfg, output_dir, device=device, resume=resume, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vita-grasp train | scripts/train.py",
        description="Train the VITA-Grasp decoder on a GraspNet-layout data set "
                    "(torchrun --nproc_per_node N for DistributedDataParallel).",
        epilog="Example: python scripts/train.py --model_type internvit --dataset_root "
               "data/graspnet --output_dir runs/internvit --set train.batch_size=4")
    from ..backbones import list_backbones

    p.add_argument("--model_type", choices=list_backbones(), default=None,
                   help="backbone; selects config/<model_type>_grasp.yaml without --config")
    p.add_argument("--config", default=None, help="YAML config (sections model, data, train)")
    p.add_argument("--dataset_root", default=None, help="data set root (sets data.root)")
    p.add_argument("--output_dir", required=True, help="checkpoints, logs and metrics go here")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from a last.pt (path, run directory, or 'auto' = "
                        "<output_dir>/last.pt if it exists)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--seed", type=int, default=None, help="sets train.seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (dotted, value parsed as YAML), repeatable: "
                        "--set train.epochs=3 --set data.train_scenes=[0,1]")
    p.add_argument("--no_progress", action="store_true", help="no tqdm progress bars")
    p.add_argument("--print_config", action="store_true",
                   help="print the resolved config and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = resolve_run_config(args.model_type, args.config, args.dataset_root, args.seed,
                                 args.overrides)
    except ConfigError as e:
        print(f"train: config error: {e}", file=sys.stderr)
        return 2
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    try:
        summary = train(cfg, args.output_dir, resume=args.resume, device=args.device,
                        progress=not args.no_progress)
    except (ConfigError, FileNotFoundError) as e:
        print(f"train: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:
        print(f"train: {e}", file=sys.stderr)
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in summary.items() if k != "last_val"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
