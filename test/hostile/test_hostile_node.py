"""Generated bad messages into a real grasp node process, per input topic (node_messages.py).

For every message: the node must stay alive, print no traceback, refuse a bad colour frame
(counted in /diagnostics ``frames_bad``, no GraspArray for its stamp), answer the next good frame,
and the bad message may cost at most 3x the CPU time of a good frame and 200 MB of extra peak
memory. Cost is measured on the node process itself: CPU seconds (``/proc/PID/stat``, steadier
than wall time on a shared machine) and the peak resident set (``VmHWM``, reset before each case
through ``/proc/PID/clear_refs``). Depth and CameraInfo cases pair the bad message with a good
image of the same stamp; the node must answer it (the node engineer's tests check the pose).
"""
from __future__ import annotations

import os
import time

import pytest

from hostile import node_messages as nm
from hostile.harness import MAX_EXTRA_MB, MAX_RATIO, Case, pick

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from vita_grasp_ros.testing import (  # noqa: E402
    START_TIMEOUT,
    WAIT_TIMEOUT,
    NodeProcess,
    RosHarness,
    make_stamp,
    ros_env,
    stamp_ns,
    until_answered,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros]
_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime


def _mem_kb(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Node:
    """A grasp node process with a harness that feeds it and reads its output."""

    def __init__(self, tmp, *params):
        from diagnostic_msgs.msg import DiagnosticArray
        from sensor_msgs.msg import CameraInfo, CompressedImage, Image
        from vita_grasp.msg import GraspArray

        ckpt = write_tiny_checkpoint(tmp / "best_model.pt")
        env = ros_env(tmp)
        domain = int(env["ROS_DOMAIN_ID"])
        self.proc = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", "diagnostics_period:=0.1",
                                 "-p", "input_depth:=10", *params], env, tmp / "node.log")
        self.h = RosHarness(domain)
        self.pubs = {"image": self.h.publisher(Image, "image", 10),
                     "compressed": self.h.publisher(CompressedImage, "image/compressed", 10),
                     "depth": self.h.publisher(Image, "depth", 10),
                     "camera_info": self.h.publisher(CameraInfo, "camera_info", 10)}
        self.grasps = self.h.subscribe(GraspArray, "grasps")
        self.diag = self.h.subscribe(DiagnosticArray, "/diagnostics")
        self.log_seen = 0
        colour = self.pubs["compressed" if "use_compressed:=true" in params else "image"]
        wait_for(lambda: not self.proc.alive() or (self.h.node.count_publishers("grasps") > 0
                                                   and colour.get_subscription_count() > 0),
                 START_TIMEOUT, what="the node to come up")
        assert self.proc.alive(), self.proc.output()

    def bad_count(self) -> int:
        from vita_grasp_ros.diagnostics import diagnostic_values

        vals = [diagnostic_values(d) for d in self.diag.msgs[-20:]]
        vals = [int(v["frames_bad"]) for v in vals if "frames_bad" in v]
        return vals[-1] if vals else -1

    def result(self, stamp):
        """The GraspArray of ``stamp`` received so far, else None."""
        want = stamp_ns(stamp)
        return next((m for m in self.grasps.msgs if stamp_ns(m.header.stamp) == want), None)

    def answer(self, stamp, timeout=WAIT_TIMEOUT):
        return wait_for(lambda: self.result(stamp) or (not self.proc.alive() and "dead"),
                        timeout, what=f"the answer to stamp {stamp_ns(stamp)}")

    def new_log(self) -> str:
        text = self.proc.output()
        new, self.log_seen = text[self.log_seen:], len(text)
        return new

    def close(self) -> int | None:
        try:
            return self.proc.stop()
        finally:
            self.h.close()


def _good(node: Node, topic: str, seed: int = 0):
    """Send a good frame (with depth + info when ``topic`` is a depth-side topic); its stamp."""
    stamp = make_stamp()
    if topic in ("depth", "camera_info"):
        node.pubs["camera_info"].publish(nm.good_info(stamp))
        node.pubs["depth"].publish(nm.good_depth(stamp))
    if topic == "compressed":
        node.pubs["compressed"].publish(nm.good_compressed(stamp, seed))
    else:
        node.pubs["image"].publish(nm.good_image(stamp, seed))
    return stamp


