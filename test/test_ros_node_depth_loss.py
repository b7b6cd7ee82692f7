"""Lost depth frames through a real node process (issue 17 item 7, the node-vs-API gap of the
pick benchmark): a camera streams colour, depth and CameraInfo with one header at 10 Hz, the
model is slower than ``depth_wait`` and some depth frames never reach the node - as Fast DDS
loses the first messages of a back-to-back burst when a busy reader lags (measured: 23 of 60
depth frames arrived at a load average of 12, the images all did). The node must still answer
with poses, each from the depth frame of its own image's stamp: it takes the newest colour frame
whose depth frame has arrived, as ``message_filters`` hands over complete sets only. Before that
fix it processed whichever frame was newest when the model was free, and a third to a half of
the answers had no pose."""
from __future__ import annotations

import time

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from vita_grasp_ros.testing import (  # noqa: E402
    START_TIMEOUT,
    NodeProcess,
    RosHarness,
    allocate_domain_id,
    make_stamp,
    ros_env,
    stamp_ns,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/dl"
H, W = 240, 320
FX = FY = 300.0
LATENCY_MS = 800  # a model slower than the default depth_wait (0.5 s)
RATE_HZ = 10.0
ANSWERS = 5


@pytest.fixture(scope="module")
def stream(tmp_path_factory):
    from sensor_msgs.msg import CameraInfo, Image
    from vita_grasp.msg import GraspArray

    tmp = tmp_path_factory.mktemp("ros_depth_loss")
    ckpt = write_tiny_checkpoint(tmp / "best_model.pt")
    domain = allocate_domain_id()
    # depth_wait: how long the worker waits for a frame whose depth frame is there; generous,
    # so that a stall of the transport on a loaded machine (seconds) cannot fail the test
    node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", "use_depth:=true",
                        "-p", "score_threshold:=0.0", "-p", "publish_debug:=false",
                        "-p", "depth_wait:=5.0", "-r", f"__ns:={NS}"],
                       ros_env(tmp, domain, VITA_GRASP_SIMULATED_LATENCY_MS=LATENCY_MS),
                       tmp / "node.log")
    h = RosHarness(domain)
    try:
        s = type("S", (), {})()
        s.node, s.h = node, h
        s.img = h.publisher(Image, f"{NS}/image")
        s.depth = h.publisher(Image, f"{NS}/depth")
        s.info = h.publisher(CameraInfo, f"{NS}/camera_info")
        s.grasps = h.subscribe(GraspArray, f"{NS}/grasps")
        wait_for(lambda: not node.alive() or all(p.get_subscription_count() > 0
                                                 for p in (s.img, s.depth, s.info)),
                 START_TIMEOUT, what="the node")
        assert node.alive(), node.output()
        yield s
    finally:
        rc = node.stop()
        h.close()
    assert rc == 0, node.output()


def _z_mm(i: int) -> int:
    return 500 + 7 * (i % 40)  # every frame its own depth: a pose from another frame shows


def _send(s, i: int, with_depth: bool) -> int:
    """Frame ``i``: image, then (unless lost) its depth frame, then CameraInfo; one header."""
    from sensor_msgs.msg import CameraInfo

    from vita_grasp_ros.image_conversions import numpy_to_image_msg, rgb_to_image_msg

    stamp = make_stamp(i)
    rgb = np.random.default_rng(i % 7).integers(0, 256, (H, W, 3), dtype=np.uint8)
    img = rgb_to_image_msg(rgb, "rgb8")
    img.header.stamp, img.header.frame_id = stamp, "cam"
    s.img.publish(img)
    if with_depth:
        d = numpy_to_image_msg(np.full((H, W), _z_mm(i), np.uint16), "16UC1")
        d.header.stamp, d.header.frame_id = stamp, "cam"
        s.depth.publish(d)
    info = CameraInfo(height=H, width=W, k=[FX, 0.0, W / 2, 0.0, FY, H / 2, 0.0, 0.0, 1.0])
    info.header.stamp, info.header.frame_id = stamp, "cam"
    s.info.publish(info)
    return stamp_ns(stamp)


def _stream_until(s, n_answers: int, lost, timeout: float):
    """Stream at RATE_HZ (frame i loses its depth frame when ``lost(i)``) until the node has
    answered ``n_answers`` of these frames; returns {stamp: frame index} and the answers."""
    sent: dict[int, int] = {}
    n0 = len(s.grasps)
    deadline = time.monotonic() + timeout
    i = 0
    while True:
        answers = [m for m in s.grasps.msgs[n0:] if stamp_ns(m.header.stamp) in sent]
        if len(answers) >= n_answers:
            return sent, answers
        assert time.monotonic() < deadline, (
            f"{len(answers)} answers to {len(sent)} frames in {timeout:.0f} s\n"
            + s.node.output()[-3000:])
        sent[_send(s, i, not lost(i))] = i
        i += 1
        time.sleep(1.0 / RATE_HZ)  # the camera's frame period


def test_lost_depth_frames_cost_no_pose(stream):
    """Two of every three depth frames never arrive and the model takes longer than
    depth_wait: every answer still has poses, from its own image's depth frame."""
    _stream_until(stream, 1, lambda i: False, START_TIMEOUT)  # warm-up: first inference
    sent, answers = _stream_until(stream, ANSWERS, lambda i: i % 3 != 0, 120.0)
    for m in answers:
        i = sent[stamp_ns(m.header.stamp)]
        assert i % 3 == 0, f"frame {i} (its depth frame was never sent) was answered"
        assert m.grasps and all(g.has_pose for g in m.grasps), f"frame {i}: no pose"
        assert stamp_ns(m.depth_stamp) == stamp_ns(m.header.stamp)  # its own depth frame
        zs = {round(g.pose.position.z, 4) for g in m.grasps}
        assert zs == {_z_mm(i) / 1000.0}, (i, zs)
