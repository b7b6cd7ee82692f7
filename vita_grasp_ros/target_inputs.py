"""Target selection for the node: messages -> core targets (:mod:`vita_grasp_core.target_select`).

Inputs (all optional, relative names; docs/ros.md "Target selection"):

- ``target/detections`` (``vision_msgs/Detection2DArray``, e.g. yolo_ros, Isaac ROS): boxes of a
  2-D detector; the ``target_class`` / ``target_min_score`` parameters pick the wanted ones;
- ``target/mask`` (``sensor_msgs/Image`` mono8, 8UC1, mono16 or 16UC1; non-zero = the object):
  any segmentation node;
- ``target/point`` (``geometry_msgs/Point``, x/y in the image's pixels; what rqt_image_view
  publishes on ``<image>_mouse_left``): the object under it, until another point comes (a
  negative or non-finite one clears it);
- ``target/example`` (``sensor_msgs/Image``) or the ``target_example`` parameter (an image file):
  a picture of the object (one-shot, :mod:`vita_grasp_core.example_match`).

Detections and masks are matched to a frame by stamp: the one nearest to the frame's stamp, if
within ``target_max_age`` seconds; a message with a zero stamp holds for every frame (a fixed
mask). The ``target`` parameter says which input is used (``none``: the whole scene).

Conversions are pure functions (tested without a running node); :class:`TargetInputs` keeps
the newest messages (a few of each, bounded) and turns them into a core target per frame.
"""
from __future__ import annotations

import math
import threading
from collections import deque

import numpy as np

from vita_grasp_core.target_select import (
    MAX_IMAGE_SIDE,
    Detection,
    MaskTarget,
    PointTarget,
    TargetError,
    box_target,
    detections_target,
)

from .image_conversions import ImageConversionError, image_msg_to_numpy, image_msg_to_rgb
from .node_support import stamp_ns

#: Stamped target messages kept per input (the nearest to a frame's stamp is used).
KEEP = 8
#: Encodings accepted for a target mask.
MASK_ENCODINGS = ("mono8", "8UC1", "mono16", "16UC1")


def _centre(bbox) -> tuple[float, float]:
    c = bbox.center
    if hasattr(c, "position"):  # vision_msgs >= 4
        return float(c.position.x), float(c.position.y)
    return float(c.x), float(c.y)  # vision_msgs 3.x: geometry_msgs/Pose2D


def _hypotheses(det) -> list[tuple[str, float]]:
    out = []
    for r in det.results:
        h = getattr(r, "hypothesis", r)  # 4.x: ObjectHypothesisWithPose.hypothesis; 3.x: itself
        cls = getattr(h, "class_id", getattr(h, "id", ""))
        out.append((str(cls), float(h.score)))
    return out


def detections_from_msg(msg, target_class: str = "") -> list[Detection]:
    """``vision_msgs/Detection2DArray`` -> core :class:`Detection` s (one per Detection2D): the
    hypothesis of ``target_class`` when the detection lists it, else its best one."""
    out = []
    for d in msg.detections:
        hyps = _hypotheses(d)
        pick = [h for h in hyps if h[0] == target_class] if target_class else []
        cls, score = max(pick or hyps, key=lambda h: h[1]) if hyps else ("", 0.0)
        cx, cy = _centre(d.bbox)
        out.append(Detection(cx, cy, float(d.bbox.size_x), float(d.bbox.size_y), cls, score,
                             str(getattr(d, "id", ""))))
    return out


def mask_from_msg(msg) -> np.ndarray:
    """A single-channel ``sensor_msgs/Image`` -> ``HxW`` bool (non-zero = object).
    Raises :class:`TargetError` (one line) for anything else."""
    if str(msg.encoding) not in MASK_ENCODINGS:
        raise TargetError(f"target mask encoding {msg.encoding!r} is not one of "
                          f"{', '.join(MASK_ENCODINGS)}")
    try:
        return image_msg_to_numpy(msg) != 0
    except ImageConversionError as e:
        raise TargetError(f"bad target mask: {e}") from None


