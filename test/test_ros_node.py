"""The grasp node as a real process, started exactly like the documented plain command:

    vita-grasp-node --ros-args --params-file config/vita_grasp.yaml -p checkpoint:=X \\
        -r image:=/rgb/image_raw -r __ns:=/robot

fed by an rclpy publisher in this process: results carry the inputs' headers, debug images come,
bad frames between good ones are refused and counted while the node keeps answering, run-time
parameter changes are validated, /diagnostics reports the counters.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from fixtures import REPO  # noqa: E402

from vita_grasp_ros.testing import (  # noqa: E402
    START_TIMEOUT,
    WAIT_TIMEOUT,
    NodeProcess,
    RosHarness,
    allocate_domain_id,
    make_stamp,
    ros_env,
    stamp_ns,
    until_answered,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/robot"
IMAGE_TOPIC = "/rgb/image_raw"
#: The node's max_pixels here: every frame of these tests fits (1280 x 720 = 921 600 px).
MAX_PIXELS = 1_000_000


def _node_command() -> list[str]:
    script = Path(sys.executable).parent / "vita-grasp-node"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "vita_grasp_ros.grasp_node"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vita_grasp.msg import GraspArray

    tmp = tmp_path_factory.mktemp("ros_node")
    ckpt = write_tiny_checkpoint(tmp / "best_model.pt")
    domain = allocate_domain_id()
    node = NodeProcess(["--params-file", str(REPO / "config" / "vita_grasp.yaml"),
                        "-p", f"checkpoint:={ckpt}", "-r", f"image:={IMAGE_TOPIC}",
                        "-r", f"__ns:={NS}", "-p", "diagnostics_period:=0.2",
                        "-p", f"max_pixels:={MAX_PIXELS}"],
                       ros_env(tmp, domain), tmp / "node.log", command=_node_command())
    h = RosHarness(domain)
    try:
        s = type("S", (), {})()
        s.node, s.h = node, h
        s.pub = h.publisher(Image, IMAGE_TOPIC, 10)
        s.grasps = h.subscribe(GraspArray, f"{NS}/grasps")
        s.debug = h.subscribe(Image, f"{NS}/debug/heatmap")
        s.diag = h.subscribe(DiagnosticArray, "/diagnostics")
        wait_for(lambda: (not node.alive()) or (s.pub.get_subscription_count() > 0
                                                and h.node.count_publishers(f"{NS}/grasps") > 0),
                 START_TIMEOUT, what="the node to come up")
        assert node.alive(), node.output()
        _warm_up(s)
        yield s
    finally:
        rc = node.stop()
        h.close()
    assert rc == 0, f"node exit status {rc}\n{node.output()}"


def _rgb(h=480, w=640, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _warm_up(s):
    """Until one frame's result and debug image have come back: the first frames may be lost
    while discovery is one-sided (the node's subscription or our subscribers not yet matched),
    and each test below sends its frame once."""
    def send():
        m = _frame(0)
        s.pub.publish(m)
        return m.header.stamp

    def answered(stamp):
        return (any(m.header.stamp == stamp for m in s.grasps.msgs)
                and any(m.header.stamp == stamp for m in s.debug.msgs))
    until_answered(send, answered, what="a result and a debug image of a warm-up frame")


def _send_and_wait(s, msg, timeout=WAIT_TIMEOUT):
    """Publish ``msg`` and wait for the GraspArray with its stamp."""
    want = stamp_ns(msg.header.stamp)
    s.pub.publish(msg)
    return wait_for(lambda: next((m for m in s.grasps.msgs if stamp_ns(m.header.stamp) == want),
                                 None), timeout, what=f"the result for stamp {want}")


def _frame(i, encoding="rgb8", h=480, w=640, frame_id="rgb_camera_link"):
    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    m = rgb_to_image_msg(_rgb(h, w, seed=i), encoding)
    m.header.stamp = make_stamp(i)
    m.header.frame_id = frame_id
    return m


def test_results_carry_the_input_headers(setup):
    sent = []
    for i, (enc, hw) in enumerate([("rgb8", (480, 640)), ("bgr8", (720, 1280)),
                                   ("rgba8", (480, 640)), ("bgra8", (240, 320)),
                                   ("mono8", (480, 640))]):
        msg = _frame(i, enc, *hw, frame_id=f"cam_{i}")
        out = _send_and_wait(setup, msg)
        sent.append(msg)
        assert out.header.stamp == msg.header.stamp
        assert out.header.frame_id == f"cam_{i}"
        assert (out.image_height, out.image_width) == hw
        q = [g.quality for g in out.grasps]
        assert q == sorted(q, reverse=True)
        assert len(out.grasps) <= 10  # max_grasps from config/vita_grasp.yaml
        for g in out.grasps:
            assert 0 <= g.x < hw[1] and 0 <= g.y < hw[0]
            assert -np.pi / 2 - 1e-6 <= g.angle < np.pi / 2 + 1e-6
            assert not g.has_pose and g.width_m == 0.0
    assert len({stamp_ns(m.header.stamp) for m in sent}) == len(sent)


def test_missing_vision_msgs_is_one_info_line(setup):
    import importlib.util

    if importlib.util.find_spec("vision_msgs") is not None:
        pytest.skip("vision_msgs is installed here (test_ros_detections.py covers it)")
    lines = [ln for ln in setup.node.output().splitlines() if "vision_msgs" in ln]
    assert len(lines) == 1 and "[INFO]" in lines[0], lines
    assert "`detections` topic (vision_msgs/Detection2DArray) is off" in lines[0]


def test_debug_images_match_their_frames(setup):
    msg = _frame(100, "bgr8", 360, 480)
    _send_and_wait(setup, msg)
    dbg = wait_for(lambda: next((m for m in setup.debug.msgs
                                 if m.header.stamp == msg.header.stamp), None), WAIT_TIMEOUT,
                   what="the debug image")
    assert dbg.encoding == "bgr8"
    assert (dbg.height, dbg.width) == (360, 480)
    assert dbg.header.frame_id == msg.header.frame_id
    assert len(dbg.data) == dbg.step * dbg.height


def _bad_frames(i0):
    from sensor_msgs.msg import Image

    bad = []
    m = _frame(i0)  # truncated data
    m.data = m.data[: len(m.data) // 2]
    bad.append(("truncated", m))
    m = _frame(i0 + 1)  # step smaller than a row
    m.step = m.width * 3 - 3
    bad.append(("wrong step", m))
    m = _frame(i0 + 2)  # unknown encoding
    m.encoding = "yuv422_yuy2"
    bad.append(("unknown encoding", m))
    m = Image()  # zero size
    m.header.stamp = make_stamp(i0 + 3)
    m.encoding = "rgb8"
    bad.append(("zero size", m))
    m = _frame(i0 + 4)  # step larger than the data
    m.step = m.width * 3 + 64
    bad.append(("step/data mismatch", m))
    bad.append(("over max_pixels", _frame(i0 + 5, h=800, w=1280)))  # 1 024 000 px: the last
    return bad


def _latest_diag(s) -> dict:
    from vita_grasp_ros.diagnostics import diagnostic_values

    vals = [diagnostic_values(d) for d in s.diag.msgs]
    vals = [v for v in vals if "frames_bad" in v]
    return vals[-1] if vals else {}


def test_bad_frames_are_refused_and_the_node_keeps_answering(setup):
    bad = _bad_frames(200)
    before = len(setup.grasps)
    for k, (what, b) in enumerate(bad):
        n_bad = int(wait_for(lambda: _latest_diag(setup), WAIT_TIMEOUT,
                             what="diagnostics")["frames_bad"])
        setup.pub.publish(b)
        wait_for(lambda: int(_latest_diag(setup)["frames_bad"]) > n_bad, WAIT_TIMEOUT,
                 what=f"the {what} frame to be counted as bad")
        out = _send_and_wait(setup, _frame(300 + k))  # a good frame after every bad one
        assert out.image_width == 640
    bad_stamps = {stamp_ns(b.header.stamp) for _, b in bad}
    assert not any(stamp_ns(m.header.stamp) in bad_stamps for m in setup.grasps.msgs)
    assert len(setup.grasps) >= before + len(bad)
    assert setup.node.alive()
    log = setup.node.output()
    assert "yuv422_yuy2" in log, "the refused encoding must be named in the log"
    for text in ("truncated data", "step 1917 is smaller", "zero-size image"):
        assert text in log
    # the last bad frame (logging of the same kind is throttled; /diagnostics keeps the reason)
    assert f"max_pixels = {MAX_PIXELS}" in _latest_diag(setup)["last_error"]


def _set_params(s, **params):
    return s.h.set_params(f"{NS}/vita_grasp_node", WAIT_TIMEOUT, **params)


def test_runtime_parameters_are_validated_and_applied(setup):
    res = _set_params(setup, score_threshold=1.5)
    assert not res[0].successful and "score_threshold" in res[0].reason
    res = _set_params(setup, checkpoint="/elsewhere.pt")
    assert not res[0].successful and "read-only" in res[0].reason.lower()
    res = _set_params(setup, max_grasps=0)
    assert not res[0].successful
    # a value of the wrong type gets the node's own message (not rclpy's "expected '3' ...")
    res = _set_params(setup, score_threshold=1)
    assert res[0].reason == ("parameter 'score_threshold' must be a double (write 0.0, not 0), "
                             "got 1")
    res = _set_params(setup, max_grasps=2.5, publish_debug="yes")
    assert res[0].reason == "parameter 'max_grasps' must be an integer, got 2.5"
    assert "must be a bool" in _set_params(setup, publish_debug="yes")[0].reason
    res = _set_params(setup, max_grasps=2, score_threshold=0.0)
    assert all(r.successful for r in res), [r.reason for r in res]
    out = _send_and_wait(setup, _frame(400))
    assert len(out.grasps) == 2
    res = _set_params(setup, frame_id="override_frame")
    assert res[0].successful
    out = _send_and_wait(setup, _frame(401))
    assert out.header.frame_id == "override_frame"
    assert all(r.successful for r in _set_params(setup, frame_id="", max_grasps=10,
                                                 score_threshold=0.2))


def test_diagnostics_report_rates_and_timings(setup):
    from vita_grasp_ros.diagnostics import PUBLISHED_KEYS, diagnostic_values

    wait_for(lambda: any("frames_processed" in diagnostic_values(d) and
                         int(diagnostic_values(d)["frames_processed"]) > 0
                         for d in setup.diag.msgs), WAIT_TIMEOUT, what="diagnostics")
    d = [d for d in setup.diag.msgs if d.status and "vita_grasp_node" in d.status[0].name][-1]
    vals = diagnostic_values(d)
    for k in PUBLISHED_KEYS:
        assert k in vals
    assert float(vals["inference_ms_p50"]) > 0
    assert float(vals["latency_ms_p95"]) >= float(vals["latency_ms_p50"]) > 0
    assert d.status[0].name == f"{NS}/vita_grasp_node: grasp detection"


@pytest.mark.filterwarnings("ignore:Deprecated in favor of")  # rclpy's own default QoS handler
def test_incompatible_best_effort_camera_is_reported(setup):
    from rclpy.qos import qos_profile_sensor_data
    from sensor_msgs.msg import Image

    pub = setup.h.publisher(Image, IMAGE_TOPIC, qos_profile_sensor_data)
    try:
        wait_for(lambda: "incompatible QoS" in setup.node.output(), WAIT_TIMEOUT,
                 what="the incompatible-QoS error")
        assert "input_reliability:=best_effort" in setup.node.output()
    finally:
        setup.h.node.destroy_publisher(pub)
