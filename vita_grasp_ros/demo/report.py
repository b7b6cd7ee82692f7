"""The demo's report (``OUT/report.md``) and its closing console summary.

Fed by :mod:`vita_grasp_ros.demo.cli`: :class:`State` collects what the steps produced; the
``o`` arguments are the demo's ``Options`` (``out``, ``overlays``, ``device`` are read).
Pictures: GT samples and the best predictions drawn over a few evaluation frames, and the node's
own ``debug/heatmap`` images from the recording.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..bag import messages
from ..bag.evaluate import read_predictions
from ..bag.io import open_bag
from ..bag.types import GT_TOPIC, IMAGE_TOPIC


@dataclass
class State:
    """What the steps produced (fed to the report)."""

    t0: float = field(default_factory=time.perf_counter)
    steps: list = field(default_factory=list)  # (name, seconds, note)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    bag: dict = field(default_factory=dict)
    ros: dict = field(default_factory=dict)
    scenes: dict = field(default_factory=dict)  # train / val scene ids, eval scene
    online: dict | None = None
    offline: dict | None = None
    files: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)

def say(msg: str = "") -> None:
    """One line on stdout, flushed (the demo's console output)."""
    print(msg, flush=True)


def rel(p) -> str:
    """``p`` relative to the working directory when below it, else as given."""
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def _overlays(o, st: State, bag: Path, rec: Path | None) -> list[dict]:
    """PNG overlays: GT sample (grey) + the best 5 predictions of the node (or offline)."""
    import cv2
    import numpy as np

    from vita_grasp_core.visualize import draw_grasps

    online = read_predictions(rec)[0] if rec is not None and rec.exists() else {}
    offline = (st.offline or {}).get("_predictions") or {}
    out_dir = o.out / "overlays"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True)
    frames = (st.online or st.offline)["per_frame"]
    if not frames:
        return []
    pick = sorted(set(np.linspace(0, len(frames) - 1, min(o.overlays, len(frames)))
                      .round().astype(int).tolist()))
    wanted = {frames[i]["stamp_ns"]: frames[i] for i in pick}
    images, gts = {}, {}
    with open_bag(bag) as r:
        for topic, _, msg in r.read([IMAGE_TOPIC, GT_TOPIC]):
            s = messages.stamp_to_ns(msg.header.stamp)
            if s not in wanted:
                continue
            if topic == GT_TOPIC:
                gts[s] = messages.grasp_array_rows(msg)
            else:
                images[s] = messages.image_from_msg(msg)
    rng = np.random.default_rng(0)
    out = []
    for s, f in sorted(wanted.items()):
        if s not in images:
            continue
        img = images[s]
        gt = gts.get(s, np.zeros((0, 7), np.float32))
        if len(gt) > 60:
            gt = gt[rng.choice(len(gt), 60, replace=False)]
        img = draw_grasps(img, gt, jaw_color=(170, 170, 170), open_color=(120, 120, 120),
                          highlight_best=False, thickness=1)
        src = "node" if s in online else "offline"
        pred = online.get(s, offline.get(s))
        if pred is not None:
            img = draw_grasps(img, pred, max_grasps=5, copy=False)
        small = cv2.resize(img, (img.shape[1] // 2, img.shape[0] // 2),
                           interpolation=cv2.INTER_AREA)
        name = f"frame_{f['index']:03d}.png"
        cv2.imwrite(str(out_dir / name), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
        out.append({"file": f"overlays/{name}", "index": f["index"], "source": src,
                    "top1": f.get("top1"), "dropped": f["dropped"]})
    return out


def _debug_images(o, rec: Path | None, n: int = 2) -> list[str]:
    """The node's own ``debug/heatmap`` images from the recording, as PNG."""
    import cv2

    if rec is None or not rec.exists():
        return []
    out = []
    with open_bag(rec) as r:
        if "/debug/heatmap" not in r.topics():
            return []
        for i, (_, _, msg) in enumerate(r.read(["/debug/heatmap"])):
            if i >= n:
                break
            rgb = messages.image_from_msg(msg)
            small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2),
                               interpolation=cv2.INTER_AREA)
            name = f"overlays/node_debug_{i}.png"
            cv2.imwrite(str(o.out / name), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
            out.append(name)
    return out


def write_report(o, st: State, bag: Path, rec: Path | None) -> Path:
    """Write ``o.out/report.md`` (+ ``overlays/*.png``) from what the steps stored in ``st``;
    ``bag`` is the evaluation bag, ``rec`` the recording of the node's output (or ``None``)."""
    overlays = _overlays(o, st, bag, rec)
    debug = _debug_images(o, rec)
    wall = time.perf_counter() - st.t0
    L = ["# VITA-Grasp demo report", "",
         f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `make demo` (scripts/demo.py) in "
         f"{wall:.0f} s wall time on {os.cpu_count()} CPU core(s), device `{o.device}`.", "",
         "Everything here is synthetic and trained from scratch in the demo: the numbers show "
         "that the loop works (data -> training -> ROS node -> rosbag2 -> metrics), not what "
         "the real InternViT / Qwen2-VL models reach on GraspNet-1Billion.", "",
         "## Steps", "", "| step | time | note |", "|---|---:|---|"]
    L += [f"| {name} | {dt:.1f} s | {note} |" for name, dt, note in st.steps]
    d, t, b = st.data, st.train, st.bag
    L += ["", "## Data, model, bag", "",
          f"- Data: {d.get('scenes')} synthetic scenes x {d.get('frames')} frames "
          f"(GraspNet layout, 1280x720) in `{rel(d.get('root', ''))}`"
          f"{' (reused)' if d.get('reused') else ''}.",
          f"- Model: `{rel(t.get('config', ''))}`, {t.get('epochs')} epochs, best validation "
          f"top-1 {pct(t.get('best_top1'))} at epoch {t.get('best_epoch')} "
          f"-> `{rel(t.get('checkpoint', ''))}`{' (reused)' if t.get('reused') else ''}.",
          f"- Evaluation bag: `{rel(b.get('path', ''))}` ({b.get('size_mb', 0):.1f} MB), "
          f"scene {b.get('scene')}, used neither for training (scenes "
          f"{st.scenes.get('train')}) nor for choosing the checkpoint (validation scenes "
          f"{st.scenes.get('val')}); {b.get('frames')} frames at {b.get('rate')} Hz, "
          f"{b.get('gt_rects')} ground-truth rectangles; topics "
          + ", ".join(f"`{k}`" for k in (b.get("topics") or {})) + "."]
    L += ["", "## Accuracy (rectangle metric: angle < 30 deg and IoU > 0.25)", "",
          "| run | frames | answered | dropped | top-1 | P@1 | P@5 | P@10 | grasps/frame |",
          "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, r in (("online (node via ROS, recorded)", st.online),
                    ("offline (predictor on the bag)", st.offline)):
        if r is None:
            L.append(f"| {name} | - | - | - | not run | | | | |")
            continue
        m = r["metrics"]
        L.append(f"| {name} | {r['frames']} | {r['predicted_frames']} | {r['dropped_frames']} | "
                 f"{pct(m['top1_accuracy'])} | {pct(m['precision@1'])} | "
                 f"{pct(m['precision@5'])} | {pct(m['precision@10'])} | "
                 f"{m['mean_predictions']:.1f} |")
    if st.online is not None:
        agree = st.ros.get("agree")
        L += ["", "Online and offline use the same checkpoint and decoding parameters; "
              + ("their metrics are **identical**." if agree else
                 "their metrics **differ** (see dropped frames above).")]
    L += ["", "Dropped frames count as misses in the table (a frame without an answer scores "
          "like an empty prediction). Per-frame rows: `eval/*/eval.json`."]
    if st.online is not None:
        lat = st.online.get("latency") or {}
        L += ["", "## Latency and throughput (online)", ""]
        if lat.get("count"):
            L += ["Latency = time the node's `/grasps` arrived at the recorder minus the time "
                  f"the input frame (`{lat.get('reference_topic')}`, same header stamp) arrived "
                  f"there: image transport + conversion + model + decoding + publishing.", "",
                  "| frames | p50 | p95 | max | mean |", "|---:|---:|---:|---:|---:|",
                  f"| {lat['count']} | {lat['p50_ms']:.0f} ms | {lat['p95_ms']:.0f} ms | "
                  f"{lat['max_ms']:.0f} ms | {lat['mean_ms']:.0f} ms |", "",
                  "![latency](eval/online/latency_hist.png)"]
        else:
            L.append("No latency data (no frame answered).")
        ros = st.ros
        L += ["", f"- Node start-up (process start to `/grasps` advertised): "
              f"{ros.get('node_startup_s', float('nan')):.1f} s.",
              f"- Played: {ros.get('played')}; received: {ros.get('received')}.",
              f"- Node log: `{rel(ros.get('node_log', ''))}`; recording: "
              f"`{rel(ros.get('recording', ''))}`."]
    inf = (st.offline or {}).get("inference")
    if inf:
        L += [f"- Offline predictor time per 1280x720 frame (this process, CPU): p50 "
              f"{inf['p50_ms']:.0f} ms, p95 {inf['p95_ms']:.0f} ms."]
    L += ["", "## Frames", "",
          "Grey: a sample of the ground-truth rectangles. Coloured: the node's 5 best grasps "
          "(red jaws, blue opening edges; the best in green with a dot).", ""]
    for ov in overlays:
        res = "dropped" if ov["dropped"] else ("top-1 hit" if ov["top1"] else "top-1 miss")
        L.append(f"![frame {ov['index']}]({ov['file']})  \nframe {ov['index']} ({res}; grasps "
                 f"from the {ov['source']} run)\n")
    if debug:
        L += ["The node's own `debug/heatmap` output (heatmap over the frame, its grasps drawn):",
              ""]
        L += [f"![node debug image]({p})\n" for p in debug]
    L += ["", "![accuracy over time](eval/online/accuracy_over_time.png)" if st.online else
          "![accuracy over time](eval/offline/accuracy_over_time.png)"]
    if st.problems:
        L += ["", "## Problems", ""] + [f"- {p}" for p in st.problems]
    L += ["", "## Next steps", "", *_next_steps_md()]
    path = o.out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


def _next_steps_md() -> list[str]:
    return [
        "Train the real model (frozen InternViT-300M + decoder) on GraspNet-1Billion:", "",
        "```bash",
        "python scripts/train.py --config vita_grasp_core/configs/internvit_grasp.yaml \\",
        "    --dataset_root /data/graspnet --output_dir runs/internvit",
        "```", "",
        "Run it on a robot with an Azure Kinect (ROS 2 Jazzy/Kilted, after `colcon build`):", "",
        "```bash",
        "ros2 launch vita_grasp vita_grasp.launch.py \\",
        "    checkpoint:=$PWD/runs/internvit/best_model.pt",
        "# without ros2 launch (this venv):",
        "vita-grasp-node --ros-args --params-file config/vita_grasp.yaml \\",
        "    -p checkpoint:=runs/internvit/best_model.pt -r image:=/rgb/image_raw",
        "```", "",
        "Evaluate it by replay, exactly as this demo did:", "",
        "```bash",
        "vita-grasp bag make --dataset_root /data/graspnet --split test_seen --max_frames 256 \\",
        "    --out test_seen.mcap",
        "vita-grasp bag record --topics /grasps /rgb/camera_info --out run.mcap \\",
        "    --idle-timeout 10 &",
        "vita-grasp bag play test_seen.mcap --wait-for-subscribers 1",
        "vita-grasp bag eval --bag test_seen.mcap --predictions run.mcap --out eval_run",
        "```"]


def closing_summary(o, st: State, report: Path) -> None:
    wall = time.perf_counter() - st.t0
    say("\n" + "=" * 78)
    say(f"VITA-Grasp demo finished in {wall:.0f} s.")
    for name, r in (("online (node)", st.online), ("offline", st.offline)):
        if r is not None:
            m = r["metrics"]
            extra = ""
            if r["mode"] == "online":
                lat = r.get("latency") or {}
                extra = (f", {r['dropped_frames']} dropped"
                         + (f", latency p50 {lat['p50_ms']:.0f} ms / p95 {lat['p95_ms']:.0f} ms"
                            if lat.get("count") else ""))
            say(f"  {name:<14} top-1 {pct(m['top1_accuracy'])}, P@5 "
                 f"{pct(m['precision@5'])} on {r['frames']} held-out frames{extra}")
    say(f"\n  report:      {rel(report)}")
    say(f"  checkpoint:  {rel(st.train.get('checkpoint', ''))}")
    say(f"  bags:        {rel(st.bag.get('path', ''))} (input + ground truth), "
         f"{rel(o.out / 'online.mcap')} (node output)")
    say(f"  evaluation:  {rel(o.out / 'eval')}/{{online,offline}}/ (eval.json, plots)")
    say("\nWith real weights on a robot:")
    say("  python scripts/train.py --config vita_grasp_core/configs/internvit_grasp.yaml "
         "--dataset_root /data/graspnet --output_dir runs/internvit")
    say("  ros2 launch vita_grasp vita_grasp.launch.py "
         "checkpoint:=$PWD/runs/internvit/best_model.pt")
    say("  (here, without ros2 launch: vita-grasp-node --ros-args --params-file "
         "config/vita_grasp.yaml -p checkpoint:=... -r image:=/rgb/image_raw)")
    if st.problems:
        say("\nProblems:")
        for p in st.problems:
            say(f"  - {p}")