def example_from_msg(msg) -> np.ndarray:
    """A colour ``sensor_msgs/Image`` of the object -> ``HxWx3`` uint8 RGB."""
    try:
        return np.array(image_msg_to_rgb(msg))  # a copy: the message buffer is not kept
    except ImageConversionError as e:
        raise TargetError(f"bad example picture: {e}") from None


def point_from_msg(msg) -> tuple[float, float] | None:
    """``geometry_msgs/Point`` (pixels) -> (x, y), or None (clear) when negative / not finite."""
    x, y = float(msg.x), float(msg.y)
    if not (math.isfinite(x) and math.isfinite(y)) or x < 0 or y < 0:
        return None
    return x, y


def read_example_file(path: str) -> np.ndarray:
    """An image file -> ``HxWx3`` uint8 RGB; :class:`TargetError` naming the file if unreadable."""
    import cv2

    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise TargetError(f"target_example {path!r}: not a readable image file")
    if max(bgr.shape[:2]) > MAX_IMAGE_SIDE:
        raise TargetError(f"target_example {path!r}: larger than {MAX_IMAGE_SIDE} px per side")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def nearest(items, stamp: int, max_age_s: float):
    """The value of the ``(stamp_ns, value)`` item nearest to ``stamp`` within ``max_age_s``;
    zero-stamped items match any frame. ``(value, note)``; value None with the reason."""
    if not items:
        return None, "nothing received yet"
    best = min(items, key=lambda it: 0 if it[0] == 0 else abs(it[0] - stamp))
    dt = 0 if best[0] == 0 else abs(best[0] - stamp)
    if dt > max_age_s * 1e9:
        return None, (f"the nearest is {dt / 1e9:.2f} s from the frame's stamp (target_max_age "
                      f"{max_age_s:g} s)")
    return best[1], ""


