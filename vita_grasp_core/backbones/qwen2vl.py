"""The Qwen2-VL vision tower (about 675 M parameters with its 7B merger), dynamic resolution.

Input images are packed the way Qwen2-VL's processor does it: patches of 14x14 (x2 frames, the
still image repeated in time) ordered block-major over 2x2 merge blocks. Features are un-permuted
into 2-D raster maps, so token (i, j) of a returned map holds patch (i, j) of the image.
With ``merge_tokens`` (default) each 2x2 merge block - the unit Qwen2-VL's merger hands the
language model - becomes one cell of ``4 * embed_dim`` channels (space-to-depth).
The merger MLP itself is not used: its weights are skipped when loading.
"""
from __future__ import annotations

import logging

import torch
from torch.nn import functional as F

from ..conventions import CLIP_MEAN, CLIP_STD
from .base import Backbone
from .registry import register_backbone, resolve_feature_layers
from .weights import load_prefixed_state, load_strict, read_config, resolve_pretrained

log = logging.getLogger(__name__)


#: Qwen2-VL-7B vision tower.
REAL_CONFIG = dict(depth=32, embed_dim=1280, hidden_size=3584, num_heads=16, mlp_ratio=4,
                   hidden_act="quick_gelu", patch_size=14, temporal_patch_size=2,
                   spatial_merge_size=2, in_channels=3)
_IGNORED = {"model_type", "architectures", "torch_dtype", "dtype", "transformers_version",
            "_name_or_path", "initializer_range"}


def _vision_classes():
    """The one place that touches transformers' internal Qwen2-VL vision module."""
    from transformers import Qwen2VLVisionConfig
    from transformers.models.qwen2_vl.modeling_qwen2_vl import (
        Qwen2VisionTransformerPretrainedModel,
    )

    return Qwen2VLVisionConfig, Qwen2VisionTransformerPretrainedModel


