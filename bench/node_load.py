"""The node load test of ``bench_node.py --load``: a fresh node process, 30 Hz bgr8 frames from
this process for ``duration`` s, answered / dropped / bad frames, end-to-end and in-node latency,
and the node's memory (see ``bench_node.py``'s docstring)."""
from __future__ import annotations

import os
import time

import numpy as np
from common import fmt_s  # noqa: E402


def synthetic_frame(h, w, seed=0):
    """A camera-like frame: smooth gradients + a few rectangles + mild noise (jpeg sizes like
    real frames, not like white noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([xx / w * 200, yy / h * 200, (xx + yy) / (w + h) * 120], -1)
    for _ in range(12):
        x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
        img[y0:y0 + rng.integers(20, 200), x0:x0 + rng.integers(20, 200)] = rng.integers(0, 255, 3)
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def bench_load(size_name, hw, duration=60.0, rate=30.0, checkpoint=None, node_params=()):
    """30 Hz for ``duration`` s into a fresh node process; see the module docstring."""
    import tempfile
    import threading
    from pathlib import Path

    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vita_grasp.msg import GraspArray

    from vita_grasp_ros.diagnostics import diagnostic_values
    from vita_grasp_ros.image_conversions import rgb_to_image_msg
    from vita_grasp_ros.testing import (
        NodeProcess,
        RosHarness,
        allocate_domain_id,
        make_stamp,
        ros_env,
        rss_mb,
        stamp_ns,
        wait_for,
        write_tiny_checkpoint,
    )

    h_, w_ = hw
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        ckpt = checkpoint or write_tiny_checkpoint(tmp / "best_model.pt")
        domain = allocate_domain_id()
        extra = [a for kv in node_params for a in ("-p", kv)]
        node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", "diagnostics_period:=0.5",
                            *extra, "-r", "__ns:=/load"], ros_env(tmp, domain), tmp / "node.log")
        h = RosHarness(domain)
        try:
            pub = h.publisher(Image, "/load/image", 10)
            results = h.subscribe(GraspArray, "/load/grasps")
            diag = h.subscribe(DiagnosticArray, "/diagnostics")
            wait_for(lambda: not node.alive() or (pub.get_subscription_count() > 0 and
                                                  h.node.count_publishers("/load/grasps") > 0),
                     120, what="the node")
            if not node.alive():
                raise RuntimeError(f"the node did not start:\n{node.output()}")
            frames = [rgb_to_image_msg(synthetic_frame(h_, w_, seed=i), "bgr8") for i in range(4)]
            for i in range(5):  # warm-up, one by one (first-call costs; readers matched)
                m = frames[i % 4]
                m.header.stamp = make_stamp()
                pub.publish(m)
                want = stamp_ns(m.header.stamp)
                try:
                    wait_for(lambda: any(stamp_ns(r.header.stamp) == want
                                         for r in results.msgs), 30)
                except AssertionError:
                    pass

            def counters():
                vals = [diagnostic_values(d) for d in diag.msgs]
                vals = [v for v in vals if "frames_received" in v]
                return {k: int(vals[-1][k]) for k in ("frames_received", "frames_processed",
                                                     "frames_dropped", "frames_bad")}
            c0 = wait_for(lambda: diag.msgs and counters(), 10, what="diagnostics")
            results.clear()
            rss = [rss_mb(node.pid)]
            stop = threading.Event()

            def sample():
                while not stop.wait(1.0):
                    rss.append(rss_mb(node.pid))
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            n = int(duration * rate)
            sent = []
            t0 = time.monotonic()
            for i in range(n):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                m = frames[i % 4]
                m.header.stamp = make_stamp(i)
                sent.append(stamp_ns(m.header.stamp))
                pub.publish(m)
            send_s = time.monotonic() - t0
            try:  # the last frames' results (no backlog: they come promptly)
                wait_for(lambda: any(stamp_ns(r.header.stamp) >= sent[-3]
                                     for r in results.msgs), 10)
            except AssertionError:
                pass
            time.sleep(1.5)  # one more diagnostics report after the stream (fixed: a benchmark)
            stop.set()
            sampler.join(3)
            rss.append(rss_mb(node.pid))
            c1 = counters()
            last = [diagnostic_values(d) for d in diag.msgs]
            last = [v for v in last if "latency_ms_p50" in v][-1]
            got = [(t, stamp_ns(r.header.stamp)) for t, r in results.items]
            ages = np.array([t - s_ns / 1e9 for t, s_ns in got if s_ns in set(sent)])
            d = {k: c1[k] - c0[k] for k in c1}
            row = {
                "size": size_name, "duration_s": send_s, "sent": n,
                "send_rate_hz": n / send_s, "node_received": d["frames_received"],
                "answered": len(ages), "processed": d["frames_processed"],
                "dropped": d["frames_dropped"], "bad": d["frames_bad"],
                "latency_ms_p50": float(np.percentile(ages, 50) * 1e3) if len(ages) else None,
                "latency_ms_p95": float(np.percentile(ages, 95) * 1e3) if len(ages) else None,
                "node_latency_ms_p50": float(last["latency_ms_p50"]),
                "node_latency_ms_p95": float(last["latency_ms_p95"]),
                "inference_ms_p50": float(last["inference_ms_p50"]),
                "inference_ms_p95": float(last["inference_ms_p95"]),
                "rss_mb_start": rss[0], "rss_mb_end": rss[-1], "rss_mb_max": max(rss),
                "answered_hz": len(ages) / send_s,
            }
            print(f"[bench_node] load {size_name}: {row}", flush=True)
            return row
        finally:
            node.stop()
            h.close()


def _load_table(rows, duration):
    return {"title": f"Node load test: 30 Hz bgr8 input for {duration:g} s (node as a process)",
            "headers": ["frame", "sent", "received", "answered", "answered Hz", "dropped", "bad",
                        "latency p50", "latency p95", "node inference p50 / p95",
                        "RSS start", "RSS end", "RSS max"],
            "rows": [[r["size"], r["sent"], r["node_received"], r["answered"],
                      f"{r['answered_hz']:.1f}", r["dropped"], r["bad"],
                      fmt_s(r["latency_ms_p50"] / 1e3), fmt_s(r["latency_ms_p95"] / 1e3),
                      f"{fmt_s(r['inference_ms_p50'] / 1e3)} / "
                      f"{fmt_s(r['inference_ms_p95'] / 1e3)}",
                      f"{r['rss_mb_start']:.0f} MB", f"{r['rss_mb_end']:.0f} MB",
                      f"{r['rss_mb_max']:.0f} MB"] for r in rows],
            "notes": ["latency = receive time of the GraspArray in the publishing process - the "
                      "frame's header stamp (end to end: transport, slot wait, conversion, model, "
                      "decoding, publishing)",
                      "received = frames that reached the node's callback; answered = results "
                      "received here; dropped = replaced in the one-frame slot before the worker "
                      "took them (latest frame wins)",
                      "RSS of the node process: start after 5 warm-up frames, sampled every 1 s",
                      f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} "
                      "cores (shared machine)"]}
