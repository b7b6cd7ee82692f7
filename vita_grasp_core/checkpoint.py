"""Checkpoints: decoder weights + the full model config (+ plain-typed metadata).

Format (``.pt``, the default ``best_model.pt``): a dict of tensors and plain Python types written
with ``torch.save`` and read with ``torch.load(weights_only=True)`` - loading never executes pickled
code. ``.safetensors`` is also supported (config and metadata as JSON in the header).

What is stored: the decoder; the encoder only when it cannot be rebuilt from its reference (no
``pretrained_model``, i.e. random-init encoders in tests) or when it was fine-tuned
(``freeze_vit: false``). A frozen pretrained encoder is referenced, never copied.
Writes are atomic (temp file + ``os.replace``): a killed process leaves the previous file intact.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from .config import ModelConfig
from .fileio import atomic_write

FORMAT = "vita_grasp.checkpoint/1"


def model_state_for_checkpoint(model) -> dict[str, torch.Tensor]:
    sd = {f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}
    if model.config.pretrained_model is None or not model.backbone.frozen:
        sd.update({f"backbone.{k}": v for k, v in model.backbone.state_dict().items()})
    return {k: v.detach().cpu().contiguous() for k, v in sd.items()}


def save_checkpoint(path, model, *, meta: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and config atomically to ``path`` (.pt or .safetensors).

    ``meta``: plain-typed info (epoch, metrics, ...). ``extra``: more tensors/plain state for
    resuming (optimizer, scheduler, RNG), .pt only.
    """
    path = Path(path)
    state = model_state_for_checkpoint(model)
    cfg = model.config.to_dict()
    meta = dict(meta or {})
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        if extra:
            raise ValueError("resume state (extra) needs a .pt checkpoint")
        header = {"format": FORMAT, "model_config": json.dumps(cfg), "meta": json.dumps(meta)}
        atomic_write(path, lambda tmp: save_file(state, tmp, metadata=header))
    else:
        blob = {"format": FORMAT, "model_config": cfg, "state_dict": state, "meta": meta}
        if extra:
            blob["extra"] = extra
        atomic_write(path, lambda tmp: torch.save(blob, tmp))
    return path


def read_checkpoint(path) -> dict[str, Any]:
    """Read a checkpoint into ``{"model_config", "state_dict", "meta", "extra"}`` without building
    a model. Raises ``FileNotFoundError`` / ``ValueError`` with the path and the reason."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise ValueError(f"checkpoint {path} is empty (0 bytes)")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
            blob = {"format": header.get("format"), "state_dict": state,
                    "model_config": json.loads(header.get("model_config", "null")),
                    "meta": json.loads(header.get("meta", "{}"))}
        else:
            blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        if "Weights only load failed" in first:  # torch's hint to disable the check is unsafe
            first = "not a plain tensors-and-types file; refusing to unpickle arbitrary objects"
        raise ValueError(f"checkpoint {path} is corrupt, truncated or not a VITA-Grasp checkpoint "
                         f"({type(e).__name__}: {first[:200]})") from e
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        raise ValueError(f"checkpoint {path} is not a VITA-Grasp checkpoint (format "
                         f"{blob.get('format') if isinstance(blob, dict) else type(blob).__name__!r}, "
                         f"expected {FORMAT!r})")
    if not isinstance(blob.get("model_config"), dict) or not isinstance(blob.get("state_dict"), dict):
        raise ValueError(f"checkpoint {path} lacks model_config or state_dict")
    blob.setdefault("meta", {})
    return blob


def load_model(path, *, pretrained_model: str | None = None, map_location="cpu"):
    """Rebuild the model a checkpoint describes and load its weights strictly.

    ``pretrained_model`` overrides the encoder reference stored in the checkpoint (e.g. a local
    copy of the hub weights on a robot without network). Returns ``(model, blob)``.
    """
    from .backbones.weights import load_strict
    from .model import build_model

    blob = read_checkpoint(path)
    cfg = dict(blob["model_config"])
    if pretrained_model is not None:
        cfg["pretrained_model"] = pretrained_model
    try:
        config = ModelConfig.from_dict(cfg)
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {path} has an invalid model config: {e}") from e
    model = build_model(config)
    state = blob["state_dict"]
    dec = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    load_strict(model.decoder, dec, f"decoder weights in {path}")
    bb = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if bb:
        load_strict(model.backbone, bb, f"encoder weights in {path}")
    elif config.pretrained_model is None:
        raise ValueError(f"checkpoint {path} has a random-init encoder (no pretrained_model) but "
                         "no encoder weights: it cannot be rebuilt")
    other = sorted(k for k in state if not k.startswith(("decoder.", "backbone.")))
    if other:
        raise ValueError(f"checkpoint {path} has unexpected weights: {other[:10]}")
    model.backbone.finalize()
    return model.to(map_location), blob
