"""FPN-style grasp decoder: multi-layer ViT features -> five dense maps (CONVENTIONS §3).

Per level: channel LayerNorm + 1x1 lateral projection to ``D`` channels; top-down fusion from the
deepest level (sum, then 3x3 conv block); a refine block; ``stages`` x2 upsampling stages
(default 4: D -> D/2 -> D/4 -> D/8 -> D/8; 3: D -> D/2 -> D/4 -> D/8); optionally (``image_stem``
channels > 0) a light convolutional stem on the input image itself (stride 2), resized to the last
stage and fused there, which gives the heads the edges that a 14 px patch grid lacks; five small
heads; bilinear resize to ``output_size``.

:class:`DecoderEnsemble`: several such decoders on the same encoder features, their maps averaged
(``model.decoders`` > 1; built from separately trained checkpoints by :mod:`..ensemble`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .conventions import CHANNELS


def _block(cin: int, cout: int) -> nn.Sequential:
    groups = 8 if cout % 8 == 0 else 1
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                         nn.GroupNorm(groups, cout), nn.GELU())


class ChannelLayerNorm(nn.Module):
    """LayerNorm over the channel axis of a ``(B, C, H, W)`` map (per token, as in the ViT)."""

    def __init__(self, c: int):
        super().__init__()
        self.norm = nn.LayerNorm(c, eps=1e-6)

    def forward(self, x):
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class GraspDecoder(nn.Module):
    """``list[(B, C_i, h, w)]`` -> ``(B, 5, H_out, W_out)`` logits (see :meth:`activate`)."""

    def __init__(self, in_channels: list[int], channels: int = 256,
                 output_size: tuple[int, int] = (480, 640), stages: int = 4,
                 image_stem: int = 0):
        super().__init__()
        d = channels
        self.output_size = tuple(output_size)
        self.norms = nn.ModuleList(ChannelLayerNorm(c) for c in in_channels)
        self.laterals = nn.ModuleList(nn.Conv2d(c, d, 1) for c in in_channels)
        self.fuse = nn.ModuleList(_block(d, d) for _ in in_channels)
        self.refine = _block(d, d)
        widths = [d] + [max(d >> (i + 1), d // 8) for i in range(stages)]
        self.up = nn.ModuleList(_block(widths[i], widths[i + 1]) for i in range(stages))
        hc = widths[-1]
        self.stem = self.stem_fuse = None
        if image_stem:
            s = int(image_stem)
            self.stem = nn.Sequential(
                nn.Conv2d(3, s, 3, stride=2, padding=1, bias=False),
                nn.GroupNorm(8 if s % 8 == 0 else 1, s), nn.GELU(), _block(s, s))
            self.stem_fuse = _block(hc + s, hc)
        self.heads = nn.ModuleList(
            nn.Sequential(nn.Conv2d(hc, hc, 3, padding=1), nn.GELU(), nn.Conv2d(hc, 1, 1))
            for _ in CHANNELS
        )

    def forward(self, feats: list[torch.Tensor], pixel_values: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``feats`` -> logits; ``pixel_values`` (the normalised input canvas) feeds the image
        stem and is required when there is one."""
        if len(feats) != len(self.laterals):
            raise ValueError(f"decoder expects {len(self.laterals)} feature maps, "
                             f"got {len(feats)}")
        lat = [conv(norm(f)) for f, norm, conv in zip(feats, self.norms, self.laterals)]
        x = None
        for i in reversed(range(len(lat))):
            x = lat[i] if x is None else x + lat[i]
            x = self.fuse[i](x)
        x = self.refine(x)
        for stage in self.up:
            x = stage(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False))
        if self.stem is not None:
            if pixel_values is None:
                raise ValueError("this decoder has an image stem: pass the input image too")
            s = self.stem(pixel_values.to(x.dtype))
            s = F.interpolate(s, size=x.shape[-2:], mode="bilinear", align_corners=False)
            x = self.stem_fuse(torch.cat([x, s], dim=1))
        x = torch.cat([h(x) for h in self.heads], dim=1)
        return F.interpolate(x, size=self.output_size, mode="bilinear", align_corners=False)

    @staticmethod
    def activate(logits: torch.Tensor) -> torch.Tensor:
        """Logits -> maps in range: sigmoid for position, width, semantic; tanh for cos/sin."""
        return torch.cat([torch.sigmoid(logits[:, :1]), torch.tanh(logits[:, 1:3]),
                          torch.sigmoid(logits[:, 3:5])], dim=1)


class DecoderEnsemble(nn.Module):
    """Several :class:`GraspDecoder` on the same features: the mean of their activated maps,
    returned as logits (so :meth:`GraspDecoder.activate` gives the mean back).

    Members trained with other seeds (other augmented views, initialisation and order) make
    partly different errors; averaging them costs one decoder pass each and no encoder pass.
    """

    #: keeps the inverse activations finite (|logit| <= about 16)
    EPS = 1e-7

    def __init__(self, members: list[GraspDecoder]):
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"a decoder ensemble needs at least 2 decoders, got {len(members)}")
        self.members = nn.ModuleList(members)

    @property
    def laterals(self):
        return self.members[0].laterals

    @property
    def stem(self):
        return self.members[0].stem

    def forward(self, feats: list[torch.Tensor], pixel_values: torch.Tensor | None = None
                ) -> torch.Tensor:
        maps = torch.stack([GraspDecoder.activate(m(feats, pixel_values).float())
                            for m in self.members]).mean(0)
        e = self.EPS
        prob = torch.cat([maps[:, :1], maps[:, 3:5]], dim=1).clamp(e, 1 - e)
        logit = torch.log(prob) - torch.log1p(-prob)
        c = maps[:, 1:3].clamp(-1 + e, 1 - e)
        trig = 0.5 * (torch.log1p(c) - torch.log1p(-c))  # atanh (ONNX opset 17 has none)
        out = torch.cat([logit[:, :1], trig, logit[:, 1:]], dim=1)
        return out.to(self.members[0].laterals[0].weight.dtype)

    activate = staticmethod(GraspDecoder.activate)
