"""The managed node (``vita-grasp-node --lifecycle``) as a real process, driven from this process
through its lifecycle services (``<node>/change_state``, ``<node>/get_state``):
unconfigured -> configure (model loaded, publishers, no subscription) -> activate (subscribes,
answers frames) -> deactivate (unsubscribed, model kept) -> activate (no reload) -> cleanup (model
freed) -> configure (reloaded) -> shutdown. A configure that fails (missing checkpoint) leaves the
node unconfigured and running, with one error line.
"""
from __future__ import annotations

import numpy as np
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
    stamp_ns,
    until_answered,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/lc"
NODE = f"{NS}/vita_grasp_node"
BAD = f"{NS}/bad_node"


class Lifecycle:
    """Clients of one node's lifecycle services."""

    def __init__(self, h, node):
        from lifecycle_msgs.srv import ChangeState, GetState

        self.h = h
        self.change = h.node.create_client(ChangeState, f"{node}/change_state")
        self.get = h.node.create_client(GetState, f"{node}/get_state")
        wait_for(lambda: self.change.service_is_ready() and self.get.service_is_ready(),
                 START_TIMEOUT,
                 what=f"the lifecycle services of {node}")

    def _call(self, cli, req, timeout=START_TIMEOUT):  # configure loads the model
        fut = cli.call_async(req)
        wait_for(fut.done, timeout, what="a lifecycle service answer")
        return fut.result()

    def state(self) -> str:
        from lifecycle_msgs.srv import GetState

        return self._call(self.get, GetState.Request()).current_state.label

    def transition(self, label: str) -> bool:
        from lifecycle_msgs.srv import ChangeState

        req = ChangeState.Request()
        req.transition.label = label
        return self._call(self.change, req).success


def _frame(i):
    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    rgb = np.random.default_rng(i).integers(0, 256, (120, 160, 3), dtype=np.uint8)
    m = rgb_to_image_msg(rgb)
    m.header.stamp = make_stamp(i)
    m.header.frame_id = "cam"
    return m


def test_lifecycle_transitions(tmp_path):
    from sensor_msgs.msg import Image
    from vita_grasp.msg import GraspArray

    ckpt = write_tiny_checkpoint(tmp_path / "best_model.pt")
    domain = allocate_domain_id()
    env = ros_env(tmp_path, domain)
    node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", "score_threshold:=0.0",
                        "-r", f"__ns:={NS}"], env, tmp_path / "node.log",
                       module_args=["--lifecycle"])
    bad = NodeProcess(["-p", f"checkpoint:={tmp_path / 'missing.pt'}", "-r", f"__ns:={NS}",
                       "-r", "__node:=bad_node"], env, tmp_path / "bad.log",
                      module_args=["--lifecycle"])
    h = RosHarness(domain)
    try:
        pub = h.publisher(Image, f"{NS}/image")
        results = h.subscribe(GraspArray, f"{NS}/grasps")
        lc = Lifecycle(h, NODE)

        def subscribed():
            return h.node.count_subscribers(f"{NS}/image") > 0

        def service() -> bool:
            """Whether the node offers get_grasps (only while active)."""
            return any(n == f"{NODE}/get_grasps" for n, _ in h.node.get_service_names_and_types())

        def answered(i):
            """Publish frames until one comes back (the first ones may precede matching)."""
            def send():
                m = _frame(i)
                pub.publish(m)
                return stamp_ns(m.header.stamp)
            until_answered(send, lambda want: any(stamp_ns(r.header.stamp) == want
                                                  for r in results.msgs),
                           WAIT_TIMEOUT, resend=2.0, what="a result from the active node")

        assert lc.state() == "unconfigured"
        assert not subscribed() and h.node.count_publishers(f"{NS}/grasps") == 0
        assert "loaded" not in node.output()  # nothing loaded before configure

        assert lc.transition("configure") and lc.state() == "inactive"
        assert node.output().count("]: loaded ") == 1
        wait_for(lambda: h.node.count_publishers(f"{NS}/grasps") > 0, WAIT_TIMEOUT,
                 what="publishers")
        assert not subscribed() and not service()

        assert lc.transition("activate") and lc.state() == "active"
        wait_for(subscribed, WAIT_TIMEOUT, what="the image subscription")
        answered(1)
        assert len(results.msgs[-1].grasps) > 0
        wait_for(service, WAIT_TIMEOUT, what="the get_grasps service while active")

        assert lc.transition("deactivate") and lc.state() == "inactive"
        wait_for(lambda: not subscribed(), WAIT_TIMEOUT, what="the subscription to go away")
        wait_for(lambda: not service(), WAIT_TIMEOUT, what="get_grasps to go away")
        inactive = _frame(2)
        pub.publish(inactive)  # nobody listens: no result (checked after the next answer)
        assert lc.state() == "inactive"

        assert lc.transition("activate") and lc.state() == "active"
        wait_for(subscribed, WAIT_TIMEOUT, what="the image subscription again")
        answered(3)
        assert node.output().count("]: loaded ") == 1  # paused, not reloaded
        # results come in input order: a result of the frame sent while inactive would be here
        assert not any(r.header.stamp == inactive.header.stamp for r in results.msgs)

        assert lc.transition("deactivate") and lc.transition("cleanup")
        assert lc.state() == "unconfigured"
        assert "cleaned up: model freed" in node.output()
        wait_for(lambda: h.node.count_publishers(f"{NS}/grasps") == 0, WAIT_TIMEOUT,
                 what="the publishers to go away")
        assert lc.transition("configure") and lc.state() == "inactive"
        assert node.output().count("]: loaded ") == 2
        assert lc.transition("shutdown") and lc.state() == "finalized"
        assert node.alive()

        # A configure that fails: one error line, still unconfigured, still running.
        lb = Lifecycle(h, BAD)
        assert lb.state() == "unconfigured"
        assert not lb.transition("configure")
        assert lb.state() == "unconfigured" and bad.alive()
        errors = [ln for ln in bad.output().splitlines() if "ERROR" in ln]
        assert len(errors) == 1 and "checkpoint not found" in errors[0], bad.output()
    finally:
        rc, rc_bad = node.stop(), bad.stop()
        h.close()
    assert rc == 0 and rc_bad == 0, node.output() + bad.output()
    assert "Traceback" not in node.output() + bad.output()
