"""The one-command demo (``make demo`` = ``scripts/demo.py`` = ``vita-grasp demo``).

On a fresh machine, with nothing downloaded, it runs the whole loop on CPU in a few minutes:

1. **data**   synthesize a GraspNet-layout set (4 scenes x 8 frames) under ``OUT/data``
              (kept when present and complete);
2. **train**  the tiny model with ``config/tiny.yaml`` (scenes 0-2 train, 3 validates) into
              ``OUT/train`` (kept when ``best_model.pt`` exists for the same config and data);
3. **bag**    an evaluation rosbag2 from the held-out scene: ``OUT/eval.mcap``;
4. **ros**    the grasp node as a subprocess (own ROS_DOMAIN_ID, localhost discovery, ROS_HOME
              and logs under ``OUT/ros``); the bag is played into it with rclpy publishers and
              its output (``/grasps``, ``/rgb/camera_info`` as latency reference, every n-th
              ``/debug/heatmap``) is recorded to ``OUT/online.mcap``;
5. **eval**   online (recorded node output, matched by header stamp) and offline (predictor
              straight over the bag) with the rectangle metric -> ``OUT/eval/{online,offline}``;
6. **report** ``OUT/report.md`` with the metrics, latency, drops, overlays and the node's debug
              images, and a closing summary of what to run next on a robot.

``--force`` redoes every step; ``--out`` picks another directory. Subprocesses are always stopped
(SIGINT, then SIGKILL) - also on Ctrl-C. Exit code 0 when every step ran, 1 when the ROS part could
not run (the offline part and the report are still written), 2 for bad arguments.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOTAL_STEPS = 6


@dataclass
class Options:
    out: Path = REPO / "outputs" / "demo"
    scenes: int = 4
    frames: int = 8
    seed: int = 0
    config: Path = REPO / "config" / "tiny.yaml"
    eval_scene: int | None = None  # default: the last synthesized scene (held out by tiny.yaml)
    rate: float = 2.0  # frames per second of the evaluation bag (played at 1x)
    force: bool = False
    device: str = "cpu"
    domain_id: int | None = None
    node_timeout: float = 180.0
    debug_every_n: int = 4
    overlays: int = 4
    keep_going: bool = True


@dataclass
class State:
    """What the steps produced (fed to the report)."""

    t0: float = field(default_factory=time.perf_counter)
    steps: list = field(default_factory=list)  # (name, seconds, note)
    data: dict = field(default_factory=dict)
    train: dict = field(default_factory=dict)
    bag: dict = field(default_factory=dict)
    ros: dict = field(default_factory=dict)
    online: dict | None = None
    offline: dict | None = None
    files: dict = field(default_factory=dict)
    problems: list = field(default_factory=list)


# --------------------------------------------------------------------------- console
def _say(msg: str = "") -> None:
    print(msg, flush=True)


@contextlib.contextmanager
def step(state: State, i: int, title: str):
    _say(f"\n== [{i}/{TOTAL_STEPS}] {title} " + "=" * max(0, 70 - len(title)))
    t = time.perf_counter()
    note = {"text": ""}
    try:
        yield note
    finally:
        dt = time.perf_counter() - t
        state.steps.append((title, dt, note["text"]))
        _say(f"   ({title}: {dt:.1f} s{'; ' + note['text'] if note['text'] else ''})")


def _rel(p) -> str:
    try:
        return str(Path(p).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(p)


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- 1. data
def data_key(o: Options) -> dict:
    return {"scenes": o.scenes, "frames": o.frames, "seed": o.seed, "camera": "kinect"}


def step_data(o: Options, st: State, note) -> Path:
    from vita_grasp_core.data.graspnet import scan
    from vita_grasp_core.data.synth import synthesize

    root = o.out / "data"
    stamp = root / "demo_data.json"
    key = data_key(o)
    if not o.force and stamp.is_file():
        try:
            ok = json.loads(stamp.read_text()).get("key") == key
        except (OSError, ValueError):
            ok = False
        if ok:
            frames, faults, ids = scan(root, scenes=range(o.scenes), require_label=True)
            if len(frames) == o.scenes * o.frames and not len(faults):
                _say(f"   reusing {_rel(root)}: {o.scenes} scenes x {o.frames} frames "
                     "(--force to regenerate)")
                st.data = {"root": str(root), "reused": True, **key}
                note["text"] = "reused"
                return root
            _say(f"   {_rel(root)} is incomplete ({len(frames)} frames, {len(faults)} problems): "
                 "regenerating")
    if (root / "scenes").exists():
        shutil.rmtree(root / "scenes")
    stamp.unlink(missing_ok=True)
    _say(f"   synthesizing {o.scenes} scenes x {o.frames} frames (1280x720 rgb, depth, labels, "
         f"rectangles) into {_rel(root)}")
    s = synthesize(root, scenes=o.scenes, frames=o.frames, seed=o.seed, progress=True)
    stamp.write_text(json.dumps({"key": key, "summary": s}, indent=2) + "\n")
    st.data = {"root": str(root), "reused": False, **key, "rects": s["rects"],
               "rects_per_frame": s["rects_per_frame"]}
    _say(f"   {s['rects']} GT rectangles, {s['rects_per_frame'][1]:.0f} per frame (median)")
    return root


# --------------------------------------------------------------------------- 2. train
def step_train(o: Options, st: State, note, data_root: Path) -> Path:
    from vita_grasp_core.training.train import resolve_run_config, train

    out = o.out / "train"
    cfg = resolve_run_config(None, str(o.config), str(data_root), None, [])
    scenes = sorted(set(cfg.data.train_scenes or []) | set(cfg.data.val_scenes or []))
    if scenes and max(scenes) >= o.scenes:
        raise ValueError(f"{o.config} uses scenes {scenes} but the demo synthesizes only "
                         f"{o.scenes}: use --scenes {max(scenes) + 1} or more")
    key = _sha(cfg.to_yaml(), data_key(o))
    stamp = out / "demo_train.json"
    ckpt = out / "best_model.pt"
    if not o.force and ckpt.is_file() and stamp.is_file():
        try:
            prev = json.loads(stamp.read_text())
        except (OSError, ValueError):
            prev = {}
        if prev.get("key") == key:
            _say(f"   reusing {_rel(ckpt)} (same config and data; --force to retrain)")
            st.train = {**prev.get("summary", {}), "reused": True, "checkpoint": str(ckpt),
                        "config": str(o.config)}
            note["text"] = "reused"
            return ckpt
        _say(f"   {_rel(ckpt)} was trained with another config or data: retraining")
    if out.exists():
        shutil.rmtree(out)
    _say(f"   training {_rel(o.config)}: {cfg.model.backbone} hidden "
         f"{cfg.model.backbone_config.get('hidden_size')}, {cfg.train.epochs} epochs, "
         f"train scenes {cfg.data.train_scenes}, validation scenes {cfg.data.val_scenes}, "
         f"device {o.device}")
    # (training logs one line per epoch itself, to stderr and OUT/train/train.log)
    summary = train(cfg, out, device=o.device, progress=True)
    if not ckpt.is_file():
        raise RuntimeError(f"training finished without {ckpt}")
    keep = {k: summary.get(k) for k in ("epochs", "steps", "best_top1", "best_epoch", "seconds")}
    last = summary.get("last_val") or {}
    keep["last_val"] = {k: last.get(k) for k in ("top1_accuracy", "precision@1", "precision@5",
                                                  "precision@10", "num_images") if k in last}
    stamp.write_text(json.dumps({"key": key, "summary": keep}, indent=2) + "\n")
    st.train = {**keep, "reused": False, "checkpoint": str(ckpt), "config": str(o.config)}
    _say(f"   best validation top-1 {100 * max(keep['best_top1'] or 0, 0):.1f} % "
         f"(epoch {keep['best_epoch']}) -> {_rel(ckpt)}")
    return ckpt


# --------------------------------------------------------------------------- 3. bag
def step_bag(o: Options, st: State, note, data_root: Path) -> Path:
    from .bag_make import make_bag

    scene = o.scenes - 1 if o.eval_scene is None else o.eval_scene
    out = o.out / "eval.mcap"
    s = make_bag(data_root, out, scenes=[scene], rate=o.rate, overwrite=True, progress=True)
    st.bag = {k: s[k] for k in ("path", "frames", "rate", "gt_rects", "topics")}
    st.bag["scene"] = scene
    st.bag["size_mb"] = out.stat().st_size / 2**20
    _say(f"   {_rel(out)}: scene {scene}, {s['frames']} frames at {s['rate']:g} Hz, "
         f"{s['gt_rects']} GT rectangles, {st.bag['size_mb']:.1f} MB")
    note["text"] = f"{s['frames']} frames"
    return out


# --------------------------------------------------------------------------- 4. ROS replay
class _Spinner(threading.Thread):
    """Spins the demo's rclpy node and lets the recorder subscribe to new publishers."""

    def __init__(self, executor, recorder):
        super().__init__(daemon=True)
        self.executor, self.recorder = executor, recorder
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self):
        last = 0.0
        try:
            while not self.stop.is_set():
                self.executor.spin_once(timeout_sec=0.05)
                now = time.monotonic()
                if now - last > 0.2:
                    last = now
                    self.recorder.poll()
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            if not self.stop.is_set():
                self.error = e


