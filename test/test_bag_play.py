"""``bag play --clock`` and ``--loop``: /clock from the bag's time line drives a ``use_sim_time``
node, and looping replays the bag again and again (clock back at the start each pass) until
stopped.

Each test has its own ROS_DOMAIN_ID (100-230), localhost discovery and ROS home/log in tmp_path;
processes are stopped in ``finally``.
"""
from __future__ import annotations

import sys
import threading

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")
pytest.importorskip("rosgraph_msgs.msg")

from vita_grasp_ros.bag import io as bags  # noqa: E402
from vita_grasp_ros.bag import messages as bmsg  # noqa: E402
from vita_grasp_ros.bag import types as bt  # noqa: E402
from vita_grasp_ros.testing import (  # noqa: E402
    START_TIMEOUT,
    WAIT_TIMEOUT,
    NodeProcess,
    RosHarness,
    allocate_domain_id,
    ros_env,
    wait_for,
)

pytestmark = [pytest.mark.ros]

CLI = [sys.executable, "-m", "vita_grasp_core.cli", "bag"]


@pytest.fixture(scope="module")
def info_bag(tmp_path_factory):
    """5 frames at 10 Hz (bag times t0 .. t0 + 0.4 s), camera info only (small and fast)."""
    from vita_grasp_core.data.synth import synthesize
    from vita_grasp_ros.bag.make import BagLayout, make_bag

    d = tmp_path_factory.mktemp("bag_play")
    synthesize(d / "data", scenes=1, frames=5, seed=3)
    out = d / "info.mcap"
    make_bag(d / "data", out, layout=BagLayout(rate=10.0, depth_topic=None), progress=False)
    with bags.open_bag(out) as r:
        times = [t for _, t, _ in r.read([bt.INFO_TOPIC])]
    assert len(times) == 5
    return out, times


def _clock_qos():
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    return QoSProfile(depth=100, reliability=ReliabilityPolicy.BEST_EFFORT)


def test_play_clock_drives_sim_time_node(info_bag, tmp_path, monkeypatch):
    import rclpy
    from rclpy.parameter import Parameter
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo

    bag, times = info_bag
    domain = allocate_domain_id()
    for k, v in ros_env(tmp_path, domain).items():
        monkeypatch.setenv(k, v)
    h = RosHarness(domain)
    player = None
    try:
        sim = rclpy.create_node("sim_time_user", context=h.context,
                                parameter_overrides=[Parameter("use_sim_time", value=True)])
        h.executor.add_node(sim)
        clocks = h.subscribe(Clock, "/clock", _clock_qos())
        infos = h.subscribe(CameraInfo, bt.INFO_TOPIC)
        # The player waits for 2 subscriptions of camera_info; the second is made only once our
        # collectors have matched the player's publishers from their side too. Discovery is
        # one-sided for a moment (the player may see a subscription before that subscription
        # sees it), and /clock is best effort: a tick sent then is not sent again. The player
        # learns of our endpoints in the order they were made, so seeing the second one means
        # it saw the collectors.
        player = NodeProcess([], ros_env(tmp_path, domain), tmp_path / "play.log",
                             command=CLI + ["play", str(bag), "--clock", "50", "--rate", "0.5",
                                            "--topics", bt.INFO_TOPIC,
                                            "--wait-for-subscribers", "2",
                                            "--wait-topics", bt.INFO_TOPIC,
                                            "--wait-timeout", str(START_TIMEOUT),
                                            "--delay", "0.5"])
        wait_for(lambda: not player.alive() or all(
            c.subscription.get_publisher_count() > 0 for c in (infos, clocks)),
            START_TIMEOUT, what="our subscriptions to match the player")
        h.subscribe(CameraInfo, bt.INFO_TOPIC)  # the second subscription: playing starts
        assert player.exit_status(START_TIMEOUT) == 0, player.output()
        assert "/clock messages" in player.output()
        wait_for(lambda: len(infos) == 5, WAIT_TIMEOUT, what="5 camera_info messages")
        wait_for(lambda: clocks.msgs and bmsg.stamp_to_ns(clocks.msgs[-1].clock) == times[-1],
                 WAIT_TIMEOUT, what="the clock at the bag's last timestamp")
        values = [bmsg.stamp_to_ns(m.clock) for m in clocks.msgs]
        assert values == sorted(values)  # never backwards within one pass
        assert times[0] <= values[0] and values[-1] == times[-1]
        assert set(times) <= set(values)  # one tick with each message's own time
        assert len(set(values)) > len(times) + 10  # and ticks in between (50 Hz over ~0.8 s)
        # the use_sim_time node's clock follows the bag, not the wall clock
        wait_for(lambda: sim.get_clock().now().nanoseconds == times[-1], WAIT_TIMEOUT,
                 what="the sim-time node's clock at the bag's end")
    finally:
        if player is not None:
            player.stop(timeout=10)
        h.close()


def test_play_loop_until_stopped(info_bag, tmp_path, monkeypatch):
    from rosgraph_msgs.msg import Clock
    from sensor_msgs.msg import CameraInfo

    from vita_grasp_ros.bag.play import PlayOptions, PlayStats, play

    bag, times = info_bag
    domain = allocate_domain_id()
    for k, v in ros_env(tmp_path, domain).items():
        monkeypatch.setenv(k, v)
    h = RosHarness(domain)
    stop, stats, errors = threading.Event(), PlayStats(), []

    def run():
        try:
            play(bag, h.node, PlayOptions(rate=4.0, loop=True, clock_hz=20,
                                          topics=[bt.INFO_TOPIC], wait_for_subscribers=1,
                                          progress=False), stop=stop, stats=stats,
                 log=lambda m: None)
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    infos = h.subscribe(CameraInfo, bt.INFO_TOPIC, 100)
    clocks = h.subscribe(Clock, "/clock", _clock_qos())
    t = threading.Thread(target=run, daemon=True)
    try:
        t.start()
        # Wait on what arrived, not only on what was sent: discovery is one-sided for a moment
        # (the player may see our subscriber before our subscriber sees it), so the first
        # messages of the first pass can be lost; the loop goes on until every check holds.

        def clock_jumps():
            values = [bmsg.stamp_to_ns(m.clock) for m in clocks.msgs]
            return sum(1 for a, b in zip(values, values[1:]) if b < a)

        wait_for(lambda: (stats.loops >= 4 and len(infos.msgs) >= 15 and clock_jumps() >= 2)
                 or errors or not t.is_alive(), 90,
                 what="four passes over the bag, 15 CameraInfo and 2 clock restarts received")
        stop.set()
        t.join(30)
        assert not t.is_alive() and not errors, errors
    finally:
        stop.set()
        h.close()
    assert stats.loops >= 4 and stats.published[bt.INFO_TOPIC] >= 15
    stamps = [bmsg.stamp_to_ns(m.header.stamp) for m in infos.msgs]
    assert set(stamps) == set(times) and len(stamps) >= 15  # the same frames, pass after pass
    values = [bmsg.stamp_to_ns(m.clock) for m in clocks.msgs]
    jumps = sum(1 for a, b in zip(values, values[1:]) if b < a)
    assert jumps >= 2 and min(values) == times[0]  # each pass restarts the clock at the start
