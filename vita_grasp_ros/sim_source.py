"""The grasp node in the loop of the pick benchmark: grasp source ``node``
(``vita-grasp sim bench --source node --checkpoint ...``).

The node runs as a real process (``python -m vita_grasp_ros.grasp_node``, ``use_depth`` on) on its
own ``ROS_DOMAIN_ID`` (a free one reserved with a lock file, or the one given; localhost
discovery) with ``ROS_HOME`` in a temporary
directory (its log: ``node.log`` in the benchmark's output). Per attempt the simulated camera
publishes ``camera_info``, ``depth`` (16UC1 millimetres, registered, as the Azure Kinect
driver's ``depth_to_rgb``) and ``image`` (rgb8) with one header (a fresh stamp, the optical frame
id), back to back (``--node-depth-lead`` puts a pause before the image), repeated with a fresh
stamp at ``--node-rate`` Hz (a static scene seen by a streaming camera) until the node answers
one of those frames; that answer's ``grasps[0].pose`` and ``grasps[0].width_m`` are executed
exactly as published (never recomputed). The first frame is a warm-up (first inference, fresh
connections), not an attempt. No answer within the timeout: the attempt fails with reason
``timeout`` (nothing hangs); an empty array: ``no_grasp``; a best grasp without a pose:
``no_pose``.

Each answer also carries a check (``extra["pose_check"]``): the distance between the node's pose
and the back-projection of its own pixel grasp with the documented convention
(:func:`vita_grasp_core.grasp3d.grasp_poses` on the same depth and K): position [mm], rotation
[deg], opening [mm].

Registered in the core's source registry through the entry-point group
``vita_grasp.sim_sources`` (cmake/vita_grasp_ros_entry_points.cfg); importing this module imports
no ROS package.
"""
from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from vita_grasp_core.cli_errors import interrupts_deferred
from vita_grasp_core.sim.sources import GraspAnswer, GraspSource, SourceEntry, SourceOptions

