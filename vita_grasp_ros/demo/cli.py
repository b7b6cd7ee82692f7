"""The one-command demo (``make demo`` = ``scripts/demo.py`` = ``vita-grasp demo``).

On a fresh machine, with nothing downloaded, it runs the whole loop on CPU in a few minutes:

1. **data**   synthesize a GraspNet-layout set (5 scenes x 8 frames) under ``OUT/data``
              (kept when present and complete);
2. **train**  the tiny model with the shipped ``tiny.yaml`` (scenes 0-2 train, 3 validates and
              selects the checkpoint) into ``OUT/train`` (kept when ``best_model.pt`` exists for
              the same config and data);
3. **bag**    an evaluation rosbag2 from a held-out scene, used neither for training nor for
              selecting the checkpoint (default: the last such scene, 4): ``OUT/eval.mcap``;
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
not run (the offline part and the report are still written), 2 for bad arguments (also an
evaluation scene that the config trains or validates on).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import signal
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from vita_grasp_core.choices import DEFAULT_CAMERA
from vita_grasp_core.configs import configs_dir

from .replay import step_ros
from .report import State, closing_summary, rel, say, write_report

REPO = Path(__file__).resolve().parents[2]  # the checkout (make demo): outputs/, config/
TOTAL_STEPS = 6


@dataclass
class Options:
    out: Path = REPO / "outputs" / "demo"
    scenes: int = 5
    frames: int = 8
    seed: int = 0
    config: Path = configs_dir() / "tiny.yaml"
    eval_scene: int | None = None  # default: the last scene the config neither trains nor
    # validates on (scene 4 with vita_grasp_core/configs/tiny.yaml)
    rate: float = 2.0  # frames per second of the evaluation bag (played at 1x)
    force: bool = False
    device: str = "cpu"
    domain_id: int | None = None
    node_timeout: float = 180.0
    debug_every_n: int = 4
    overlays: int = 4
    keep_going: bool = True


# --------------------------------------------------------------------------- console
@contextlib.contextmanager
def step(state: State, i: int, title: str):
    say(f"\n== [{i}/{TOTAL_STEPS}] {title} " + "=" * max(0, 70 - len(title)))
    t = time.perf_counter()
    note = {"text": ""}
    try:
        yield note
    finally:
        dt = time.perf_counter() - t
        state.steps.append((title, dt, note["text"]))
        say(f"   ({title}: {dt:.1f} s{'; ' + note['text'] if note['text'] else ''})")


def _sha(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(json.dumps(p, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def plan_scenes(o: Options) -> dict:
    """Which synthesized scenes (0 .. ``o.scenes`` - 1) the config trains and validates on, and
    the evaluation scene: ``o.eval_scene`` or the last scene used for neither. The score must come
    from frames that neither trained the model nor selected its checkpoint: ``ValueError``
    (exit 2) when there is no such scene or ``o.eval_scene`` is not one."""
    from vita_grasp_core.data.graspnet import select_scenes
    from vita_grasp_core.training.train_config import resolve_run_config

    d = resolve_run_config(None, str(o.config), str(o.out / "data"), None, []).data
    named = sorted(set(d.train_scenes or []) | set(d.val_scenes or []))
    if named and max(named) >= o.scenes:
        raise ValueError(f"{o.config} uses scenes {named} but the demo synthesizes only "
                         f"{o.scenes}: use --scenes {max(named) + 2} or more")
    avail = range(o.scenes)
    train = select_scenes(avail, d.train_scenes, d.train_split)
    val = [] if d.val_split is None and d.val_scenes is None else \
        select_scenes(avail, d.val_scenes, d.val_split)
    free = [s for s in avail if s not in set(train) | set(val)]
    scene = o.eval_scene
    if scene is None:
        if not free:
            raise ValueError(f"{o.config} trains or validates on every one of the {o.scenes} "
                             f"synthesized scenes: use --scenes {o.scenes + 1} so that one is "
                             "held out for the evaluation")
        scene = free[-1]
    elif scene in train or scene in val:
        role = "training" if scene in train else "validation"
        raise ValueError(f"--eval-scene {scene} is a {role} scene of {o.config.name}: the demo "
                         "scores only scenes used neither for training nor for selecting the "
                         f"checkpoint ({free or 'none here'})")
    elif not 0 <= scene < o.scenes:
        raise ValueError(f"--eval-scene {scene} is not one of the {o.scenes} synthesized scenes")
    return {"train": train, "val": val, "eval": scene}


# --------------------------------------------------------------------------- 1. data
def data_key(o: Options) -> dict:
    return {"scenes": o.scenes, "frames": o.frames, "seed": o.seed, "camera": DEFAULT_CAMERA}


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
                say(f"   reusing {rel(root)}: {o.scenes} scenes x {o.frames} frames "
                     "(--force to regenerate)")
                st.data = {"root": str(root), "reused": True, **key}
                note["text"] = "reused"
                return root
            say(f"   {rel(root)} is incomplete ({len(frames)} frames, {len(faults)} problems): "
                 "regenerating")
    if (root / "scenes").exists():
        shutil.rmtree(root / "scenes")
    stamp.unlink(missing_ok=True)
    say(f"   synthesizing {o.scenes} scenes x {o.frames} frames (1280x720 rgb, depth, labels, "
         f"rectangles) into {rel(root)}")
    s = synthesize(root, scenes=o.scenes, frames=o.frames, seed=o.seed, progress=True)
    stamp.write_text(json.dumps({"key": key, "summary": s}, indent=2) + "\n")
    st.data = {"root": str(root), "reused": False, **key, "rects": s["rects"],
               "rects_per_frame": s["rects_per_frame"]}
    say(f"   {s['rects']} GT rectangles, {s['rects_per_frame'][1]:.0f} per frame (median)")
    return root


# --------------------------------------------------------------------------- 2. train
def step_train(o: Options, st: State, note, data_root: Path) -> Path:
    from vita_grasp_core.training.train import train
    from vita_grasp_core.training.train_config import resolve_run_config

    out = o.out / "train"
    cfg = resolve_run_config(None, str(o.config), str(data_root), None, [])
    key = _sha(cfg.to_yaml(), data_key(o))
    stamp = out / "demo_train.json"
    ckpt = out / "best_model.pt"
    if not o.force and ckpt.is_file() and stamp.is_file():
        try:
            prev = json.loads(stamp.read_text())
        except (OSError, ValueError):
            prev = {}
        if prev.get("key") == key:
            say(f"   reusing {rel(ckpt)} (same config and data; --force to retrain)")
            st.train = {**prev.get("summary", {}), "reused": True, "checkpoint": str(ckpt),
                        "config": str(o.config)}
            note["text"] = "reused"
            return ckpt
        say(f"   {rel(ckpt)} was trained with another config or data: retraining")
    if out.exists():
        shutil.rmtree(out)
    say(f"   training {rel(o.config)}: {cfg.model.backbone} hidden "
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
    say(f"   best validation top-1 {100 * max(keep['best_top1'] or 0, 0):.1f} % "
         f"(epoch {keep['best_epoch']}) -> {rel(ckpt)}")
    return ckpt


# --------------------------------------------------------------------------- 3. bag
def step_bag(o: Options, st: State, note, data_root: Path) -> Path:
    from ..bag.make import BagLayout, FrameSelection, make_bag

    scene = st.scenes["eval"]
    out = o.out / "eval.mcap"
    s = make_bag(data_root, out, FrameSelection(scenes=[scene]), BagLayout(rate=o.rate),
                 overwrite=True, progress=True)
    st.bag = {k: s[k] for k in ("path", "frames", "rate", "gt_rects", "topics")}
    st.bag["scene"] = scene
    st.bag["size_mb"] = out.stat().st_size / 2**20
    say(f"   {rel(out)}: scene {scene} (training scenes {st.scenes['train']}, validation "
        f"scenes {st.scenes['val']}), {s['frames']} frames at {s['rate']:g} Hz, "
         f"{s['gt_rects']} GT rectangles, {st.bag['size_mb']:.1f} MB")
    note["text"] = f"{s['frames']} frames"
    return out


# --------------------------------------------------------------------------- 5. eval
def step_eval(o: Options, st: State, note, bag: Path, rec: Path | None, ckpt: Path) -> None:
    from ..bag.evaluate import evaluate_bag, format_table, write_outputs

    if rec is not None:
        st.online = evaluate_bag(bag, predictions=rec, progress=False)
        st.files["online"] = write_outputs(st.online, o.out / "eval" / "online")
        say(format_table(st.online))
    st.offline = evaluate_bag(bag, checkpoint=ckpt, load_options={"device": o.device},
                              progress=True, return_predictions=True)
    st.files["offline"] = write_outputs(st.offline, o.out / "eval" / "offline")
    say(format_table(st.offline))
    if st.online is not None:
        same = st.online["metrics"] == st.offline["metrics"]
        st.ros["agree"] = same
        if same:
            say("   online and offline metrics are identical")
        elif st.online["dropped_frames"]:
            say(f"   online differs from offline: {st.online['dropped_frames']} frame(s) dropped "
                 "by the node (it keeps only the newest frame while busy)")
        else:
            say("   online and offline metrics differ although no frame dropped")
            st.problems.append("online and offline metrics differ without drops")


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
                   help="scene of the evaluation bag; must be used neither for training nor for "
                   "validation (default: the last such scene)")
    p.add_argument("--rate", type=float, default=d.rate, help="frames per second played (2)")
    p.add_argument("--device", default=d.device, help="cpu (default), cuda, auto")
    p.add_argument("--domain-id", "--domain_id", type=int, default=None,
                   help="ROS_DOMAIN_ID (default: a free one, reserved with a lock file)")
    p.add_argument("--node-timeout", "--node_timeout", type=float, default=d.node_timeout)
    p.add_argument("--overlays", type=int, default=d.overlays)
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    if a.scenes < 3 or a.frames < 1 or a.rate <= 0:
        print("demo: need --scenes >= 3, --frames >= 1 and --rate > 0", file=sys.stderr)
        return 2
    o = Options(out=a.out.resolve(), scenes=a.scenes, frames=a.frames, seed=a.seed,
                config=a.config.resolve(), eval_scene=a.eval_scene, rate=a.rate, force=a.force,
                device=a.device, domain_id=a.domain_id, node_timeout=a.node_timeout,
                overlays=a.overlays)
    if not o.config.is_file():
        print(f"demo: config {o.config} not found", file=sys.stderr)
        return 2
    st = State()
    try:
        st.scenes = plan_scenes(o)
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    o.out.mkdir(parents=True, exist_ok=True)
    # SIGTERM ends the demo like Ctrl-C, so every finally block (subprocesses, bags) runs.
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    say(f"VITA-Grasp demo -> {rel(o.out)}  (synthetic data, tiny model, CPU; a few minutes)")
    status = 0
    try:
        import torch

        torch.set_num_threads(min(2, os.cpu_count() or 1))
        with step(st, 1, "Synthesize a small GraspNet-layout data set") as n:
            data = step_data(o, st, n)
        with step(st, 2, "Train the tiny model (vita_grasp_core/configs/tiny.yaml)") as n:
            ckpt = step_train(o, st, n, data)
        with step(st, 3, "Make the evaluation bag from the held-out scene") as n:
            bag = step_bag(o, st, n, data)
        rec = None
        with step(st, 4, "Replay the bag into the ROS 2 grasp node and record its output") as n:
            try:
                rec = step_ros(o, st, n, ckpt, bag)
            except ImportError as e:
                st.problems.append(f"ROS part skipped: {e} (run `make setup`)")
                say(f"   skipped: rclpy or the vita_grasp messages are missing ({e}); "
                     "run `make setup`")
                n["text"] = "skipped"
                status = 1
            except RuntimeError as e:
                st.problems.append(f"ROS part failed: {e}")
                say(f"   FAILED: {e}")
                n["text"] = "failed"
                status = 1
        with step(st, 5, "Evaluate: online (recorded node output) and offline (predictor)") as n:
            step_eval(o, st, n, bag, rec, ckpt)
        with step(st, 6, "Write the report") as n:
            report = write_report(o, st, bag, rec)
            n["text"] = rel(report)
        closing_summary(o, st, report)
    except KeyboardInterrupt:
        print("\ndemo: interrupted (subprocesses stopped)", file=sys.stderr)
        return 130
    except ImportError as e:  # the bag step builds ROS messages
        print(f"\ndemo: failed in step {len(st.steps)}: rclpy or a ROS message package is "
              f"missing ({e}); run `make setup`", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a failed step: say which and where to look
        traceback.print_exc()
        print(f"\ndemo: failed in step {len(st.steps)}: {e}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, old_term)
    return status


if __name__ == "__main__":
    sys.exit(main())
