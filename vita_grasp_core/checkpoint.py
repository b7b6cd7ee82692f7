"""Checkpoints: decoder weights + the full model config (+ plain-typed metadata).

Format (``.pt``, the default ``best_model.pt``): a dict of tensors and plain Python types written
with ``torch.save`` and read with ``torch.load(weights_only=True)`` - loading never executes
pickled code. ``.safetensors`` is also supported (config and metadata as JSON in the header).

What is stored: the decoder; the encoder only when it cannot be rebuilt from its reference (no
``pretrained_model``, i.e. random-init encoders in tests) or when it was fine-tuned
(``freeze_vit: false``); with ``train_blocks`` only its trained last blocks. A frozen pretrained
encoder (or the frozen part of one) is referenced, never copied.
Writes are atomic (temp file + ``os.replace``): a killed process leaves the previous file intact.

Errors on load are one line each (command lines print them and exit 2): ``FileNotFoundError``,
:class:`CheckpointError` (what the file is instead: a directory, unknown format, truncated,
pickled objects, NaN weights ...) and :class:`EncoderUnavailableError` (the referenced hub
encoder is not available offline; pass ``--pretrained_model DIR``).
"""
from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch

from .backbones.weights import EncoderUnavailableError
from .fileio import atomic_write
from .model_config import ModelConfig

FORMAT = "vita_grasp.checkpoint/1"

__all__ = ["FORMAT", "CheckpointError", "EncoderUnavailableError", "load_model",
           "model_state_for_checkpoint", "non_finite_tensors", "read_checkpoint",
           "save_checkpoint", "write_checkpoint"]


def _tail_state(model) -> dict[str, torch.Tensor]:
    """The encoder weights of the trained last blocks (``train_blocks``) of a pretrained one."""
    prefixes = model.backbone.tail_prefixes()
    return {k: v for k, v in model.backbone.state_dict().items() if k.startswith(prefixes)}


def model_state_for_checkpoint(model) -> dict[str, torch.Tensor]:
    sd = {f"decoder.{k}": v for k, v in model.decoder.state_dict().items()}
    if model.config.pretrained_model is None or not model.backbone.frozen:
        sd.update({f"backbone.{k}": v for k, v in model.backbone.state_dict().items()})
    elif model.tail_blocks:
        sd.update({f"backbone.{k}": v for k, v in _tail_state(model).items()})
    return {k: v.detach().cpu().contiguous() for k, v in sd.items()}


