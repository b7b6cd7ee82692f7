"""The grasp node's parameters: one typed table, one validation path, the run-time settings.

No rclpy import at module level (``vita-grasp-node --help`` stays cheap); the ROS descriptor of a
parameter is built on demand by :meth:`ParamSpec.descriptor`.

- :data:`STARTUP_PARAMETERS` are declared first (model, input, QoS, depth pairing ...; most are
  read-only). The outputs (:mod:`.node_outputs`) bring their own parameters (``publish_debug``
  ...), declared with them;
- :data:`DECODING_PARAMETERS` come from :data:`vita_grasp_core.decoding_settings.DECODE_FIELDS`
  (description, type, range). They are declared *after* the model is loaded, with the loaded
  checkpoint's decoding (``predictor.decode_config``: the threshold calibrated on validation data)
  as their defaults, so a params file or ``-p`` still overrides them;
- :class:`ParameterTable` is the node's whole table (start-up + outputs + decoding) and its one
  check; :class:`Settings` holds the run-time values the worker and the outputs read.

Every value, at start-up and on ``ros2 param set``, goes through :meth:`ParamSpec.check` (called
from the node's on-set-parameters callback, which rclpy also runs while declaring).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Iterable

from vita_grasp_core.approach import APPROACHES
from vita_grasp_core.choices import (
    DEFAULT_ENGINE,
    DEFAULT_ONNX_PRECISION,
    DTYPE_CHOICES,
    ENGINES,
    ONNX_PRECISIONS,
)
from vita_grasp_core.decoding_settings import DECODE_FIELDS
from vita_grasp_core.grasp_depth import DepthCheckSettings
from vita_grasp_core.image_decode import DEFAULT_MAX_PIXELS

#: The node's default name (``-r __node:=...`` renames it).
NODE_NAME = "vita_grasp_node"


class StartupError(RuntimeError):
    """A start-up problem reported as one clear line (no traceback) before exiting with 1."""


#: Python type -> the word a user sees (rclpy's names: a float parameter is a "double").
_TYPE_WORDS = {bool: "bool", int: "integer", float: "double", str: "string"}


#: The depth check's gripper defaults: one home, vita_grasp_core.grasp_depth.
_GRIPPER = DepthCheckSettings()


@dataclass(frozen=True)
class ParamSpec:
    """One node parameter.

    Attributes:
        name: parameter name (relative, as in the params file).
        type: ``bool``, ``int``, ``float`` or ``str`` (the ROS type is inferred from it).
        default: default value (for :data:`DECODING_PARAMETERS` the fallback when the checkpoint
            stores no decoding; the node uses the loaded checkpoint's value).
        description: one-line help (shown by ``ros2 param describe``).
        read_only: fixed after start-up.
        range: inclusive ``(lo, hi)`` for numbers.
        choices: allowed values for strings.
        required: a string that must not be empty.
        from_checkpoint: the default comes from the loaded checkpoint's decoding.
    """

    name: str
    type: type
    default: Any
    description: str
    read_only: bool = False
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None
    required: bool = False
    from_checkpoint: bool = False

    def check(self, value) -> str | None:
        """``None`` when ``value`` is acceptable, else a one-line reason naming the parameter."""
        ok_type = isinstance(value, self.type) and not (self.type is not bool
                                                        and isinstance(value, bool))
        if self.type is float and isinstance(value, int) and not isinstance(value, bool):
            ok_type = False  # rclpy refuses an integer for a double parameter
        if not ok_type:
            hint = " (write 0.0, not 0)" if self.type is float else ""
            word = _TYPE_WORDS[self.type]
            return (f"parameter {self.name!r} must be {'an' if word[0] in 'aeiou' else 'a'} "
                    f"{word}{hint}, got "
                    f"{value!r}")
        if self.type is float and not math.isfinite(value):
            return f"parameter {self.name!r} is {value!r}; it must be a finite number"
        if self.range is not None and not self.range[0] <= value <= self.range[1]:
            return (f"parameter {self.name!r} is {value!r}; it must be in "
                    f"[{self.range[0]:g}, {self.range[1]:g}]")
        if self.choices is not None and value not in self.choices:
            return f"parameter {self.name!r} is {value!r}; use one of {', '.join(self.choices)}"
        if self.required and not str(value).strip():
            return (f"parameter {self.name!r} is empty: pass it as {self.name}:=... to ros2 "
                    f"launch, -p {self.name}:=... on the command line, or set `{self.name}:` in "
                    "the params file")
        return None

    def descriptor(self):
        """The ``rcl_interfaces/ParameterDescriptor`` (range, read-only). ``dynamic_typing``:
        rclpy's own type check ("Wrong parameter type, expected ...") runs before the node's
        callback; with it off, a value of the wrong type reaches :meth:`check`, whose message
        says what to write."""
        from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor

        d = ParameterDescriptor(description=self.description, read_only=self.read_only,
                                dynamic_typing=True)
        if self.choices:
            d.additional_constraints = "one of: " + ", ".join(self.choices)
        elif self.range is not None and self.type is float:
            d.floating_point_range = [FloatingPointRange(
                from_value=float(self.range[0]), to_value=float(self.range[1]), step=0.0)]
        elif self.range is not None and self.type is int:
            d.integer_range = [IntegerRange(from_value=int(self.range[0]),
                                            to_value=int(self.range[1]), step=1)]
        return d


#: Values of the ``target`` parameter (vita_grasp_ros.target_inputs).
TARGET_MODES = ("none", "detections", "mask", "point", "example")

#: Declared before the model is loaded (in this order).
STARTUP_PARAMETERS: tuple[ParamSpec, ...] = (
    ParamSpec("checkpoint", str, "", "Path of the trained checkpoint (best_model.pt or "
              ".safetensors). Required.", read_only=True, required=True),
    ParamSpec("pretrained_model", str, "", "Override of the encoder weights (hub id or local "
              "directory) stored in the checkpoint; empty = as stored.", read_only=True),
    ParamSpec("device", str, "auto", "Inference device: auto (cuda if available), cpu, cuda, "
              "cuda:N.", read_only=True),
    ParamSpec("dtype", str, "auto", "Model dtype: auto (bfloat16 on CUDA, float32 on CPU), "
              "float32, bfloat16, float16.", read_only=True, choices=DTYPE_CHOICES),
    ParamSpec("engine", str, DEFAULT_ENGINE, "Inference engine: torch (PyTorch eager) or "
              "onnxruntime (the exported network in ONNX Runtime, exported next to the checkpoint "
              "and checked on first use; docs/deploy.md).", read_only=True,
              choices=tuple(ENGINES)),
    ParamSpec("providers", str, "", "ONNX Runtime execution providers, comma-separated in "
              "priority order (e.g. TensorrtExecutionProvider,CUDAExecutionProvider); empty = "
              "CPU. Only with engine onnxruntime.", read_only=True),
    ParamSpec("onnx_precision", str, DEFAULT_ONNX_PRECISION, "Precision of the exported "
              "network with engine onnxruntime: fp32, fp16 or int8 (dynamic int8 encoder weights; "
              "docs/deploy.md).",
              read_only=True, choices=ONNX_PRECISIONS),
    ParamSpec("use_compressed", bool, False, "Subscribe `image/compressed` "
              "(sensor_msgs/CompressedImage, jpeg/png) instead of `image`.", read_only=True),
    ParamSpec("use_depth", bool, False, "Subscribe `depth` (16UC1 mm or 32FC1 m, registered to "
              "the colour image) and `camera_info` and fill 3-D poses; publishes `markers`.",
              read_only=True),
    ParamSpec("max_pixels", int, DEFAULT_MAX_PIXELS, "Largest colour frame accepted [pixels], "
              "raw or compressed (at most 16384 per side): a compressed frame is refused from "
              "its header before decoding (a few kB of PNG or JPEG may declare 16000 x 16000). "
              "Default 4096 x 3072.", read_only=True, range=(1, 16384 * 16384)),
    ParamSpec("input_reliability", str, "reliable", "QoS reliability of the image/depth "
              "subscriptions: reliable or best_effort (use best_effort for best-effort camera "
              "publishers).", read_only=True, choices=("reliable", "best_effort")),
    ParamSpec("input_depth", int, 2, "QoS history depth of the image subscription (the newest "
              "frame wins).", read_only=True, range=(1, 100)),
    ParamSpec("depth_queue", int, 10, "With use_depth: QoS history depth of the depth and "
              "camera_info subscriptions, and how many of the newest colour frames (and depth "
              "frames) the node holds while pairing them: the worker takes the newest colour "
              "frame whose depth frame has arrived (memory: this many frames).", read_only=True,
              range=(1, 100)),
    ParamSpec("diagnostics_period", float, 1.0, "Period of the /diagnostics status [s].",
              read_only=True, range=(0.05, 60.0)),
    # Run-time settings (Settings); the outputs' own ones are in .node_outputs.
    ParamSpec("depth_window", int, 5, "Side of the median window for the grasp depth "
              "[depth px].", range=(1, 51)),
    ParamSpec("depth_tolerance", float, 0.05, "Largest |depth stamp - image stamp| accepted "
              "when no depth frame (CameraInfo) has the image's exact stamp [s].",
              range=(0.0, 1.0)),
    ParamSpec("depth_wait", float, 2.0, "Longest wait of a colour frame for its depth frame "
              "and CameraInfo [s], from its arrival or from when the worker is free, whichever "
              "is later: the worker takes the newest frame that has them (frames whose depth "
              "frame was lost are passed over), else the newest whose wait is over, with the "
              "depth that arrived by the end of its prediction. No wait while the depth stream "
              "is silent or out of step.",
              range=(0.0, 10.0)),
    ParamSpec("approach", str, "camera", "With use_depth: what the published poses approach "
              "along: camera (the optical axis, CONVENTIONS section 1) or table (the normal of "
              "the table plane fitted to each depth frame, so a tilted camera's grasps still "
              "come straight down onto the table; the camera axis where no plane is found, "
              "with a warning).", choices=APPROACHES),
    ParamSpec("depth_check", bool, True, "With use_depth: check each grasp against the depth "
              "image before publishing (docs/ros.md 'Depth check'): width / width_m become an "
              "opening that clears the object by grasp_margin, grasps whose fingers would land "
              "on something are turned or demoted, objects wider than the gripper dropped."),
    ParamSpec("depth_fallback", bool, False, "With use_depth: when the model has no grasp "
              "above score_threshold (and no target is set), publish grasps from the depth "
              "image alone: the analytic grasp on the highest objects standing above the "
              "surface (docs/ros.md 'Depth fallback'; quality 0), checked like any grasp."),
    ParamSpec("depth_check_failing", str, "demote", "Depth check: grasps that fail it "
              "(a finger or the palm would hit something, nothing between the fingers, an "
              "object wider than the gripper): demote (unchanged, behind every grasp that "
              "passed) or drop.", choices=("demote", "drop")),
    ParamSpec("gripper_max_opening", float, _GRIPPER.max_opening,
              "Depth check: the gripper's largest "
              "opening between the finger pads [m].", range=(0.005, 1.0)),
    ParamSpec("gripper_finger_width", float, _GRIPPER.finger_width,
              "Depth check: a finger's size along the "
              "jaws [m].", range=(0.001, 0.5)),
    ParamSpec("gripper_finger_thickness", float, _GRIPPER.finger_thickness,
              "Depth check: a finger's thickness "
              "along the opening [m].", range=(0.001, 0.5)),
    ParamSpec("gripper_finger_length", float, _GRIPPER.finger_length,
              "Depth check: from the fingertips to "
              "the palm [m].", range=(0.001, 0.5)),
    ParamSpec("gripper_palm_length", float, _GRIPPER.palm_length,
              "Depth check: the palm's size along the "
              "opening [m].", range=(0.001, 1.0)),
    ParamSpec("gripper_palm_width", float, _GRIPPER.palm_width,
              "Depth check: the palm's size along the "
              "jaws [m].", range=(0.001, 1.0)),
    ParamSpec("grasp_margin", float, _GRIPPER.margin,
              "Depth check: free space between each finger and "
              "the object [m].", range=(0.0, 0.2)),
    ParamSpec("approach_depth", float, _GRIPPER.approach_depth,
              "Depth check: how far past the grasp point "
              "(the object's top) the fingertips go [m].", range=(0.001, 0.5)),
    ParamSpec("frame_id", str, "", "Override of the output frame_id; empty = keep the "
              "image's."),
    ParamSpec("stream", bool, True, "Predict and publish the outputs for every frame; false: "
              "only answer get_grasps requests (frames are kept, not processed)."),
    # Target selection (vita_grasp_ros.target_inputs, docs/ros.md "Target selection").
    ParamSpec("target", str, "none", "Which object the grasps are for: none (the whole scene), "
              "detections (target/detections of target_class), mask (target/mask), point "
              "(target/point) or example (target/example or target_example).",
              choices=TARGET_MODES),
    ParamSpec("target_class", str, "", "Class id of the wanted detections on "
              "target/detections; empty = any class."),
    ParamSpec("target_min_score", float, 0.0, "Detections below this score are ignored.",
              range=(0.0, 1.0)),
    ParamSpec("target_max_age", float, 1.0, "Largest |stamp difference| between a frame and "
              "the detections or mask used for it [s] (zero stamps never age).",
              range=(0.0, 3600.0)),
    ParamSpec("target_example", str, "", "Image file of the wanted object (one-shot example "
              "target); empty = take it from target/example."),
)

#: The decoding settings (CONVENTIONS §4), described once in DECODE_FIELDS.
DECODING_PARAMETERS: tuple[ParamSpec, ...] = tuple(
    ParamSpec(f.name, f.type, f.default, f.description + " Default: the checkpoint's "
              "calibrated setting.", range=(f.lo, f.hi), from_checkpoint=True)
    for f in DECODE_FIELDS)
DECODING_NAMES = tuple(p.name for p in DECODING_PARAMETERS)


class ParameterTable:
    """A node's parameters (start-up, its outputs', decoding) and their one check.

    ``table[name]`` is the :class:`ParamSpec`; names not in the table (e.g. rclpy's
    ``qos_overrides.*``, ``use_sim_time``) are left to rclpy.
    """

    def __init__(self, specs: Iterable[ParamSpec]):
        self.specs: dict[str, ParamSpec] = {}
        for spec in specs:
            if spec.name in self.specs:
                raise ValueError(f"node parameter {spec.name!r} is defined twice")
            self.specs[spec.name] = spec

    def __getitem__(self, name: str) -> ParamSpec:
        return self.specs[name]

    def __contains__(self, name) -> bool:
        return name in self.specs

    def runtime_names(self) -> tuple[str, ...]:
        """Names of the :class:`Settings` values: neither read-only nor decoding."""
        return tuple(n for n, s in self.specs.items() if not s.read_only and not s.from_checkpoint)

    def check(self, values: dict) -> str | None:
        """The first problem among ``{name: value}`` (unknown names are ignored), else ``None``.
        With both ``engine`` and ``providers`` present, also that providers need onnxruntime."""
        for name, value in values.items():
            spec = self.specs.get(name)
            if spec is not None:
                reason = spec.check(value)
                if reason:
                    return reason
        if str(values.get("providers", "")).strip() and values.get("engine") == DEFAULT_ENGINE:
            return ("parameter 'providers' is set but engine is torch: providers are ONNX "
                    "Runtime's (add -p engine:=onnxruntime)")
        return None

    def settings(self, values: dict) -> "Settings":
        """The run-time :class:`Settings` from ``{name: value}`` (missing ones: the defaults)."""
        return Settings({n: values[n] if n in values else self.specs[n].default
                         for n in self.runtime_names()})


class Settings:
    """Run-time parameter values the worker and the outputs read (``settings.depth_window``).

    Immutable and replaced as a whole on ``ros2 param set`` (:meth:`replace`), so a frame sees
    one version of them.
    """

    __slots__ = ("_values",)

    def __init__(self, values: dict):
        object.__setattr__(self, "_values", MappingProxyType(dict(values)))

    def __getattr__(self, name: str):
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"no run-time setting {name!r}") from None

    def __setattr__(self, name, value):
        raise AttributeError("Settings are immutable: use replace()")

    def __repr__(self) -> str:
        return f"Settings({dict(self._values)!r})"

    def names(self) -> tuple[str, ...]:
        return tuple(self._values)

    def replace(self, **changes) -> "Settings":
        unknown = set(changes) - set(self._values)
        if unknown:
            raise KeyError(f"not run-time settings: {sorted(unknown)}")
        return Settings({**self._values, **changes})