REPO = Path(__file__).resolve().parents[1]


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """SIGINT, wait ``timeout`` s, then SIGKILL (whole session). Returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def _quaternion_angle_deg(q1, q2) -> float:
    dot = abs(float(np.dot(np.asarray(q1, float), np.asarray(q2, float))))
    return math.degrees(2.0 * math.acos(min(1.0, dot)))


def depth_mm(depth_m: np.ndarray) -> np.ndarray:
    """Metres -> the uint16 millimetres a Kinect driver publishes (16UC1, 0 = no depth)."""
    return np.clip(np.round(np.nan_to_num(depth_m) * 1000.0), 0, 65535).astype(np.uint16)


def pose_check(grasp_msg, obs, window: int = 5, approach: str = "camera") -> dict | None:
    """The node's pose vs the documented back-projection of its pixel grasp on the depth it
    was sent (``obs.depth`` in whole millimetres), approaching along ``approach``."""
    from vita_grasp_core.grasp import Grasp
    from vita_grasp_core.sim.candidates import pixel_to_pose

    g = Grasp(grasp_msg.x, grasp_msg.y, grasp_msg.angle, grasp_msg.width, grasp_msg.height)
    doc = pixel_to_pose(g, depth_mm(obs.depth).astype(np.float32) / 1000.0, obs.K, window,
                        approach)
    if doc is None:
        return None
    p, o = grasp_msg.pose.position, grasp_msg.pose.orientation
    return {"position_mm": round(1e3 * float(np.linalg.norm(np.subtract(
                [p.x, p.y, p.z], doc.position))), 4),
            "angle_deg": round(_quaternion_angle_deg([o.x, o.y, o.z, o.w], doc.quaternion), 4),
            "width_mm": round(1e3 * abs(float(grasp_msg.width_m) - doc.width_m), 4)}


class NodeSource(GraspSource):
    """The grasp node (a subprocess) answering the simulated camera (see the module
    docstring)."""

    name = "node"

    def __init__(self, options: SourceOptions, domain_id: int | None = None):
        from vita_grasp_core.sim.sources import require_checkpoint

        from .testing import allocate_domain_id

        super().__init__(options)
        self.checkpoint = require_checkpoint(options, self.name)
        self.timeout = float(options.timeout)
        self.depth_lead = float(options.depth_lead)
        self.rate = float(options.rate)
        self.window = 5  # the node's depth_window default, unless given
        for prm in options.node_params:
            name, _, value = prm.partition(":=")
            if name.strip() == "depth_window" and value.strip().isdigit():
                self.window = int(value)
        self.approach = options.approach  # the pose check orients as the node does
        self._tmp = tempfile.TemporaryDirectory(prefix="vita_grasp_sim_node_")
        # a domain no other test, demo or benchmark on this machine holds (a lock file)
        self._own_domain = domain_id is None
        self.domain = allocate_domain_id() if domain_id is None else int(domain_id)
        log_dir = Path(options.log_dir) if options.log_dir else Path(self._tmp.name)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "node.log"
        self.proc = self.ctx = self.node = self._spin = None
        self._answers: dict[int, tuple[float, object]] = {}
        self._cv = threading.Condition()
        self._stamp = 0
        self._warm = False
        try:
            self._start_ros()
            self._start_node(self.checkpoint, options)  # the node resolves short names
            self._wait_ready(max(60.0, self.timeout))
        except BaseException:
            self.close()
            raise

    def describe(self) -> str:
        return f"node ({self.checkpoint})"

    # ------------------------------------------------------------------ set-up
    def _env(self) -> dict:
        env = dict(os.environ)
        env.pop("ROS_LOCALHOST_ONLY", None)
        env.update({"ROS_DOMAIN_ID": str(self.domain), "ROS_AUTOMATIC_DISCOVERY_RANGE":
                    "LOCALHOST", "ROS_HOME": str(Path(self._tmp.name) / "home"),
                    "ROS_LOG_DIR": str(Path(self._tmp.name) / "log"), "PYTHONUNBUFFERED": "1",
                    "RCUTILS_COLORIZED_OUTPUT": "0"})
        env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [
            p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
        return env

    def _start_node(self, checkpoint: str, options: SourceOptions) -> None:
        cmd = [sys.executable, "-m", "vita_grasp_ros.grasp_node", "--ros-args",
               "-p", f"checkpoint:={checkpoint}", "-p", f"device:={options.device}",
               "-p", "use_depth:=true", "-p", "publish_debug:=false"]
        for prm in options.node_params:
            cmd += ["-p", prm]
        self._log = open(self.log_path, "wb")
        with interrupts_deferred():  # an interrupt after the fork must find self.proc set
            self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                         env=self._env(), cwd=str(REPO), start_new_session=True)

    def _start_ros(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from sensor_msgs.msg import CameraInfo, Image
        from vita_grasp.msg import GraspArray

        for k, v in self._env().items():
            if k.startswith("ROS_"):
                os.environ[k] = v
        self.ctx = rclpy.Context()
        rclpy.init(context=self.ctx, domain_id=self.domain,
                   signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("vita_grasp_sim_camera", context=self.ctx)
        self.pub_image = self.node.create_publisher(Image, "image", 5)
        self.pub_depth = self.node.create_publisher(Image, "depth", 5)
        self.pub_info = self.node.create_publisher(CameraInfo, "camera_info", 5)
        self.sub = self.node.create_subscription(GraspArray, "grasps", self._on_grasps, 10)
        self.executor = SingleThreadedExecutor(context=self.ctx)
        self.executor.add_node(self.node)
        self._stop = threading.Event()
        self._spin = threading.Thread(target=self._spin_loop, daemon=True)
        self._spin.start()

    def _spin_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # noqa: BLE001 - shutting down
                if self._stop.is_set():
                    return

    def _on_grasps(self, msg) -> None:
        key = int(msg.header.stamp.sec) * 1_000_000_000 + int(msg.header.stamp.nanosec)
        with self._cv:
            self._answers[key] = (time.perf_counter(), msg)
            self._cv.notify_all()

    def _tail(self, n: int = 8) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return " | ".join(line.strip() for line in lines[-n:])

    def _wait_ready(self, timeout: float) -> None:
        """Until the node's subscriptions and its ``grasps`` publisher are matched."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the grasp node exited with status {self.proc.returncode} "
                                   f"during start-up: {self._tail()}")
            ready = (self.pub_image.get_subscription_count() > 0 and
                     self.pub_depth.get_subscription_count() > 0 and
                     self.pub_info.get_subscription_count() > 0 and
                     self.sub.get_publisher_count() > 0)
            if ready:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the grasp node did not come up within {timeout:.0f} s: "
                                   f"{self._tail()}")
            time.sleep(0.05)

    # ------------------------------------------------------------------ one attempt
    def _next_stamp(self) -> int:
        self._stamp = max(time.time_ns(), self._stamp + 1_000_000)
        return self._stamp

    def publish(self, obs) -> int:
        """Publish camera_info, depth and image of ``obs`` with one header; returns its stamp
        [ns]."""
        from std_msgs.msg import Header

        from .bag.messages import camera_info_msg, ns_to_time
        from .image_conversions import numpy_to_image_msg, rgb_to_image_msg

        stamp = self._next_stamp()
        header = Header(stamp=ns_to_time(stamp), frame_id=obs.frame_id)
        h, w = obs.image_size
        self.pub_info.publish(camera_info_msg(obs.K, w, h, header))
        self.pub_depth.publish(numpy_to_image_msg(depth_mm(obs.depth), "16UC1", header))
        if self.depth_lead > 0:
            time.sleep(self.depth_lead)
        self.pub_image.publish(rgb_to_image_msg(obs.rgb, "rgb8", header))
        return stamp

    def _exchange(self, obs) -> tuple[float, object | None]:
        """Stream ``obs`` (a static scene seen by a camera at ``rate`` Hz, a fresh stamp per
        frame; one frame when ``rate`` is 0) until the node answers one of those frames; returns
        (seconds from that frame to its answer, GraspArray), or (timeout, None)."""
        sent: dict[int, float] = {}
        t_start = time.perf_counter()
        deadline = t_start + self.timeout
        period = 1.0 / self.rate if self.rate > 0 else self.timeout
        msg = None
        while msg is None:
            if not sent or self.rate > 0:
                sent[self.publish(obs)] = time.perf_counter()
            wait_until = min(deadline, time.perf_counter() + period)
            with self._cv:
                self._cv.wait_for(lambda: any(k in self._answers for k in sent),
                                  timeout=max(0.0, wait_until - time.perf_counter()))
                got = sorted(k for k in sent if k in self._answers)
                if got:
                    t1, msg = self._answers.pop(got[0])
                    key = got[0]
            if msg is None and time.perf_counter() >= deadline:
                break
        with self._cv:
            newest = max(sent)
            for late in [k for k in self._answers if k <= newest]:  # other frames' answers
                del self._answers[late]
        if msg is None:
            return time.perf_counter() - t_start, None
        return t1 - sent[key], msg

    def plan(self, obs, rng) -> GraspAnswer:
        if self.proc.poll() is not None:
            return GraspAnswer(reason="timeout", latency=0.0,
                               extra={"detail": f"the node exited ({self.proc.returncode})"})
        if not self._warm:  # the first frame after start-up (first inference, fresh DDS
            self._warm = True  # matches) is a warm-up, not an attempt: as a robot starts up
            self._exchange(obs)
        latency, msg = self._exchange(obs)
        if msg is None:
            return GraspAnswer(reason="timeout", latency=latency,
                               extra={"detail": f"no answer within {self.timeout:g} s"})
        return self.answer(msg, obs, latency)

    def answer(self, msg, obs, latency: float) -> GraspAnswer:
        """A ``GraspArray`` -> the answer: its first grasp's pose and width_m as published."""
        from vita_grasp_core.grasp import Grasp

        if not msg.grasps:
            return GraspAnswer(reason="no_grasp", latency=latency)
        g = msg.grasps[0]
        pixel = Grasp(g.x, g.y, g.angle, g.width, g.height, g.quality, g.object_score)
        if not g.has_pose:
            return GraspAnswer(pixel, reason="no_pose", latency=latency)
        out = _posed(g, latency)
        out.extra = {"pose_check": pose_check(g, obs, self.window, self.approach),
                     "frame_id": msg.header.frame_id}
        out.alternatives = [_posed(a, latency) for a in msg.grasps[1:] if a.has_pose]
        return out

    # ------------------------------------------------------------------ teardown
    def close(self) -> None:
        from .testing import release_domain_id

        if getattr(self, "_stop", None) is not None:
            self._stop.set()
        if self._spin is not None:
            self._spin.join(5)
        stop_process(self.proc)
        if getattr(self, "_log", None) is not None:
            self._log.close()
        if self.ctx is not None:
            import rclpy

            try:
                self.executor.shutdown(timeout_sec=2)
                self.node.destroy_node()
            except Exception:  # noqa: BLE001 - best effort at teardown
                pass
            rclpy.try_shutdown(context=self.ctx)
            self.ctx = None
        if self._own_domain:
            release_domain_id(self.domain)
        self._tmp.cleanup()


def _posed(g, latency: float) -> GraspAnswer:
    """A published grasp with a pose -> an answer (pose and width_m as published)."""
    from vita_grasp_core.grasp import Grasp

    p, o = g.pose.position, g.pose.orientation
    return GraspAnswer(Grasp(g.x, g.y, g.angle, g.width, g.height, g.quality, g.object_score),
                       (p.x, p.y, p.z), (o.x, o.y, o.z, o.w), float(g.width_m), latency=latency)


NODE_SOURCE = SourceEntry(NodeSource, "the ROS 2 grasp node in the loop (--checkpoint): the "
                                      "simulated camera publishes RGB, depth and CameraInfo; "
                                      "grasps[0].pose and width_m are executed as published")
