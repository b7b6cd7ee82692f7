"""Backbone registry: one builder per encoder (segment-anything / timm style), with its facts.

A builder takes a :class:`~vita_grasp_core.model_config.ModelConfig` and returns a
:class:`Backbone`.
Adding an encoder is one new module with a ``@register_backbone("name", ...)`` builder that also
states the encoder's facts (:class:`BackboneSpec`: default hub id, default feature layers,
normalisation, patch unit, a tiny random configuration for tests). Nothing else in the project
branches on backbone names.
"""
from .base import Backbone, BlockViT
from .registry import (
    BackboneSpec,
    build_backbone,
    get_spec,
    list_backbones,
    register_backbone,
    resolve_feature_layers,
    spread_layers,
)

# Registration order = the order of tables and help texts: the recommended encoder first.
# isort: off
from . import internvit, qwen2vl, dinov2  # noqa: E402,F401  (registers the builders)
# isort: on

__all__ = ["Backbone", "BackboneSpec", "BlockViT", "build_backbone", "get_spec", "list_backbones",
           "register_backbone", "resolve_feature_layers", "spread_layers"]