def _ros_env(o: Options, domain: int) -> dict:
    env = dict(os.environ)
    env.pop("ROS_LOCALHOST_ONLY", None)
    env.update({"ROS_DOMAIN_ID": str(domain), "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST",
                "ROS_HOME": str(o.out / "ros" / "home"), "ROS_LOG_DIR": str(o.out / "ros" / "log"),
                "PYTHONUNBUFFERED": "1", "RCUTILS_COLORIZED_OUTPUT": "0"})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in env.get("PYTHONPATH", "")
                                                       .split(os.pathsep) if p])
    return env


def stop_process(proc: subprocess.Popen | None, timeout: float = 10.0) -> int | None:
    """SIGINT, wait ``timeout`` s, then SIGKILL (whole session). Returns the exit status."""
    if proc is None:
        return None
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    return proc.returncode


def _tail(path: Path, n: int = 15) -> str:
    try:
        return "\n".join("   | " + line for line in path.read_text(errors="replace")
                         .splitlines()[-n:])
    except OSError:
        return ""


def step_ros(o: Options, st: State, note, ckpt: Path, bag: Path) -> Path:
    """Node subprocess + in-process player and recorder; returns the recording's path."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.signals import SignalHandlerOptions

    from . import bags
    from .bag_play import play
    from .bag_record import Recorder

    # SystemRandom: training seeds the global generator, which would give every run one id.
    domain = o.domain_id if o.domain_id is not None else random.SystemRandom().randint(100, 230)
    env = _ros_env(o, domain)
    for k in ("ROS_AUTOMATIC_DISCOVERY_RANGE", "ROS_HOME", "ROS_LOG_DIR"):
        os.environ[k] = env[k]
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    (o.out / "ros").mkdir(parents=True, exist_ok=True)
    node_log = o.out / "ros" / "node.log"
    rec_path = o.out / "online.mcap"
    n_frames = int(st.bag["frames"])
    cmd = [sys.executable, "-m", "vita_grasp_ros.grasp_node", "--ros-args",
           "--params-file", str(REPO / "config" / "vita_grasp.yaml"),
           "-p", f"checkpoint:={ckpt}", "-p", f"device:={o.device}",
           "-p", f"debug_every_n:={o.debug_every_n}", "-r", f"image:={bags.IMAGE_TOPIC}"]
    st.ros = {"domain_id": domain, "node_command": " ".join(cmd[2:]), "node_log": str(node_log),
              "recording": str(rec_path)}
    _say(f"   ROS_DOMAIN_ID={domain} (localhost only); node log: {_rel(node_log)}")
    ctx = rclpy.Context()
    rclpy.init(context=ctx, domain_id=domain, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("vita_grasp_demo", context=ctx)
    executor = SingleThreadedExecutor(context=ctx)
    executor.add_node(node)
    proc = spinner = rec = None
    log_f = open(node_log, "wb")
    try:
        t_start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=log_f, stderr=subprocess.STDOUT, env=env,
                                cwd=str(REPO), start_new_session=True)
        _say(f"   started the grasp node (pid {proc.pid}): python -m vita_grasp_ros.grasp_node "
             f"--ros-args -p checkpoint:={_rel(ckpt)} -r image:={bags.IMAGE_TOPIC} ...")
        rec = Recorder(node, rec_path, [bags.PRED_TOPIC, bags.INFO_TOPIC, "/debug/heatmap"],
                       overwrite=True, qos="auto")
        spinner = _Spinner(executor, rec)
        spinner.start()
        # The node is up when the recorder matched its /grasps publisher.
        deadline = time.monotonic() + o.node_timeout
        last_msg = 0.0
        while rec.matched().get(bags.PRED_TOPIC, 0) < 1:
            if proc.poll() is not None:
                raise RuntimeError(f"the grasp node exited with status {proc.returncode} during "
                                   f"start-up; last lines of {_rel(node_log)}:\n{_tail(node_log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the grasp node did not come up within {o.node_timeout:.0f} s;"
                                   f" last lines of {_rel(node_log)}:\n{_tail(node_log)}")
            if time.monotonic() - last_msg > 5:
                last_msg = time.monotonic()
                _say(f"   waiting for the node to load the model and advertise /grasps "
                     f"({time.perf_counter() - t_start:.0f} s)")
            time.sleep(0.1)
        st.ros["node_startup_s"] = time.perf_counter() - t_start
        _say(f"   node ready after {st.ros['node_startup_s']:.1f} s; recording "
             f"{', '.join(rec.topics)} -> {_rel(rec_path)}")
        _say(f"   playing {_rel(bag)} ({n_frames} frames at {st.bag['rate']:g} Hz, reliable QoS)")
        ps = play(bag, node, rate=1.0, topics=[bags.IMAGE_TOPIC, bags.INFO_TOPIC],
                  wait_for_subscribers=1, wait_timeout=30.0, progress=True,
                  log=lambda m: _say("   " + m))
        st.ros["played"] = ps.published
        st.ros["play_seconds"] = ps.seconds
        # Wait for the last answers: every frame answered, or nothing new for 10 s.
        t_end = time.monotonic()
        while rec.counts[bags.PRED_TOPIC] < n_frames and proc.poll() is None:
            last = rec.last_monotonic or t_end
            if time.monotonic() - max(last, t_end) > 10.0:
                break
            if spinner.error:
                raise spinner.error
            time.sleep(0.05)
        st.ros["received"] = dict(rec.counts)
        if proc.poll() is not None:
            st.problems.append(f"the grasp node exited early (status {proc.returncode}); see "
                               f"{_rel(node_log)}")
    finally:
        if spinner is not None:
            spinner.stop.set()
            spinner.join(5)
        if rec is not None:
            with contextlib.suppress(Exception):
                rec.close()
        st.ros["node_exit"] = stop_process(proc)
        log_f.close()
        with contextlib.suppress(Exception):
            executor.shutdown(timeout_sec=2)
        with contextlib.suppress(Exception):
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)
    got = st.ros["received"].get(bags.PRED_TOPIC, 0)
    _say(f"   received {got}/{n_frames} GraspArray messages, "
         f"{st.ros['received'].get('/debug/heatmap', 0)} debug images; node stopped "
         f"(exit status {st.ros['node_exit']})")
    note["text"] = f"{got}/{n_frames} frames answered"
    return rec_path


# --------------------------------------------------------------------------- 5. eval
def step_eval(o: Options, st: State, note, bag: Path, rec: Path | None, ckpt: Path) -> None:
    from .bag_eval import evaluate_bag, format_table, write_outputs

    if rec is not None:
        st.online = evaluate_bag(bag, predictions=rec, progress=False)
        st.files["online"] = write_outputs(st.online, o.out / "eval" / "online")
        _say(format_table(st.online))
    st.offline = evaluate_bag(bag, checkpoint=ckpt, device=o.device, progress=True,
                              return_predictions=True)
    st.files["offline"] = write_outputs(st.offline, o.out / "eval" / "offline")
    _say(format_table(st.offline))
    if st.online is not None:
        same = st.online["metrics"] == st.offline["metrics"]
        st.ros["agree"] = same
        if same:
            _say("   online and offline metrics are identical")
        elif st.online["dropped_frames"]:
            _say(f"   online differs from offline: {st.online['dropped_frames']} frame(s) dropped "
                 "by the node (it keeps only the newest frame while busy)")
        else:
            _say("   online and offline metrics differ although no frame dropped")
            st.problems.append("online and offline metrics differ without drops")


# --------------------------------------------------------------------------- 6. report
def _overlays(o: Options, st: State, bag: Path, rec: Path | None) -> list[dict]:
    """PNG overlays: GT sample (grey) + the best 5 predictions of the node (or offline)."""
    import cv2
    import numpy as np

    from vita_grasp_core.visualize import draw_grasps

    from . import bags
    from .bag_eval import read_predictions

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
    with bags.open_bag(bag) as r:
        for topic, _, msg in r.read([bags.IMAGE_TOPIC, bags.GT_TOPIC]):
            s = bags.stamp_to_ns(msg.header.stamp)
            if s not in wanted:
                continue
            if topic == bags.GT_TOPIC:
                gts[s] = bags.grasp_array_rows(msg)
            else:
                images[s] = bags.image_from_msg(msg)
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


def _debug_images(o: Options, rec: Path | None, n: int = 2) -> list[str]:
    """The node's own ``debug/heatmap`` images from the recording, as PNG."""
    import cv2

    from . import bags

    if rec is None or not rec.exists():
        return []
    out = []
    with bags.open_bag(rec) as r:
        if "/debug/heatmap" not in r.topics():
            return []
        for i, (_, _, msg) in enumerate(r.read(["/debug/heatmap"])):
            if i >= n:
                break
            rgb = bags.image_from_msg(msg)
            small = cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2),
                               interpolation=cv2.INTER_AREA)
            name = f"overlays/node_debug_{i}.png"
            cv2.imwrite(str(o.out / name), cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
            out.append(name)
    return out


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f} %"


