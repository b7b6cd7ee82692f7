"""The node object in this process (no subprocess): failures inside prediction and drawing are
counted and survived, the one-frame slot counts drops, parameters reach the predictor, logging
of mixed severities through the throttle works."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from vita_grasp_ros.testing import (  # noqa: E402
    WAIT_TIMEOUT,
    allocate_domain_id,
    make_stamp,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros]


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    import os

    from rclpy.parameter import Parameter

    from vita_grasp_ros.grasp_node import GraspNode

    tmp = tmp_path_factory.mktemp("inproc")
    os.environ.setdefault("ROS_LOG_DIR", str(tmp / "log"))
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    ckpt = write_tiny_checkpoint(tmp / "best_model.pt")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=allocate_domain_id())
    n = GraspNode(
        context=ctx, parameter_overrides=[Parameter("checkpoint", value=str(ckpt)),
                                          Parameter("score_threshold", value=0.0)])
    try:
        yield n
    finally:
        n.stop()
        n.destroy_node()
        rclpy.try_shutdown(context=ctx)


def _msg(h=48, w=64, frame_id="cam"):
    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    m = rgb_to_image_msg(np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8))
    m.header.stamp = make_stamp()
    m.header.frame_id = frame_id
    return m


def test_exception_in_prediction_is_a_bad_frame(node, monkeypatch):
    bad0 = node.stats.bad

    def boom(*_args, **_kwargs):
        raise RuntimeError("simulated failure inside the model")
    monkeypatch.setattr(node.predictor, "predict", boom)
    node._process(_msg())
    node._process(_msg())
    assert node.stats.bad == bad0 + 2
    assert "simulated failure" in node.stats.last_error
    monkeypatch.undo()
    p0 = node.stats.processed
    node._process(_msg())
    assert node.stats.processed >= p0 + 1


def test_worker_survives_unexpected_errors(node, monkeypatch):
    bad0 = node.stats.bad

    def broken(_):
        raise KeyError("not a conversion error")
    monkeypatch.setattr(node, "_convert", broken)
    node._on_image(_msg())
    wait_for(lambda: node.stats.bad > bad0, WAIT_TIMEOUT, what="the worker to count the frame")
    assert node.worker.is_alive()
    assert "unexpected error" in node.stats.last_error
    # mixed severities through the throttle (rclpy refuses a call site changing severity)
    node._throttle(node.get_logger(), "warning", "t1", "a warning")
    node._throttle(node.get_logger(), "error", "t2", "an error")
    node._throttle(node.get_logger(), "info", "t3", "an info")


def test_slot_counts_replaced_frames_as_dropped(node):
    d0, r0 = node.stats.dropped, node.stats.received
    with node.worker._cv:  # hold the mailbox so that the worker cannot take frames meanwhile
        for _ in range(3):
            node._on_image(_msg())
        assert node.worker.pending()  # the newest frame waits in the slot
    assert node.stats.received == r0 + 3
    assert node.stats.dropped >= d0 + 2


def test_parameters_reach_the_predictor(node):
    from rclpy.parameter import Parameter

    res = node.set_parameters([Parameter("score_threshold", value=0.7),
                               Parameter("max_grasps", value=3),
                               Parameter("min_distance", value=4),
                               Parameter("smooth_sigma", value=0.0)])
    assert all(r.successful for r in res)
    p = node.predictor
    assert (p.score_threshold, p.max_grasps, p.min_distance, p.smooth_sigma) == (0.7, 3, 4, 0.0)
    res = node.set_parameters([Parameter("smooth_sigma", value=-1.0)])
    assert not res[0].successful and node.predictor.smooth_sigma == 0.0
    res = node.set_parameters_atomically([Parameter("max_grasps", value=5),
                                          Parameter("score_threshold", value=7.0)])
    assert not res.successful and node.predictor.max_grasps == 3  # nothing applied
    res = node.set_parameters([Parameter("device", value="cuda")])
    assert not res[0].successful
    assert node.set_parameters([Parameter("score_threshold", value=0.0),
                                Parameter("max_grasps", value=10)])[0].successful


def test_debug_failure_does_not_lose_the_result(node, monkeypatch):
    from vita_grasp_ros import grasp_msgs

    def broken(*a, **k):
        raise MemoryError("simulated")
    monkeypatch.setattr(grasp_msgs, "debug_image_msg", broken)
    debug = next(o for o in node.outputs if o.name == "debug_image")
    monkeypatch.setattr(debug.pub, "get_subscription_count", lambda: 1)
    p0, b0 = node.stats.processed, node.stats.bad
    node._process(_msg())
    assert node.stats.processed >= p0 + 1 and node.stats.bad == b0


def test_zero_stamp_and_empty_frame_id(node):
    m = _msg(frame_id="")
    m.header.stamp.sec, m.header.stamp.nanosec = 0, 0
    p0 = node.stats.processed
    node._process(m)
    assert node.stats.processed >= p0 + 1
    assert node._warned_no_frame_id
    snap = node.stats.snapshot(reset_rates=False)
    assert snap["latency_ms_p95"] < 60_000  # the zero stamp is not in the latency window


def test_input_qos_is_overridable(node):
    from rclpy.qos import ReliabilityPolicy

    name = f"qos_overrides.{node.image_sub.topic_name}.subscription.reliability"
    assert node.has_parameter(name), sorted(node._parameters)
    assert node.get_parameter(name).value == "reliable"
    assert node._input_qos.reliability == ReliabilityPolicy.RELIABLE
    assert node._input_qos.depth == 2
    for p in ("checkpoint", "device", "dtype", "use_compressed", "pretrained_model"):
        assert node.describe_parameter(p).read_only, p
    d = node.describe_parameter("score_threshold")
    assert d.floating_point_range[0].to_value == 1.0 and d.description
    assert node.describe_parameter("max_grasps").integer_range[0].from_value == 1


def test_a_registered_toy_output_is_one_class_and_publishes_every_frame(tmp_path):
    """A new output topic is one class + one registration: its parameter joins the node's table
    (declared, checked, changeable at run time) and it gets every frame's result."""
    import os

    from rclpy.parameter import Parameter
    from std_msgs.msg import UInt32

    from vita_grasp_ros.grasp_node import GraspNode
    from vita_grasp_ros.node_outputs import NodeOutput, register_output, unregister_output
    from vita_grasp_ros.node_params import ParamSpec

    @register_output
    class GraspCount(NodeOutput):
        name = "grasp_count"
        parameters = (ParamSpec("publish_grasp_count", bool, True, "Publish `grasp_count`."),)

        def __init__(self, node, publishers):
            super().__init__(node, publishers)
            self.pub = publishers.create(UInt32, "grasp_count", 10)
            self.sent = []

        def publish(self, result, settings):
            if settings.publish_grasp_count:
                n = len(result.grasps_msg.grasps)
                self.pub.publish(UInt32(data=n))
                self.sent.append(n)

    os.environ.setdefault("ROS_LOG_DIR", str(tmp_path / "log"))
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=allocate_domain_id())
    n = None
    try:
        ckpt = write_tiny_checkpoint(tmp_path / "best_model.pt")
        n = GraspNode(context=ctx, parameter_overrides=[
            Parameter("checkpoint", value=str(ckpt)), Parameter("score_threshold", value=0.0),
            Parameter("max_grasps", value=4)])
        toy = next(o for o in n.outputs if o.name == "grasp_count")
        assert "/grasp_count" in toy.topics()
        assert n.get_parameter("publish_grasp_count").value is True
        n._process(_msg())
        assert toy.sent == [4]
        res = n.set_parameters([Parameter("publish_grasp_count", value="yes")])[0]
        assert not res.successful  # the same check as every parameter
        assert n.set_parameters([Parameter("publish_grasp_count", value=False)])[0].successful
        n._process(_msg())
        assert toy.sent == [4] and n.stats.processed >= 2
    finally:
        unregister_output("grasp_count")
        if n is not None:
            n.stop()
            n.destroy_node()
        rclpy.try_shutdown(context=ctx)
