"""InternViT-300M-448px (the vision encoder of VITA / InternVL) on transformers'
``InternVLVisionModel``.

Loads either layout of ``pretrained_model`` (hub id or local directory):
- the original OpenGVLab repo (config ``model_type: intern_vit_6b`` or ``internvl_chat`` with a
  ``vision_config``; keys like ``encoder.layers.N.attn.qkv`` with q|k|v fused, with or without the
  ``vision_model.`` prefix), converted key by key;
- the native transformers layout (``internvl_vision`` / ``internvl`` configs).
Loading is strict: missing or unexpected keys are an error naming them.
"""
from __future__ import annotations

import logging
import re

import torch

from ..conventions import IMAGENET_MEAN, IMAGENET_STD
from .base import BlockViT
from .registry import register_backbone, resolve_feature_layers
from .weights import load_prefixed_state, load_strict, read_config, resolve_pretrained

log = logging.getLogger(__name__)


#: InternViT-300M-448px (measured: 304.0 M parameters).
REAL_CONFIG = dict(
    hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
    patch_size=14, image_size=448, attention_bias=True, use_qk_norm=False,
    layer_scale_init_value=0.1, norm_type="layer_norm", layer_norm_eps=1e-6, hidden_act="gelu",
    use_mean_pooling=True,
)

# original config name -> InternVLVisionConfig name
_ORIGINAL_CONFIG_MAP = {
    "hidden_size": "hidden_size", "num_hidden_layers": "num_hidden_layers",
    "num_attention_heads": "num_attention_heads", "intermediate_size": "intermediate_size",
    "patch_size": "patch_size", "image_size": "image_size", "num_channels": "num_channels",
    "qkv_bias": "attention_bias", "qk_normalization": "use_qk_norm", "norm_type": "norm_type",
    "layer_norm_eps": "layer_norm_eps", "hidden_act": "hidden_act",
    "initializer_factor": "layer_scale_init_value", "initializer_range": "initializer_range",
    "attention_dropout": "attention_dropout",
}
# original fields that do not change the computation at inference time
_ORIGINAL_CONFIG_IGNORED = {
    "model_type", "architectures", "auto_map", "torch_dtype", "transformers_version",
    "use_flash_attn", "drop_path_rate", "dropout", "_name_or_path", "dtype", "use_bfloat16",
}


def original_to_native_config(cfg: dict) -> dict:
    """Map an original ``intern_vit_6b`` config dict to ``InternVLVisionConfig`` kwargs.

    Unknown fields raise (silently ignoring them would change the network without notice).
    """
    out = {"use_mean_pooling": True}  # the original has no final norm
    unknown = []
    for k, v in cfg.items():
        if k in _ORIGINAL_CONFIG_MAP:
            out[_ORIGINAL_CONFIG_MAP[k]] = v
        elif k not in _ORIGINAL_CONFIG_IGNORED:
            unknown.append(k)
    if unknown:
        raise ValueError(f"unsupported fields in original InternViT config: {sorted(unknown)}")
    return out


