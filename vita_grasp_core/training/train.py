"""Training of the grasp decoder (optionally the encoder): scripts/train.py / ``vita-grasp train``.

Single process::

    python scripts/train.py --model_type internvit --dataset_root data/graspnet \\
        --output_dir runs/internvit [--config internvit_grasp.yaml] [--resume auto] \\
        [--device auto] [--seed 42] [--set train.batch_size=4 --set data.augment=false ...]
    python scripts/train.py --config dinov2_cornell.yaml \\
        --dataset_root ../shared/data/cornell --output_dir runs/cornell

Several processes (DistributedDataParallel; gloo on CPU, nccl on CUDA)::

    torchrun --nproc_per_node 4 scripts/train.py ...

Outputs in ``--output_dir``: ``config.yaml`` (resolved), ``best_model.pt`` (best validation top-1,
or the last epoch with ``train.select: last``; with the decoding calibrated on validation),
``last.pt`` (+ optimizer, scheduler, epoch, RNG:
``--resume`` continues from it exactly), ``metrics.jsonl`` (one line per epoch), ``tb/``
(TensorBoard), ``train.log``. See docs/training.md.

The pieces: :mod:`.dist` (processes, seeds, RNG), :mod:`.data` (which frames),
:mod:`.feature_cache` (frozen-encoder features of augmented views), :mod:`.run_checkpoints`
(best/last, resume), :mod:`.run_log` (log, TensorBoard, metrics), :mod:`.fit_decoding` (scores
and threshold), :mod:`.step` (the optimised step: parameter groups, schedule, the module DDP
wraps); the command line is :mod:`vita_grasp_core.cli.train`.
"""
from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .data import check_sizes_against_data, init_head_biases, make_datasets, memory_cached
from .dist import Dist, default_threads, default_workers, seed_everything, worker_init
from .losses import GraspLoss
from .run_checkpoints import Checkpointer, TrainState
from .run_log import RunLog
from .step import TrainStep, cached_or_computed, lr_lambda_factory, param_groups
from .train_config import ConfigError, FullConfig

log = logging.getLogger("vita_grasp.train")


