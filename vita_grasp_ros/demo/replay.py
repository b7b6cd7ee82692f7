"""Step 4 of the demo: the grasp node as a subprocess, fed from the evaluation bag by an
in-process player while an in-process recorder writes its output (``OUT/online.mcap``).

The node runs with its own ``ROS_DOMAIN_ID`` (a free one, see
:func:`vita_grasp_ros.testing.allocate_domain_id`, unless given), localhost
discovery and ``ROS_HOME`` / logs under ``OUT/ros``; it is always stopped (SIGINT, then SIGKILL of
its session), also on Ctrl-C.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from ..bag.types import IMAGE_TOPIC, INFO_TOPIC, PRED_TOPIC
from ..testing import allocate_domain_id
from .report import State, rel, say

REPO = Path(__file__).resolve().parents[2]  # the checkout (make demo): outputs/, config/


class _Spinner(threading.Thread):
    """Spins the demo's rclpy node and lets the recorder subscribe to new publishers."""

    def __init__(self, executor, recorder):
        super().__init__(daemon=True)
        self.executor, self.recorder = executor, recorder
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        last = 0.0
        try:
            while not self.stop.is_set():
                self.executor.spin_once(timeout_sec=0.05)
                now = time.monotonic()
                if now - last > 0.2:
                    last = now
                    self.recorder.poll()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            if not self.stop.is_set():
                self.error = e


def _ros_env(o, domain: int) -> dict:
    env = dict(os.environ)
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.update({"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "ROS_HOME": str(o.out / "ros" / "home"), "ROS_LOG_DIR": str(o.out / "ros" / "log"),
                "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "")
                                                       .split(os.pathsep) if p])
    return env


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


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join("   | " + line for line in path.read_text(errors="replace")
                         .splitlines()[-n:])
    except OSError:
        return ""


def step_ros(o, st: State, note, ckpt: Path, bag: Path) -> Path:
    """Node subprocess + in-process player and recorder; returns the recording's path.

    ``o`` is the demo's ``Options``; fills ``st.ros``. ``RuntimeError`` when the node does not
    come up, ``ImportError`` without rclpy or the messages."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from ..bag.play import PlayOptions, play
    from ..bag.record import Recorder

    # SystemRandom: training seeds the global generator, which would give every run one id.
    domain = o.domain_id if o.domain_id is not None else allocate_domain_id()
    env = _ros_env(o, domain)
    for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_HOME", "ROS_LOG_DIR"):
        os.environ[k] = env[k]
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    (o.out / "ros").mkdir(parents=True, exist_ok=True)
    node_log = o.out / "ros" / "node.log"
    rec_path = o.out / "online.mcap"
    n_frames = int(st.bag["frames"])
    cmd = [sys.executable, "-m", "vita_grasp_ros.grasp_node", "--ros-args",
           "--params-file", str(REPO / "config" / "vita_grasp.yaml"),
           "-p", f"checkpoint:={ckpt}", "-p", f"device:={o.device}",
           "-p", f"debug_every_n:={o.debug_every_n}", "-r", f"image:={IMAGE_TOPIC}"]
    st.ros = {"domain_id": domain, "node_command": " ".join(cmd[2:]), "node_log": str(node_log),
              "recording": str(rec_path)}
    say(f"   ROS_DOMAIN_ID={domain} (localhost only); node log: {rel(node_log)}")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("vita_grasp_demo", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    proc = spinner = rec = None
    log_f = open(node_log, "wb")
    try:
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log_f, stderr=subprocess.STDOUT, env=env,
                                cwd=str(REPO), start_new_session=True)
        say(f"   started the grasp node (pid {proc.pid}): python -m vita_grasp_ros.grasp_node "
             f"--ros-args -p checkpoint:={rel(ckpt)} -r image:={IMAGE_TOPIC} ...")
        rec = Recorder(node, rec_path, [PRED_TOPIC, INFO_TOPIC, "/debug/heatmap"],
                       overwrite=True, qos="auto")
        spinner = _Spinner(executor, rec)
        spinner.start()
        # The node is up when the recorder matched its /grasps publisher.
        deadline = time.monotonic() + o.node_timeout
        last_msg = 0.0
        while rec.matched().get(PRED_TOPIC, 0) < 1:
            if proc.poll() is not None:
                raise RuntimeError(f"the grasp node exited with status {proc.returncode} during "
                                   f"start-up; last lines of {rel(node_log)}:\n{_tail(node_log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the grasp node did not come up within {o.node_timeout:.0f} s;"
                                   f" last lines of {rel(node_log)}:\n{_tail(node_log)}")
            if time.monotonic() - last_msg > 5:
                last_msg = time.monotonic()
                say(f"   waiting for the node to load the model and advertise /grasps "
                     f"({time.perf_counter() - t_start:.0f} s)")
            time.sleep(0.1)
        st.ros["node_startup_s"] = time.perf_counter() - t_start
        say(f"   node ready after {st.ros['node_startup_s']:.1f} s; recording "
             f"{', '.join(rec.topics)} -> {rel(rec_path)}")
        say(f"   playing {rel(bag)} ({n_frames} frames at {st.bag['rate']:g} Hz, reliable QoS)")
        ps = play(bag, node, PlayOptions(topics=[IMAGE_TOPIC, INFO_TOPIC],
                                         wait_for_subscribers=1, wait_timeout=30.0),
                  log=lambda m: say("   " + m))
        st.ros["played"] = ps.published
        st.ros["play_seconds"] = ps.seconds
        # Wait for the last answers: every frame answered, or nothing new for 10 s.
        t_end = time.monotonic()
        while rec.counts[PRED_TOPIC] < n_frames and proc.poll() is None:
            last = rec.last_monotonic or t_end
            if time.monotonic() - max(last, t_end) > 10.0:
                break
            if spinner.error:
                raise spinner.error
            time.sleep(0.05)
        st.ros["received"] = dict(rec.counts)
        if proc.poll() is not None:
            st.problems.append(f"the grasp node exited early (status {proc.returncode}); see "
                               f"{rel(node_log)}")
    finally:
        if spinner is not None:
            spinner.stop.set()
            spinner.join(5)
        if rec is not None:
            with contextlib.suppress(Exception):
                rec.close()
        st.ros["node_exit"] = stop_process(proc)
        log_f.close()
        with contextlib.suppress(Exception):
            executor.shutdown(timeout_sec=2)
        with contextlib.suppress(Exception):
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    got = st.ros["received"].get(PRED_TOPIC, 0)
    say(f"   received {got}/{n_frames} GraspArray messages, "
         f"{st.ros['received'].get('/debug/heatmap', 0)} debug images; node stopped "
         f"(exit status {st.ros['node_exit']})")
    note["text"] = f"{got}/{n_frames} frames answered"
    return rec_path
