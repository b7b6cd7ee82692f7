"""The grasp node: :class:`GraspPipeline` (shared by the plain and the managed node) and
:class:`GraspNode` (the default, plain ``rclpy`` node). docs/ros.md, CONVENTIONS §6.

Threads: the executor thread runs the subscription callbacks, which only store the newest colour
frame in a one-frame slot (latest frame wins; a frame replaced before it was processed counts as
*dropped*) and the newest few depth frames; a worker thread takes the slot, converts, predicts and
publishes. So a slow model never builds a backlog and memory stays bounded.

Bad input (unknown encoding, zero or oversized frames, wrong step, truncated or corrupt data, an
exception in the predictor) is logged (throttled, per kind), counted as *bad* and skipped.
Intrinsics that fail :func:`vita_grasp_core.grasp3d.check_intrinsics` never give a pose.

Testing only: the environment variable ``VITA_GRASP_SIMULATED_LATENCY_MS`` makes the worker sleep
that long after each prediction (a stand-in for a slow model in tests; never set it on a robot).
"""
from __future__ import annotations

import os
import threading
import time
from collections import deque

import numpy as np
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
from visualization_msgs.msg import MarkerArray
from vita_grasp.msg import GraspArray

from vita_grasp_core.grasp3d import grasp_poses, intrinsics_for_image

from . import grasp_msgs
from .detections import grasps_to_detections, load_vision_msgs
from .diagnostics import NodeStats, stats_to_diagnostic_array
from .image_conversions import (
    ImageConversionError,
    compressed_msg_to_rgb,
    depth_msg_to_meters,
    image_msg_to_rgb,
)
from .node_params import (
    DECODING_NAMES,
    DECODING_PARAMETERS,
    STARTUP_PARAMETERS,
    NodeSettings,
    StartupError,
    check_values,
)
from .node_support import Throttle, load_predictor, stamp_ns

try:
    from rclpy.event_handler import SubscriptionEventCallbacks
except ImportError:  # Humble
    from rclpy.qos_event import SubscriptionEventCallbacks

NODE_NAME = "vita_grasp_node"
SIMULATED_LATENCY_ENV = "VITA_GRASP_SIMULATED_LATENCY_MS"


