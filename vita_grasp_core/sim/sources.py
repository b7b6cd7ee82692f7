"""Grasp sources for the pick benchmark: a registry of builders.

A source looks at an :class:`~vita_grasp_core.sim.camera.Observation` (RGB, depth, CameraInfo,
and for the baselines the ground-truth segmentation) and answers one :class:`GraspAnswer`: a 3-D
grasp in the camera's optical frame (position, quaternion, opening ``width_m``) plus the pixel
grasp it came from, or a failure reason (``no_grasp``, ``no_pose``, ``timeout``). The executor
takes the 3-D pose and ``width_m`` as answered.

Built in: ``random`` (a random pixel of a random object, random angle, random opening 2-11 cm),
``analytic`` (the ground-truth mask of the object nearest the camera: its centroid, opening along
the mask's minor axis to the mask's extent plus 2 cm) and ``api`` (a checkpoint through
:class:`~vita_grasp_core.GraspPredictor`: RGB in, its best grasp after the depth check of
:mod:`vita_grasp_core.grasp_depth` (unless ``SourceOptions.depth_check`` is None), 3-D from
depth + K with :mod:`vita_grasp_core.grasp3d`). Other packages add sources through the
entry-point group :data:`ENTRY_POINT_GROUP` (the ROS adapter adds ``node``: the grasp node in the
loop), so the core never imports ROS.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..depth_fallback import axis_grasp
from ..grasp import Grasp
from .candidates import median_depth, object_masks, pixel_to_pose

#: Entry-point group through which installed packages add grasp sources.
ENTRY_POINT_GROUP = "vita_grasp.sim_sources"


@dataclass
class GraspAnswer:
    """One answer of a source (camera optical frame, metres).

    Attributes:
        pixel: the pixel grasp (for pictures and checks), or ``None``.
        position, quaternion, width_m: the 3-D grasp to execute (``None`` when there is none).
        reason: ``""`` or why there is no grasp to execute (``no_grasp``, ``no_pose``,
            ``timeout``, ...).
        latency: seconds from the observation to the answer.
        extra: source-specific facts (e.g. the node's pose check).
        alternatives: the source's next grasps (best first, each a :class:`GraspAnswer` with a
            pose), for the benchmark's ``--retry next`` policy; the executor takes them as
            answered too.
    """

    pixel: Grasp | None = None
    position: tuple | None = None
    quaternion: tuple | None = None
    width_m: float = 0.0
    reason: str = ""
    latency: float = 0.0
    extra: dict = field(default_factory=dict)
    alternatives: list = field(default_factory=list)


def answer_from_pixel(grasp: Grasp | None, obs, t0: float, window: int = 5,
                      approach: str = "camera") -> GraspAnswer:
    """A pixel grasp -> its answer with the documented 3-D convention, approaching along
    ``approach`` (:func:`~vita_grasp_core.approach.orient_poses`; ``no_grasp`` / ``no_pose``
    when there is none / no depth at its centre)."""
    if grasp is None:
        return GraspAnswer(reason="no_grasp", latency=time.perf_counter() - t0)
    pose = pixel_to_pose(grasp, obs.depth, obs.K, window, approach)
    if pose is None:
        return GraspAnswer(grasp, reason="no_pose", latency=time.perf_counter() - t0)
    return GraspAnswer(grasp, pose.position, pose.quaternion, pose.width_m,
                       latency=time.perf_counter() - t0)


class GraspSource:
    """Base class: built from :class:`SourceOptions`; ``plan(obs, rng)`` ->
    :class:`GraspAnswer`; ``close()`` frees resources."""

    name = "?"
    #: True when the source reads the ground-truth segmentation (the baselines).
    uses_ground_truth = False

    def __init__(self, options: "SourceOptions | None" = None):
        self.options = options if options is not None else SourceOptions()

    def plan(self, obs, rng: np.random.Generator) -> GraspAnswer:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def describe(self) -> str:
        return self.name


@dataclass(frozen=True)
class SourceOptions:
    """What a builder may need: a checkpoint (path or short name), device, the node's answer
    timeout [s], extra node parameters (``NAME:=VALUE``), a directory for logs (the
    benchmark's output directory), ``depth_lead`` [s]: how long before the image the node
    source publishes depth and CameraInfo (0: back to back, as many drivers do), and ``rate``
    [Hz]: the node source's camera repeats a frame at this rate until answered (0: once).
    ``decode``: decoding settings ``((name, value), ...)`` over the checkpoint's own (the
    ``api`` source; the command line passes them to the node as its parameters).
    ``depth_check``: settings ``((name, value), ...)`` of the depth check of the ``api``
    source's grasps (:class:`~vita_grasp_core.grasp_depth.DepthCheckSettings`; ``()`` = its
    defaults), or None = no check (the model's best grasp as it is). ``approach``: what every
    source's 3-D grasps approach along (:data:`vita_grasp_core.approach.APPROACHES`; the node
    source's node gets it as its parameter). ``fallback``: the ``api`` source's depth
    fallback when the model has no grasp above its threshold (:mod:`vita_grasp_core.
    depth_fallback`; the node's ``depth_fallback`` parameter)."""

    checkpoint: str | None = None
    device: str = "auto"
    timeout: float = 30.0
    node_params: tuple[str, ...] = ()
    log_dir: str | None = None
    depth_lead: float = 0.0
    rate: float = 10.0
    decode: tuple[tuple[str, float], ...] = ()
    depth_check: tuple[tuple[str, object], ...] | None = ()
    approach: str = "camera"
    fallback: bool = False


@dataclass(frozen=True)
class SourceEntry:
    """A registered source: ``builder(SourceOptions) -> GraspSource`` and one line of help."""

    builder: Callable[[SourceOptions], GraspSource]
    help: str


SOURCES: dict[str, SourceEntry] = {}


def register_source(name: str, help: str):
    """Decorator: register a builder ``builder(SourceOptions) -> GraspSource`` under ``name``."""
    def deco(builder):
        SOURCES[name] = SourceEntry(builder, help)
        return builder
    return deco


def available_sources() -> tuple[dict[str, SourceEntry], list[str]]:
    """Built-in sources plus those of the :data:`ENTRY_POINT_GROUP` entry points (each loads to
    a :class:`SourceEntry`); ``(sources, problems)`` as in :mod:`vita_grasp_core.cli`."""
    from importlib.metadata import entry_points

    out, problems = dict(SOURCES), []
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in out:
            continue
        try:
            entry = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not break the others
            problems.append(f"{ep.name} ({ep.value}): {type(e).__name__}: {e}")
            continue
        if not (callable(getattr(entry, "builder", None)) and isinstance(
                getattr(entry, "help", None), str)):
            problems.append(f"{ep.name} ({ep.value}): not a SourceEntry (builder and help)")
            continue
        out[ep.name] = SourceEntry(entry.builder, entry.help)
    return out, problems


def make_source(name: str, options: SourceOptions | None = None) -> GraspSource:
    """Build the source ``name``; ``ValueError`` (one line listing the sources) when unknown or
    when its options are wrong (e.g. no checkpoint)."""
    sources, problems = available_sources()
    if name not in sources:
        extra = f" (not loaded: {'; '.join(problems)})" if problems else ""
        raise ValueError(f"unknown grasp source {name!r}; available: "
                         f"{', '.join(sorted(sources))}{extra}")
    return sources[name].builder(options or SourceOptions())


def _visible(obs, min_pixels: int = 40) -> dict:
    return object_masks(obs.segmentation, obs.extra.get("object_ids", []), min_pixels)


# ------------------------------------------------------------------------------ baselines
class MaskSource(GraspSource):
    """A baseline that reads the ground-truth masks: :meth:`grasp` picks a pixel grasp from
    ``{body id: mask}`` of the visible objects."""

    uses_ground_truth = True

    def grasp(self, obs, masks: dict, rng) -> Grasp:
        raise NotImplementedError

    def plan(self, obs, rng):
        t0 = time.perf_counter()
        masks = _visible(obs)
        return answer_from_pixel(self.grasp(obs, masks, rng) if masks else None, obs, t0,
                                 approach=self.options.approach)


class RandomSource(MaskSource):
    """A random pixel of a random visible object, a random angle and opening (2-11 cm)."""

    name = "random"

    def grasp(self, obs, masks, rng):
        body = list(masks)[int(rng.integers(len(masks)))]
        ys, xs = np.nonzero(masks[body])
        i = int(rng.integers(len(xs)))
        z = median_depth(obs.depth, masks[body], 0.6)
        width = float(rng.uniform(0.02, 0.11)) * obs.K[0, 0] / z
        return Grasp(float(xs[i]), float(ys[i]), float(rng.uniform(-math.pi / 2, math.pi / 2)),
                     width, 0.022 * obs.K[0, 0] / z, 1.0, 1.0)


def minor_axis_grasp(mask: np.ndarray, K, depth: np.ndarray, margin_m: float = 0.02) -> Grasp:
    """The analytic grasp of a mask (:func:`~vita_grasp_core.depth_fallback.axis_grasp`):
    centroid, opening along the minor axis, wide enough to clear the mask on both sides of the
    centroid plus ``margin_m`` (pixels at the median depth of the mask)."""
    ys, xs = np.nonzero(mask)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    return axis_grasp(pts, median_depth(depth, mask, 0.6), K[0, 0], margin_m, quality=1.0)


class AnalyticSource(MaskSource):
    """The ground-truth mask of the object nearest the camera (the top of a pile): centroid,
    opening along its minor axis."""

    name = "analytic"

    def grasp(self, obs, masks, rng):
        body = min(masks, key=lambda b: median_depth(obs.depth, masks[b], np.inf))
        return minor_axis_grasp(masks[body], obs.K, obs.depth)


class PredictorSource(GraspSource):
    """A checkpoint through :class:`~vita_grasp_core.GraspPredictor` (RGB in, the best grasp,
    3-D pose from depth + K with :mod:`vita_grasp_core.grasp3d`)."""

    name = "api"

    def __init__(self, options: SourceOptions):
        from ..predictor import GraspPredictor

        super().__init__(options)
        self.checkpoint = require_checkpoint(options, self.name)
        # a path or a short name of vita_grasp_core.zoo (read_checkpoint resolves it)
        self.predictor = GraspPredictor.from_checkpoint(self.checkpoint, device=options.device,
                                                        **dict(options.decode))

        from ..grasp_depth import DepthCheckSettings

        dc = options.depth_check
        self.depth_check = False if dc is None else DepthCheckSettings(**dict(dc))

    def describe(self) -> str:
        given = "".join(f", {k} {v:g}" for k, v in self.options.decode)
        dc = self.options.depth_check
        check = (", no depth check" if dc is None else
                 "".join(f", {k} {v}" for k, v in dc))
        table = ", approach table" if self.options.approach == "table" else ""
        fb = ", depth fallback" if self.options.fallback else ""
        return f"api ({self.checkpoint}{given}{check}{table}{fb})"

    def plan(self, obs, rng):
        t0 = time.perf_counter()
        approach = self.options.approach
        pred = self.predictor.predict(obs.rgb, depth=obs.depth, K=obs.K,
                                      depth_check=self.depth_check, approach=approach,
                                      fallback=self.options.fallback)
        answer = answer_from_pixel(pred.grasps[0] if pred.grasps else None, obs, t0,
                                   approach=approach)
        answer.alternatives = [GraspAnswer(g, p.position, p.quaternion, p.width_m)
                               for g, p in zip(pred.grasps[1:], pred.poses[1:]) if p]
        if pred.fallback_note:
            answer.extra["fallback"] = pred.fallback_note
        if pred.depth_check is not None:
            dc = pred.depth_check
            answer.extra["depth_check"] = {"summary": dc.summary(), "best": (
                dc.kept[0].to_dict() if dc.kept else None),
                "dropped": [c.to_dict() for c in dc.dropped]}
        return answer


def require_checkpoint(options: SourceOptions | None, source: str) -> str:
    """The checkpoint a source was given; ``ValueError`` (one line) when there is none."""
    if options is None or not options.checkpoint:
        raise ValueError(f"grasp source {source!r} needs --checkpoint (a checkpoint path or a "
                         "short name)")
    return str(options.checkpoint)


register_source("random", "a random pixel of a random object, random angle and opening "
                          "(ground-truth mask; baseline)")(RandomSource)
register_source("analytic", "mask centroid of the object nearest the camera, opening along the "
                            "mask's minor axis (ground-truth mask; baseline)")(AnalyticSource)
register_source("api", "a checkpoint through GraspPredictor (--checkpoint): RGB in, depth + K "
                       "for the 3-D pose")(PredictorSource)
