"""Grasps on request: the node's ``~/get_grasps`` service (``vita_grasp/srv/GetGrasps``; e.g.
``/robot/vita_grasp_node/get_grasps``).

A planner asks when it needs grasps - of the newest frame (``NEWEST``) or of the next one to
arrive (``NEXT``), on an optional target (``vita_grasp/GraspTarget``), at most ``max_grasps`` -
instead of listening to the stream. It works with the streaming output off (``stream: false``):
frames are then only kept, and predicted when a request needs them.

How a request is answered (docs/ros.md "Grasps on request"):

- ``NEWEST``: the newest frame the node has received. When the worker has already processed it
  (streaming), its maps are decoded again for the request's target: decoding only, a few ms.
  When the worker is processing it, the answer waits for that result. Otherwise (``stream:
  false``) the frame is predicted now: one inference time.
- ``NEXT``: the first frame that arrives after the request, predicted by the worker (also with
  ``stream: false``).
- 3-D poses come from the depth frame and CameraInfo the frame was paired with.

A bad request (unknown frame mode or target kind, ``max_grasps`` above 1000, a non-finite or
negative timeout, a mask of another encoding or aspect ratio, an unreadable example picture ...)
gets ``success: false`` and a one-line ``message``; nothing a request holds can stop the node.
``success: true`` with no grasps means the frame has none on the target (``message`` says why).

Waiting for a frame needs the node's callbacks to run while the service waits: the node runs a
multi-threaded executor (``vita-grasp-node`` does); a request that would have to wait under a
single-threaded executor is answered with an error saying so, never a dead lock.
"""
from __future__ import annotations

import contextlib
import math
import time

from vita_grasp_core.target_select import TargetError

from . import grasp_msgs
from .node_support import stamp_ns
from .target_inputs import request_target

#: Longest wait a request may ask for [s]; 0 means :data:`DEFAULT_TIMEOUT`.
MAX_TIMEOUT, DEFAULT_TIMEOUT = 60.0, 5.0
#: Largest ``max_grasps`` of a request (the node's parameter range).
MAX_GRASPS = 1000


def check_request(req) -> str | None:
    """The problem with a request's frame / max_grasps / timeout fields, or None."""
    if int(req.frame) not in (req.NEWEST, req.NEXT):
        return f"frame must be {req.NEWEST} (NEWEST) or {req.NEXT} (NEXT), got {req.frame}"
    if int(req.max_grasps) > MAX_GRASPS:
        return f"max_grasps {req.max_grasps} is above {MAX_GRASPS}"
    t = float(req.timeout)
    if not math.isfinite(t) or t < 0 or t > MAX_TIMEOUT:
        return f"timeout must be in [0, {MAX_TIMEOUT:g}] s (0 = {DEFAULT_TIMEOUT:g} s), got {t}"
    return None