class TargetInputs:
    """The newest target messages and the target of each frame (thread-safe: callbacks store,
    the worker and the service read)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._detections: deque = deque(maxlen=KEEP)  # (stamp_ns, msg)
        self._masks: deque = deque(maxlen=KEEP)  # (stamp_ns, HxW bool)
        self.point: tuple[float, float] | None = None
        self._example = None  # (key, rgb)
        self._matcher = None  # (key, ExampleMatcher)

    # ---------------------------------------------------------------- callbacks
    def on_detections(self, msg) -> None:
        with self._lock:
            self._detections.append((stamp_ns(msg.header.stamp), msg))

    def on_mask(self, msg) -> None:
        """Raises :class:`TargetError` for a bad mask (the caller logs it)."""
        m = mask_from_msg(msg)
        with self._lock:
            self._masks.append((stamp_ns(msg.header.stamp), m))

    def on_point(self, msg) -> None:
        self.point = point_from_msg(msg)

    def on_example(self, msg) -> None:
        self.set_example(example_from_msg(msg), ("topic", id(msg)))

    def load_example_file(self, path: str) -> None:
        """The ``target_example`` image file (if set) becomes the example (TargetError if not
        readable)."""
        if path:
            self.set_example(read_example_file(path), ("file", path))

    def subscribe(self, subscribe, warn) -> None:
        """Create the ``target/*`` subscriptions with the node's ``subscribe(type, topic,
        callback)``; ``warn(key, message)`` reports a refused mask or example (throttled)."""
        from geometry_msgs.msg import Point
        from sensor_msgs.msg import Image

        from .detections import load_vision_msgs

        def guarded(what, fn):
            def callback(msg):
                try:
                    fn(msg)
                except TargetError as e:
                    warn(f"target:{what}", f"target/{what} refused: {e}")
            return callback

        vm = load_vision_msgs()
        if vm is not None:
            subscribe(vm.Detection2DArray, "target/detections", self.on_detections)
        subscribe(Image, "target/mask", guarded("mask", self.on_mask))
        subscribe(Point, "target/point", self.on_point)
        subscribe(Image, "target/example", guarded("example", self.on_example))

    def set_example(self, rgb, key) -> None:
        with self._lock:
            self._example, self._matcher = (key, rgb), None

    def clear(self) -> None:
        with self._lock:
            self._detections.clear()
            self._masks.clear()

    # ---------------------------------------------------------------- per frame
    def target(self, settings, stamp: int, predictor):
        """The frame's target from the node's own selection (``settings.target``):
        ``(target or None, note)``; None with a note when the selection has nothing for this
        frame (no grasps are published then), None without a note for "whole scene"."""
        mode = settings.target
        if mode == "none":
            return None, ""
        if mode == "detections":
            return self.detections_target(settings.target_class, settings.target_min_score,
                                          stamp, settings.target_max_age)
        if mode == "mask":
            with self._lock:
                m, why = nearest(list(self._masks), stamp, settings.target_max_age)
            return (MaskTarget(m), "") if m is not None else (None, f"no target mask: {why}")
        if mode == "point":
            p = self.point
            return (PointTarget(*p), "") if p else (None, "no target point received yet")
        if mode == "example":
            return self.matcher(predictor), ""
        raise TargetError(f"unknown target mode {mode!r}")

    def frame_target(self, settings, stamp: int, predictor):
        """:meth:`target`, with a :class:`TargetError` (e.g. no example picture yet) as the
        note."""
        try:
            return self.target(settings, stamp, predictor)
        except TargetError as e:
            return None, str(e)

    def detections_target(self, target_class: str, min_score: float, stamp: int,
                          max_age: float):
        with self._lock:
            msg, why = nearest(list(self._detections), stamp, max_age)
        if msg is None:
            return None, f"no target detections: {why}"
        return detections_target(detections_from_msg(msg, target_class), target_class,
                                 min_score), ""

    def matcher(self, predictor):
        """The :class:`~vita_grasp_core.example_match.ExampleMatcher` of the current example
        (built once per example, a forward pass). :class:`TargetError` without an example."""
        with self._lock:
            example, cached = self._example, self._matcher
        if example is None:
            raise TargetError("no example picture yet (publish one on target/example or set "
                              "the target_example parameter)")
        if cached is not None and cached[0] == example[0]:
            return cached[1]
        m = predictor.example_target(example[1])
        with self._lock:
            if self._example is example:
                self._matcher = (example[0], m)
        return m


def request_target(t, inputs: TargetInputs, settings, stamp: int, predictor):
    """A ``vita_grasp/GraspTarget`` of a GetGrasps request -> ``(target, note, scene)``:
    ``scene`` True for "no target". :class:`TargetError` (one line) for a bad request."""
    kind = int(t.kind)
    if kind == t.NODE:
        target, note = inputs.target(settings, stamp, predictor)
        return target, note, target is None and not note
    if kind == t.SCENE:
        return None, "", True
    if kind == t.DETECTIONS:
        if not math.isfinite(t.min_score):
            raise TargetError("target.min_score is not finite")
        target, note = inputs.detections_target(t.class_id, float(t.min_score), stamp,
                                                settings.target_max_age)
        return target, note, False
    if kind == t.BOX:
        b = t.box
        if int(b.width) == 0 or int(b.height) == 0:
            raise TargetError("target.box is empty (width or height 0)")
        x0, y0 = int(b.x_offset) - 0.5, int(b.y_offset) - 0.5
        return box_target([(x0, y0, x0 + int(b.width), y0 + int(b.height))], ["box/0"]), "", \
            False
    if kind == t.MASK:
        return MaskTarget(mask_from_msg(t.mask)), "", False
    if kind == t.POINT:
        p = point_from_msg(t.point)
        if p is None:
            raise TargetError(f"target.point ({t.point.x:g}, {t.point.y:g}) is negative or not "
                              "finite")
        return PointTarget(*p), "", False
    if kind == t.EXAMPLE:
        return predictor.example_target(example_from_msg(t.example)), "", False
    raise TargetError(f"unknown target.kind {kind} (0-6, see vita_grasp/GraspTarget)")
