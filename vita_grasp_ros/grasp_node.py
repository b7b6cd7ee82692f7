"""``grasp_node``: RGB frames in, ``vita_grasp/GraspArray`` out (docs/ros.md, CONVENTIONS §6).

Run::

    vita-grasp-node --ros-args --params-file config/vita_grasp.yaml -p checkpoint:=best_model.pt \\
        -r image:=/rgb/image_raw -r __ns:=/robot
    ros2 run vita_grasp grasp_node --ros-args ...          # same, on a ROS install
    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=...

Threads: the executor thread runs the subscription callbacks, which only store the newest colour
frame in a one-frame slot (latest frame wins; a frame replaced before it was processed counts as
*dropped*) and the newest few depth frames; a worker thread takes the slot, converts, predicts and
publishes. So a slow model never builds a backlog and memory stays bounded.

Bad input (unknown encoding, zero size, wrong step, truncated or corrupt data, an exception in the
predictor) is logged (throttled, per kind), counted as *bad* and skipped. A missing or unreadable
checkpoint at start-up is one error line and exit status 1.

Testing only: the environment variable ``VITA_GRASP_SIMULATED_LATENCY_MS`` makes the worker sleep
that long after each prediction (a stand-in for a slow model in tests; never set it on a robot).
"""
from __future__ import annotations

import os
import sys
import threading
import time
from collections import deque

import numpy as np

NODE_NAME = "vita_grasp_node"
SIMULATED_LATENCY_ENV = "VITA_GRASP_SIMULATED_LATENCY_MS"

USAGE = """usage: vita-grasp-node [--ros-args -p name:=value -r from:=to --params-file FILE ...]

Runs the VITA-Grasp ROS 2 node (name: vita_grasp_node). Subscribes `image` (or `image/compressed`),
optionally `depth` + `camera_info`; publishes `grasps`, `debug/heatmap`, `markers`, /diagnostics.
Example:
  vita-grasp-node --ros-args --params-file config/vita_grasp.yaml -p checkpoint:=best_model.pt \\
      -r image:=/rgb/image_raw -r __ns:=/robot
Parameters and topics: docs/ros.md.
"""


class StartupError(RuntimeError):
    """A start-up problem reported as one clear line (no traceback) before exiting with 1."""


def _parameter_specs():
    """(name, default, description, read_only, range) for every parameter.

    ``range`` is ``(lo, hi)`` for numbers (inclusive) or a tuple of allowed strings.
    """
    return [
        ("checkpoint", "", "Path of the trained checkpoint (best_model.pt or .safetensors). "
         "Required.", True, None),
        ("pretrained_model", "", "Override of the encoder weights (hub id or local directory) "
         "stored in the checkpoint; empty = as stored.", True, None),
        ("device", "auto", "Inference device: auto (cuda if available), cpu, cuda, cuda:N.", True,
         None),
        ("dtype", "auto", "Model dtype: auto (bfloat16 on CUDA, float32 on CPU), float32, "
         "bfloat16, float16.", True, ("auto", "float32", "bfloat16", "float16", "fp32", "bf16",
                                      "fp16")),
        ("score_threshold", 0.2, "Minimum heatmap peak value of a grasp, in [0, 1].", False,
         (0.0, 1.0)),
        ("max_grasps", 10, "At most this many grasps per frame (best first).", False, (1, 1000)),
        ("min_distance", 8, "Peak suppression radius on the output maps [map px].", False,
         (0, 200)),
        ("smooth_sigma", 1.0, "Gaussian smoothing of the heatmap before peak finding [map px]; "
         "0 = off.", False, (0.0, 20.0)),
        ("use_compressed", False, "Subscribe `image/compressed` (sensor_msgs/CompressedImage, "
         "jpeg/png) instead of `image`.", True, None),
        ("publish_debug", True, "Publish `debug/heatmap` (bgr8 heatmap overlay + rectangles) "
         "when it has subscribers.", False, None),
        ("debug_every_n", 1, "Publish the debug image for every n-th processed frame.", False,
         (1, 1000)),
        ("use_depth", False, "Subscribe `depth` (16UC1 mm or 32FC1 m, registered to the colour "
         "image) and `camera_info` and fill 3-D poses; publishes `markers`.", True, None),
        ("depth_window", 5, "Side of the median window for the grasp depth [depth px].", False,
         (1, 51)),
        ("depth_tolerance", 0.05, "Largest |depth stamp - image stamp| accepted when pairing "
         "depth with a frame [s].", False, (0.0, 1.0)),
        ("input_reliability", "reliable", "QoS reliability of the image/depth subscriptions: "
         "reliable or best_effort (use best_effort for best-effort camera publishers).", True,
         ("reliable", "best_effort")),
        ("input_depth", 2, "QoS history depth of the image/depth subscriptions.", True, (1, 100)),
        ("frame_id", "", "Override of the output frame_id; empty = keep the image's.", False,
         None),
        ("diagnostics_period", 1.0, "Period of the /diagnostics status [s].", True,
         (0.05, 60.0)),
    ]


