"""Decoding settings (CONVENTIONS §4): defaults, ranges and help texts, defined once.

Used by :func:`~vita_grasp_core.decoding.decode_maps`, the predictor, the inference and evaluation
command lines, validation during training, bag evaluation and the ROS node (whose parameter
descriptors are generated from :data:`DECODE_FIELDS`).

A checkpoint may carry its own :class:`DecodeConfig` (``meta["decode"]``: the score threshold and
quality calibration chosen on validation data); the predictor then starts from it, and every
explicit setting overrides it field by field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DecodeField:
    """One tunable decoding setting: its type, default, inclusive range and help text."""

    name: str
    type: type
    default: Any
    lo: float
    hi: float
    description: str


#: The tunable settings, in display order (also the ROS parameters of the same names).
DECODE_FIELDS: tuple[DecodeField, ...] = (
    DecodeField("score_threshold", float, 0.2, 0.0, 1.0,
                "Minimum grasp quality in [0, 1]; grasps below it are not returned."),
    DecodeField("max_grasps", int, 10, 1, 1000,
                "At most this many grasps per frame (best first)."),
    DecodeField("min_distance", int, 8, 0, 200,
                "Peak suppression radius on the output maps [map px]."),
    DecodeField("smooth_sigma", float, 1.0, 0.0, 20.0,
                "Gaussian smoothing of the heatmap before peak finding [map px]; 0 = off."),
    DecodeField("alternatives", int, 0, 0, 20,
                "Further grasps per heatmap maximum (one maximum per object): up to this many "
                "other high points of the same blob, picked greedily by heat, more than "
                "min_distance apart and above the threshold; fall-backs on the same object for a "
                "planner. 0 = the maxima only."),
    DecodeField("tta", int, 1, 1, 8,
                "Test-time augmentation: average the maps of this many views of the frame "
                "(1 = off; 2 adds the mirror image, 4 both mirrors and the half turn, 8 also the "
                "quarter turns on square canvases); one network pass per view."),
    DecodeField("input_scale", float, 1.0, 0.25, 4.0,
                "Input canvas size relative to the model's input_size (PyTorch engine): 2 shows "
                "objects twice as large in pixels, e.g. a 640x480 camera frame to a model trained "
                "on crops that showed objects at twice the size; costs about its square."),
)
_BY_NAME = {f.name: f for f in DECODE_FIELDS}


@dataclass(frozen=True)
class DecodeConfig:
    """Validated decoding settings (immutable; :meth:`replace` makes a changed copy).

    Attributes:
        score_threshold, max_grasps, min_distance, smooth_sigma, alternatives, tta,
            input_scale: see
            :data:`DECODE_FIELDS` (``tta`` and ``input_scale`` act before decoding, in the
            predictor: :mod:`vita_grasp_core.tta`, :meth:`GraspPredictor.preprocess`).
        quality_knots: optional monotone calibration of grasp quality: ``((raw, quality), ...)``
            knots of a piecewise-linear map from the raw heatmap peak value to the reported
            quality (fitted on validation data by training); ``None`` = the raw value.
    """

    score_threshold: float = _BY_NAME["score_threshold"].default
    max_grasps: int = _BY_NAME["max_grasps"].default
    min_distance: int = _BY_NAME["min_distance"].default
    smooth_sigma: float = _BY_NAME["smooth_sigma"].default
    alternatives: int = _BY_NAME["alternatives"].default
    tta: int = _BY_NAME["tta"].default
    input_scale: float = _BY_NAME["input_scale"].default
    quality_knots: tuple[tuple[float, float], ...] | None = None

    def __post_init__(self):
        for f in DECODE_FIELDS:
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ValueError(f"{f.name} must be a number, got {v!r}")
            if f.type is int:
                if float(v) != int(v):
                    raise ValueError(f"{f.name} must be an integer, got {v!r}")
                v = int(v)
            else:
                v = float(v)
            if not f.lo <= v <= f.hi:
                raise ValueError(f"{f.name} must be in [{f.lo:g}, {f.hi:g}], got {v!r}")
            object.__setattr__(self, f.name, v)
        if self.quality_knots is not None:
            object.__setattr__(self, "quality_knots", _check_knots(self.quality_knots))

    def replace(self, **changes) -> "DecodeConfig":
        """A copy with ``changes`` applied; ``None`` values keep the current setting."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown decoding setting(s) {unknown}; valid: "
                             f"{[f.name for f in dataclasses.fields(self)]}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        """Plain types (JSON / checkpoint meta)."""
        d = dataclasses.asdict(self)
        if self.quality_knots is not None:
            d["quality_knots"] = [list(k) for k in self.quality_knots]
        return d

    @classmethod
    def from_dict(cls, d: dict | None) -> "DecodeConfig":
        """Inverse of :meth:`to_dict`; unknown keys are an error naming them."""
        return cls().replace(**dict(d or {}))


def add_decode_arguments(parser) -> None:
    """``--score_threshold`` ... ``--smooth_sigma`` options (default: the checkpoint's setting)."""
    for f in DECODE_FIELDS:
        parser.add_argument(f"--{f.name}", type=f.type, default=None,
                            help=f"{f.description} Default: the checkpoint's setting, else "
                                 f"{f.default}.")


def decode_arguments(args) -> dict:
    """The decoding settings given on a command line built with :func:`add_decode_arguments`."""
    return {f.name: getattr(args, f.name) for f in DECODE_FIELDS
            if getattr(args, f.name, None) is not None}


def setting_sources(base, overrides: dict | None = None, base_label: str = "given"
                    ) -> dict[str, str]:
    """Where each decoding setting of ``DecodeConfig`` came from.

    ``"override"`` for a non-``None`` value in ``overrides``, else ``base_label`` when ``base``
    (a :class:`DecodeConfig`: every field, or a dict: its non-``None`` keys) sets it, else
    ``"default"``. Command lines use it to say which threshold they used and why.
    """
    overrides = overrides or {}
    if isinstance(base, DecodeConfig):
        given = {f.name for f in dataclasses.fields(DecodeConfig)}
    else:
        given = {k for k, v in dict(base or {}).items() if v is not None}
    return {f.name: "override" if overrides.get(f.name) is not None
            else base_label if f.name in given else "default"
            for f in dataclasses.fields(DecodeConfig)}


def _check_knots(knots) -> tuple[tuple[float, float], ...]:
    try:
        pairs = tuple((float(a), float(b)) for a, b in knots)
    except (TypeError, ValueError):
        raise ValueError(f"quality_knots must be (raw, quality) pairs, got {knots!r}") from None
    if len(pairs) < 2:
        raise ValueError("quality_knots needs at least two (raw, quality) pairs")
    xs, ys = [p[0] for p in pairs], [p[1] for p in pairs]
    if any(b <= a for a, b in zip(xs, xs[1:])) or any(b < a for a, b in zip(ys, ys[1:])):
        raise ValueError("quality_knots must increase strictly in raw and never decrease in "
                         f"quality, got {pairs}")
    if min(xs + ys) < 0 or max(xs + ys) > 1:
        raise ValueError(f"quality_knots values must lie in [0, 1], got {pairs}")
    return pairs