class Trainer:
    """One training run (see module docstring). ``run()`` returns a summary dict."""

    def __init__(self, cfg: FullConfig, output_dir, *, device: str = "auto", resume=None,
                 progress: bool = True):
        self.cfg, self.out, self.progress = cfg, Path(output_dir), progress
        t = cfg.train
        self.dist = Dist(device)
        self.device = self.dist.device
        torch.set_num_threads(t.torch_threads or default_threads(self.dist.local_world_size))
        self.num_workers = default_workers() if t.num_workers is None else t.num_workers
        self.log = RunLog(self.out, self.dist.is_main)
        try:
            self._setup(cfg, resume)
        except BaseException:  # a run that never starts leaves no log handler behind
            self.log.close()
            raise

    def _setup(self, cfg: FullConfig, resume) -> None:
        t = cfg.train
        seed_everything(t.seed + self.dist.rank)
        self.ckpt = Checkpointer(self.out, self.dist, cfg.to_dict())
        resume_path = self.ckpt.resolve_resume(resume)
        if resume_path is not None:
            self.model, blob = self.ckpt.load_for_resume(resume_path, cfg.model.to_dict())
        else:
            from ..model import build_model

            self.model, blob = build_model(cfg.model), None
        self.ckpt.config_dict = {**cfg.to_dict(), "model": self.model.config.to_dict()}
        self.model.to(self.device).train()
        log.info("model: %s backbone (%s, %s), decoder %d ch, input %s -> maps %s; trainable "
                 "parameters %.2f M", cfg.model.backbone,
                 cfg.model.pretrained_model or "random init",
                 ("frozen" if not self.model.tail_blocks else
                  f"frozen but its last {self.model.tail_blocks} blocks")
                 if self.model.backbone.frozen else "trainable",
                 cfg.model.decoder_channels, cfg.model.input_size, cfg.model.output_size,
                 self.model.trainable_parameters() / 1e6)
        data = make_datasets(cfg, self.model)
        log.info("data: %s", data.description)
        self.train_ds, self.val_ds = data.train, data.val
        for name, ds in (("training", self.train_ds), ("validation", self.val_ds)):
            if ds is not None:  # unreadable frames leave before any epoch, never replaced
                c = ds.check_frames()
                log.info("%s frames: %d usable of %d%s", name, c["usable"], c["found"],
                         f" (skipped: {c['skipped']})" if c["removed"] else "")
        if self.dist.is_main:
            check_sizes_against_data(cfg, self.train_ds)
        if t.head_bias_init and resume_path is None:
            info = init_head_biases(self.model, self.train_ds)
            log.info("output head biases set from the training targets' means %s", info["mean"])
        self.cache = None
        self.cached = self._setup_feature_cache()
        if cfg.data.memory_cache and not self.cached:
            self.train_ds, self.val_ds = memory_cached(self.train_ds, self.val_ds)
        self.step_module = TrainStep(self.model)
        if self.dist.enabled:
            self.step_module = nn.parallel.DistributedDataParallel(
                self.step_module, device_ids=[self.device] if self.device.type == "cuda" else None)
        self.criterion = GraspLoss(t.loss)
        self.loader, self.sampler, self.loader_gen = self._make_loader()
        self.steps_per_epoch = len(self.loader)
        self.total_steps = self.steps_per_epoch * t.epochs
        self.optimizer = torch.optim.AdamW(
            param_groups(self.model, t.weight_decay, t.learning_rate, t.encoder_lr_scale),
            lr=t.learning_rate, betas=tuple(t.betas))
        warmup = int(round(t.warmup_epochs * self.steps_per_epoch))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lr_lambda_factory(warmup, self.total_steps, t.min_lr_ratio))
        self.state = TrainState()
        resume_record = None
        if blob is not None:
            self.state = self.ckpt.restore(blob, resume_path, self.optimizer, self.scheduler)
            resume_record = (blob.get("meta") or {}).get("record")
        self.amp = (torch.autocast("cuda", dtype=torch.bfloat16)
                    if t.amp and self.device.type == "cuda" else contextlib.nullcontext())
        self.log.start(cfg.to_yaml(), self.state.epoch, self.state.global_step, resume_record)
        self.dist.barrier()

    # ---------------------------------------------------------------- setup
    def _setup_feature_cache(self) -> bool:
        """Train from cached encoder features (``train.feature_cache``); with augmentation,
        ``train.cache_views`` views per frame. The validation frames' own view is cached too."""
        from .feature_cache import (
            CachedFeatureDataset,
            FeatureCache,
            build_cache,
            cache_tokens_at,
            dataset_signature,
            encoder_fingerprint,
            stored_bytes,
        )

        t = self.cfg.train
        if not t.feature_cache:
            return False
        if not self.model.backbone.frozen:
            log.warning("train.feature_cache ignored: the encoder is trainable "
                        "(freeze_vit: false)")
            return False
        views = t.cache_views if self.train_ds.augment is not None else 1
        root = Path(t.feature_cache_dir) if t.feature_cache_dir else self.out / "feature_cache"
        try:
            tokens_at = cache_tokens_at(self.model.config, t.cache_tokens_at)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        self.cache = FeatureCache(root, self.model.config, dataset_signature(self.train_ds),
                                  encoder_fingerprint(self.model), tokens_at)
        t0 = time.perf_counter()
        kw = dict(device=self.device, batch_size=max(t.batch_size, views), rank=self.dist.rank,
                  world_size=self.dist.world_size, progress=self.progress and self.dist.is_main)
        n = build_cache(self.model, self.train_ds, self.cache, views=views, **kw)
        if self.val_ds is not None:
            n += build_cache(self.model, self.val_ds, self.cache, views=1, **kw)
        self.dist.barrier()
        cached = CachedFeatureDataset(self.cache, self.train_ds, views=views, seed=t.seed)
        if cached.missing():
            raise RuntimeError(f"feature cache {self.cache.dir} lacks {len(cached.missing())} "
                               "frames after building (a shared file system is needed with "
                               "several nodes)")
        log.info("feature cache %s: %d frames x %d view(s) (%d views computed now in %.1f s, "
                 "%.1f MB on disk)", self.cache.dir, len(cached), views, n,
                 time.perf_counter() - t0, stored_bytes(self.cache) / 1e6)
        self.train_ds = cached
        if self.val_ds is not None:
            self.val_ds = CachedFeatureDataset(self.cache, self.val_ds, views=1)
        return True

    def _make_loader(self):
        from torch.utils.data import DataLoader, DistributedSampler

        from ..data import collate_fn
        from .feature_cache import cached_collate

        t = self.cfg.train
        sampler = DistributedSampler(self.train_ds, num_replicas=self.dist.world_size,
                                     rank=self.dist.rank, shuffle=True, seed=t.seed,
                                     drop_last=False)
        gen = torch.Generator()
        loader = DataLoader(self.train_ds, batch_size=t.batch_size, sampler=sampler,
                            num_workers=self.num_workers,
                            collate_fn=cached_collate if self.cached else collate_fn,
                            worker_init_fn=worker_init, generator=gen,
                            pin_memory=self.device.type == "cuda", drop_last=False)
        if len(loader) == 0:
            raise ConfigError("the training set is empty")
        return loader, sampler, gen

    # ---------------------------------------------------------------- steps
    def train_step(self, batch) -> tuple[dict | None, bool]:
        """One optimisation step. Returns ``(loss parts or None, skipped)``; a non-finite loss or
        gradient (on any rank) skips the update on every rank."""
        dev = self.device
        target = batch["target"].to(dev, non_blocking=True)
        owned = batch["owned"].to(dev, non_blocking=True)
        with self.amp:
            if self.cached:
                image = batch.get("image") if self.model.needs_image else None
                tokens = batch.get("tokens")
                logits = self.step_module(
                    features=[f.to(dev, non_blocking=True) for f in batch["features"]],
                    pixel_values=None if image is None else image.to(dev, non_blocking=True),
                    tokens=None if tokens is None else tokens.to(dev, non_blocking=True),
                    tokens_at=self.cache.tokens_at)
            else:
                logits = self.step_module(pixel_values=batch["image"].to(dev, non_blocking=True))
        loss, parts = self.criterion(logits.float(), target, owned)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces gradients here: a NaN on one rank reaches every rank
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = self.cfg.train.grad_clip if self.cfg.train.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, clip)
        bad = self.dist.any(not (torch.isfinite(loss) and torch.isfinite(norm)))
        if bad:
            self.optimizer.zero_grad(set_to_none=True)
            self.scheduler.step()
            return None, True
        self.optimizer.step()
        self.scheduler.step()
        parts = {k: float(v) for k, v in parts.items()}
        parts["grad_norm"] = float(norm)
        return parts, False

    def train_epoch(self, epoch: int, consecutive_bad: int) -> tuple[dict, int, int, int]:
        """One pass over the training frames: ``(mean loss parts, non-finite steps, consecutive
        non-finite steps at the end, frames replaced by another after a read failure)``; raises
        FloatingPointError after too many non-finite steps in a row."""
        t = self.cfg.train
        self.sampler.set_epoch(epoch)
        if hasattr(self.train_ds, "set_epoch"):
            self.train_ds.set_epoch(epoch)
        self.loader_gen.manual_seed(t.seed * 1_000_003 + epoch * 1009 + self.dist.rank)
        sums, n_ok, n_bad, n_replaced = {}, 0, 0, 0
        it = bar = None
        if self.progress and self.dist.is_main:
            from tqdm import tqdm

            it = bar = tqdm(self.loader, desc=f"epoch {epoch + 1}/{t.epochs}", unit="step",
                            dynamic_ncols=True, leave=False)
        for batch in it or self.loader:
            n_replaced += int(batch.get("fallbacks", 0))
            parts, skipped = self.train_step(batch)
            self.state.global_step += 1
            if skipped:
                n_bad += 1
                consecutive_bad += 1
                self.state.nonfinite_steps += 1
                log.warning("non-finite loss or gradient at step %d: update skipped (%d in a "
                            "row)", self.state.global_step, consecutive_bad)
                if consecutive_bad >= t.max_nonfinite_steps:
                    raise FloatingPointError(
                        f"{consecutive_bad} consecutive non-finite steps: aborting (last good "
                        f"checkpoints are in {self.out})")
                continue
            consecutive_bad, n_ok = 0, n_ok + 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            lr = self.scheduler.get_last_lr()[0]
            if bar is not None:
                bar.set_postfix(loss=f"{sums['total'] / n_ok:.4f}", lr=f"{lr:.2e}")
            self.log.step(parts, lr, self.state.global_step, t.log_every)
        keys = sorted(sums)
        red = self.dist.all_reduce_sum([sums[k] for k in keys] + [n_ok, n_bad, n_replaced])
        means = {k: red[i] / max(1.0, red[-3]) for i, k in enumerate(keys)}
        return means, int(red[-2]), consecutive_bad, int(red[-1])

    def validate(self, decode=None, keep_predictions: bool = False,
                 full: bool = False) -> dict | None:
        """Rectangle metric on the validation frames; ``decode`` defaults to ``train.eval``.

        From cached features when training from the cache (the decoder and the trained blocks
        only; test-time augmentation needs whole images, so it is left out there), else - or
        with ``full`` - through a :class:`GraspPredictor` on the images, as the API predicts."""
        if self.val_ds is None:
            return None
        from ..evaluation import EvalOptions, evaluate

        e = self.cfg.train.eval
        decode = decode or e.decode()
        cached = self.cached and not full
        opt = EvalOptions(batch_size=e.batch_size or self.cfg.train.batch_size,
                          num_workers=0 if cached else self.num_workers,
                          progress=self.progress, distributed=self.dist.enabled,
                          keep_predictions=keep_predictions)
        if cached:
            from .feature_cache import cached_collate

            res = evaluate(self._cached_predict_fn(decode.replace(tta=1)), self.val_ds,
                           decode.replace(tta=1), opt, collate=cached_collate)
        else:
            from .feature_cache import base_dataset

            ds = base_dataset(self.val_ds) if self.cached else self.val_ds
            res = evaluate(self.model, ds, decode, opt, device=self.device)
        self.model.train()
        return res

    @torch.no_grad()
    def _cached_predict_fn(self, decode):
        """``fn(batch) -> grasp arrays`` from cached features (decoder and decoding only)."""
        from ..decoding import decode_maps
        from ..geometry import Letterbox
        from ..grasp import grasps_to_array

        model, cfg = self.model, self.cfg.model

        def fn(batch):
            model.eval()
            with torch.no_grad():
                image = batch.get("image") if model.needs_image else None
                tokens = batch.get("tokens")
                feats = cached_or_computed(model, None,
                                           [f.to(self.device) for f in batch["features"]],
                                           None if tokens is None else tokens.to(self.device),
                                           self.cache.tokens_at)
                logits = model.decode_logits(feats,
                                             None if image is None else image.to(self.device))
                maps = model.decoder.activate(logits).float()
            lbs = [Letterbox.fit(s, cfg.output_size) for s in batch["src_size"]]
            out = decode_maps(maps, lbs, width_scale=cfg.width_scale,
                              height_ratio=cfg.height_ratio, decode=decode)
            return [grasps_to_array(g).astype(np.float64) for g in out]

        return fn

    # ---------------------------------------------------------------- the loop
    def run(self, stop_after: int | None = None) -> dict:
        """Train until ``train.epochs`` (or, for tests and time-limited jobs, ``stop_after``
        more epochs; the schedule still spans ``train.epochs``, so ``--resume`` continues it),
        then calibrate the best model's scores on validation (``train.calibrate``)."""
        t, st = self.cfg.train, self.state
        start = st.epoch
        end = t.epochs if stop_after is None else min(t.epochs, start + int(stop_after))
        t_run = time.perf_counter()
        log.info("training %d epochs x %d steps (batch %d x %d process(es)), %d train frames%s, "
                 "%s validation frames, device %s, %d threads, %d loader workers", t.epochs,
                 self.steps_per_epoch, t.batch_size, self.dist.world_size, len(self.train_ds),
                 " (cached features)" if self.cached else "",
                 "no" if self.val_ds is None else len(self.val_ds), self.device,
                 torch.get_num_threads(), self.num_workers)
        if start >= t.epochs:
            log.info("nothing to do: %d epochs already done", start)
        bad_run, last_val = 0, None
        for epoch in range(start, end):
            t_ep = time.perf_counter()
            means, n_bad, bad_run, replaced = self.train_epoch(epoch, bad_run)
            st.epoch = epoch + 1
            val = self.validate() if st.epoch % t.eval_every == 0 or st.epoch == t.epochs \
                else None
            last_val = val or last_val
            score = val["top1_accuracy"] if val is not None and val["num_images"] > 0 else None
            # without validation or with select: last the latest epoch is kept
            improved = (self.val_ds is None or t.select == "last"
                        or (score is not None and score > st.best_metric))
            if improved and score is not None:
                st.best_metric, st.best_epoch = score, st.epoch
            record = {"epoch": st.epoch, "step": st.global_step,
                      "lr": self.scheduler.get_last_lr()[0], "train": means,
                      "nonfinite_steps": n_bad, "replaced_frames": replaced,
                      "epoch_seconds": round(time.perf_counter() - t_ep, 3),
                      "val": val, "best_top1": st.best_metric, "best_epoch": st.best_epoch}
            self.ckpt.save(self.model, st, record, improved, self.optimizer, self.scheduler)
            done = st.epoch - start
            eta = (time.perf_counter() - t_run) / done * (end - st.epoch)
            self.log.epoch(record, t.epochs, eta)
            self.dist.barrier()
        calibration = self.calibrate_best() if t.calibrate and st.epoch >= t.epochs else None
        summary = {"output_dir": str(self.out), "epochs": st.epoch, "steps": st.global_step,
                   "best_top1": st.best_metric, "best_epoch": st.best_epoch,
                   "last_val": last_val, "calibration": calibration,
                   "seconds": round(time.perf_counter() - t_run, 2),
                   "nonfinite_steps": st.nonfinite_steps}
        log.info("done: %s validation top-1 %.2f %% (epoch %s); %s",
                 "best" if t.select == "best" else "last epoch's", 100 * max(st.best_metric, 0),
                 st.best_epoch, self.out)
        return summary

    def calibrate_best(self) -> dict | None:
        """Fit quality calibration and the score threshold on the validation frames with the
        best model's weights, and store them with ``best_model.pt`` (``meta["decode"]``)."""
        from ..checkpoint import load_model, save_checkpoint
        from .fit_decoding import calibrate

        best = self.out / "best_model.pt"
        if self.val_ds is None or not best.is_file():
            log.info("no validation frames: decoding defaults stored as they are (no calibration)")
            return None
        # the best epoch's weights: the decoder, and the encoder too when it was trained
        enc = not self.model.backbone.frozen or self.model.tail_blocks > 0
        parts = [self.model.decoder] + ([self.model.backbone] if enc else [])
        trained = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in parts]
        best_model, blob = load_model(best)
        best_parts = [best_model.decoder] + ([best_model.backbone] if enc else [])
        for m, b in zip(parts, best_parts):
            m.load_state_dict(b.state_dict())
        try:
            base = self.cfg.train.eval.decode()  # with test-time views: scored as predicted
            res = self.validate(keep_predictions=True, full=base.tta > 1)
            decode, report = calibrate(self._gathered(res["predictions"]), base)
        finally:
            for m, state in zip(parts, trained):
                m.load_state_dict(state)
        if self.dist.is_main:
            meta = dict(blob.get("meta") or {}, decode=decode.to_dict(), calibration=report)
            save_checkpoint(best, best_model, meta=meta)
        if "note" in report:
            log.warning("calibration on %d validation frames: %s", report["frames"],
                        report["note"])
        else:
            log.info("calibrated on %d validation frames: score threshold %.2f (top-1 %.1f %% -> "
                     "%.1f %% with it; precision of all grasps %.1f %%)", report["frames"],
                     decode.score_threshold, 100 * report.get("top1_accuracy_threshold0", 0),
                     100 * report.get("top1_accuracy_at_threshold", 0),
                     100 * report.get("precision_all_grasps", 0))
        self.dist.barrier()
        return report

    def _gathered(self, predictions: list) -> list:
        return [p for part in self.dist.gather(predictions).values() for p in part]

    def close(self) -> None:
        self.log.close()
        self.dist.close()


# ----------------------------------------------------------------------------- entry point
def train(cfg: FullConfig, output_dir, *, resume=None, device: str = "auto",
          progress: bool = True) -> dict:
    """Programmatic entry point: run a whole training and return its summary."""
    trainer = Trainer(cfg, output_dir, device=device, resume=resume, progress=progress)
    try:
        return trainer.run()
    finally:
        trainer.close()
