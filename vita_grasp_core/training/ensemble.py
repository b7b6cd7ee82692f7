"""Decoder ensembles: checkpoints trained separately on one frozen encoder, joined into one.

The joined checkpoint (``model.decoders = N``) runs the encoder once and each member's decoder on
its features, and averages their maps (:class:`~vita_grasp_core.fpn_decoder.DecoderEnsemble`).
Members trained with other seeds (``train.seed``: other augmented views, initialisation and
order) make partly different errors, so the mean is more often right than one of them; the cost
is one decoder pass per member (about a tenth of the encoder's time for DINOv2-S at 224x224).

Averaging changes the heat values, so the score threshold and the quality calibration are
fitted again on the members' validation frames (which must be the same frames: the same data
set and split); the frames the members were scored on stay unseen.
"""
from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import torch

from ..checkpoint import CheckpointError, read_checkpoint, write_checkpoint
from ..model_config import ModelConfig

log = logging.getLogger(__name__)

__all__ = ["EnsembleError", "join_checkpoints"]


class EnsembleError(ValueError):
    """The checkpoints cannot be joined (one line naming the problem)."""


def _member_config(blobs, paths) -> dict:
    """The members' common model config (decoders 1 each; everything else equal)."""
    first = dict(blobs[0]["model_config"])
    for path, b in zip(paths, blobs):
        cfg = dict(b["model_config"])
        if int(cfg.get("decoders", 1)) != 1:
            raise EnsembleError(f"{path} is already an ensemble ({cfg['decoders']} decoders): "
                                "join the single checkpoints instead")
        diff = sorted(k for k in set(cfg) | set(first) if cfg.get(k) != first.get(k))
        if diff:
            raise EnsembleError(f"{path} has another model config than {paths[0]} in {diff}: "
                                "members must share the encoder and the decoder's settings")
    if first.get("train_blocks") or not first.get("freeze_vit", True):
        raise EnsembleError(f"{paths[0]} trains (part of) the encoder: members must share one "
                            "frozen encoder")
    return first


def _encoder_state(blobs, paths) -> dict[str, torch.Tensor]:
    """The encoder weights the members hold (random-init encoders only), which must be equal."""
    states = [{k: v for k, v in b["state_dict"].items() if k.startswith("backbone.")}
              for b in blobs]
    for path, s in zip(paths[1:], states[1:]):
        if s.keys() != states[0].keys() or any(not torch.equal(s[k], states[0][k]) for k in s):
            raise EnsembleError(f"{path} holds other encoder weights than {paths[0]}: members "
                                "must share one encoder")
    return states[0]


def _validation_frames(blobs, paths, dataset_root, predictor):
    """The members' common validation :class:`GraspDataset` (from the training config each
    checkpoint records; samples as ``predictor`` takes them), or ``None`` when they had none."""
    from .data import make_datasets
    from .train_config import ConfigError, build_config

    found = []
    for path, b in zip(paths, blobs):
        raw = (b.get("meta") or {}).get("config")
        if not isinstance(raw, dict):
            raise EnsembleError(f"{path} records no training config (meta.config): its "
                                "validation frames are unknown; pass --no_calibrate to keep the "
                                "first member's threshold and calibration")
        over = [f"data.root={dataset_root}"] if dataset_root is not None else []
        try:
            val = make_datasets(build_config(raw, over), predictor).val
        except ConfigError as e:
            hint = "" if dataset_root is not None else " (pass --dataset_root)"
            raise EnsembleError(f"{path}: its validation frames cannot be read{hint}: {e}"
                                ) from None
        found.append(val)
    keys = [None if v is None else [r.key for r in v.frames] for v in found]
    for path, k in zip(paths[1:], keys[1:]):
        if k != keys[0]:
            raise EnsembleError(f"{path} was validated on other frames than {paths[0]}: members "
                                "must share the data set and its split (data.split_seed, "
                                "val_fraction, test_fold)")
    return found[0]


def join_checkpoints(members, output, *, dataset_root=None, calibrate: bool = True,
                     device: str = "cpu") -> dict:
    """Join trained checkpoints ``members`` (the same frozen encoder and decoder settings, other
    seeds) into one checkpoint at ``output`` whose maps are the mean of theirs, with threshold
    and quality calibration fitted again on their common validation frames (``calibrate``;
    ``dataset_root`` replaces the data root the members recorded). Returns a summary
    (``members``, ``decode``, ``calibration``).

    Raises :class:`EnsembleError` (fewer than 2 members, other configs or encoders, other
    validation frames, unreadable data), :class:`~vita_grasp_core.checkpoint.CheckpointError`
    or ``FileNotFoundError`` (a member that does not load).
    """
    from ..predictor import GraspPredictor
    from ..zoo import file_sha256, resolve_checkpoint

    paths = [resolve_checkpoint(m) for m in members]
    if len(paths) < 2:
        raise EnsembleError(f"an ensemble needs at least 2 checkpoints, got {len(paths)}")
    blobs = [read_checkpoint(p) for p in paths]
    config = dict(_member_config(blobs, paths), decoders=len(paths))
    try:
        ModelConfig.from_dict(config)
    except ValueError as e:  # e.g. more members than model.decoders allows
        raise EnsembleError(f"{len(paths)} members: {e}") from None
    state = dict(_encoder_state(blobs, paths))
    for i, b in enumerate(blobs):
        state.update({f"decoder.members.{i}.{k[len('decoder.'):]}": v
                      for k, v in b["state_dict"].items() if k.startswith("decoder.")})
    meta0 = blobs[0].get("meta") or {}
    meta = {k: meta0[k] for k in ("config", "decode", "recipe", "data", "trained_on")
            if k in meta0}
    meta["ensemble"] = {"members": [str(p) for p in paths],
                        "sha256": [file_sha256(p) for p in paths],
                        "seeds": [((b.get("meta") or {}).get("config") or {}).get("train", {})
                                  .get("seed") for b in blobs]}
    report = None
    if calibrate:
        from .fit_decoding import recalibrate

        with tempfile.TemporaryDirectory() as tmp:
            pred = GraspPredictor.from_checkpoint(
                write_checkpoint(Path(tmp) / "joined.pt", state, config, meta), device=device)
        val = _validation_frames(blobs, paths, dataset_root, pred)
        if val is None:
            log.warning("the members had no validation frames: the first member's threshold "
                        "and calibration are kept")
        else:
            report = recalibrate(pred, val)
            meta["decode"] = pred.decode_config.to_dict()
            meta["calibration"] = report
            log.info("calibrated on %d validation frames: score threshold %.2f",
                     len(val.frames), pred.decode_config.score_threshold)
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    write_checkpoint(output, state, config, meta)
    try:
        GraspPredictor.from_checkpoint(output, device="cpu")
    except (CheckpointError, ValueError) as e:  # pragma: no cover - a bug, not bad input
        output.unlink(missing_ok=True)
        raise EnsembleError(f"the joined checkpoint does not load back: {e}") from None
    return {"members": [str(p) for p in paths], "output": str(output),
            "decode": meta.get("decode"), "calibration": report}
