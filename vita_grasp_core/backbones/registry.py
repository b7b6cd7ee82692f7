"""The backbone registry: :class:`BackboneSpec` facts and builders by name (see the package
docstring)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from .base import Backbone, BlockViT


@dataclass(frozen=True)
class BackboneSpec:
    """What the rest of the project may know about a registered encoder.

    Attributes:
        name: registry name (``ModelConfig.backbone``).
        builder: ``fn(config) -> Backbone``.
        hub_id: default ``pretrained_model`` (model hub id) of the real encoder.
        depth: number of blocks of the real encoder.
        depth_key: ``backbone_config`` key holding the number of blocks.
        mean, std: input normalisation (RGB, 0-1 scale).
        patch_unit: input H and W must be multiples of this.
        tiny_config: ``backbone_config`` of a tiny random encoder (tests, CI, smoke benchmarks).
        tiny_input_size: a valid small (H, W) input for ``tiny_config``.
        description: one line for help texts and tables.
        heavy: slow on a CPU at its real size (quick benchmarks skip it).
    """

    name: str
    builder: Callable
    hub_id: str
    depth: int
    depth_key: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    patch_unit: int
    tiny_config: dict = field(default_factory=dict)
    tiny_input_size: tuple[int, int] = (112, 112)
    description: str = ""
    heavy: bool = False

    @property
    def default_layers(self) -> tuple[int, ...]:
        """Feature layers fed to the decoder by default: 4 evenly spread, ending at the last."""
        return spread_layers(self.depth)


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(name: str, **facts):
    """Decorator registering ``fn(config) -> Backbone`` under ``name`` with its
    :class:`BackboneSpec` facts (keyword arguments)."""

    def deco(fn):
        if name in _REGISTRY:
            raise ValueError(f"backbone {name!r} registered twice")
        _REGISTRY[name] = BackboneSpec(name=name, builder=fn, **facts)
        return fn

    return deco


def list_backbones() -> list[str]:
    """Names accepted as ``ModelConfig.backbone``, in registration order (recommended first)."""
    return list(_REGISTRY)


def get_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` of a registered encoder; a clear error for unknown names."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown backbone {name!r}; available: {list_backbones()}") from None


def build_backbone(config) -> Backbone:
    """Build the encoder named by ``config.backbone`` (random or pretrained weights). Its input
    normalisation comes from the registry entry, the one home of that fact. With
    ``config.train_blocks`` its last blocks stay trainable (:class:`~.base.BlockViT` encoders)."""
    spec = get_spec(config.backbone)
    backbone = spec.builder(config)
    check_backbone_config(config.backbone_config, backbone, spec.name)
    backbone.mean, backbone.std = spec.mean, spec.std
    n = getattr(config, "train_blocks", 0)
    if n:
        if not isinstance(backbone, BlockViT):
            raise ValueError(f"model.train_blocks: the {config.backbone} encoder cannot train "
                             "only its last blocks (supported by DINOv2 and InternViT)")
        if not config.freeze_vit:
            raise ValueError("model.train_blocks trains the last blocks of a frozen encoder; "
                             "with freeze_vit: false the whole encoder trains already")
        backbone.set_tail_blocks(n)
        backbone.finalize()
    return backbone


def check_backbone_config(overrides: dict, backbone, name: str) -> None:
    """Refuse ``model.backbone_config`` keys the encoder's transformers config does not have
    (transformers keeps any keyword as an attribute, so a typo would train silently)."""
    import difflib

    cfg = getattr(getattr(backbone, "vit", None), "config", None)
    if cfg is None or not overrides:
        return
    known = set(type(cfg)().to_dict()) | set(getattr(cfg, "attribute_map", {}) or {})
    unknown = sorted(set(overrides) - known)
    if unknown:
        hints = [f"{k} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(
            k, known, 1)) else k for k in unknown]
        raise ValueError(f"model.backbone_config: unknown key(s) for {name} "
                         f"({type(cfg).__name__}): {', '.join(hints)}")


def spread_layers(n: int, k: int = 4) -> tuple[int, ...]:
    """k layer indices spread evenly over n blocks, ending at the last (24 -> 6, 12, 18, 24)."""
    if n < k:
        return tuple(range(1, n + 1))
    return tuple(round(n * (i + 1) / k) for i in range(k))


def resolve_feature_layers(config, depth: int) -> tuple[int, ...]:
    """``config.feature_layers``, or (when it is None) the default for an encoder of ``depth``
    blocks. ``config`` is not changed: the built model's own config records the layers."""
    if config.feature_layers is None:
        return spread_layers(int(depth))
    return tuple(config.feature_layers)
