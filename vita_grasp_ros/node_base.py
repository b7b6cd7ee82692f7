"""The grasp node: :class:`GraspPipeline` (the one lifecycle: parameters -> configure -> activate
-> deactivate -> cleanup, shared by both nodes) and :class:`GraspNode` (the default, plain
``rclpy`` node, which configures and activates at construction). docs/ros.md, CONVENTIONS §6.

The parts, each in its own module:

- parameters: :mod:`.node_params` (the table, its one check, the run-time :class:`Settings`);
- the frame worker: :mod:`.node_worker` (one-slot mailbox, latest frame wins; a frame replaced
  before it was processed counts as *dropped*);
- depth and CameraInfo, paired with each frame by stamp: :mod:`.node_depth`, :mod:`.node_sync`;
- the outputs (``grasps``, ``detections``, ``markers``, ``debug/heatmap``): a registry in
  :mod:`.node_outputs` (a new topic is one class + one registration);
- target selection: :mod:`.target_inputs`; grasps on request (get_grasps): :mod:`.node_service`;
- /diagnostics: :mod:`.diagnostics`.

Bad input (unknown encoding, zero or oversized frames, wrong step, truncated or corrupt data, an
exception in the predictor) is logged (throttled, per kind), counted as *bad* and skipped.

Testing only: the environment variable ``VITA_GRASP_SIMULATED_LATENCY_MS`` makes the worker sleep
that long after each prediction (a stand-in for a slow model in tests; never set it on a robot).
"""
from __future__ import annotations

import functools
import os
import threading
import time