def pack_patches(pixel_values: torch.Tensor, patch: int, merge: int, temporal: int):
    """``(B, C, H, W)`` -> ``(B * gh * gw, C * temporal * patch * patch)`` in Qwen2-VL's order.

    Token order per image: merge-block row, merge-block column, row in block, column in block.
    """
    b, c, h, w = pixel_values.shape
    gh, gw = h // patch, w // patch
    x = pixel_values.reshape(b, c, gh // merge, merge, patch, gw // merge, merge, patch)
    x = x.permute(0, 2, 5, 3, 6, 1, 4, 7)  # b, bh, bw, mh, mw, c, ph, pw
    x = x.unsqueeze(6).expand(-1, -1, -1, -1, -1, -1, temporal, -1, -1)
    return x.reshape(b * gh * gw, c * temporal * patch * patch), gh, gw


def tokens_to_map(tokens: torch.Tensor, b: int, gh: int, gw: int, merge: int) -> torch.Tensor:
    """Inverse of the block-major token order: ``(B * gh * gw, C)`` -> ``(B, C, gh, gw)``
    in raster order."""
    c = tokens.shape[-1]
    x = tokens.reshape(b, gh // merge, gw // merge, merge, merge, c)
    x = x.permute(0, 5, 1, 3, 2, 4)  # b, c, bh, mh, bw, mw
    return x.reshape(b, c, gh, gw)


class Qwen2VLBackbone(Backbone):
    """Qwen2-VL ViT: ``(B, 3, H, W)`` CLIP-normalised, H, W multiples of 28 -> feature maps.

    Returns ``(B, 4 * embed_dim, H/28, W/28)`` per layer with ``merge_tokens``, else
    ``(B, embed_dim, H/14, W/14)``. Pre-merger hidden states (no final norm).
    """


    def __init__(self, vision_config, layers, freeze=True, merge_tokens=True):
        super().__init__(freeze)
        _, model_cls = _vision_classes()
        if max(layers) > vision_config.depth:
            raise ValueError(f"feature_layers {tuple(layers)} exceed the tower's "
                             f"{vision_config.depth} blocks")
        self.vit = model_cls(vision_config)
        self.vit.merger = torch.nn.Identity()  # the language-model projection is not used
        self.layers = tuple(layers)
        self.patch = vision_config.patch_size
        self.merge = vision_config.spatial_merge_size
        self.temporal = vision_config.temporal_patch_size
        self.size_multiple = self.patch * self.merge
        self.merge_tokens = merge_tokens
        c = vision_config.embed_dim
        self.out_channels = [c * self.merge**2 if merge_tokens else c] * len(layers)
        self.stride = self.patch * (self.merge if merge_tokens else 1)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        self.check_input(pixel_values)
        b = pixel_values.shape[0]
        dtype = next(self.vit.parameters()).dtype
        packed, gh, gw = pack_patches(pixel_values.to(dtype), self.patch, self.merge,
                                      self.temporal)
        grid = torch.tensor([[1, gh, gw]] * b, device=pixel_values.device)
        out = self.vit(packed, grid_thw=grid, output_hidden_states=True)
        feats = []
        for i in self.layers:
            m = tokens_to_map(out.hidden_states[i], b, gh, gw, self.merge)
            feats.append(F.pixel_unshuffle(m, self.merge) if self.merge_tokens else m)
        return feats


def _build(kwargs, config):
    cfg_cls, _ = _vision_classes()
    kwargs = dict(kwargs)
    merge_tokens = kwargs.pop("merge_tokens", True)
    vcfg = cfg_cls(**kwargs)
    vcfg._attn_implementation = config.attn_implementation
    return Qwen2VLBackbone(vcfg, resolve_feature_layers(config, vcfg.depth), config.freeze_vit,
                           merge_tokens)


@register_backbone(
    "qwen2vl", hub_id="Qwen/Qwen2-VL-7B-Instruct", depth=32, depth_key="depth", mean=CLIP_MEAN,
    std=CLIP_STD, patch_unit=28, tiny_config=dict(depth=2, embed_dim=64, num_heads=2,
                                                  hidden_size=64),
    tiny_input_size=(112, 168), heavy=True,
    description="Qwen2-VL vision tower (675 M with its merger; dynamic resolution)")
def build_qwen2vl(config) -> Qwen2VLBackbone:
    """From a full Qwen2-VL checkpoint (tower under ``visual.`` or ``model.visual.``), a tower-only
    directory (``qwen2_vl_vision`` config, no prefix), or random weights when
    ``pretrained_model`` is None (``REAL_CONFIG`` updated by ``backbone_config``)."""
    if config.pretrained_model is None:
        return _build({**REAL_CONFIG, **config.backbone_config}, config).finalize()
    directory = resolve_pretrained(config.pretrained_model,
                                   allow_patterns=["*.json", "*.safetensors"])
    raw = read_config(directory)
    mtype = raw.get("model_type")
    if mtype in ("qwen2_vl", "qwen2_vl_vision"):
        vcfg = raw["vision_config"] if mtype == "qwen2_vl" else raw
        prefixes = ["model.visual.", "visual."] if mtype == "qwen2_vl" else ["visual.", ""]
    else:
        raise ValueError(f"{directory}/config.json has model_type {mtype!r}; expected qwen2_vl "
                         "(full checkpoint) or qwen2_vl_vision (tower only)")
    kwargs = {k: v for k, v in vcfg.items() if k not in _IGNORED}
    kwargs.update(config.backbone_config)
    state, prefix = load_prefixed_state(directory, prefixes)  # refused before building
    model = _build(kwargs, config)
    state = {k: v for k, v in state.items() if not k.startswith("merger.")}
    load_strict(model.vit, state, f"Qwen2-VL vision weights in {directory} (prefix {prefix!r})")
    log.info("loaded Qwen2-VL vision tower from %s", directory)
    return model.finalize()
