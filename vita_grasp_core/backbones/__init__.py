"""Backbone registry: one builder per encoder (segment-anything / timm style).

A builder takes a :class:`~vita_grasp_core.config.ModelConfig` and returns a :class:`Backbone`.
Adding an encoder is one new module with a ``@register_backbone("name")`` builder.
"""
from __future__ import annotations

from typing import Callable

from .base import Backbone

_REGISTRY: dict[str, Callable] = {}


def register_backbone(name: str):
    """Decorator registering ``fn(config) -> Backbone`` under ``name``."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_backbones() -> list[str]:
    """Names accepted as ``ModelConfig.backbone``."""
    return sorted(_REGISTRY)


def build_backbone(config) -> Backbone:
    """Build the encoder named by ``config.backbone`` (random or pretrained weights)."""
    try:
        builder = _REGISTRY[config.backbone]
    except KeyError:
        raise ValueError(f"unknown backbone {config.backbone!r}; available: {list_backbones()}") from None
    return builder(config)


from . import dinov2, internvit, qwen2vl  # noqa: E402,F401  (registers the builders)

__all__ = ["Backbone", "build_backbone", "list_backbones", "register_backbone"]