from diagnostic_msgs.msg import DiagnosticArray
from rcl_interfaces.msg import SetParametersResult
from rclpy.exceptions import ParameterException
from rclpy.node import Node
from rclpy.qos import (
    HistoryPolicy,
    QoSDurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_system_default,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

from . import grasp_msgs
from .diagnostics import NodeStats, stats_to_diagnostic_array
from .image_conversions import ImageConversionError, compressed_msg_to_rgb, image_msg_to_rgb
from .node_depth import DepthInputs
from .node_outputs import OUTPUTS, FrameResult, Publishers, parameter_table
from .node_params import DECODING_NAMES, DECODING_PARAMETERS, NODE_NAME, StartupError
from .node_service import GraspRequests
from .node_support import Throttle, load_predictor, stamp_ns
from .node_worker import Frame, FrameWorker
from .target_inputs import TargetError, TargetInputs

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

__all__ = ["NODE_NAME", "GraspPipeline", "GraspNode", "Frame"]

SIMULATED_LATENCY_ENV = "VITA_GRASP_SIMULATED_LATENCY_MS"


class GraspPipeline:
    """Parameters, model, inputs, outputs and the worker of the grasp node (a mixin for an rclpy
    ``Node``). Stages: construction (:meth:`_init_pipeline`: parameters declared and checked),
    :meth:`configure` (model, outputs, diagnostics), :meth:`activate` (inputs, worker),
    :meth:`deactivate`, :meth:`cleanup`."""

    # ---------------------------------------------------------------- construction
    def _init_pipeline(self) -> None:
        self._throttle = Throttle(5.0)
        self.stats = NodeStats()
        self.predictor = None
        self.settings = None
        self.table = parameter_table()
        self._rejection = ""
        self.depth = DepthInputs(self._warn, self.get_logger().info, self.get_logger().debug)
        self.outputs: list = []
        self._output_pubs: Publishers | None = None
        self.image_sub = None
        self._subs: list = []
        self.diag_pub = self.diag_timer = None
        self._warned_no_frame_id = False
        self.result_cv = threading.Condition()  # notified on each new frame and result
        self.last_result: FrameResult | None = None
        self.newest: Frame | None = None  # the newest colour frame received
        self.predict_lock = threading.Lock()  # the worker and get_grasps share the model
        self.targets = TargetInputs()
        self.requests = GraspRequests(self)
        self._simulated_latency = float(os.environ.get(SIMULATED_LATENCY_ENV, "0") or 0) / 1e3
        # Registered first: rclpy runs it for every declaration too (one validation path).
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self._p = self._declare_startup_parameters()
        self._use_depth = bool(self._p["use_depth"])
        # one slot (the newest frame wins); with use_depth the newest frame with its depth frame
        self.worker = (self.depth.frame_worker(int(self._p["depth_queue"]), self._process_frame,
                                               self._on_worker_error, lambda: self.settings,
                                               self.stats.on_dropped) if self._use_depth
                       else FrameWorker(self._process_frame, self._on_worker_error))

    def _declare(self, spec, default=None):
        """Declare one parameter (the override, if any, checked first); StartupError on bad."""
        overrides = getattr(self, "_parameter_overrides", {})  # rclpy's parsed -p / params file
        if spec.name in overrides:
            reason = spec.check(overrides[spec.name].value)
            if reason:
                raise StartupError(reason)
        value = spec.default if default is None else default
        try:
            return self.declare_parameter(spec.name, value, spec.descriptor()).value
        except ParameterException as e:  # out of range, wrong type, rejected by the callback
            raise StartupError(self._rejection or f"parameter {spec.name!r}: {e}") from None
        except Exception as e:  # noqa: BLE001 - rclpy raises several types here
            raise StartupError(f"parameter {spec.name!r}: {type(e).__name__}: {e}") from None

    def _declare_startup_parameters(self) -> dict:
        """Declare every parameter but the decoding ones; returns their values. The decoding
        parameters' overrides are checked now too (before a possibly slow model load)."""
        overrides = getattr(self, "_parameter_overrides", {})
        bad = self.table.check({k: overrides[k].value for k in DECODING_NAMES if k in overrides})
        if bad:
            raise StartupError(bad)
        p = {spec.name: self._declare(spec) for spec in self.table.specs.values()
             if not spec.from_checkpoint}
        reason = self.table.check(p)  # e.g. the required checkpoint left at its empty default
        if reason:
            raise StartupError(reason)
        self.settings = self.table.settings(p)
        for cls in OUTPUTS.values():
            why = cls.unavailable()
            if why:
                self.get_logger().info(why)
        if self._simulated_latency > 0:
            self.get_logger().warning(
                f"{SIMULATED_LATENCY_ENV}={self._simulated_latency * 1e3:.0f}: sleeping after "
                "every prediction (testing only)")
        return p

    # ---------------------------------------------------------------- lifecycle stages
    def configure(self, lifecycle: bool = False) -> None:
        """Load the model, declare the decoding parameters, create the outputs and
        /diagnostics. Raises :class:`StartupError`."""
        self._load_model(self._p)
        self._output_pubs = Publishers(self, lifecycle)
        self.outputs = [cls(self, self._output_pubs) for cls in OUTPUTS.values()
                        if cls.unavailable() is None]
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics",
                                              qos_profile_system_default)
        self.diag_timer = self.create_timer(float(self._p["diagnostics_period"]),
                                            self._publish_diagnostics)

    def activate(self) -> None:
        """Subscribe to the inputs, start the worker and offer ``get_grasps``."""
        try:
            self.targets.load_example_file(self.settings.target_example)
        except TargetError as e:
            raise StartupError(str(e)) from None
        self._create_inputs(self._p)
        self.worker.start()
        self.requests.start()

    def deactivate(self) -> None:
        """Withdraw ``get_grasps``, unsubscribe and stop the worker (the model and the outputs
        stay)."""
        self.requests.stop()
        for sub in self._subs:
            self.destroy_subscription(sub)
        self.depth.reset()
        self.targets.clear()
        self.newest = self.last_result = None
        self._subs, self.image_sub = [], None
        self.stop()

    def cleanup(self) -> None:
        """Everything stopped and freed: inputs, worker, outputs, /diagnostics, the model."""
        self.deactivate()
        if self._output_pubs is not None:
            self._output_pubs.destroy_all()
        self.outputs, self._output_pubs = [], None
        if self.diag_timer is not None:
            self.destroy_timer(self.diag_timer)
        if self.diag_pub is not None:
            self.destroy_publisher(self.diag_pub)
        self.diag_pub = self.diag_timer = None
        self.predictor = None

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the worker (the frame in the slot, if any, is discarded)."""
        for left in self.worker.stop(timeout):
            self.depth.close(left.pairings)

    def _load_model(self, p: dict) -> None:
        """Load the predictor, then declare the decoding parameters with the checkpoint's
        decoding as defaults (a params file or -p still overrides them) and apply them."""
        self.predictor = load_predictor(p, self.get_logger())
        stored = self.predictor.decode_config
        values = {}
        for spec in DECODING_PARAMETERS:
            if self.has_parameter(spec.name):  # a lifecycle re-configure keeps the user's values
                values[spec.name] = self.get_parameter(spec.name).value
            else:
                values[spec.name] = self._declare(spec, getattr(stored, spec.name))
        self.predictor.set_decoding(**values)
        self.get_logger().info("decoding: " + ", ".join(f"{k}={v!r}" for k, v in values.items()))

    # ---------------------------------------------------------------- inputs
    def subscribe_input(self, msg_type, topic: str, callback, depth: int | None = None):
        """A subscription with the input QoS (``input_reliability``; history ``depth``, default
        ``input_depth``; overridable with ``qos_overrides.<topic>.subscription.*``), an
        incompatible-QoS report, destroyed on :meth:`deactivate`. Every input topic goes through
        here."""
        qos = self._input_qos
        if depth is not None:
            qos = QoSProfile(history=qos.history, depth=int(depth), reliability=qos.reliability,
                             durability=qos.durability)
        sub = self.create_subscription(
            msg_type, topic, callback, qos,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            event_callbacks=self._event_callbacks(topic))
        self._subs.append(sub)
        return sub

    def _create_inputs(self, p: dict) -> None:
        # Sensor-data-like (keep last, small depth, volatile), reliability by parameter.
        self._input_qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=int(p["input_depth"]),
            reliability=(ReliabilityPolicy.BEST_EFFORT if p["input_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE),
            durability=QoSDurabilityPolicy.VOLATILE)
        convert = compressed_msg_to_rgb if p["use_compressed"] else image_msg_to_rgb
        self._convert = functools.partial(convert, max_pixels=int(p["max_pixels"]))
        if p["use_compressed"]:
            self.image_sub = self.subscribe_input(CompressedImage, "image/compressed",
                                                  self._on_image)
        else:
            self.image_sub = self.subscribe_input(Image, "image", self._on_image)
        if self._use_depth:
            self.depth.subscribe(lambda *a: self.subscribe_input(*a, depth=p["depth_queue"]),
                                 Image, CameraInfo)
        self.targets.subscribe(self.subscribe_input, self._warn)

    def _event_callbacks(self, what):
        def incompatible(event):
            kind = str(getattr(event, "last_policy_kind", "?")).split(".")[-1]
            kind = kind.replace("RMW_QOS_POLICY_", "").lower()
            self._throttle(self.get_logger(), "error", f"qos:{what}",
                           f"a publisher on '{what}' has an incompatible QoS ({kind}); no "
                           "frames will arrive from it. A best-effort camera needs "
                           "-p input_reliability:=best_effort")

        try:
            return SubscriptionEventCallbacks(incompatible_qos=incompatible)
        except TypeError:
            return None

    def _on_image(self, msg):
        """Image callback (executor thread): into the slot, pairing with depth from now on."""
        pairings = self.depth.open(stamp_ns(msg.header.stamp)) if self._use_depth else None
        frame = Frame(msg, time.monotonic(), pairings)
        with self.result_cv:
            prev, self.newest = self.newest, frame
            self.result_cv.notify_all()
        if prev is not None and prev.skipped:  # kept for get_grasps until now
            self.depth.close(prev.pairings)
        old = self.worker.put(frame)
        if old is not None:
            self.depth.close(old.pairings)
        self.stats.on_received(old is not None)

    # ---------------------------------------------------------------- parameters
    def _on_set_parameters(self, params):
        """Validate (all first), then apply: decoding to the predictor, settings to the worker."""
        values = {prm.name: prm.value for prm in params}
        reason = self.table.check(values)
        decoding = {k: v for k, v in values.items() if k in DECODING_NAMES}
        settings = {k: v for k, v in values.items() if k in self.table.runtime_names()}
        if not reason and decoding and self.predictor is not None:
            try:
                new_decode = self.predictor.decode_config.replace(**decoding)
            except ValueError as e:
                reason = str(e)
        if not reason and values.get("target_example") and self.outputs:
            try:  # a changed example file is read now: an unreadable one is refused
                self.targets.load_example_file(values["target_example"])
            except TargetError as e:
                reason = str(e)
        if reason:
            self._rejection = reason
            return SetParametersResult(successful=False, reason=reason)
        if decoding and self.predictor is not None:
            self.predictor.decode_config = new_decode
        if settings and self.settings is not None:
            self.settings = self.settings.replace(**settings)
        if (settings and self.settings is not None) or (decoding and self.outputs):
            self.get_logger().info("parameters changed: " + ", ".join(
                f"{k}={v!r}" for k, v in {**decoding, **settings}.items()))
        return SetParametersResult(successful=True)

    # ---------------------------------------------------------------- diagnostics, logs
    def _warn(self, key: str, message: str) -> None:
        self._throttle(self.get_logger(), "warning", key, message)

    def _diagnostics_extra(self) -> dict:
        pred = self.predictor
        extra = {"device": str(pred.device) if pred is not None else "",
                 "engine": pred.engine_name if pred is not None else "",
                 "input_topic": self.image_sub.topic_name if self.image_sub is not None else "",
                 "score_threshold": pred.score_threshold if pred is not None else float("nan")}
        if self._p.get("use_depth"):
            extra.update(self.depth.diagnostics())
        if self._simulated_latency > 0:
            extra["simulated_latency_ms"] = self._simulated_latency * 1e3
        return extra

    def _publish_diagnostics(self):
        try:
            self.diag_pub.publish(stats_to_diagnostic_array(
                self.stats.snapshot(), self.get_clock().now().to_msg(),
                name=f"{self.get_fully_qualified_name()}: grasp detection",
                hardware_id=self.get_fully_qualified_name(), extra=self._diagnostics_extra()))
        except Exception as e:  # noqa: BLE001 - diagnostics must never kill the node
            self._throttle(self.get_logger(), "error", "diag", f"diagnostics failed: {e!r}")

    def _log_ready(self) -> None:
        p = self._p
        topics = [t for o in self.outputs for t in o.topics()]
        self.get_logger().info(
            f"ready: {self.predictor.config.backbone} ({self.predictor.engine_name}) on "
            f"{self.predictor.device} "
            f"({str(self.predictor.dtype).replace('torch.', '')}), input "
            f"{self.image_sub.topic_name} ({p['input_reliability']}), outputs "
            + ", ".join(topics)
            + (f", depth {self.depth.depth_topic}" if self._use_depth else ""))

    # ---------------------------------------------------------------- worker
    def _on_worker_error(self, e: BaseException) -> None:
        if self.context.ok():  # else shutting down: publishing into a closed context fails
            self._bad("internal", f"frame dropped, unexpected error: {type(e).__name__}: {e}")

    def _bad(self, key, reason):
        self.stats.on_bad(reason)
        self._throttle(self.get_logger(), "warning", key, reason)

    def _process(self, msg):
        """Process one image message now (tests, tools): as the worker does."""
        pairings = self.depth.open(stamp_ns(msg.header.stamp)) if self._use_depth else None
        self._process_frame(Frame(msg, time.monotonic(), pairings))

    def _process_frame(self, frame: Frame) -> None:
        """The worker's step: predict and publish (or, with ``stream`` off and no NEXT request
        waiting, only keep the frame as the newest for ``get_grasps``)."""
        frame.taken = max(frame.arrival, self.worker.looking_since)
        if not self.settings.stream and not self.requests.wants_frames(frame):
            frame.skipped = True  # its depth pairing stays open until a newer frame comes,
            if frame is not self.newest:  # or is closed now (the worker took an older frame)
                self.depth.close(frame.pairings)
            self.stats.on_kept()
            return
        t0 = time.perf_counter()
        result = self.compute(frame)
        if isinstance(result, str):
            return
        if self.settings.stream:
            self._publish(result)
        stamp = stamp_ns(frame.msg.header.stamp)
        latency = (self.get_clock().now().nanoseconds - stamp) / 1e9 if stamp else None
        self.stats.on_processed(time.perf_counter() - t0, latency)  # none for unstamped frames

    def compute(self, frame: Frame, keep_features: bool = False):
        """Convert, predict (on the node's target), pair depth: the frame's :class:`FrameResult`
        (kept as ``last_result``), or one line why not (a bad frame is counted and logged)."""
        msg = frame.msg
        try:
            rgb = self._convert(msg)
        except ImageConversionError as e:
            self.depth.close(frame.pairings)
            key = f"conv:{e.kind}"
            if e.kind == "encoding":
                key += f":{getattr(msg, 'encoding', getattr(msg, 'format', ''))}"
            self._bad(key, f"bad frame refused: {e}")
            return f"the frame was refused: {e}"
        try:
            with self.predict_lock:
                target, note = self.targets.frame_target(  # may encode the example picture
                    self.settings, stamp_ns(msg.header.stamp), self.predictor)
                pred = self.predictor.predict(rgb, target, keep_features=keep_features or (
                    self.predictor.engine is None))  # features: example requests need no rerun
        except Exception as e:  # noqa: BLE001
            self.depth.close(frame.pairings)
            self._bad("predict", f"prediction failed ({type(e).__name__}: {e}); frame dropped")
            return f"prediction failed: {type(e).__name__}: {e}"
        if note:  # the node's target selection has nothing for this frame
            pred.grasps, pred.target_note = [], note
        if pred.target_note:
            self._warn(f"target:{self.settings.target}",
                       f"target {self.settings.target}: {pred.target_note}; no grasps")
        if self._simulated_latency > 0:
            time.sleep(self._simulated_latency)
        result = self._result(frame, rgb, pred)
        with self.result_cv:
            self.last_result = result
            self.result_cv.notify_all()
        return result

    def _result(self, frame: Frame, rgb, pred) -> FrameResult:
        """The frame's :class:`FrameResult`: header, 3-D poses (waiting for depth), GraspArray."""
        cfg = self.settings
        header = grasp_msgs.copy_header(frame.msg.header, cfg.frame_id or None)
        if not header.frame_id and not self._warned_no_frame_id:
            self._warned_no_frame_id = True
            self.get_logger().warning("input frames have an empty frame_id: results carry it as "
                                      "is (set -p frame_id:=... to override)")
        poses = use = None
        if frame.pairings is not None:  # the depth check may refine and re-order the grasps
            pred.grasps, poses, use = self.depth.poses(
                pred.grasps, frame.msg.header, rgb.shape[:2], cfg, frame.pairings,
                (frame.taken or frame.arrival) + float(cfg.depth_wait), self.worker.stopping)
        out = grasp_msgs.grasps_to_msg(pred.grasps, header, rgb.shape[:2], poses,
                                       depth_stamp=use.depth_stamp if poses else None)
        return FrameResult(header, frame.msg.header, rgb, pred, poses, out, use, frame)

    def _publish(self, result: FrameResult) -> None:
        """Every output, in registration order; a failing one never loses the others."""
        for out in self.outputs:
            try:
                out.publish(result, self.settings)
            except Exception as e:  # noqa: BLE001
                if out.name == "grasps":
                    raise
                self._throttle(self.get_logger(), "error", f"out:{out.name}",
                               f"{out.name} failed: {type(e).__name__}: {e}")


class GraspNode(GraspPipeline, Node):
    """The plain VITA-Grasp node: configures and activates at construction.

    Raises :class:`~vita_grasp_ros.node_params.StartupError` (one clear line) if it cannot start.
    ``**kwargs`` go to ``rclpy.node.Node`` (``context``, ``parameter_overrides``, ...).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._init_pipeline()
        self.configure()
        self.activate()
        self._log_ready()
