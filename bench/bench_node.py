"""Per-stage cost of the ROS node per frame at 640x480 and 1280x720 (not a test).

Stages, in the order a frame goes through the node:

- ``deserialize Image``: CDR bytes -> sensor_msgs/Image (rclpy does this before the callback);
- ``image -> RGB``: :func:`image_msg_to_rgb` for rgb8 (zero copy) and bgr8 (one cvtColor);
  ``jpeg -> RGB``: :func:`compressed_msg_to_rgb` (image_transport ``compressed``, quality 90);
- ``preprocess``: letterbox + normalisation onto the backbone input (448x588, the real size);
- ``model``: the forward pass - a tiny encoder here (hidden 64, 2 layers; the decoder at full
  output size), the real InternViT-300M (random weights) with ``--real``;
- ``grasp decoding``: maps -> grasps (CONVENTIONS §4) + maps to numpy;
- ``GraspArray build`` (10 grasps) and ``serialize GraspArray`` (what publish() costs in Python);
- ``3-D poses`` (10 grasps, median depth window 5) and ``markers build + serialize`` (use_depth);
- ``debug image``: heatmap overlay + rectangles + bgr8 message; ``serialize debug image``. It runs
  only every ``debug_every_n``-th frame and only while someone subscribes.

*Node overhead* = everything but the model for a bgr8 frame: deserialize + bgr8 -> RGB +
preprocess + grasp decoding + GraspArray build + serialize. Target: <= 10 ms at 1280x720.

``--qos``: delivery of 30 Hz camera frames to the node across processes (loopback, Fast DDS) for
reliable and best-effort publishers/subscriptions, read from the node's /diagnostics.

``--load``: the node load test. The node runs as its own process (tiny model, or ``--checkpoint``)
and a publisher in this process sends bgr8 frames at 30 Hz for ``--duration`` s (default 60) per
``--sizes``; reported per size: frames sent, answered (GraspArray messages received here),
dropped (replaced in the node's one-frame slot, /diagnostics), bad, end-to-end latency p50/p95
(receive time here - the frame's stamp), the node's own latency and inference p50/p95, and the
node's RSS at the start (after warm-up), at the end and its maximum. A fresh node per size.

    python bench/bench_node.py [--quick] [--real] [--qos] [--json out.json]
    python bench/bench_node.py --load [--duration 60] [--sizes 640x480 1280x720] [--json out.json]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import (  # noqa: E402
    add_common_args,
    fmt_s,
    machine_info,
    machine_table,
    print_tables,
    time_interleaved,
    write_json,
)

SIZES = {"640x480": (480, 640), "1280x720": (720, 1280)}
OVERHEAD_STAGES = ("deserialize Image", "bgr8 -> RGB", "preprocess", "grasp decoding",
                   "GraspArray build", "serialize GraspArray")
from node_load import _load_table, bench_load, synthetic_frame  # noqa: E402

K = np.array([[600.0, 0, 320.0], [0, 600.0, 240.0], [0, 0, 1]])


def _predictor(real: bool):
    import torch

    from vita_grasp_core import GraspPredictor, ModelConfig, build_model
    from vita_grasp_core.choices import FLOAT32

    torch.manual_seed(0)
    if real:
        cfg = ModelConfig(backbone="internvit")
    else:
        cfg = ModelConfig(backbone="internvit", decoder_channels=32,
                          backbone_config=dict(hidden_size=64, num_hidden_layers=2,
                                               num_attention_heads=2, intermediate_size=128))
    # score_threshold 0: every frame yields max_grasps grasps (the message-building worst case)
    return GraspPredictor(build_model(cfg), "cpu", FLOAT32, score_threshold=0.0, max_grasps=10)


def bench_stages(size_name, hw, predictor, repeats, model_repeats):
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image
    from std_msgs.msg import Header
    from vita_grasp.msg import GraspArray

    from vita_grasp_core.grasp3d import grasp_poses
    from vita_grasp_ros import grasp_msgs
    from vita_grasp_ros.image_conversions import (
        compressed_msg_to_rgb,
        image_msg_to_rgb,
        rgb_to_compressed_msg,
        rgb_to_image_msg,
    )

    h, w = hw
    rgb = synthetic_frame(h, w)
    header = Header(frame_id="rgb_camera_link")
    msg_rgb = rgb_to_image_msg(rgb, "rgb8", header)
    msg_bgr = rgb_to_image_msg(rgb, "bgr8", header)
    cdr = serialize_message(msg_bgr)
    jpeg = rgb_to_compressed_msg(rgb, "jpeg", 90, header)
    x, lbs = predictor.preprocess([rgb])
    maps = predictor.forward_maps(x)
    pred = predictor.predict(rgb)
    grasps = pred.grasps
    depth = np.full((h, w), 0.7, np.float32)
    Kimg = K.copy()
    Kimg[0, 2], Kimg[1, 2] = w / 2, h / 2
    poses = grasp_poses(grasps, depth, Kimg, (h, w))
    out = grasp_msgs.grasps_to_msg(grasps, header, (h, w), poses)
    flat = grasp_msgs.grasps_to_msg(grasps, header, (h, w))

    def decode_stage():
        g = predictor.decode(maps, lbs)
        maps.cpu().numpy()
        return g

    fns = {
        "deserialize Image": lambda: deserialize_message(cdr, Image),
        "rgb8 -> RGB": lambda: image_msg_to_rgb(msg_rgb),
        "bgr8 -> RGB": lambda: image_msg_to_rgb(msg_bgr),
        "jpeg -> RGB": lambda: compressed_msg_to_rgb(jpeg),
        "preprocess": lambda: predictor.preprocess([rgb]),
        "grasp decoding": decode_stage,
        "GraspArray build": lambda: grasp_msgs.grasps_to_msg(grasps, header, (h, w)),
        "serialize GraspArray": lambda: serialize_message(flat),
        "3-D poses": lambda: grasp_poses(grasps, depth, Kimg, (h, w)),
        "markers build + serialize": lambda: serialize_message(grasp_msgs.grasps_to_markers(out)),
        "debug image": lambda: grasp_msgs.debug_image_msg(rgb, pred, header),
        "serialize debug image": lambda: serialize_message(
            grasp_msgs.debug_image_msg(rgb, pred, header)),
    }
    t = time_interleaved(fns, warmup=2, repeats=repeats)
    # the debug image serialisation alone (without building it again)
    dbg = grasp_msgs.debug_image_msg(rgb, pred, header)
    t["serialize debug image"] = time_interleaved(
        {"s": lambda: serialize_message(dbg)}, warmup=1, repeats=repeats)["s"]
    t["model"] = time_interleaved({"m": lambda: predictor.forward_maps(x)}, warmup=1,
                                  repeats=model_repeats)["m"]
    assert deserialize_message(serialize_message(out), GraspArray).grasps[0].has_pose
    return {"size": size_name, "jpeg_bytes": len(jpeg.data), "raw_bytes": len(msg_bgr.data),
            "grasps": len(grasps),
            "stages": {k: {kk: vv for kk, vv in v.items() if kk != "times"} for k, v in t.items()}}


def bench_qos(n_frames=150, rate=30.0):
    """Frames delivered to the node at 30 Hz for each (publisher, subscription) reliability."""
    import tempfile
    from pathlib import Path

    import rclpy  # noqa: F401
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from sensor_msgs.msg import Image

    from vita_grasp_ros.diagnostics import diagnostic_values
    from vita_grasp_ros.image_conversions import rgb_to_image_msg
    from vita_grasp_ros.testing import (
        NodeProcess,
        RosHarness,
        allocate_domain_id,
        make_stamp,
        ros_env,
        wait_for,
        write_tiny_checkpoint,
    )

    rows = []
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        ckpt = write_tiny_checkpoint(tmp / "best_model.pt")
        for sub_rel in ("reliable", "best_effort"):
            domain = allocate_domain_id()
            node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", f"input_reliability:={sub_rel}",
                                "-p", "diagnostics_period:=0.25", "-p", "publish_debug:=false"],
                               ros_env(tmp, domain), tmp / f"node_{sub_rel}.log")
            h = RosHarness(domain)
            try:
                diag = h.subscribe(DiagnosticArray, "/diagnostics")
                for pub_rel in ("reliable", "best_effort"):
                    for size_name, (hh, ww) in SIZES.items():
                        qos = QoSProfile(depth=10, reliability=(
                            ReliabilityPolicy.RELIABLE if pub_rel == "reliable"
                            else ReliabilityPolicy.BEST_EFFORT))
                        pub = h.publisher(Image, "/image", qos)
                        # graph-level count: an incompatible (unmatched) subscription counts too
                        wait_for(lambda: (not node.alive()
                                          or h.node.count_subscribers("/image") > 0),
                                 60, what="the node")
                        assert node.alive(), node.output()
                        time.sleep(1.0)  # let matching settle (no match for incompatible QoS)

                        def received():
                            vals = [diagnostic_values(d) for d in diag.msgs]
                            vals = [v for v in vals if "frames_received" in v]
                            return int(vals[-1]["frames_received"]) if vals else 0
                        wait_for(lambda: diag.msgs, 10, what="diagnostics")
                        r0 = received()
                        msg = rgb_to_image_msg(synthetic_frame(hh, ww), "bgr8")
                        t0 = time.monotonic()
                        for i in range(n_frames):
                            d = t0 + i / rate - time.monotonic()
                            if d > 0:
                                time.sleep(d)
                            msg.header.stamp = make_stamp(i)
                            pub.publish(msg)
                        time.sleep(1.0)  # let the last frames and a diagnostics report arrive
                        got = received() - r0
                        rows.append([f"{pub_rel} -> {sub_rel}", size_name, n_frames, got,
                                     f"{100 * got / n_frames:.0f} %"])
                        print(f"[bench_node] qos {pub_rel} -> {sub_rel} {size_name}: "
                              f"{got}/{n_frames}", flush=True)
                        h.node.destroy_publisher(pub)
            finally:
                node.stop()
                h.close()
    return rows


def _qos_table(rows):
    return {"title": "30 Hz delivery to the node across processes (Fast DDS, loopback)",
            "headers": ["publisher -> subscription", "frame", "sent", "received", "delivered"],
            "rows": rows,
            "notes": ["received = frames_received of the node's /diagnostics (every frame that "
                      "reached the callback, processed or dropped by the one-frame slot)",
                      "a reliable subscription does not match a best-effort publisher (0)",
                      "the node runs the tiny model meanwhile (as in use); input_depth 2"]}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_common_args(p)
    p.add_argument("--real", action="store_true",
                   help="also time the real InternViT-300M size (random weights, ~3.5 s/frame)")
    p.add_argument("--qos", action="store_true",
                   help="measure 30 Hz delivery to the node per QoS reliability (starts nodes)")
    p.add_argument("--repeats", type=int, default=None)
    p.add_argument("--qos-only", action="store_true", help="only the --qos measurement")
    p.add_argument("--load", action="store_true",
                   help="only the node load test (30 Hz into the node process, see above)")
    p.add_argument("--duration", type=float, default=None,
                   help="--load: seconds of 30 Hz input per size (default 60; 10 with --quick)")
    p.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES),
                   help="--load: frame sizes")
    p.add_argument("--checkpoint", default=None,
                   help="--load: checkpoint for the node (default: a tiny random model)")
    p.add_argument("--node-param", dest="node_params", action="append", default=[],
                   metavar="NAME:=VALUE",
                   help="--load: extra node parameter, repeatable (engine:=onnxruntime ...)")
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    repeats = a.repeats or (10 if a.quick else 40)
    res = {"title": "ROS node: per-stage cost per frame", "machine": machine_info(), "runs": {},
           "tables": []}
    if a.load:
        duration = a.duration or (10.0 if a.quick else 60.0)
        rows = [bench_load(s, SIZES[s], duration, checkpoint=a.checkpoint,
                           node_params=a.node_params) for s in a.sizes]
        res = {"title": "ROS node: load test", "load": rows, "machine": machine_info(),
               "tables": [_load_table(rows, duration)]}
        res["tables"].append(machine_table(res["machine"]))
        print_tables(res)
        write_json(a.json, res)
        return 0
    if a.qos_only:
        rows = bench_qos(n_frames=90 if a.quick else 150)
        res = {"title": "ROS node: QoS delivery", "qos": rows, "tables": [_qos_table(rows)]}
        print_tables(res)
        write_json(a.json, res)
        return 0
    variants = [("tiny", False)] + ([("InternViT-300M (random weights)", True)] if a.real else [])
    for label, real in variants:
        pred = _predictor(real)
        for size_name, hw in SIZES.items():
            print(f"[bench_node] {label} {size_name} ...", flush=True)
            res["runs"][f"{label} {size_name}"] = bench_stages(
                size_name, hw, pred, repeats, 2 if real else repeats)
    # Table: one row per stage, columns per size (tiny model; model row per variant).
    stage_names = list(next(iter(res["runs"].values()))["stages"])
    rows = []
    tiny = {s: res["runs"][f"tiny {s}"]["stages"] for s in SIZES}
    for st in stage_names:
        row = [st + (" (tiny encoder)" if st == "model" else "")]
        for s in SIZES:
            row += [fmt_s(tiny[s][st]["median"]), fmt_s(tiny[s][st]["min"])]
        rows.append(row)
    if a.real:
        for lbl, real in variants[1:]:
            row = [f"model ({lbl})"]
            for s in SIZES:
                m = res["runs"][f"{lbl} {s}"]["stages"]["model"]
                row += [fmt_s(m["median"]), fmt_s(m["min"])]
            rows.append(row)
    overhead = {q: {s: sum(tiny[s][st][q] for st in OVERHEAD_STAGES) for s in SIZES}
                for q in ("median", "min")}
    rows.append(["NODE OVERHEAD (bgr8, no debug image)"] +
                sum([[fmt_s(overhead["median"][s]), fmt_s(overhead["min"][s])] for s in SIZES],
                    []))
    dbg = ("debug image", "serialize debug image")
    with_debug = {q: {s: overhead[q][s] + sum(tiny[s][st][q] for st in dbg) for s in SIZES}
                  for q in ("median", "min")}
    rows.append(["  + debug image every frame"] +
                sum([[fmt_s(with_debug["median"][s]), fmt_s(with_debug["min"][s])]
                     for s in SIZES], []))
    res["overhead_s"] = overhead
    res["overhead_with_debug_s"] = with_debug
    headers = ["stage"] + sum([[f"{s} median", f"{s} min"] for s in SIZES], [])
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    notes = [f"median and min of {repeats} interleaved runs per stage (p95 in the JSON); torch "
             f"threads {torch.get_num_threads()}; load average at the end {load:.1f} on "
             f"{os.cpu_count()} cores (min = the cost without contention from other jobs); "
             "model rows: the forward pass only",
             "node overhead = " + " + ".join(OVERHEAD_STAGES) + " (target <= 10 ms at 1280x720)",
             "the debug image runs only every debug_every_n-th frame and only with a subscriber",
             f"jpeg size: {res['runs']['tiny 640x480']['jpeg_bytes'] / 1e3:.0f} kB (640x480), "
             f"{res['runs']['tiny 1280x720']['jpeg_bytes'] / 1e3:.0f} kB (1280x720)"]
    res["tables"].append({"title": "Per-stage cost per frame", "headers": headers, "rows": rows,
                          "notes": notes})
    if a.qos:
        qrows = bench_qos(n_frames=90 if a.quick else 150)
        res["qos"] = qrows
        res["tables"].append(_qos_table(qrows))
    res["tables"].append(machine_table(res["machine"]))
    print_tables(res)
    write_json(a.json, res)
    return 0


if __name__ == "__main__":
    sys.exit(main())
