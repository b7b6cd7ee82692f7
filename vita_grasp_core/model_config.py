"""Typed, validated model configuration. It travels with every checkpoint.

Everything a predictor needs to rebuild the network and to pre/post-process images lives here
(input size, normalisation, output size, width scale, decoding defaults), so a checkpoint is
self-describing and a ROS parameter file only chooses *which* checkpoint and the thresholds.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from .bounds import Range, check_bounds, count

#: Ranges of the numbers of a :class:`ModelConfig` (also read from every checkpoint).
MODEL_BOUNDS = {"decoder_channels": count(8, 4096), "decoder_stages": count(1, 6),
                "image_stem": count(0, 256), "width_scale": Range(0, 1, lo_open=True),
                "height_ratio": Range(0, 10, lo_open=True),
                "input_size": count(14, 4096, many=True), "output_size": count(8, 4096, many=True),
                "feature_layers": count(1, 1000, none=True, many=True),
                "train_blocks": count(0, 64), "decoders": count(1, 16)}


@dataclass
class ModelConfig:
    """Configuration of a :class:`~vita_grasp_core.model.GraspModel`.

    Attributes:
        backbone: registered backbone name: ``internvit`` (recommended), ``qwen2vl``, or ``dinov2``
            (a small real encoder for offline demos); see ``list_backbones()``.
        pretrained_model: hub id or local directory of the encoder weights; ``None`` builds the
            encoder with random weights from ``backbone_config`` (tests, benchmarks).
        backbone_config: overrides of the encoder's transformers config (e.g. tiny sizes).
        freeze_vit: keep the encoder frozen and in eval mode.
        train_blocks: with ``freeze_vit``, train the last N of the blocks the encoder runs (up
            to ``max(feature_layers)``) with the decoder; the blocks before them stay frozen and
            their output is what the feature cache stores (0 = the whole encoder frozen).
            DINOv2 and InternViT; checkpoints then carry those blocks' weights.
        feature_layers: hidden-state indices (1 = first block's output) fed to the decoder;
            ``None`` = 4 layers spread evenly over the depth of the encoder actually built
            (the built model's ``config`` records them; this object is never changed).
        decoder_channels: width of the FPN decoder.
        decoder_stages: x2 upsampling stages after the feature grid (4: heads at 16x the patch
            grid; 3 halves the heads' resolution, ~2.5x cheaper, for small outputs).
        image_stem: channels of a light convolutional stem on the input image fused into the
            decoder's last stage (0 = none): edges at a finer scale than the encoder's patches.
        decoders: how many decoders of these settings read the encoder's features, their maps
            averaged (1 = one decoder). An ensemble is not trained as one: ``vita-grasp weights
            ensemble`` joins checkpoints trained separately (other ``train.seed``).
        input_size: (H, W) of the backbone input canvas; multiples of the backbone's patch unit.
        output_size: (H, W) of the five output maps.
        width_scale: grasp opening that maps to 1.0 in channel 3, as a fraction of the output
            map width (resolution independent: width_px_on_map = ch3 * width_scale * output_w).
        height_ratio: jaw size = height_ratio * width when decoding.
        attn_implementation: ``sdpa`` (default), ``eager`` or ``flash_attention_2``.
    """

    backbone: str = "internvit"
    pretrained_model: str | None = None
    backbone_config: dict[str, Any] = field(default_factory=dict)
    freeze_vit: bool = True
    train_blocks: int = 0
    feature_layers: tuple[int, ...] | None = None
    decoder_channels: int = 256
    decoder_stages: int = 4
    image_stem: int = 0
    decoders: int = 1
    input_size: tuple[int, int] = (448, 588)
    output_size: tuple[int, int] = (480, 640)
    width_scale: float = 0.25
    height_ratio: float = 0.5
    attn_implementation: str = "sdpa"

    def __post_init__(self):
        from .backbones import get_spec, spread_layers

        spec = get_spec(self.backbone)
        self.input_size = _pair(self.input_size, "input_size")
        self.output_size = _pair(self.output_size, "output_size")
        if self.feature_layers is None:
            n = self.backbone_config.get(spec.depth_key)
            if n is not None:
                self.feature_layers = spread_layers(int(n))
            elif self.pretrained_model is None:
                self.feature_layers = spec.default_layers
            # else: follows the depth of the encoder actually loaded (set when it is built)
        if self.feature_layers is not None:
            check_bounds(self, {"feature_layers": MODEL_BOUNDS["feature_layers"]}, "")
            self.feature_layers = tuple(int(v) for v in self.feature_layers)
            if not self.feature_layers or min(self.feature_layers) < 1:
                raise ValueError(f"feature_layers must be >= 1, got {self.feature_layers}")
        check_bounds(self, MODEL_BOUNDS, "")
        if self.feature_layers is not None and self.train_blocks > max(self.feature_layers):
            raise ValueError(f"train_blocks {self.train_blocks} exceeds the "
                             f"{max(self.feature_layers)} blocks the encoder runs for "
                             f"feature_layers {list(self.feature_layers)}")
        if self.decoder_channels % 8:
            raise ValueError("decoder_channels must be a multiple of 8, got "
                             f"{self.decoder_channels}")
        if self.attn_implementation not in ("sdpa", "eager", "flash_attention_2"):
            raise ValueError(f"unknown attn_implementation {self.attn_implementation!r}")
        self.backbone_config = dict(self.backbone_config)

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (safe to store next to weights and to load with weights_only=True)."""
        d = dataclasses.asdict(self)
        for k in ("input_size", "output_size", "feature_layers"):
            d[k] = None if d[k] is None else list(d[k])
        return d

    @classmethod
    def tiny(cls, backbone: str = "internvit", **overrides) -> "ModelConfig":
        """A tiny random-weight config of a registered backbone (its registry's ``tiny_config``
        and ``tiny_input_size``, a 32-channel decoder): milliseconds on a CPU, for tests, smoke
        benchmarks and examples. ``overrides`` replace any field."""
        from .backbones import get_spec

        spec = get_spec(backbone)
        kw = dict(backbone=backbone, backbone_config=dict(spec.tiny_config), decoder_channels=32,
                  input_size=spec.tiny_input_size)
        kw.update(overrides)
        return cls(**kw)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        """Build from a dict; unknown keys are an error naming them. ``model_type`` and ``type``
        (the seed README's spelling) are aliases of ``backbone``."""
        d = dict(d)
        for alias in ("model_type", "type"):
            if alias in d:
                value = d.pop(alias)
                if d.setdefault("backbone", value) != value:
                    raise ValueError(f"{alias}={value!r} contradicts backbone={d['backbone']!r}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown model config keys {unknown}; valid keys: {sorted(names)}")
        return cls(**d)


def _pair(v, name) -> tuple[int, int]:
    try:
        if any(isinstance(x, (bool, str)) for x in v):
            raise TypeError
        h, w = (int(x) for x in v)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(f"{name} must be two integers (H, W), got {v!r}") from None
    if h <= 0 or w <= 0:
        raise ValueError(f"{name} must be positive, got {v!r}")
    return h, w

