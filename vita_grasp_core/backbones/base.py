"""Common interface of the frozen encoders."""
from __future__ import annotations

import torch
from torch import nn


class Backbone(nn.Module):
    """A vision encoder that returns multi-layer feature maps.

    :func:`~vita_grasp_core.backbones.registry.build_backbone` sets ``mean``, ``std`` (per-channel
    normalisation of RGB values in [0, 1]) from the registry entry. Subclasses set:
        size_multiple: input H and W must be multiples of this (14 for InternViT, 28 for Qwen2-VL).
        out_channels: channels of each returned feature map.
        stride: input pixels per feature-map cell.
        layers: the 1-based encoder blocks whose outputs are returned.
    and implement :meth:`forward`: ``(B, 3, H, W)`` normalised float -> list of ``(B, C, h, w)``.
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    size_multiple: int
    out_channels: list[int]
    layers: tuple[int, ...]
    stride: int

    def __init__(self, freeze: bool = True):
        super().__init__()
        self.frozen = freeze

    def finalize(self):
        """Apply freezing after weights are loaded."""
        if self.frozen:
            for p in self.parameters():
                p.requires_grad_(False)
            self.eval()
        return self

    def train(self, mode: bool = True):
        # A frozen encoder stays in eval mode whatever the parent module does.
        return super().train(False if self.frozen else mode)

    def check_input(self, pixel_values: torch.Tensor) -> None:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ValueError(f"pixel_values must be (B, 3, H, W), got {tuple(pixel_values.shape)}")
        h, w = pixel_values.shape[-2:]
        m = self.size_multiple
        if h % m or w % m:
            raise ValueError(f"{type(self).__name__} input H, W must be multiples of {m}, "
                             f"got {h}x{w}")
