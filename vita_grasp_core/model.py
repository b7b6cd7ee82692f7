"""GraspModel = frozen ViT encoder + trainable FPN grasp decoder."""
from __future__ import annotations

import dataclasses
from typing import Any

import torch
from torch import nn

from .backbones import build_backbone
from .fpn_decoder import DecoderEnsemble, GraspDecoder
from .model_config import ModelConfig


class GraspModel(nn.Module):
    """``pixel_values (B, 3, H_in, W_in)`` -> ``(B, 5, H_out, W_out)`` maps (CONVENTIONS §3).

    ``pixel_values`` are normalised with the backbone's mean/std (see :mod:`.preprocess`) at
    ``config.input_size``. Output ranges: ch0, ch3, ch4 in [0, 1]; ch1, ch2 in [-1, 1].
    """

    def __init__(self, config: ModelConfig, backbone: nn.Module | None = None):
        super().__init__()
        self.backbone = backbone if backbone is not None else build_backbone(config)
        #: a copy of ``config`` with the feature layers the encoder actually uses (the caller's
        #: config is never changed); checkpoints record this one
        self.config = dataclasses.replace(config, feature_layers=tuple(self.backbone.layers))
        m = self.backbone.size_multiple
        h, w = config.input_size
        if h % m or w % m:
            raise ValueError(f"input_size {config.input_size} must be multiples of {m} for the "
                             f"{config.backbone} backbone")
        decoders = [GraspDecoder(self.backbone.out_channels, config.decoder_channels,
                                 config.output_size, config.decoder_stages, config.image_stem)
                    for _ in range(config.decoders)]
        self.decoder = decoders[0] if len(decoders) == 1 else DecoderEnsemble(decoders)

    @property
    def mean(self):
        return self.backbone.mean

    @property
    def std(self):
        return self.backbone.std

    @property
    def tail_blocks(self) -> int:
        """Trained last blocks of an otherwise frozen encoder (``config.train_blocks``)."""
        return getattr(self.backbone, "tail_blocks", 0)

    @property
    def head_levels(self) -> int:
        """How many of the feature maps the frozen part of the encoder gives (all of them
        unless ``train_blocks`` trains the last blocks)."""
        layers = self.config.feature_layers
        return sum(1 for v in layers if v <= max(layers) - self.tail_blocks)

    def backbone_features(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """The list of ``(B, C, h, w)`` feature maps the decoder consumes.

        Computed under ``torch.no_grad()`` when the encoder is frozen (the decoder still trains);
        with ``train_blocks`` the trained last blocks keep their gradients.
        """
        if self.backbone.frozen and not self.tail_blocks:
            with torch.no_grad():
                return self.backbone(pixel_values)
        return self.backbone(pixel_values)

    @torch.no_grad()
    def cache_features(self, pixel_values: torch.Tensor, tokens_at: int | None = None):
        """What the feature cache stores for a view: ``(maps, tokens)``: the frozen encoder's
        maps of every feature layer, and with ``tokens_at`` the tokens after that block (the
        input of the blocks that ``train_blocks`` trains, :meth:`tail_features`)."""
        if tokens_at is None:
            return self.backbone(pixel_values), None
        if not hasattr(self.backbone, "encode"):
            raise ValueError(f"the {self.config.backbone} encoder cannot cache its tokens")
        return self.backbone.encode(pixel_values, tokens_at)

    def tail_features(self, tokens: torch.Tensor, start: int, input_size=None
                      ) -> list[torch.Tensor]:
        """The maps of the trained last blocks from (cached) tokens after block ``start``
        (``input_size``: of the canvas the tokens came from, default the configured one)."""
        grid = self.backbone.grid(input_size or self.config.input_size)
        dtype = next(self.backbone.parameters()).dtype
        return self.backbone.forward_tail(tokens.to(dtype), start, grid)

    def decode_logits(self, feats: list[torch.Tensor],
                      pixel_values: torch.Tensor | None = None) -> torch.Tensor:
        """Decoder only: features (+ the input image when the decoder has an image stem) ->
        ``(B, 5, H_out, W_out)`` logits (training, feature cache)."""
        dtype = self.decoder.laterals[0].weight.dtype
        return self.decoder([f.to(dtype) for f in feats], pixel_values)

    @property
    def needs_image(self) -> bool:
        """Whether the decoder reads the input image itself (``config.image_stem``)."""
        return self.decoder.stem is not None

    def forward(self, pixel_values: torch.Tensor, return_logits: bool = False) -> torch.Tensor:
        logits = self.decode_logits(self.backbone_features(pixel_values), pixel_values)
        return logits if return_logits else GraspDecoder.activate(logits)

    def trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)


def build_model(config: ModelConfig | dict[str, Any]) -> GraspModel:
    """Build a :class:`GraspModel` from a :class:`ModelConfig` or a plain dict."""
    if isinstance(config, dict):
        config = ModelConfig.from_dict(config)
    elif not isinstance(config, ModelConfig):
        raise TypeError(f"config must be a ModelConfig or dict, got {type(config).__name__}")
    return GraspModel(config)