def write_report(o: Options, st: State, bag: Path, rec: Path | None) -> Path:
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
          f"(GraspNet layout, 1280x720) in `{_rel(d.get('root', ''))}`"
          f"{' (reused)' if d.get('reused') else ''}.",
          f"- Model: `{_rel(t.get('config', ''))}`, {t.get('epochs')} epochs, best validation "
          f"top-1 {_pct(t.get('best_top1'))} at epoch {t.get('best_epoch')} "
          f"-> `{_rel(t.get('checkpoint', ''))}`{' (reused)' if t.get('reused') else ''}.",
          f"- Evaluation bag: `{_rel(b.get('path', ''))}` ({b.get('size_mb', 0):.1f} MB), "
          f"held-out scene {b.get('scene')}, {b.get('frames')} frames at {b.get('rate')} Hz, "
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
                 f"{_pct(m['top1_accuracy'])} | {_pct(m['precision@1'])} | "
                 f"{_pct(m['precision@5'])} | {_pct(m['precision@10'])} | "
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
              f"- Node log: `{_rel(ros.get('node_log', ''))}`; recording: "
              f"`{_rel(ros.get('recording', ''))}`."]
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
        "python scripts/train.py --config config/internvit_grasp.yaml \\",
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


def closing_summary(o: Options, st: State, report: Path) -> None:
    wall = time.perf_counter() - st.t0
    _say("\n" + "=" * 78)
    _say(f"VITA-Grasp demo finished in {wall:.0f} s.")
    for name, r in (("online (node)", st.online), ("offline", st.offline)):
        if r is not None:
            m = r["metrics"]
            extra = ""
            if r["mode"] == "online":
                lat = r.get("latency") or {}
                extra = (f", {r['dropped_frames']} dropped"
                         + (f", latency p50 {lat['p50_ms']:.0f} ms / p95 {lat['p95_ms']:.0f} ms"
                            if lat.get("count") else ""))
            _say(f"  {name:<14} top-1 {_pct(m['top1_accuracy'])}, P@5 "
                 f"{_pct(m['precision@5'])} on {r['frames']} held-out frames{extra}")
    _say(f"\n  report:      {_rel(report)}")
    _say(f"  checkpoint:  {_rel(st.train.get('checkpoint', ''))}")
    _say(f"  bags:        {_rel(st.bag.get('path', ''))} (input + ground truth), "
         f"{_rel(o.out / 'online.mcap')} (node output)")
    _say(f"  evaluation:  {_rel(o.out / 'eval')}/{{online,offline}}/ (eval.json, plots)")
    _say("\nWith real weights on a robot:")
    _say("  python scripts/train.py --config config/internvit_grasp.yaml "
         "--dataset_root /data/graspnet --output_dir runs/internvit")
    _say("  ros2 launch vita_grasp vita_grasp.launch.py "
         "checkpoint:=$PWD/runs/internvit/best_model.pt")
    _say("  (here, without ros2 launch: vita-grasp-node --ros-args --params-file "
         "config/vita_grasp.yaml -p checkpoint:=... -r image:=/rgb/image_raw)")
    if st.problems:
        _say("\nProblems:")
        for p in st.problems:
            _say(f"  - {p}")


