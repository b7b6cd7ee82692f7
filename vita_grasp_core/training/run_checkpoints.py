"""Checkpoints of a training run: ``best_model.pt`` and ``last.pt`` (resume), written atomically.

``last.pt`` holds the model plus ``extra``: optimizer, scheduler, the :class:`TrainState` and the
RNG state of every rank, so ``--resume`` continues a run exactly. Nothing is written from
non-finite weights: the last good files stay and the run stops (``FloatingPointError``, exit 1).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from ..checkpoint import save_checkpoint
from .dist import Dist, rng_state, seed_everything, set_rng_state
from .train_config import ConfigError

log = logging.getLogger("vita_grasp.train")


@dataclass
class TrainState:
    """Progress of a run (what a resume restores besides weights and optimizer)."""

    epoch: int = 0
    global_step: int = 0
    best_metric: float = -1.0
    best_epoch: int | None = None
    nonfinite_steps: int = 0


class ResumeError(ConfigError):
    """``--resume`` cannot continue from the given checkpoint (message says why)."""


def params_finite(model) -> bool:
    return all(bool(p.isfinite().all()) for p in model.parameters() if p.requires_grad)


class Checkpointer:
    """Writes and reads the run's checkpoints in ``out`` (rank 0 writes)."""

    def __init__(self, out: Path, dist: Dist, config_dict: dict):
        self.out = Path(out)
        self.dist = dist
        self.config_dict = config_dict

    # ---------------------------------------------------------------- resume
    def resolve_resume(self, resume) -> Path | None:
        """``None`` (new run), ``"auto"`` (``out/last.pt`` if present) or a file / run dir."""
        for name in ("last.pt", "best_model.pt"):  # found now, not after a whole epoch
            p = self.out / name
            if p.exists() and not p.is_file():
                raise ConfigError(f"{p} exists and is not a file (a directory?): this run "
                                  f"could never write its checkpoint; move it away")
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

    def load_for_resume(self, path: Path, model_config: dict):
        """``(model, blob)`` from ``path``; a corrupt or foreign file is a :class:`ResumeError`."""
        from ..checkpoint import load_model

        try:
            model, blob = load_model(path)
        except (ValueError, OSError, RuntimeError) as e:
            raise ResumeError(f"--resume {path}: cannot continue from it: {e}. Start a new run "
                              "(without --resume) or point --resume at a good last.pt") from None
        ck = {**model.config.to_dict(), **blob["model_config"]}  # keys newer than the file
        diff = sorted(k for k in set(ck) | set(model_config) if ck.get(k) != model_config.get(k)
                      and not (k == "feature_layers" and model_config.get(k) is None))
        if diff:
            raise ConfigError(f"--resume {path}: the checkpoint's model config differs from this "
                              f"run's in {diff} (checkpoint: {[ck.get(k) for k in diff]}, now: "
                              f"{[model_config.get(k) for k in diff]})")
        old = (blob.get("meta") or {}).get("config") or {}
        for sec in ("data", "train"):
            new_sec, old_sec = self.config_dict[sec], old.get(sec, {})
            d = sorted(k for k in set(old_sec) | set(new_sec) if old_sec.get(k) != new_sec.get(k))
            if d:
                log.warning("resuming with different %s settings: %s", sec,
                            {k: (old_sec.get(k), new_sec.get(k)) for k in d})
        return model, blob

    def restore(self, blob: dict, path, optimizer, scheduler) -> TrainState:
        """Optimizer, scheduler, RNG and :class:`TrainState` from a ``last.pt`` blob."""
        extra = blob.get("extra") or {}
        if any(k not in extra for k in ("optimizer", "scheduler", "epoch")):
            raise ResumeError(f"--resume {path}: not a resumable checkpoint (no optimizer/"
                              "scheduler state); use last.pt")
        try:
            optimizer.load_state_dict(extra["optimizer"])
            scheduler.load_state_dict(extra["scheduler"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise ResumeError(f"--resume {path}: its optimizer state does not fit this run "
                              f"({e})") from None
        state = TrainState(epoch=int(extra["epoch"]),
                           global_step=int(extra.get("global_step", 0)),
                           best_metric=float(extra.get("best_metric", -1.0)),
                           best_epoch=extra.get("best_epoch"),
                           nonfinite_steps=int(extra.get("nonfinite_steps", 0)))
        rng = extra.get("rng")
        if isinstance(rng, dict) and self.dist.rank in rng:
            set_rng_state(rng[self.dist.rank])
        elif rng is not None:
            log.warning("last.pt has no RNG state for rank %d (different number of processes): "
                        "RNG re-seeded", self.dist.rank)
            seed = int(self.config_dict["train"]["seed"])
            seed_everything(seed + self.dist.rank + 7919 * state.epoch)
        log.info("resumed from %s: %d epochs done, step %d, best top-1 %.4f", path, state.epoch,
                 state.global_step, state.best_metric)
        return state

    # ---------------------------------------------------------------- saving
    def meta(self, state: TrainState, record: dict) -> dict:
        return {"epoch": state.epoch, "global_step": state.global_step,
                "best_metric": state.best_metric, "best_epoch": state.best_epoch,
                "record": record, "config": self.config_dict}

    def save(self, model, state: TrainState, record: dict, improved: bool, optimizer,
             scheduler) -> None:
        """Rank 0: ``best_model.pt`` (when improved) then ``last.pt``; every rank's RNG state
        is gathered first, so a resumed DDP run continues exactly."""
        rngs = self.dist.gather(rng_state())
        if not self.dist.is_main:
            return
        if not params_finite(model):  # the run cannot go on: stop (exit 1), keep the files
            raise FloatingPointError(f"weights are not finite after epoch {state.epoch}: "
                                     f"checkpoints NOT written (the last good ones in {self.out} "
                                     "are kept)")
        meta = self.meta(state, record)
        if improved:
            save_checkpoint(self.out / "best_model.pt", model, meta=meta)
        extra = {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                 **asdict(state), "rng": rngs}
        save_checkpoint(self.out / "last.pt", model, meta=meta, extra=extra)