class GraspRequests:
    """The ``get_grasps`` service of a :class:`~vita_grasp_ros.node_base.GraspPipeline` node.

    The node provides: ``predictor``, ``settings``, ``targets`` (:class:`TargetInputs`),
    ``depth``, ``newest`` (the newest :class:`Frame`), ``last_result`` and ``result_cv`` (a
    Condition notified on each new frame and result), ``compute(frame)`` (a FrameResult,
    predicted now, not published) and ``stats``.
    """

    def __init__(self, node):
        self.node = node
        self.service = None
        self._next_since: list[float] = []  # arrival times the waiting NEXT requests want

    # ---------------------------------------------------------------- service lifetime
    def start(self) -> None:
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from vita_grasp.srv import GetGrasps

        if self.service is None:
            self.service = self.node.create_service(
                GetGrasps, "~/get_grasps", self._handle,
                callback_group=MutuallyExclusiveCallbackGroup())

    def stop(self) -> None:
        if self.service is not None:
            self.node.destroy_service(self.service)
            self.service = None
        with self.node.result_cv:
            self.node.result_cv.notify_all()

    def wants_frames(self, frame) -> bool:
        """Whether ``frame`` answers a waiting NEXT request (it arrived after the request and no
        frame since has): the worker predicts it even with ``stream: false``. Only those: a
        frame predicted for nobody would delay the next request by an inference time."""
        node = self.node
        with node.result_cv:
            last = node.last_result
            done = last.frame.arrival if last is not None and last.frame is not None else -1.0
            return any(done <= t0 < frame.arrival for t0 in self._next_since)

    # ---------------------------------------------------------------- requests
    def _handle(self, request, response):
        t0 = time.perf_counter()
        try:
            self._answer(request, response)
        except TargetError as e:
            self._fail(response, str(e))
        except Exception as e:  # noqa: BLE001 - a request never kills the node
            self._fail(response, f"internal error: {type(e).__name__}: {e}")
        self.node.stats.on_request(response.success, time.perf_counter() - t0)
        return response

    @staticmethod
    def _fail(response, message: str) -> None:
        response.success, response.message = False, message
        response.grasps.grasps = []

    def _answer(self, req, resp) -> None:
        node = self.node
        bad = check_request(req)
        if bad:
            return self._fail(resp, bad)
        if node.predictor is None:
            return self._fail(resp, "the node is not configured (no model loaded)")
        timeout = float(req.timeout) or DEFAULT_TIMEOUT
        result = (self._next_result(timeout) if int(req.frame) == req.NEXT
                  else self._newest_result(timeout))
        if isinstance(result, str):
            return self._fail(resp, result)
        settings = node.settings
        stamp = stamp_ns(result.source_header.stamp)
        # an example picture is encoded here (a forward pass: the model's lock); any other
        # target must not wait for the worker's next prediction (an inference time)
        t = req.target
        encodes = int(t.kind) == t.EXAMPLE or (int(t.kind) == t.NODE
                                               and settings.target == "example")
        with node.predict_lock if encodes else contextlib.nullcontext():
            target, note, scene = request_target(t, node.targets, settings, stamp,
                                                 node.predictor)
        if target is None and not scene:  # the node's own selection has no target now
            grasps, note = [], note
        else:
            pred = result.prediction
            if getattr(target, "needs_features", False) and pred.features is None:
                result = node.compute(result.frame, keep_features=True)
                if isinstance(result, str):
                    return self._fail(resp, result)
                pred = result.prediction
            sel = node.predictor.select(pred, target, max_grasps=int(req.max_grasps) or None)
            grasps, note = sel.grasps, sel.target_note
        size = result.rgb.shape[:2]
        poses = None
        if result.depth is not None and grasps:
            grasps, poses = node.depth.poses_from(result.depth, grasps, result.header, size,
                                                  settings)
        resp.grasps = grasp_msgs.grasps_to_msg(
            grasps, result.header, size, poses,
            depth_stamp=result.depth.depth_stamp if poses else None)
        resp.success, resp.message = True, note

    def _single_threaded(self) -> bool:
        from rclpy.executors import SingleThreadedExecutor

        return isinstance(self.node.executor, SingleThreadedExecutor)

    def _wait(self, done, timeout: float) -> bool:
        """Wait on the node's result condition until ``done()`` or ``timeout`` s."""
        node = self.node
        deadline = time.monotonic() + timeout
        with node.result_cv:
            while not done():
                left = deadline - time.monotonic()
                if left <= 0 or self.service is None:
                    return False
                node.result_cv.wait(min(left, 0.2))
        return True

    def _no_frame(self, timeout: float, what: str) -> str:
        topic = self.node.image_sub.topic_name if self.node.image_sub is not None else "image"
        return f"no {what} arrived on {topic} within {timeout:g} s"

    def _newest_result(self, timeout: float):
        """The FrameResult of the newest frame, or an error line."""
        node = self.node
        if node.newest is None:
            if self._single_threaded():
                return ("no frame received yet (and waiting for one needs a multi-threaded "
                        "executor)")
            if not self._wait(lambda: node.newest is not None, timeout):
                return self._no_frame(timeout, "frame")
        frame = node.newest
        last = node.last_result
        if last is not None and last.frame is frame:
            return last  # already predicted: decoding only
        if node.settings.stream and not self._single_threaded():  # the worker is on it
            def done():
                r = node.last_result
                return r is not None and r.frame is not None and r.frame.arrival >= frame.arrival

            if self._wait(done, timeout):
                return node.last_result
            return f"the newest frame was not predicted within {timeout:g} s"
        return node.compute(frame)

    def _next_result(self, timeout: float):
        """The FrameResult of the first frame that arrives after now, or an error line."""
        node = self.node
        if self._single_threaded():
            return ("frame NEXT needs the node to spin in a multi-threaded executor (frames "
                    "arrive while the request waits); use NEWEST or a MultiThreadedExecutor")
        t0 = time.monotonic()
        with node.result_cv:
            self._next_since.append(t0)
        try:
            def done():
                r = node.last_result
                return r is not None and r.frame is not None and r.frame.arrival > t0

            if self._wait(done, timeout):
                return node.last_result
            return self._no_frame(timeout, "new frame")
        finally:
            with node.result_cv:
                self._next_since.remove(t0)
