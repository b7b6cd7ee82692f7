"""Reading encoder weights from local checkpoint directories (safetensors first, never pickle)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch


def resolve_pretrained(name_or_path: str, allow_patterns=None) -> Path:
    """A local directory, or a hub id resolved through the local cache / a download.

    Raises a clear error when the id is neither a directory nor reachable.
    """
    p = Path(os.path.expanduser(name_or_path))
    if p.is_dir():
        return p
    if p.exists():
        raise ValueError(f"pretrained_model {name_or_path!r} is a file; give the checkpoint directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name_or_path, allow_patterns=allow_patterns))
    except Exception as e:  # offline, unknown repo, auth ...
        raise RuntimeError(
            f"cannot find pretrained_model {name_or_path!r}: not a local directory and the hub "
            f"download failed ({type(e).__name__}: {e}). Download it on a connected machine "
            f"(`huggingface-cli download {name_or_path} --local-dir DIR`) and pass DIR."
        ) from e


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


def load_prefixed_state(directory: Path, prefixes: list[str]) -> tuple[dict[str, torch.Tensor], str]:
    """Tensors whose names start with the first prefix in ``prefixes`` that matches any key.

    Only the matching tensors are read (safetensors is lazy), so a full VLM checkpoint does not load
    its language model. Returns ``(state_without_prefix, prefix_used)``.
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
            keys_by_file[f] = list(torch.load(f, map_location="cpu", weights_only=True).keys())
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
            sd = torch.load(f, map_location="cpu", weights_only=True)
            for k in wanted:
                state[k[len(prefix):]] = sd[k]
    return state, prefix


def load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that names missing/unexpected/mis-shaped keys."""
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
