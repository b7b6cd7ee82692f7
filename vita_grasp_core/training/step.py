"""The optimised step of a training run (:mod:`.train`): AdamW parameter groups, the learning-rate
schedule and the module DistributedDataParallel wraps (image or cached features -> logits)."""
from __future__ import annotations

import math

from torch import nn


def lr_lambda_factory(warmup_steps: int, total_steps: int, min_ratio: float):
    """Linear warmup from ~0 to 1 over ``warmup_steps``, then cosine down to ``min_ratio``."""

    def f(step: int) -> float:
        if warmup_steps > 0 and step < warmup_steps:
            return (step + 1) / warmup_steps
        span = max(1, total_steps - warmup_steps)
        t = min(1.0, (step - warmup_steps) / span)
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * t))

    return f


def param_groups(model: nn.Module, weight_decay: float, lr: float,
                 encoder_lr_scale: float = 1.0) -> list[dict]:
    """AdamW groups: no weight decay on biases, norms and other 1-D parameters; the encoder's
    trainable parameters (``train_blocks``, ``freeze_vit: false``) at ``lr * encoder_lr_scale``.
    Empty groups are left out."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            groups.setdefault((name.startswith("backbone."), p.ndim <= 1), []).append(p)
    return [{"params": ps, "weight_decay": 0.0 if flat else weight_decay,
             "lr": lr * (encoder_lr_scale if enc else 1.0)}
            for (enc, flat), ps in sorted(groups.items())]


class TrainStep(nn.Module):
    """The module DDP wraps: image or cached features -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values=None, features=None, tokens=None, tokens_at=None):
        """Logits from the image, or from cached features (+ the trained last encoder blocks on
        cached tokens, + the image for a decoder stem)."""
        return self.model.decode_logits(
            cached_or_computed(self.model, pixel_values, features, tokens, tokens_at),
            pixel_values)


def cached_or_computed(model, pixel_values=None, features=None, tokens=None,
                       tokens_at=None) -> list:
    """The decoder's feature maps: from the image, or from the cache: the frozen layers' maps,
    then with ``train_blocks`` the trained blocks' on the tokens cached after block
    ``tokens_at``."""
    if features is None:
        return model.backbone_features(pixel_values)
    features = list(features)[: model.head_levels]
    if not model.tail_blocks:
        return features
    return features + model.tail_features(tokens, tokens_at)