def save_checkpoint(path, model, *, meta: dict[str, Any] | None = None,
                    extra: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights and config atomically to ``path`` (.pt or .safetensors).

    ``meta``: plain-typed info (epoch, metrics, ...). ``extra``: more tensors/plain state for
    resuming (optimizer, scheduler, RNG), .pt only.
    """
    return write_checkpoint(path, model_state_for_checkpoint(model), model.config.to_dict(),
                            meta, extra)


def write_checkpoint(path, state: dict[str, torch.Tensor], model_config: dict[str, Any],
                     meta: dict[str, Any] | None = None,
                     extra: dict[str, Any] | None = None) -> Path:
    """Write a checkpoint from its parts (``state``: ``decoder.*`` / ``backbone.*`` tensors,
    ``model_config``: :meth:`ModelConfig.to_dict`), atomically; see :func:`save_checkpoint`."""
    path = Path(path)
    meta = dict(meta or {})
    if path.suffix == ".safetensors":
        from .integrity import save_safetensors

        if extra:
            raise ValueError("resume state (extra) needs a .pt checkpoint")
        header = {"format": FORMAT, "model_config": json.dumps(model_config),
                  "meta": json.dumps(meta)}
        atomic_write(path, lambda tmp: save_safetensors(state, tmp, header))
    else:
        blob = {"format": FORMAT, "model_config": model_config, "state_dict": state,
                "meta": meta}
        if extra:
            blob["extra"] = extra

        def write(tmp):
            with open(tmp, "wb") as f:  # a file object: a full disk is an OSError, not torch's
                torch.save(blob, f)     # "unexpected pos"
        atomic_write(path, write)
    return path


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used, with a one-line message that names the file and
    says what it is: a directory, an unknown format, truncated or corrupt, pickled objects, not a
    VITA-Grasp checkpoint, non-finite weights. A ``ValueError``, so callers that catch
    ``ValueError`` keep working; command lines print it and exit 2."""


def _sniff(path: Path) -> str:
    """``torch`` (a zip archive: ``torch.save``), ``pickle`` (torch's legacy format, or any
    pickle), ``safetensors`` (8-byte header length + JSON) or ``unknown``, from the first bytes."""
    with open(path, "rb") as f:
        head = f.read(16)
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "torch"
    if len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
        return "pickle"
    if len(head) >= 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < 1 << 30:
        return "safetensors"
    return "unknown"


def _directory_error(path: Path) -> CheckpointError:
    found = sorted(p.name for p in path.iterdir()
                   if p.is_file() and p.suffix in (".pt", ".safetensors"))
    if "best_model.pt" in found:
        hint = f"; did you mean {path / 'best_model.pt'}?"
    elif found:
        hint = f"; it holds {', '.join(found[:4])}" + (" ..." if len(found) > 4 else "")
    else:
        hint = "; there is none in it"
    return CheckpointError(f"checkpoint {path} is a directory (expected a .pt or .safetensors "
                           f"file{hint})")


def _first_line(e: BaseException) -> str:
    """``Type: first sentence of the message`` (at most 160 characters)."""
    text = (str(e).strip().splitlines() or [""])[0].split(". ")[0]
    return f"{type(e).__name__}: {text[:160]}".rstrip(": ")


def non_finite_tensors(state: dict[str, torch.Tensor]) -> list[str]:
    """Names of the floating-point tensors of ``state`` that hold a NaN or an infinity."""
    return [k for k, v in state.items()
            if torch.is_tensor(v) and v.is_floating_point() and not bool(torch.isfinite(v).all())]


def _verify(path: Path, kind: str) -> None:
    """The stored checksums (:mod:`.integrity`): a damaged file is a :class:`CheckpointError`."""
    from .integrity import IntegrityError, verify_safetensors, verify_zip

    try:
        if kind == "torch":
            verify_zip(path)
        elif kind == "safetensors":
            verify_safetensors(path)
    except IntegrityError as e:
        raise CheckpointError(f"checkpoint {e}; use an earlier checkpoint (or a new copy of "
                              "this one)") from None


def _load_blob(path: Path, kind: str):
    """The raw content of a checkpoint file of a sniffed ``kind``; :class:`CheckpointError`
    when it cannot be read safely."""
    if kind == "unknown":
        raise CheckpointError(f"checkpoint {path} is not a VITA-Grasp checkpoint (unknown file "
                              "format: neither a torch .pt archive nor safetensors)")
    try:
        if kind == "safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                header = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
            blob = {"format": header.get("format"), "state_dict": state,
                    "model_config": json.loads(header.get("model_config", "null")),
                    "meta": json.loads(header.get("meta", "{}"))}
        else:
            with warnings.catch_warnings():  # e.g. "Detected pickle protocol 4": noise here
                warnings.simplefilter("ignore")
                blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        if "Weights only load failed" in str(e):  # torch's hint to disable the check is unsafe
            what = ("holds pickled Python objects besides tensors and plain types (e.g. a whole "
                    "saved module)" if kind == "torch" else
                    "is pickle data, not a plain tensors-and-types torch checkpoint")
            raise CheckpointError(f"checkpoint {path} {what}; refusing to unpickle it, which "
                                  "could run code") from None
        what = {"torch": "a torch .pt archive", "pickle": "pickle data",
                "safetensors": "a safetensors file"}[kind]
        raise CheckpointError(f"checkpoint {path} is truncated or corrupt ({what} that cannot be "
                              f"read: {_first_line(e)})") from e
    return blob


def _check_layout(path: Path, blob) -> None:
    """:class:`CheckpointError` unless ``blob`` is a VITA-Grasp checkpoint with its parts."""
    if not isinstance(blob, dict) or blob.get("format") != FORMAT:
        if isinstance(blob, dict) and "format" not in blob and blob and all(
                torch.is_tensor(v) for v in blob.values()):
            what = ("a bare state_dict without the model config; write checkpoints with "
                    "vita_grasp_core.checkpoint.save_checkpoint")
        else:
            fmt = blob.get("format") if isinstance(blob, dict) else type(blob).__name__
            what = f"format {fmt!r}, expected {FORMAT!r}"
        raise CheckpointError(f"checkpoint {path} is not a VITA-Grasp checkpoint ({what})")
    if not isinstance(blob.get("model_config"), dict) or not isinstance(blob.get("state_dict"),
                                                                         dict):
        raise CheckpointError(f"checkpoint {path} lacks model_config or state_dict")


def read_checkpoint(path, *, check_finite: bool = True) -> dict[str, Any]:
    """Read a checkpoint into ``{"model_config", "state_dict", "meta", "extra"}`` without building
    a model.

    The format is recognised from the file's first bytes (a torch zip archive or legacy pickle,
    read with ``weights_only=True``; or safetensors), not from its suffix. Stored checksums are
    verified first (the zip archive's CRCs; a safetensors file's ``data_sha256``), so a file
    damaged after it was written is refused instead of loaded. With
    ``check_finite`` a state with NaN or inf weights is refused (such a model only outputs NaN).

    Raises:
        FileNotFoundError: no such file.
        CheckpointError (a ``ValueError``): a directory, an empty, unknown, truncated or corrupt
            file, pickled objects other than tensors and plain types, another format, missing
            parts, non-finite weights. One line naming the file and the problem.
    """
    from .zoo import resolve_checkpoint

    path = resolve_checkpoint(path)
    if path.is_dir():
        raise _directory_error(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size == 0:
        raise CheckpointError(f"checkpoint {path} is empty (0 bytes)")
    kind = _sniff(path)
    _verify(path, kind)
    blob = _load_blob(path, kind)
    _check_layout(path, blob)
    if check_finite:
        bad = non_finite_tensors(blob["state_dict"])
        if bad:
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise CheckpointError(
                f"checkpoint {path} has NaN or inf weights in {len(bad)} tensor(s): "
                f"{', '.join(bad[:5])}{more}; such a model outputs no usable maps (training "
                "diverged?): use an earlier checkpoint")
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
        raise CheckpointError(f"checkpoint {path} has an invalid model config: {e}") from e
    model = build_model(config)
    state = blob["state_dict"]
    dec = {k[len("decoder."):]: v for k, v in state.items() if k.startswith("decoder.")}
    load_strict(model.decoder, dec, f"decoder weights in {path}")
    bb = {k[len("backbone."):]: v for k, v in state.items() if k.startswith("backbone.")}
    if bb and model.tail_blocks and config.pretrained_model is not None:
        _load_tail(model, bb, path)
    elif bb:
        load_strict(model.backbone, bb, f"encoder weights in {path}")
    elif config.pretrained_model is None:
        raise ValueError(f"checkpoint {path} has a random-init encoder (no pretrained_model) but "
                         "no encoder weights: it cannot be rebuilt")
    elif model.tail_blocks:
        raise CheckpointError(f"checkpoint {path} trains the encoder's last "
                              f"{model.tail_blocks} blocks (train_blocks) but holds no weights "
                              "for them")
    other = sorted(k for k in state if not k.startswith(("decoder.", "backbone.")))
    if other:
        raise ValueError(f"checkpoint {path} has unexpected weights: {other[:10]}")
    model.backbone.finalize()
    return model.to(map_location), blob


def _load_tail(model, state: dict, path) -> None:
    """The trained last blocks over the pretrained encoder: exactly those blocks' keys."""
    want = _tail_state(model)
    missing, unexpected = sorted(set(want) - set(state)), sorted(set(state) - set(want))
    if missing or unexpected:
        raise CheckpointError(f"checkpoint {path}: the encoder weights do not match its last "
                              f"{model.tail_blocks} blocks (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]})")
    try:
        model.backbone.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shapes
        raise CheckpointError(f"checkpoint {path}: encoder block weights do not fit the model "
                              f"({_first_line(e)})") from None
