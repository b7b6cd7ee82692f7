"""Shutdown of the node process: a second SIGINT (a terminal Ctrl-C under ``ros2 launch`` delivers
one from the terminal and one from launch) or a SIGTERM during the shutdown never interrupts it:
exit status 0, no traceback, for the plain and the managed node, also while a frame is being
processed and during the model load."""
from __future__ import annotations

import signal
import time

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from vita_grasp_ros.testing import (  # noqa: E402
    START_TIMEOUT,
    WAIT_TIMEOUT,
    NodeProcess,
    RosHarness,
    allocate_domain_id,
    make_stamp,
    ros_env,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

#: (name, module args, signals with the pause before each [s])
CASES = [
    ("plain, SIGINT x2 0.05 s apart", [], [(0.0, signal.SIGINT), (0.05, signal.SIGINT)]),
    ("plain, SIGINT x2 0.3 s apart", [], [(0.0, signal.SIGINT), (0.3, signal.SIGINT)]),
    ("plain, SIGINT x3 in 10 ms", [], [(0.0, signal.SIGINT), (0.005, signal.SIGINT),
                                       (0.005, signal.SIGINT)]),
    ("plain, SIGINT then SIGTERM", [], [(0.0, signal.SIGINT), (0.1, signal.SIGTERM)]),
    ("lifecycle, SIGINT x2 0.05 s apart", ["--lifecycle"],
     [(0.0, signal.SIGINT), (0.05, signal.SIGINT)]),
]


def _frame():
    import numpy as np

    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    m = rgb_to_image_msg(np.zeros((240, 320, 3), np.uint8))
    m.header.stamp = make_stamp()
    m.header.frame_id = "cam"
    return m


def test_repeated_signals_never_interrupt_the_shutdown(tmp_path):
    from sensor_msgs.msg import Image

    ckpt = write_tiny_checkpoint(tmp_path / "best_model.pt")
    domain = allocate_domain_id()
    # a slow model: a frame is in progress when the signals come
    env = ros_env(tmp_path, domain, VITA_GRASP_SIMULATED_LATENCY_MS=400)
    nodes = []
    h = RosHarness(domain)
    try:
        for k, (name, module_args, _) in enumerate(CASES):
            nodes.append(NodeProcess(["-p", f"checkpoint:={ckpt}", "-r", f"__ns:=/sd{k}"], env,
                                     tmp_path / f"node{k}.log", module_args=module_args))
        wait_for(lambda: all("ready:" in n.output() or "unconfigured:" in n.output()
                             or not n.alive() for n in nodes), START_TIMEOUT, what="the nodes")
        pubs = [h.publisher(Image, f"/sd{k}/image") for k in range(len(CASES))]
        wait_for(lambda: all(p.get_subscription_count() > 0 for k, p in enumerate(pubs)
                             if not CASES[k][1]), WAIT_TIMEOUT, what="the subscriptions")
        for p in pubs:
            p.publish(_frame())
        for n, (_, _, sigs) in zip(nodes, CASES):
            for pause, sig in sigs:
                time.sleep(pause)
                n.proc.send_signal(sig)
        for n in nodes:
            n.wait(START_TIMEOUT)
    finally:
        for n in nodes:
            n.stop()
        h.close()
    for n, (name, _, _) in zip(nodes, CASES):
        out = n.output()
        assert n.proc.returncode == 0, (name, n.proc.returncode, out)
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, (name, out)


def test_signals_during_start_up_exit_cleanly(tmp_path):
    """Ctrl-C (twice) while the node starts: right after its parameters are declared (the
    model load follows), after the model is loaded, while the decoding parameters are
    declared: the start-up is interrupted, exit 0, no traceback. (A signal during the Python
    interpreter's own start-up, before the node's code runs, is out of the node's hands.)"""
    ckpt = write_tiny_checkpoint(tmp_path / "best_model.pt")
    env = ros_env(tmp_path, VITA_GRASP_SIMULATED_LATENCY_MS=1)  # logs a line when declared
    moments = ["VITA_GRASP_SIMULATED_LATENCY_MS", "loaded ", "decoding: "]
    nodes = [NodeProcess(["-p", f"checkpoint:={ckpt}"], env, tmp_path / f"n{k}.log")
             for k in range(len(moments))]
    try:
        for n, when in zip(nodes, moments):
            wait_for(lambda: when in n.output() or not n.alive(), START_TIMEOUT, interval=0.002,
                     what=f"the log line {when!r}")
            n.proc.send_signal(signal.SIGINT)
            time.sleep(0.02)
            n.proc.send_signal(signal.SIGINT)
        rcs = [n.wait(START_TIMEOUT) for n in nodes]
    finally:
        for n in nodes:
            n.stop()
    for n, rc, when in zip(nodes, rcs, moments):
        out = n.output()
        assert rc == 0, (when, out)
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, (when, out)