def _baseline(node: Node, topic: str) -> float:
    """Median node CPU seconds per good frame (after two warm-up frames; the first is sent
    again until answered: frames sent while discovery is one-sided are lost)."""
    until_answered(lambda: _good(node, topic, 0), node.result,
                   START_TIMEOUT, what=f"an answer to a good frame on {topic}")
    node.answer(_good(node, topic, 1))
    costs = []
    for k in range(5):
        c0 = _cpu_seconds(node.proc.pid)
        node.answer(_good(node, topic, 10 + k))
        costs.append(_cpu_seconds(node.proc.pid) - c0)
    return sorted(costs)[len(costs) // 2]


def _run_case(node: Node, topic: str, name: str, build) -> dict:
    """Send one bad message and measure what it cost the node (see the module docstring)."""
    pid = node.proc.pid
    peak_ok = _reset_peak(pid)
    rss0, c0, t0 = _mem_kb(pid, "VmRSS"), _cpu_seconds(pid), time.monotonic()
    stamp = make_stamp()
    refused = answered = False
    if topic in ("image", "compressed"):
        n_bad = node.bad_count()
        node.pubs[topic].publish(build(stamp))
        def answered_now():
            return any(stamp_ns(m.header.stamp) == stamp_ns(stamp) for m in node.grasps.msgs)

        try:  # refused (counted as bad) or used (answered): never the full minute idle
            wait_for(lambda: node.bad_count() > n_bad or answered_now()
                     or not node.proc.alive(), 60, what=f"{name} to be refused or answered")
            refused = node.bad_count() > n_bad
        except AssertionError:
            pass
        answered = answered_now()
    else:  # a bad depth / camera_info with a good image of the same stamp
        other = "depth" if topic == "camera_info" else "camera_info"
        node.pubs[other].publish(nm.good_info(stamp) if other == "camera_info"
                                 else nm.good_depth(stamp))
        node.pubs[topic].publish(build(stamp))
        node.pubs["image"].publish(nm.good_image(stamp))
        try:
            answered = node.answer(stamp) != "dead"
        except AssertionError:
            answered = False
    cpu = _cpu_seconds(pid) - c0
    peak = _mem_kb(pid, "VmHWM") if peak_ok else _mem_kb(pid, "VmRSS")
    seconds = time.monotonic() - t0
    alive = node.proc.alive()
    after = None
    if alive:
        try:
            after = node.answer(_good(node, topic))
        except AssertionError:
            after = None
    return {"seconds": round(cpu, 4), "wall_seconds": round(seconds, 3), "timed_out": False,
            "exit": 0 if node.proc.alive() else -9, "peak_mb": round(peak / 1024, 1),
            "extra_mb": round(max(0, peak - rss0) / 1024, 1), "stdout": "",
            "stderr": node.new_log(), "outcome": "refused" if refused else "returned",
            "answered": answered, "answered_next": after not in (None, "dead")}


#: Odd but harmless: the node may use these frames (the bytes of an 8-bit image have no order;
#: a compressed frame is decoded by what its data is, whatever its free-text ``format`` says).
ACCEPTABLE = {"bigendian_flag_255", "format_garbage"}
CASES = {"image": nm.image_cases(), "compressed": nm.compressed_cases(),
         "depth": nm.depth_cases(), "camera_info": nm.camera_info_cases()}
FAST = {"image": 6, "compressed": 6, "depth": 3, "camera_info": 3}


@pytest.fixture(scope="module")
def raw_node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("hostile_raw_node"), "-p", "use_depth:=true")
    yield node
    assert node.close() == 0, node.proc.output()[-3000:]


@pytest.fixture(scope="module")
def compressed_node(tmp_path_factory):
    node = Node(tmp_path_factory.mktemp("hostile_jpeg_node"), "-p", "use_compressed:=true")
    yield node
    assert node.close() == 0, node.proc.output()[-3000:]


_BASE: dict[str, float] = {}


@pytest.mark.parametrize("topic,name", [(t, n) for t, cases in CASES.items()
                                        for n, _ in pick(cases, FAST[t])])
def test_bad_message(topic, name, request, hostile_record):
    node = request.getfixturevalue("compressed_node" if topic == "compressed" else "raw_node")
    if topic not in _BASE:
        _BASE[topic] = _baseline(node, topic)
    build = dict(CASES[topic])[name]
    res = _run_case(node, topic, name, build)
    colour = topic in ("image", "compressed")
    case = Case(f"node:{topic}", name, kind="node", one_line=False, max_ratio=MAX_RATIO,
                expect="fail" if colour and name not in ACCEPTABLE else "any",
                max_extra_mb=MAX_EXTRA_MB, min_seconds=0.1)
    extra = []
    if colour and res["answered"] and name not in ACCEPTABLE:
        extra.append("published grasps for a bad frame")
    if not colour and res["exit"] == 0 and not res["answered"]:
        extra.append("no answer to the image paired with the bad message")
    if res["exit"] == 0 and not res["answered_next"]:
        extra.append("no answer to the next good frame")
    hostile_record(case, res, max(_BASE[topic], 0.01), extra)