class GraspPipeline:
    """Parameters, model, inputs, outputs and the worker of the grasp node (a mixin for an rclpy
    ``Node``; :class:`GraspNode` and ``GraspLifecycleNode`` decide *when* each part starts)."""

    # ---------------------------------------------------------------- set-up pieces
    def _init_pipeline(self) -> None:
        self._throttle = Throttle(5.0)
        self.stats = NodeStats()
        self.predictor = None
        self.settings: NodeSettings | None = None
        self._rejection = ""
        self._cv = threading.Condition()
        self._slot = None
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._depth_lock = threading.Condition()
        self._depth_buf: deque = deque(maxlen=5)
        self._camera_info = None
        self._warned_no_frame_id = False
        self.image_sub = self.depth_sub = self.info_sub = None
        self.grasp_pub = self.debug_pub = self.marker_pub = self.detections_pub = None
        self.diag_pub = self.diag_timer = None
        self._vision_msgs = load_vision_msgs()
        self._simulated_latency = float(os.environ.get(SIMULATED_LATENCY_ENV, "0") or 0) / 1e3
        # Registered first: rclpy runs it for every declaration too (one validation path).
        self.add_on_set_parameters_callback(self._on_set_parameters)

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
        """Declare :data:`STARTUP_PARAMETERS`; returns their values. The decoding parameters'
        overrides are checked now too (before a possibly slow model load)."""
        overrides = getattr(self, "_parameter_overrides", {})
        bad = check_values({k: overrides[k].value for k in DECODING_NAMES if k in overrides})
        if bad:
            raise StartupError(bad)
        p = {spec.name: self._declare(spec) for spec in STARTUP_PARAMETERS}
        reason = check_values(p)  # e.g. the required checkpoint left at its empty default
        if reason:
            raise StartupError(reason)
        self.settings = NodeSettings.from_values(p)
        if self._vision_msgs is None and self.settings.publish_detections:
            self.get_logger().info("vision_msgs is not installed: the `detections` topic "
                                   "(vision_msgs/Detection2DArray) is off (install "
                                   "ros-$ROS_DISTRO-vision-msgs to get it)")
        if self._simulated_latency > 0:
            self.get_logger().warning(
                f"{SIMULATED_LATENCY_ENV}={self._simulated_latency * 1e3:.0f}: sleeping after "
                "every prediction (testing only)")
        return p

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

    def _create_outputs(self, p: dict, lifecycle: bool = False) -> None:
        make = self.create_lifecycle_publisher if lifecycle else self.create_publisher
        self.grasp_pub = make(GraspArray, "grasps", 10)  # results: reliable, default depth
        self.debug_pub = make(Image, "debug/heatmap", 2)
        self.marker_pub = make(MarkerArray, "markers", 2)
        if self._vision_msgs is not None:
            self.detections_pub = make(self._vision_msgs.Detection2DArray, "detections", 10)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics",
                                              qos_profile_system_default)
        self.diag_timer = self.create_timer(float(p["diagnostics_period"]),
                                            self._publish_diagnostics)

    def _create_inputs(self, p: dict) -> None:
        # Sensor-data-like (keep last, small depth, volatile), reliability by parameter,
        # overridable with qos_overrides.<topic>.subscription.* parameters.
        qos = QoSProfile(
            history=HistoryPolicy.KEEP_LAST, depth=int(p["input_depth"]),
            reliability=(ReliabilityPolicy.BEST_EFFORT if p["input_reliability"] == "best_effort"
                         else ReliabilityPolicy.RELIABLE),
            durability=QoSDurabilityPolicy.VOLATILE)
        self._input_qos = qos

        def sub(msg_type, topic, callback):
            return self.create_subscription(
                msg_type, topic, callback, qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
                event_callbacks=self._event_callbacks(topic))

        if p["use_compressed"]:
            self._convert = compressed_msg_to_rgb
            self.image_sub = sub(CompressedImage, "image/compressed", self._on_image)
        else:
            self._convert = image_msg_to_rgb
            self.image_sub = sub(Image, "image", self._on_image)
        self._use_depth = bool(p["use_depth"])
        if self._use_depth:
            self.depth_sub = sub(Image, "depth", self._on_depth)
            self.info_sub = sub(CameraInfo, "camera_info", self._on_camera_info)

    def _destroy_inputs(self) -> None:
        for name in ("image_sub", "depth_sub", "info_sub"):
            s = getattr(self, name)
            if s is not None:
                self.destroy_subscription(s)
                setattr(self, name, None)

    def _destroy_outputs(self) -> None:
        if self.diag_timer is not None:
            self.destroy_timer(self.diag_timer)
        for name in ("grasp_pub", "debug_pub", "marker_pub", "detections_pub", "diag_pub"):
            pub = getattr(self, name)
            if pub is not None:
                (self.destroy_lifecycle_publisher if hasattr(self, "destroy_lifecycle_publisher")
                 and name != "diag_pub" else self.destroy_publisher)(pub)
        self.grasp_pub = self.debug_pub = self.marker_pub = self.detections_pub = None
        self.diag_pub = self.diag_timer = None

    def _start_worker(self) -> None:
        self._stop.clear()
        self._worker = threading.Thread(target=self._worker_loop, name="vita_grasp_worker",
                                        daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the worker (the frame in the slot, if any, is discarded)."""
        self._stop.set()
        with self._cv:
            self._slot = None
            self._cv.notify_all()
        with self._depth_lock:
            self._depth_lock.notify_all()
        if self._worker is not None and self._worker.is_alive():
            self._worker.join(timeout)
        self._worker = None

    def _log_ready(self, p: dict) -> None:
        self.get_logger().info(
            f"ready: {self.predictor.config.backbone} ({self.predictor.engine_name}) on "
            f"{self.predictor.device} "
            f"({str(self.predictor.dtype).replace('torch.', '')}), input "
            f"{self.image_sub.topic_name} ({p['input_reliability']}), output "
            f"{self.grasp_pub.topic_name}"
            + (f", {self.detections_pub.topic_name}" if self.detections_pub is not None else "")
            + (", depth " + self.depth_sub.topic_name if self._use_depth else ""))

    # ---------------------------------------------------------------- parameters
    def _on_set_parameters(self, params):
        """Validate (all first), then apply: decoding to the predictor, settings to the worker."""
        values = {prm.name: prm.value for prm in params}
        reason = check_values(values)
        decoding = {k: v for k, v in values.items() if k in DECODING_NAMES}
        settings = {k: v for k, v in values.items() if k in NodeSettings.names()}
        if not reason and decoding and self.predictor is not None:
            try:
                new_decode = self.predictor.decode_config.replace(**decoding)
            except ValueError as e:
                reason = str(e)
        if reason:
            self._rejection = reason
            return SetParametersResult(successful=False, reason=reason)
        if decoding and self.predictor is not None:
            self.predictor.decode_config = new_decode
        if settings and self.settings is not None:
            self.settings = self.settings.replace(**settings)
            self.get_logger().info("parameters changed: " + ", ".join(
                f"{k}={v!r}" for k, v in {**decoding, **settings}.items()))
        elif decoding and self.predictor is not None and self.grasp_pub is not None:
            self.get_logger().info("parameters changed: " + ", ".join(
                f"{k}={v!r}" for k, v in decoding.items()))
        return SetParametersResult(successful=True)

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

    # ---------------------------------------------------------------- callbacks (executor)
    def _on_image(self, msg):
        with self._cv:
            replaced = self._slot is not None
            self._slot = msg
            self._cv.notify()
        self.stats.on_received(replaced)

    def _on_depth(self, msg):
        with self._depth_lock:
            self._depth_buf.append(msg)
            self._depth_lock.notify_all()

    def _on_camera_info(self, msg):
        self._camera_info = msg

    def _diagnostics_extra(self) -> dict:
        extra = {"device": str(self.predictor.device) if self.predictor is not None else "",
                 "engine": self.predictor.engine_name if self.predictor is not None else "",
                 "input_topic": self.image_sub.topic_name if self.image_sub is not None else "",
                 "score_threshold": (self.predictor.score_threshold
                                     if self.predictor is not None else float("nan"))}
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

    # ---------------------------------------------------------------- worker
    def _worker_loop(self):
        while not self._stop.is_set():
            with self._cv:
                while self._slot is None and not self._stop.is_set():
                    self._cv.wait(0.2)
                msg, self._slot = self._slot, None
            if msg is None or self._stop.is_set():
                continue
            try:
                self._process(msg)
            except Exception as e:  # noqa: BLE001 - the worker must survive anything
                if self._stop.is_set() or not self.context.ok():
                    break  # shutting down: publishing into a closed context fails
                self._bad("internal", f"frame dropped, unexpected error: "
                                      f"{type(e).__name__}: {e}")

    def _bad(self, key, reason):
        self.stats.on_bad(reason)
        self._throttle(self.get_logger(), "warning", key, reason)

    def _process(self, msg):
        try:
            rgb = self._convert(msg)
        except ImageConversionError as e:
            key = f"conv:{e.kind}"
            if e.kind == "encoding":
                key += f":{getattr(msg, 'encoding', getattr(msg, 'format', ''))}"
            self._bad(key, f"bad frame refused: {e}")
            return
        t0 = time.perf_counter()
        try:
            pred = self.predictor.predict(rgb)
        except Exception as e:  # noqa: BLE001
            self._bad("predict", f"prediction failed ({type(e).__name__}: {e}); frame dropped")
            return
        if self._simulated_latency > 0:
            time.sleep(self._simulated_latency)
        inference_s = time.perf_counter() - t0
        cfg = self.settings
        header = grasp_msgs.copy_header(msg.header, cfg.frame_id or None)
        if not header.frame_id and not self._warned_no_frame_id:
            self._warned_no_frame_id = True
            self.get_logger().warning("input frames have an empty frame_id: results carry it as "
                                      "is (set -p frame_id:=... to override)")
        poses = self._poses(pred, msg.header, rgb.shape[:2], cfg) if self._use_depth else None
        out = grasp_msgs.grasps_to_msg(pred.grasps, header, rgb.shape[:2], poses)
        self.grasp_pub.publish(out)
        stamp = stamp_ns(msg.header.stamp)
        latency = (self.get_clock().now().nanoseconds - stamp) / 1e9 if stamp else None
        self.stats.on_processed(inference_s, latency)  # no latency for unstamped frames
        self._publish_extras(rgb, pred, out, header, poses, cfg)

    def _publish_extras(self, rgb, pred, out, header, poses, cfg):
        """detections, markers and the debug image (a failure here never loses the result)."""
        if self.detections_pub is not None and cfg.publish_detections:
            try:
                self.detections_pub.publish(grasps_to_detections(pred.grasps, header, poses,
                                                                 self._vision_msgs))
            except Exception as e:  # noqa: BLE001
                self._throttle(self.get_logger(), "error", "detections",
                               f"detections failed: {type(e).__name__}: {e}")
        if poses is not None and any(p is not None for p in poses):
            markers = grasp_msgs.grasps_to_markers(out)
            if markers is not None:
                self.marker_pub.publish(markers)
        n = self.stats.processed
        if (cfg.publish_debug and n % max(1, int(cfg.debug_every_n)) == 0
                and self.debug_pub.get_subscription_count() > 0):
            try:
                self.debug_pub.publish(grasp_msgs.debug_image_msg(rgb, pred, header))
            except Exception as e:  # noqa: BLE001
                self._throttle(self.get_logger(), "error", "debug",
                               f"debug image failed: {type(e).__name__}: {e}")

    # ---------------------------------------------------------------- depth
    def _find_depth(self, stamp: int, tolerance: float):
        tol_ns = int(tolerance * 1e9)
        deadline = time.monotonic() + max(0.02, tolerance)
        with self._depth_lock:
            while True:
                best, best_dt, newest = None, None, None
                for d in self._depth_buf:
                    ds = stamp_ns(d.header.stamp)
                    newest = ds if newest is None else max(newest, ds)
                    dt = abs(ds - stamp)
                    if best_dt is None or dt < best_dt:
                        best, best_dt = d, dt
                if best is not None and best_dt <= tol_ns:
                    return best
                # A matching depth frame may still be on its way: wait a little for it.
                remaining = deadline - time.monotonic()
                if (newest is not None and newest > stamp) or remaining <= 0 \
                        or self._stop.is_set():
                    return None
                self._depth_lock.wait(remaining)

    def _no_pose(self, key, reason):
        self._throttle(self.get_logger(), "warning", f"depth:{key}",
                       f"use_depth: {reason}; publishing grasps without poses")

    def _poses(self, pred, header, image_size, cfg):
        info = self._camera_info
        if info is None:
            self._no_pose("info", f"no CameraInfo on {self.info_sub.topic_name} yet")
            return None
        K, reason = intrinsics_for_image(info.k, (int(info.height), int(info.width)),
                                         image_size)
        if reason:  # throttled per cause: a constant bad CameraInfo warns every 5 s, not per frame
            self._no_pose(f"k:{reason}", f"CameraInfo rejected: {reason}")
            return None
        depth_msg = self._find_depth(stamp_ns(header.stamp), float(cfg.depth_tolerance))
        if depth_msg is None:
            self._no_pose("sync", f"no depth frame within {cfg.depth_tolerance:.3f} s of the "
                                  "image stamp")
            return None
        try:
            depth = depth_msg_to_meters(depth_msg)
        except ImageConversionError as e:
            self._no_pose("bad", f"bad depth frame refused: {e}")
            return None
        if not np.isfinite(depth).any():
            self._no_pose("empty", f"the depth frame on {self.depth_sub.topic_name} has no valid "
                                   "pixel (all 0, NaN or inf)")
            return None
        poses = grasp_poses(pred.grasps, depth, K, image_size, window=int(cfg.depth_window))
        if poses and all(p is None for p in poses):
            self._no_pose("holes", f"no valid depth within depth_window {cfg.depth_window} of "
                                   f"any of the {len(poses)} grasps")
        return poses


class GraspNode(GraspPipeline, Node):
    """The plain VITA-Grasp node: loads the model and starts at construction.

    Raises :class:`~vita_grasp_ros.node_params.StartupError` (one clear line) if it cannot start.
    ``**kwargs`` go to ``rclpy.node.Node`` (``context``, ``parameter_overrides``, ...).
    """

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._init_pipeline()
        p = self._declare_startup_parameters()
        self._load_model(p)
        self._create_outputs(p)
        self._create_inputs(p)
        self._start_worker()
        self._log_ready(p)