# --------------------------------------------------------------------------- main
def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Steps are reused when their inputs did not change; "
                                "--force redoes them. See docs/demo.md.")
    d = Options()
    p.add_argument("--out", type=Path, default=d.out, help="output directory (outputs/demo)")
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("--scenes", type=int, default=d.scenes)
    p.add_argument("--frames", type=int, default=d.frames, help="frames per scene")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--config", type=Path, default=d.config, help="training config (tiny.yaml)")
    p.add_argument("--eval-scene", "--eval_scene", type=int, default=None,
                   help="scene of the evaluation bag (default: the last one)")
    p.add_argument("--rate", type=float, default=d.rate, help="frames per second played (2)")
    p.add_argument("--device", default=d.device, help="cpu (default), cuda, auto")
    p.add_argument("--domain-id", "--domain_id", type=int, default=None,
                   help="ROS_DOMAIN_ID (default: random in 100-230)")
    p.add_argument("--node-timeout", "--node_timeout", type=float, default=d.node_timeout)
    p.add_argument("--overlays", type=int, default=d.overlays)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.scenes < 2 or a.frames < 1 or a.rate <= 0:
        print("demo: need --scenes >= 2, --frames >= 1 and --rate > 0", file=sys.stderr)
        return 2
    o = Options(out=a.out.resolve(), scenes=a.scenes, frames=a.frames, seed=a.seed,
                config=a.config.resolve(), eval_scene=a.eval_scene, rate=a.rate, force=a.force,
                device=a.device, domain_id=a.domain_id, node_timeout=a.node_timeout,
                overlays=a.overlays)
    if not o.config.is_file():
        print(f"demo: config {o.config} not found", file=sys.stderr)
        return 2
    o.out.mkdir(parents=True, exist_ok=True)
    st = State()
    # SIGTERM ends the demo like Ctrl-C, so every finally block (subprocesses, bags) runs.
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    _say(f"VITA-Grasp demo -> {_rel(o.out)}  (synthetic data, tiny model, CPU; a few minutes)")
    status = 0
    try:
        import torch

        torch.set_num_threads(min(2, os.cpu_count() or 1))
        with step(st, 1, "Synthesize a small GraspNet-layout data set") as n:
            data = step_data(o, st, n)
        with step(st, 2, "Train the tiny model (config/tiny.yaml)") as n:
            ckpt = step_train(o, st, n, data)
        with step(st, 3, "Make the evaluation bag from the held-out scene") as n:
            bag = step_bag(o, st, n, data)
        rec = None
        with step(st, 4, "Replay the bag into the ROS 2 grasp node and record its output") as n:
            try:
                rec = step_ros(o, st, n, ckpt, bag)
            except ImportError as e:
                st.problems.append(f"ROS part skipped: {e} (run `make setup`)")
                _say(f"   skipped: rclpy or the vita_grasp messages are missing ({e}); "
                     "run `make setup`")
                n["text"] = "skipped"
                status = 1
            except RuntimeError as e:
                st.problems.append(f"ROS part failed: {e}")
                _say(f"   FAILED: {e}")
                n["text"] = "failed"
                status = 1
        with step(st, 5, "Evaluate: online (recorded node output) and offline (predictor)") as n:
            step_eval(o, st, n, bag, rec, ckpt)
        with step(st, 6, "Write the report") as n:
            report = write_report(o, st, bag, rec)
            n["text"] = _rel(report)
        closing_summary(o, st, report)
    except KeyboardInterrupt:
        print("\ndemo: interrupted (subprocesses stopped)", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - a failed step: say which and where to look
        traceback.print_exc()
        print(f"\ndemo: failed in step {len(st.steps)}: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
    return status


if __name__ == "__main__":
    sys.exit(main())
