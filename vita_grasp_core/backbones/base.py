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


class BlockViT(Backbone):
    """An encoder built as ``vit.embeddings`` + a list of blocks ``vit.encoder.layer`` whose
    hidden states, without the leading CLS token, reshape to the patch grid (DINOv2, InternViT).

    It can run in parts (``model.train_blocks``): the frozen *head* (embeddings and blocks
    ``1 .. split``) and the *tail*, the last ``tail_blocks`` of the blocks it runs (up to
    ``max(layers)``), which may train with the decoder. The feature cache
    (:mod:`vita_grasp_core.training.feature_cache`) stores the frozen encoder's maps and the
    tokens after one block once per augmented view; training then runs only the blocks after
    those tokens (:meth:`forward_tail`).

    Subclasses set ``vit``, ``layers`` (1-based block indices of the returned maps) and
    ``stride`` (pixels per patch).
    """

    vit: nn.Module
    layers: tuple[int, ...]
    tail_blocks: int = 0

    def set_tail_blocks(self, n: int) -> None:
        """Train the last ``n`` blocks that run (call before :meth:`finalize`)."""
        n = int(n)
        if not 0 <= n <= max(self.layers):
            raise ValueError(f"train_blocks must be in [0, {max(self.layers)}] (the blocks this "
                             f"encoder runs for feature_layers {self.layers}), got {n}")
        self.tail_blocks = n

    @property
    def split(self) -> int:
        """Number of blocks in the frozen head."""
        return max(self.layers) - self.tail_blocks

    def tail_prefixes(self) -> tuple[str, ...]:
        """``state_dict`` key prefixes of the tail blocks (what a checkpoint stores of them)."""
        return tuple(f"vit.encoder.layer.{i}." for i in range(self.split, max(self.layers)))

    def finalize(self):
        super().finalize()
        if self.frozen and self.tail_blocks:
            for block in self.vit.encoder.layer[self.split: max(self.layers)]:
                for p in block.parameters():
                    p.requires_grad_(True)
        return self

    def grid(self, input_size) -> tuple[int, int]:
        return int(input_size[0]) // self.stride, int(input_size[1]) // self.stride

    def _blocks(self, x: torch.Tensor, start: int, stop: int, grid, feats: list,
                keep: int | None = None):
        """Run blocks ``start + 1 .. stop`` (1-based) on tokens ``x``, appending the maps of the
        requested layers to ``feats``. Returns ``(tokens after block stop, tokens after block
        keep or None)``."""
        b, kept = x.shape[0], None
        for i in range(start, stop):
            x = self.vit.encoder.layer[i](x)
            x = x[0] if isinstance(x, tuple) else x
            if i + 1 in self.layers:
                feats.append(x[:, 1:, :].transpose(1, 2).reshape(b, -1, *grid))
            if i + 1 == keep:
                kept = x
        return x, kept

    def encode(self, pixel_values: torch.Tensor, tokens_at: int | None = None):
        """``(maps of every requested layer, the tokens after block tokens_at or None)``: the
        whole encoder as it is (what the feature cache stores)."""
        self.check_input(pixel_values)
        feats: list[torch.Tensor] = []
        x = self.vit.embeddings(pixel_values)
        if tokens_at == 0:
            kept = x
        _, k = self._blocks(x, 0, max(self.layers), self.grid(pixel_values.shape[-2:]), feats,
                            tokens_at)
        return feats, (kept if tokens_at == 0 else k)

    def forward_tail(self, tokens: torch.Tensor, start: int, grid) -> list[torch.Tensor]:
        """Maps of the tail's layers (> ``split``) from the ``tokens`` after block ``start``
        (``(B, 1 + h*w, C)``, ``start <= split``): the frozen blocks ``start + 1 .. split``
        without gradients, then the tail."""
        if not 0 <= start <= self.split:
            raise ValueError(f"tokens after block {start} cannot feed the trained blocks "
                             f"{self.split + 1}-{max(self.layers)}")
        if start < self.split:
            with torch.no_grad():
                tokens, _ = self._blocks(tokens, start, self.split, tuple(grid), [])
        feats: list[torch.Tensor] = []
        self._blocks(tokens, self.split, max(self.layers), tuple(grid), feats)
        return feats

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        if not self.tail_blocks:
            return self.encode(pixel_values)[0]
        self.check_input(pixel_values)
        grid = self.grid(pixel_values.shape[-2:])
        head: list[torch.Tensor] = []
        with torch.no_grad():
            x, _ = self._blocks(self.vit.embeddings(pixel_values), 0, self.split, grid, head)
        return head + self.forward_tail(x, self.split, grid)