class _Throttle:
    """Log a message at most once per ``period`` seconds per key, counting what it swallowed."""

    def __init__(self, period: float = 5.0):
        self.period = period
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, logger, level: str, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (-1e18, 0))
            if now - last < self.period:
                self._last[key] = (last, suppressed + 1)
                return
            self._last[key] = (now, 0)
        if suppressed:
            message += f" (+{suppressed} similar in the last {self.period:.0f} s)"
        # One call site per severity: rclpy refuses a call site whose severity changes.
        if level == "error":
            logger.error(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.info(message)


def _stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def _make_node_class():
    """Build the Node subclass lazily (rclpy is imported only when the node runs)."""
    from diagnostic_msgs.msg import DiagnosticArray
    from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                    SetParametersResult)
    from rclpy.node import Node
    from rclpy.qos import (HistoryPolicy, QoSDurabilityPolicy, QoSProfile, ReliabilityPolicy,
                           qos_profile_system_default)
    from rclpy.qos_overriding_options import QoSOverridingOptions
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from visualization_msgs.msg import MarkerArray

    from vita_grasp.msg import GraspArray

    from . import grasp_msgs
    from .diagnostics import NodeStats, stats_to_diagnostic_array
    from .image_conversions import (ImageConversionError, compressed_msg_to_rgb,
                                    depth_msg_to_meters, image_msg_to_rgb)

    try:
        from rclpy.event_handler import SubscriptionEventCallbacks
    except ImportError:  # Humble
        from rclpy.qos_event import SubscriptionEventCallbacks

    class GraspNode(Node):
        """The VITA-Grasp node. Raises :class:`StartupError` if it cannot start."""

        def __init__(self, node_name: str = NODE_NAME, **kwargs):
            super().__init__(node_name, **kwargs)
            self._throttle = _Throttle(5.0)
            self.stats = NodeStats()
            self._declare_parameters()
            p = {name: self.get_parameter(name).value for name, *_ in _parameter_specs()}
            self._check_startup_parameters(p)
            self._debug = {"publish_debug": p["publish_debug"],
                           "debug_every_n": p["debug_every_n"], "depth_window": p["depth_window"],
                           "depth_tolerance": p["depth_tolerance"], "frame_id": p["frame_id"]}
            self._simulated_latency = float(os.environ.get(SIMULATED_LATENCY_ENV, "0") or 0) / 1e3
            if self._simulated_latency > 0:
                self.get_logger().warning(
                    f"{SIMULATED_LATENCY_ENV}={self._simulated_latency * 1e3:.0f}: sleeping after "
                    "every prediction (testing only)")
            self.predictor = self._load_predictor(p)

            # One-frame slot (latest wins) + worker.
            self._cv = threading.Condition()
            self._slot = None
            self._stop = threading.Event()
            self._depth_lock = threading.Condition()
            self._depth_buf: deque = deque(maxlen=5)
            self._camera_info = None
            self._warned_no_frame_id = False

            # Results: reliable, default depth.
            self.grasp_pub = self.create_publisher(GraspArray, "grasps", 10)
            self.debug_pub = self.create_publisher(Image, "debug/heatmap", 2)
            self.marker_pub = self.create_publisher(MarkerArray, "markers", 2)
            self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics",
                                                  qos_profile_system_default)

            # Inputs: sensor-data-like (keep last, small depth, volatile), reliability by parameter
            # overridable with qos_overrides.<topic>.subscription.* parameters.
            qos = QoSProfile(
                history=HistoryPolicy.KEEP_LAST, depth=int(p["input_depth"]),
                reliability=(ReliabilityPolicy.BEST_EFFORT if p["input_reliability"] ==
                             "best_effort" else ReliabilityPolicy.RELIABLE),
                durability=QoSDurabilityPolicy.VOLATILE)
            self._input_qos = qos
            overrides = QoSOverridingOptions.with_default_policies()
            if p["use_compressed"]:
                self._convert = compressed_msg_to_rgb
                self.image_sub = self.create_subscription(
                    CompressedImage, "image/compressed", self._on_image, qos,
                    qos_overriding_options=overrides,
                    event_callbacks=self._event_callbacks("image/compressed"))
            else:
                self._convert = image_msg_to_rgb
                self.image_sub = self.create_subscription(
                    Image, "image", self._on_image, qos, qos_overriding_options=overrides,
                    event_callbacks=self._event_callbacks("image"))
            self._use_depth = bool(p["use_depth"])
            self._depth_to_m = depth_msg_to_meters
            if self._use_depth:
                self.depth_sub = self.create_subscription(
                    Image, "depth", self._on_depth, qos, qos_overriding_options=overrides,
                    event_callbacks=self._event_callbacks("depth"))
                self.info_sub = self.create_subscription(
                    CameraInfo, "camera_info", self._on_camera_info, qos,
                    qos_overriding_options=QoSOverridingOptions.with_default_policies(),
                    event_callbacks=self._event_callbacks("camera_info"))
            self.add_on_set_parameters_callback(self._on_set_parameters)
            self.diag_timer = self.create_timer(float(p["diagnostics_period"]),
                                               self._publish_diagnostics)
            self._ImageConversionError = ImageConversionError
            self._worker = threading.Thread(target=self._worker_loop, name="vita_grasp_worker",
                                            daemon=True)
            self._worker.start()
            self.get_logger().info(
                f"ready: {self.predictor.config.backbone} on {self.predictor.device} "
                f"({str(self.predictor.dtype).replace('torch.', '')}), input "
                f"{self.image_sub.topic_name} ({p['input_reliability']}), output "
                f"{self.grasp_pub.topic_name}"
                + (", depth " + self.depth_sub.topic_name if self._use_depth else ""))

        # ---------------------------------------------------------------- parameters
        def _declare_parameters(self):
            from rclpy.exceptions import InvalidParameterTypeException, ParameterException

            for name, default, desc, ro, rng in _parameter_specs():
                d = ParameterDescriptor(description=desc, read_only=ro)
                if isinstance(rng, tuple) and rng and isinstance(rng[0], str):
                    d.additional_constraints = "one of: " + ", ".join(rng)
                elif rng is not None and isinstance(default, float):
                    d.floating_point_range = [FloatingPointRange(from_value=float(rng[0]),
                                                                 to_value=float(rng[1]), step=0.0)]
                elif rng is not None and type(default) is int:
                    d.integer_range = [IntegerRange(from_value=int(rng[0]), to_value=int(rng[1]),
                                                    step=1)]
                try:
                    self.declare_parameter(name, default, d)
                except InvalidParameterTypeException as e:
                    kind = type(default).__name__.replace("float", "double (write 0.0, not 0)")
                    raise StartupError(f"parameter {name!r} must be a {kind}: {e}") from None
                except ParameterException as e:  # out of range, read-only ...
                    raise StartupError(f"parameter {name!r}: {e}") from None
                except Exception as e:  # noqa: BLE001 - rclpy raises several types here
                    raise StartupError(f"parameter {name!r}: {type(e).__name__}: {e}") from None

        def _check_startup_parameters(self, p):
            for name, _default, _desc, _ro, rng in _parameter_specs():
                if isinstance(rng, tuple) and rng and isinstance(rng[0], str):
                    if p[name] not in rng:
                        raise StartupError(f"parameter {name!r} is {p[name]!r}; use one of "
                                           f"{', '.join(rng)}")
            if not str(p["checkpoint"]).strip():
                raise StartupError("parameter 'checkpoint' is empty: pass "
                                   "-p checkpoint:=/path/to/best_model.pt (or set it in the "
                                   "params file)")

        def _load_predictor(self, p):
            from vita_grasp_core.predictor import GraspPredictor

            path = os.path.expanduser(str(p["checkpoint"]))
            if not os.path.isfile(path):  # before importing torch: a fast, clear answer
                raise StartupError(f"cannot load the model: checkpoint not found: {path}")
            t0 = time.perf_counter()
            try:
                pred = GraspPredictor.from_checkpoint(
                    path, device=p["device"], dtype=p["dtype"],
                    pretrained_model=str(p["pretrained_model"]) or None,
                    score_threshold=p["score_threshold"], max_grasps=p["max_grasps"],
                    min_distance=p["min_distance"], smooth_sigma=p["smooth_sigma"])
            except (FileNotFoundError, ValueError, OSError) as e:
                raise StartupError(f"cannot load the model: {e}") from None
            except Exception as e:  # noqa: BLE001 - e.g. hub access errors for the encoder
                raise StartupError(f"cannot load the model from {path}: "
                                   f"{type(e).__name__}: {e}") from None
            self.get_logger().info(f"loaded {path} in {time.perf_counter() - t0:.1f} s")
            return pred

        def _on_set_parameters(self, params):
            decoding = {}
            debug = {}
            for prm in params:
                if prm.name in ("score_threshold", "smooth_sigma"):
                    decoding[prm.name] = float(prm.value)
                elif prm.name in ("max_grasps", "min_distance"):
                    decoding[prm.name] = int(prm.value)
                elif prm.name in ("publish_debug", "debug_every_n", "depth_window",
                                  "depth_tolerance", "frame_id"):
                    debug[prm.name] = prm.value
            # Validate everything first (ranges are also enforced by the descriptors), then apply.
            for name, value in decoding.items():
                rng = dict((s[0], s[4]) for s in _parameter_specs())[name]
                if not rng[0] <= value <= rng[1]:
                    return SetParametersResult(successful=False,
                                               reason=f"{name}={value} is outside "
                                                      f"[{rng[0]}, {rng[1]}]")
            if decoding:
                try:
                    # set_decoding validates and raises before changing anything invalid
                    self._validate_decoding(decoding)
                    self.predictor.set_decoding(**decoding)
                except ValueError as e:
                    return SetParametersResult(successful=False, reason=str(e))
            self._debug.update(debug)
            if decoding or debug:
                self.get_logger().info("parameters changed: " + ", ".join(
                    f"{k}={v!r}" for k, v in {**decoding, **debug}.items()))
            return SetParametersResult(successful=True)

        @staticmethod
        def _validate_decoding(decoding):
            if decoding.get("score_threshold", 0.0) < 0 or decoding.get("score_threshold", 0) > 1:
                raise ValueError("score_threshold must be in [0, 1]")
            if decoding.get("max_grasps", 1) < 1:
                raise ValueError("max_grasps must be >= 1")
            if decoding.get("min_distance", 0) < 0 or decoding.get("smooth_sigma", 0.0) < 0:
                raise ValueError("min_distance and smooth_sigma must be >= 0")

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

        def _publish_diagnostics(self):
            try:
                snap = self.stats.snapshot()
                extra = {"device": str(self.predictor.device),
                         "input_topic": self.image_sub.topic_name,
                         "score_threshold": self.predictor.score_threshold}
                if self._simulated_latency > 0:
                    extra["simulated_latency_ms"] = self._simulated_latency * 1e3
                self.diag_pub.publish(stats_to_diagnostic_array(
                    snap, self.get_clock().now().to_msg(),
                    name=f"{self.get_fully_qualified_name()}: grasp detection",
                    hardware_id=self.get_fully_qualified_name(), extra=extra))
            except Exception as e:  # noqa: BLE001 - diagnostics must never kill the node
                self._throttle(self.get_logger(), "error", "diag", f"diagnostics failed: {e!r}")

        # ---------------------------------------------------------------- worker
        def stop(self, timeout: float = 3.0):
            self._stop.set()
            with self._cv:
                self._cv.notify_all()
            with self._depth_lock:
                self._depth_lock.notify_all()
            if self._worker.is_alive():
                self._worker.join(timeout)

        def _worker_loop(self):
            while not self._stop.is_set():
                with self._cv:
                    while self._slot is None and not self._stop.is_set():
                        self._cv.wait(0.2)
                    msg, self._slot = self._slot, None
                if msg is None:
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
            except self._ImageConversionError as e:
                key = f"conv:{e.kind}"
                if e.kind == "encoding":
                    key += f":{getattr(msg, 'encoding', getattr(msg, 'format', ''))}"
                self._bad(key, f"bad frame refused: {e}")
                return
            t0 = time.perf_counter()
            try:
                pred = self.predictor.predict(rgb)
            except Exception as e:  # noqa: BLE001
                self._bad("predict", f"prediction failed ({type(e).__name__}: {e}); frame "
                                     "dropped")
                return
            if self._simulated_latency > 0:
                time.sleep(self._simulated_latency)
            inference_s = time.perf_counter() - t0
            cfg = self._debug
            header = grasp_msgs.copy_header(msg.header, cfg["frame_id"] or None)
            if not header.frame_id and not self._warned_no_frame_id:
                self._warned_no_frame_id = True
                self.get_logger().warning("input frames have an empty frame_id: results carry "
                                          "it as is (set -p frame_id:=... to override)")
            poses = self._poses(pred, msg.header, rgb.shape[:2]) if self._use_depth else None
            out = grasp_msgs.grasps_to_msg(pred.grasps, header, rgb.shape[:2], poses)
            self.grasp_pub.publish(out)
            stamp = _stamp_ns(msg.header.stamp)
            latency = (self.get_clock().now().nanoseconds - stamp) / 1e9 if stamp else None
            self.stats.on_processed(inference_s, latency)  # no latency for unstamped frames
            if poses is not None and any(p is not None for p in poses):
                markers = grasp_msgs.grasps_to_markers(out)
                if markers is not None:
                    self.marker_pub.publish(markers)
            n = self.stats.processed
            if (cfg["publish_debug"] and n % max(1, int(cfg["debug_every_n"])) == 0
                    and self.debug_pub.get_subscription_count() > 0):
                try:
                    self.debug_pub.publish(grasp_msgs.debug_image_msg(rgb, pred, header))
                except Exception as e:  # noqa: BLE001
                    self._throttle(self.get_logger(), "error", "debug",
                                   f"debug image failed: {type(e).__name__}: {e}")

        # ---------------------------------------------------------------- depth
        def _find_depth(self, stamp_ns: int):
            tol_ns = int(float(self._debug["depth_tolerance"]) * 1e9)
            deadline = time.monotonic() + max(0.02, float(self._debug["depth_tolerance"]))
            with self._depth_lock:
                while True:
                    best, best_dt = None, None
                    newest = None
                    for d in self._depth_buf:
                        ds = _stamp_ns(d.header.stamp)
                        newest = ds if newest is None else max(newest, ds)
                        dt = abs(ds - stamp_ns)
                        if best_dt is None or dt < best_dt:
                            best, best_dt = d, dt
                    if best is not None and best_dt <= tol_ns:
                        return best
                    # A matching depth frame may still be on its way: wait a little for it.
                    remaining = deadline - time.monotonic()
                    if (newest is not None and newest > stamp_ns) or remaining <= 0 \
                            or self._stop.is_set():
                        return None
                    self._depth_lock.wait(remaining)

        def _poses(self, pred, header, image_size):
            from vita_grasp_core.grasp3d import grasp_poses, scale_intrinsics, valid_intrinsics

            info = self._camera_info
            if info is None:
                self._throttle(self.get_logger(), "warning", "depth:info",
                               f"use_depth: no CameraInfo on {self.info_sub.topic_name} yet; "
                               "publishing grasps without poses")
                return None
            K = np.asarray(info.k, dtype=np.float64).reshape(3, 3)
            if not valid_intrinsics(K):
                self._throttle(self.get_logger(), "warning", "depth:k",
                               "use_depth: CameraInfo has no valid intrinsics (K is zero); no "
                               "poses")
                return None
            if info.width and info.height and (int(info.height), int(info.width)) != \
                    tuple(image_size):
                K = scale_intrinsics(K, (int(info.height), int(info.width)), image_size)
            depth_msg = self._find_depth(_stamp_ns(header.stamp))
            if depth_msg is None:
                self._throttle(self.get_logger(), "warning", "depth:sync",
                               f"use_depth: no depth frame within "
                               f"{self._debug['depth_tolerance']:.3f} s of the image stamp; no "
                               "poses")
                return None
            try:
                depth = self._depth_to_m(depth_msg)
            except self._ImageConversionError as e:
                self._throttle(self.get_logger(), "warning", "depth:bad",
                               f"bad depth frame refused: {e}")
                return None
            return grasp_poses(pred.grasps, depth, K, image_size,
                               window=int(self._debug["depth_window"]))

    return GraspNode


