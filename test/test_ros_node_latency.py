"""30 Hz input into a slow model: the node drops frames instead of queueing them.

The model is made slow with the test-only ``VITA_GRASP_SIMULATED_LATENCY_MS`` (the worker sleeps
after each prediction). Checks: the age of every published result stays bounded (latest frame
wins: a result is at most ~2 model times old), drops are counted in /diagnostics and add up, the
node keeps up to the end of the stream (no backlog) and its memory stays flat.
"""
from __future__ import annotations

import json
import threading
import time

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
    rss_mb,
    stamp_ns,
    until_answered,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

SIM_MS = 150
RATE_HZ = 30.0
DURATION_S = 8.0


def test_30hz_into_a_slow_model_drops_frames_with_bounded_latency(tmp_path):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vita_grasp.msg import GraspArray

    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    ckpt = write_tiny_checkpoint(tmp_path / "best_model.pt")
    domain = allocate_domain_id()
    env = ros_env(tmp_path, domain, VITA_GRASP_SIMULATED_LATENCY_MS=SIM_MS)
    node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", "diagnostics_period:=0.25",
                        "-r", "__ns:=/lat"], env, tmp_path / "node.log")
    h = RosHarness(domain)
    try:
        pub = h.publisher(Image, "/lat/image", 10)
        results = h.subscribe(GraspArray, "/lat/grasps")
        diag = h.subscribe(DiagnosticArray, "/diagnostics")
        wait_for(lambda: not node.alive() or (pub.get_subscription_count() > 0 and
                                              h.node.count_publishers("/lat/grasps") > 0),
                 START_TIMEOUT, what="the node")
        assert node.alive(), node.output()
        rng = np.random.default_rng(0)
        frames = [rgb_to_image_msg(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
                  for _ in range(4)]

        # Warm-up: frames one by one until three have come back (first-call costs; the first
        # ones may be lost while discovery is one-sided), then the counts and memory baseline.
        def send():
            m = frames[0]
            m.header.stamp = make_stamp()
            pub.publish(m)
            return stamp_ns(m.header.stamp)

        def answered(want):
            return any(stamp_ns(r.header.stamp) == want for r in results.msgs)
        for k in range(3):  # resent only until the first answer: none is in flight after
            until_answered(send, answered, START_TIMEOUT, resend=3.0 if k == 0 else START_TIMEOUT,
                           what="a warm-up result")
        base = _counts(wait_for(lambda: _idle(diag), WAIT_TIMEOUT,
                                what="diagnostics of the idle node after the warm-up"))
        rss = [rss_mb(node.pid)]
        stop = threading.Event()

        def sample():
            while not stop.wait(0.25):
                rss.append(rss_mb(node.pid))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        sent = []
        t0 = time.monotonic()
        n = int(DURATION_S * RATE_HZ)
        for i in range(n):
            target = t0 + i / RATE_HZ
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # pacing the 30 Hz stream, not waiting for a result
            m = frames[i % 4]
            m.header.stamp = make_stamp(i)
            sent.append(stamp_ns(m.header.stamp))
            pub.publish(m)
        send_s = time.monotonic() - t0
        last = sent[-1]
        stream = set(sent)

        def of_stream():  # the results of the stream's frames (not of a warm-up frame)
            return [(t, r) for t, r in results.items if stamp_ns(r.header.stamp) in stream]
        # No backlog: the result of the very last frame arrives (latest wins: the last frame
        # is never replaced, so it is processed); the node turns idle only after it.
        wait_for(lambda: any(stamp_ns(r.header.stamp) == last for _, r in of_stream()),
                 WAIT_TIMEOUT, what="the result of the last frame")
        stop.set()
        sampler.join(2)

        def idle_after_stream():
            v = _idle(diag)
            return v if v and _counts(v)["frames_processed"] > base["frames_processed"] else None
        d = wait_for(idle_after_stream, WAIT_TIMEOUT,
                     what="diagnostics of the idle node after the stream")
        c = {k: v - base[k] for k, v in _counts(d).items()}  # the stream's frames
        processed = c["frames_processed"]
        # The counts settle: every processed frame's result (the last may still be in flight
        # when the node turns idle) has arrived. Read the results only then.
        wait_for(lambda: len(of_stream()) >= processed, WAIT_TIMEOUT,
                 what=f"{processed} results (the node's processed count)")
        received = of_stream()
        ages = np.array([t_recv - stamp_ns(r.header.stamp) / 1e9 for t_recv, r in received])
        stamps = [stamp_ns(r.header.stamp) for _, r in received]
        assert stamps == sorted(stamps), "results must come in input order"
        inf_p95 = float(d["inference_ms_p95"]) / 1e3
        dropped, received_n, bad = c["frames_dropped"], c["frames_received"], c["frames_bad"]
        report = {
            "sent": n, "send_rate_hz": n / send_s, "results": len(received),
            "node_received": received_n, "node_processed": processed,
            "node_dropped": dropped, "bad": bad,
            "inference_ms_p50": float(d["inference_ms_p50"]), "inference_ms_p95": inf_p95 * 1e3,
            "age_ms_p50": float(np.percentile(ages, 50) * 1e3),
            "age_ms_p95": float(np.percentile(ages, 95) * 1e3),
            "age_ms_max": float(ages.max() * 1e3),
            "diag_latency_ms_p50": float(d["latency_ms_p50"]),
            "diag_latency_ms_p95": float(d["latency_ms_p95"]),
            "rss_mb_start": rss[0], "rss_mb_max": max(rss), "rss_mb_end": rss[-1],
        }
        print("\n30 Hz latency test:", json.dumps(report, indent=1))
        (tmp_path / "latency_report.json").write_text(json.dumps(report, indent=1))

        # Latency stays bounded: at most one frame waiting + one being processed. A backlog
        # makes the ages grow through the stream (seconds within a few frames at 30 Hz into
        # this model), so the bound must hold for 90 % of the results and for the newest ones.
        # One result may be late by a stall of the loaded machine: once in about 22 loaded
        # clean-clone runs, 1 of 26 results took 2.2 s while the other 25 were under 0.6 s.
        bound = 2 * inf_p95 + 0.3
        assert np.percentile(ages, 90) < bound, (ages.tolist(), bound, report)
        assert np.median(ages[-5:]) < bound, (ages.tolist(), bound, report)
        # Drops are counted and everything adds up (one frame may still sit in the slot). What
        # reaches the node depends on the machine (a starved executor lets the DDS history of
        # depth 2 overwrite frames; 59 % arrived at load average 19 on 2 cores), so the checks
        # are relative to what the node received: it saw more than it could process and
        # dropped the rest instead of queueing them.
        assert bad == 0
        assert received_n >= 2 * processed, report
        assert dropped >= 0.5 * received_n, report
        assert received_n == processed + dropped, report
        assert len(received) == processed, report
        # Throughput is what the model allows, not the input rate.
        assert len(received) <= send_s / (SIM_MS / 1e3) + 3
        # Memory is flat (bounded slot, no queue).
        assert max(rss) - rss[0] < 50, rss
    finally:
        rc = node.stop()
        h.close()
    assert rc == 0, node.output()


COUNTS = ("frames_received", "frames_processed", "frames_dropped", "frames_bad")


def _counts(values: dict) -> dict:
    return {k: int(values[k]) for k in COUNTS}


def _idle(diag) -> dict | None:
    """The newest diagnostics values when the node is idle: every frame it received was
    processed, dropped or refused (nothing in the slot or in the model), the same in two
    consecutive reports (two equal reports alone are not enough when one prediction outlasts
    two report periods on a loaded machine)."""
    from vita_grasp_ros.diagnostics import diagnostic_values

    vals = [diagnostic_values(d) for d in diag.msgs[-10:]]
    vals = [v for v in vals if "frames_received" in v]
    if len(vals) < 2 or _counts(vals[-1]) != _counts(vals[-2]):
        return None
    c = _counts(vals[-1])
    settled = c["frames_received"] == (c["frames_processed"] + c["frames_dropped"]
                                       + c["frames_bad"])
    return vals[-1] if settled else None