def original_to_native_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename original InternViT keys to InternVLVisionModel keys and split the fused qkv."""
    out = {}
    for k, v in state.items():
        k2 = (k.replace("embeddings.class_embedding", "embeddings.cls_token")
               .replace("embeddings.position_embedding", "embeddings.position_embeddings")
               .replace("embeddings.patch_embedding", "embeddings.patch_embeddings.projection"))
        k2 = re.sub(r"^encoder\.layers\.(\d+)\.", r"encoder.layer.\1.", k2)
        if ".attn.qkv." in k2:
            q, kk, vv = v.chunk(3, dim=0)
            base = k2.replace(".attn.qkv.", ".attention.")
            for name, t in (("q_proj", q), ("k_proj", kk), ("v_proj", vv)):
                out[base.replace(".attention.", f".attention.{name}.")] = t.contiguous()
            continue
        k2 = (k2.replace(".attn.proj.", ".attention.projection_layer.")
                .replace(".attn.q_norm.", ".attention.q_norm.")
                .replace(".attn.k_norm.", ".attention.k_norm.")
                .replace(".norm1.", ".layernorm_before.").replace(".norm2.", ".layernorm_after."))
        k2 = re.sub(r"\.ls1$", ".lambda_1", k2)
        k2 = re.sub(r"\.ls2$", ".lambda_2", k2)
        out[k2] = v
    return out


def _make_vision_config(kwargs: dict, attn_implementation: str):
    from transformers import InternVLVisionConfig

    cfg = InternVLVisionConfig(**kwargs)
    cfg._attn_implementation = _pick_attention(attn_implementation)
    return cfg


def _pick_attention(requested: str) -> str:
    if requested == "flash_attention_2":
        try:
            import flash_attn  # noqa: F401
        except ImportError:
            log.warning("flash_attention_2 requested but flash-attn is not installed; using sdpa")
            return "sdpa"
    return requested


class InternViTBackbone(BlockViT):
    """InternViT returning the patch-token maps of ``layers`` (1-based block indices).

    Input: ``(B, 3, H, W)`` ImageNet-normalised, H and W multiples of 14 (position embeddings are
    interpolated). Output: list of ``(B, hidden, H/14, W/14)``; the CLS token is dropped and blocks
    after the deepest requested layer are not run.
    """


    def __init__(self, vision_config, layers, freeze=True):
        super().__init__(freeze)
        from transformers import InternVLVisionModel

        n = vision_config.num_hidden_layers
        if max(layers) > n:
            raise ValueError(f"feature_layers {tuple(layers)} exceed the encoder's {n} layers")
        self.vit = InternVLVisionModel(vision_config)
        self.layers = tuple(layers)
        self.out_channels = [vision_config.hidden_size] * len(layers)
        self.stride = vision_config.patch_size[0] if isinstance(
            vision_config.patch_size, (list, tuple)) else vision_config.patch_size
        self.size_multiple = self.stride


@register_backbone(
    "internvit", hub_id="OpenGVLab/InternViT-300M-448px", depth=24, depth_key="num_hidden_layers",
    mean=IMAGENET_MEAN, std=IMAGENET_STD, patch_unit=14,
    tiny_config=dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=128),
    tiny_input_size=(112, 140),
    description="InternViT-300M-448px, the vision encoder of VITA / InternVL (recommended)")
def build_internvit(config) -> InternViTBackbone:
    """Build InternViT from ``config.pretrained_model`` (either layout) or, when it is None, with
    random weights from ``REAL_CONFIG`` updated by ``config.backbone_config``."""
    if config.pretrained_model is None:
        kwargs = {**REAL_CONFIG, **config.backbone_config}
        vcfg = _make_vision_config(kwargs, config.attn_implementation)
        model = InternViTBackbone(vcfg, resolve_feature_layers(config, vcfg.num_hidden_layers),
                                  config.freeze_vit)
        return model.finalize()

    directory = resolve_pretrained(config.pretrained_model,
                                   allow_patterns=["*.json", "*.safetensors", "*.py"])
    raw = read_config(directory)
    mtype = raw.get("model_type")
    if mtype == "intern_vit_6b":
        layout, vcfg, prefixes = "original", raw, ["", "vision_model."]
    elif mtype == "internvl_chat":
        layout, vcfg, prefixes = "original", raw["vision_config"], ["vision_model."]
    elif mtype == "internvl_vision":
        layout, vcfg, prefixes = "native", raw, ["", "vision_tower.", "model.vision_tower."]
    elif mtype == "internvl":
        layout, vcfg = "native", raw["vision_config"]
        prefixes = ["model.vision_tower.", "vision_tower."]
    else:
        raise ValueError(f"{directory}/config.json has model_type {mtype!r}; expected "
                         "intern_vit_6b, "
                         "internvl_chat, internvl_vision or internvl")
    if layout == "original":
        kwargs = original_to_native_config(vcfg)
    else:
        kwargs = {k: v for k, v in vcfg.items() if k not in _ORIGINAL_CONFIG_IGNORED}
    kwargs.update(config.backbone_config)
    vcfg = _make_vision_config(kwargs, config.attn_implementation)
    state, prefix = load_prefixed_state(directory, prefixes)  # refused before building
    model = InternViTBackbone(vcfg, resolve_feature_layers(config, vcfg.num_hidden_layers),
                              config.freeze_vit)
    if layout == "original":
        state = original_to_native_state(state)
    load_strict(model.vit, state, f"InternViT weights in {directory} (prefix {prefix!r})")
    log.info("loaded InternViT (%s layout) from %s", layout, directory)
    return model.finalize()