def main(argv: list[str] | None = None) -> int:
    """Entry point (``vita-grasp-node``, ``vita-grasp node``, ``ros2 run vita_grasp grasp_node``).

    ``argv``: arguments without the program name (``sys.argv[1:]`` when None), ROS arguments after
    ``--ros-args``. Returns the exit status (0 after Ctrl-C, 1 when it cannot start, 2 for bad
    arguments).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    user_args = args[:args.index("--ros-args")] if "--ros-args" in args else args
    if any(a in ("-h", "--help") for a in user_args):
        print(USAGE)
        return 0
    try:
        import rclpy
        from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
        from rclpy.utilities import remove_ros_args
    except ImportError as e:
        print(f"vita-grasp-node: error: rclpy is not importable ({e}); run `make setup` or source "
              "a ROS 2 installation", file=sys.stderr)
        return 2
    extra = [a for a in remove_ros_args(["vita-grasp-node"] + args)[1:] if a]
    if extra:
        print(f"vita-grasp-node: error: unexpected arguments {extra} (ROS arguments go after "
              f"--ros-args)\n\n{USAGE}", file=sys.stderr)
        return 2
    try:
        rclpy.init(args=["vita-grasp-node"] + args)
    except Exception as e:  # noqa: BLE001 - malformed --ros-args
        print(f"vita-grasp-node: error: bad ROS arguments: {e}", file=sys.stderr)
        return 2
    node = None
    status = 0
    try:
        try:
            GraspNode = _make_node_class()
        except ImportError as e:
            print(f"vita-grasp-node: error: {e} (the vita_grasp messages are built by "
                  "`make setup` / colcon build)", file=sys.stderr)
            return 2
        try:
            node = GraspNode()
        except StartupError as e:
            rclpy.logging.get_logger(NODE_NAME).error(str(e))
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        status = 0
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return status


if __name__ == "__main__":
    sys.exit(main())
