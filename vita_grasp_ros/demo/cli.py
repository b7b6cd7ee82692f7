"""The one-command demo (``make demo`` = ``scripts/demo.py`` = ``vita-grasp demo``).

On a fresh machine, with nothing downloaded, a simulated robot picks objects it has never seen,
with the shipped sim-trained model answering through the ROS 2 grasp node:

1. **model**     the shipped model ``sim`` (``vita_grasp_core/zoo``, checksum verified; the frozen
                 DINOv2-S encoder was prepared by ``make setup``) or ``--model PATH``;
2. **labels**    how its training data was made: one simulated scene of *training* objects, grasp
                 candidates tried by the gripper, successes kept (``OUT/labels.png``);
3. **baselines** a random grasp on a random object and the analytic grasp on the ground-truth
                 mask, on held-out objects (``random_urdfs`` 900-999 and the other pybullet_data
                 objects, which neither trained nor selected the model);
4. **node**      the grasp node as a real process (own ROS domain): the simulated camera
                 publishes RGB, depth and CameraInfo, the gripper executes ``grasps[0].pose`` and
                 ``width_m`` exactly as published; the same scenes as the baselines;
5. **report**    ``OUT/report.md``: success and clearance of each source, failure reasons,
                 latency, the node's pose check, the picture strips of executed grasps.

Protocols: singulated (one object, one attempt per scene, a random camera 0.35-0.75 m high and
tilted up to 20 degrees per scene) and clutter (6 objects in a tray, pick until clear or two
failures in a row, camera 0.65 m high tilted 10 degrees). Every source's grasps approach along
the table's normal (``--approach table``, the node's ``approach:=table``), as a robot with a
tilted camera would be set up, and where the model has no grasp the node falls back to one found
in depth (``depth_fallback:=true``). Exit code 0 when every step ran, 1 when
the ROS part could not run or a step failed (the report is still written), 2 for bad arguments,
130 when interrupted. Subprocesses are always stopped, also on Ctrl-C.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from vita_grasp_core.cli_errors import sigterm_as_interrupt

from .report import State, closing_summary, rel, say, write_report

REPO = Path(__file__).resolve().parents[2]  # the checkout (make demo): outputs/
TOTAL_STEPS = 5
DEFAULT_MODEL = "sim"
# The camera streams each scene at 10 Hz with depth and image back to back: with the node's
# default image queue of 2, a busy node loses the depth frames of the stamps it answers
# (docs/sim.md "The node in the loop"); a queue of 10 keeps them.
NODE_PARAMS = ("input_depth:=10",)
NOT_SHIPPED = ("the shipped model 'sim' is not in this checkout (vita_grasp_core/zoo/models.json"
               "); the node step is skipped and only the baselines run. Use --model "
               "CHECKPOINT, or train and ship one (docs/sim.md \"The sim-trained model\")")
SOURCES = ("random", "analytic")  # the baselines; then the node


@dataclass
class Options:
    out: Path = REPO / "outputs" / "demo"
    model: str = DEFAULT_MODEL
    objects: str = "heldout"
    singulated: int = 20
    clutter: int = 4
    objects_per_scene: int = 6
    seed: int = 0
    label: bool = True
    device: str = "cpu"
    domain_id: int | None = None
    node_timeout: float = 120.0
    #: the demo's cameras are tilted (up to 20 degrees): every source's grasps approach along
    #: the table's normal (the node's approach:=table; docs/ros.md "Approach")
    approach: str = "table"
    #: where the model has no grasp above its threshold, the node's depth fallback
    #: (depth_fallback:=true; docs/ros.md "Depth fallback")
    depth_fallback: bool = True


@dataclass(frozen=True)
class Scenario:
    """One benchmark set-up of the demo (the same scenes for every source)."""

    name: str
    title: str
    protocol: str
    trials: int
    tray: bool
    random_views: bool
    tilt: float = 0.0

    def config(self, o: Options, names):
        from vita_grasp_core.sim.bench import BenchConfig
        from vita_grasp_core.sim.episode import ViewSpec

        view = None if self.random_views else ViewSpec(0.65, self.tilt, 30.0, 0.0)
        return BenchConfig(tuple(names), o.objects, self.protocol, self.trials, o.seed,
                           self.tray, o.objects_per_scene, (480, 640), view, strip=24)


def scenarios(o: Options) -> list[Scenario]:
    out = []
    if o.singulated:
        out.append(Scenario("singulated", f"singulated, {o.singulated} scenes, a random camera "
                            "per scene (0.35-0.75 m, tilt 0-20 deg)", "singulated",
                            o.singulated, False, True))
    if o.clutter:
        out.append(Scenario("clutter", f"clutter, {o.clutter} trays of {o.objects_per_scene} "
                            "objects, camera 0.65 m tilted 10 deg", "clutter", o.clutter, True,
                            False, 10.0))
    return out


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


# --------------------------------------------------------------------------- 1. model
def step_model(o: Options, st: State, note) -> str | None:
    """The checkpoint to run: a shipped name (checksum verified) or a file; ``None`` when the
    default model ``sim`` is not shipped in this checkout (the demo then runs the baselines
    only and says so). ``ValueError`` (one line) for a ``--model`` that does not exist."""
    from vita_grasp_core import zoo

    if Path(o.model).is_file():
        st.model = {"name": o.model, "path": str(Path(o.model).resolve()), "shipped": False}
        say(f"   checkpoint file {rel(o.model)}")
        return st.model["path"]
    models = zoo.list_models()
    if o.model == DEFAULT_MODEL and o.model not in models:
        st.problems.append(NOT_SHIPPED)
        say(f"   {NOT_SHIPPED}")
        note["text"] = "not shipped: baselines only"
        return None
    if o.model not in models:
        zoo.resolve_checkpoint(o.model)  # raises the one-line error listing the names
        raise zoo.ZooError(f"--model {o.model!r} is neither a checkpoint file nor a shipped "
                           f"model name (shipped: {', '.join(models) or 'none'})")
    entry = models[o.model]
    path = zoo.verify(entry)
    st.model = {"name": o.model, "path": str(path), "shipped": True,
                "description": entry.description, "card": str(entry.card_path)}
    say(f"   shipped model '{o.model}': {rel(path)} ({entry.bytes / 2**20:.1f} MB, checksum "
        f"verified): {entry.description}")
    note["text"] = o.model
    return o.model


# --------------------------------------------------------------------------- 2. labels
def step_labels(o: Options, st: State, note) -> None:
    """One scene of training objects labelled by the simulator; a picture of its candidates."""
    import cv2

    from vita_grasp_core.sim.label import CAMERA_DIR, LabelSettings, label_dataset
    from vita_grasp_core.sim.objects import parse_object_set

    root = o.out / "labels"
    settings = LabelSettings(tuple(parse_object_set("train")), "train", 0, 1, 16, "clutter",
                             "no", (480, 640))
    s = label_dataset(root, settings, [o.seed], workers=1, progress=False)
    cam = root / "scenes" / f"scene_{o.seed:04d}" / CAMERA_DIR
    st.labels = {"root": str(root), "positives": s["positives"], "negatives": s["negatives"]}
    picture = label_picture(cam)
    if picture is None:
        say("   the labelled scene had no successful grasp (nothing to draw)")
        return
    cv2.imwrite(str(o.out / "labels.png"), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR))
    st.labels["picture"] = "labels.png"
    say(f"   {s['positives']} of {s['positives'] + s['negatives']} candidates lifted their "
        f"object (green, the training rectangles), the others failed (red): "
        f"{rel(o.out / 'labels.png')}")
    note["text"] = f"{s['positives']} positives"


def label_picture(cam: Path, margin: int = 40, width: int = 800):
    """View 0 of a labelled scene, cropped to its objects and enlarged to ``width`` px, with
    the successful (green) and failed (red) candidates; ``None`` without a labelled view."""
    import cv2
    import numpy as np

    from vita_grasp_core.data.graspnet import read_graspnet_grasps
    from vita_grasp_core.visualize import draw_grasps

    rgb_path, label_path = cam / "rgb" / "0000.png", cam / "label" / "0000.png"
    if not (rgb_path.is_file() and label_path.is_file()):
        return None
    img = cv2.cvtColor(cv2.imread(str(rgb_path)), cv2.COLOR_BGR2RGB)
    ys, xs = np.nonzero(cv2.imread(str(label_path), cv2.IMREAD_UNCHANGED))
    h, w = img.shape[:2]
    x0, y0 = max(0, int(xs.min()) - margin), max(0, int(ys.min()) - margin)
    x1, y1 = min(w, int(xs.max()) + margin + 1), min(h, int(ys.max()) + margin + 1)
    scale = width / (x1 - x0)
    img = cv2.resize(img[y0:y1, x0:x1], (width, int(round((y1 - y0) * scale))),
                     interpolation=cv2.INTER_CUBIC)
    for sub, colour in (("rect_neg", (230, 40, 40)), ("rect", (40, 220, 40))):
        f = cam / sub / "0000.npy"
        rows = read_graspnet_grasps(f) if f.is_file() else np.zeros((0, 7))
        if len(rows):
            rows = rows.copy()
            rows[:, 0] = (rows[:, 0] - x0) * scale
            rows[:, 1] = (rows[:, 1] - y0) * scale
            rows[:, 3:5] *= scale
            img = draw_grasps(img, rows, jaw_color=colour, open_color=colour,
                              highlight_best=False, thickness=2)
    return img


# --------------------------------------------------------------------------- 3./4. benchmark
def run_source(o: Options, st: State, source, name: str) -> None:
    """Every scenario with one built source; summaries into ``st.bench[scenario][name]``."""
    from vita_grasp_core.sim.bench import run_bench
    from vita_grasp_core.sim.objects import parse_object_set

    names = parse_object_set(o.objects)
    for sc in scenarios(o):
        out = o.out / "bench" / sc.name / name
        s = run_bench(sc.config(o, names), source, out, progress=True, log=say)
        s["strip"] = str(Path("bench") / sc.name / name / "strip.png")
        st.bench.setdefault(sc.name, {})[name] = s
        st.titles[sc.name] = sc.title
        say(f"   {name:<9} {sc.name:<10} success {100 * s['success_rate']:5.1f} %  clearance "
            f"{100 * s['clearance']:5.1f} %  ({s['successes']}/{s['attempts']} attempts)")


def step_baselines(o: Options, st: State, note) -> None:
    from vita_grasp_core.sim.sources import SourceOptions, make_source

    for name in SOURCES:
        source = make_source(name, SourceOptions(approach=o.approach))
        try:
            run_source(o, st, source, name)
        finally:
            source.close()
    note["text"] = ", ".join(SOURCES)


def step_node(o: Options, st: State, note, checkpoint: str) -> None:
    """The node source (a real node process on a reserved ROS domain). ``ImportError`` without
    rclpy or the messages; ``RuntimeError`` when the node does not come up."""
    from vita_grasp_core.sim.sources import SourceOptions

    from ..sim_source import NodeSource

    (o.out / "ros").mkdir(parents=True, exist_ok=True)
    params = (*NODE_PARAMS, f"approach:={o.approach}",
              f"depth_fallback:={'true' if o.depth_fallback else 'false'}")
    opts = SourceOptions(checkpoint, o.device, o.node_timeout, params, str(o.out / "ros"),
                         approach=o.approach)
    say(f"   starting the grasp node (checkpoint {checkpoint}, use_depth on, "
        f"{', '.join(params)}); log: "
        f"{rel(o.out / 'ros' / 'node.log')}")
    t0 = time.perf_counter()
    source = NodeSource(opts, domain_id=o.domain_id)
    st.ros = {"domain_id": source.domain, "startup_s": time.perf_counter() - t0,
              "pid": source.proc.pid, "node_log": str(o.out / "ros" / "node.log")}
    say(f"   started the grasp node (pid {source.proc.pid}) on ROS_DOMAIN_ID={source.domain} "
        f"in {st.ros['startup_s']:.1f} s")
    try:
        run_source(o, st, source, "node")
    finally:
        source.close()
    note["text"] = f"node pid {st.ros['pid']}"


# --------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    from vita_grasp_core.approach import APPROACHES

    p = argparse.ArgumentParser(prog="scripts/demo.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="See docs/demo.md.")
    d = Options()
    p.add_argument("--out", type=Path, default=d.out, help="output directory (outputs/demo)")
    p.add_argument("--model", default=d.model,
                   help="shipped model name or checkpoint file (default: sim, the sim-trained "
                        "model)")
    p.add_argument("--objects", default=d.objects,
                   help="object set of the benchmark (default heldout: random_urdfs 900-999 "
                        "and the other pybullet_data objects)")
    p.add_argument("--singulated", type=int, default=d.singulated,
                   help=f"singulated scenes (default {d.singulated}; 0 = none)")
    p.add_argument("--clutter", type=int, default=d.clutter,
                   help=f"clutter scenes in a tray (default {d.clutter}; 0 = none)")
    p.add_argument("--objects-per-scene", type=int, default=d.objects_per_scene,
                   help=f"objects of a clutter scene (default {d.objects_per_scene})")
    p.add_argument("--seed", type=int, default=d.seed, help="scene series seed (default 0)")
    p.add_argument("--no-label", action="store_true",
                   help="skip step 2 (the labelling picture)")
    p.add_argument("--device", default=d.device, help="cpu (default), cuda, auto")
    p.add_argument("--approach", choices=APPROACHES, default=d.approach,
                   help="what every source's grasps approach along: table (the table's "
                        "normal, the node's approach:=table; default: the demo's cameras are "
                        "tilted) or camera (the optical axis, the convention's default)")
    p.add_argument("--depth-fallback", choices=("on", "off"),
                   default="on" if d.depth_fallback else "off",
                   help="the node's depth_fallback: a grasp found in depth where the model has "
                        "none above its threshold (default on)")
    p.add_argument("--domain-id", "--domain_id", type=int, default=None,
                   help="ROS_DOMAIN_ID of the node (default: a free one, reserved with a lock "
                        "file)")
    p.add_argument("--node-timeout", "--node_timeout", type=float, default=d.node_timeout,
                   help=f"seconds to wait for one answer of the node (default "
                        f"{d.node_timeout:g})")
    return p


def parse_options(argv) -> Options:
    """The options of ``argv``; ``ValueError`` (one line) for a bad combination."""
    a = build_parser().parse_args(argv)
    if a.singulated < 0 or a.clutter < 0 or a.singulated + a.clutter == 0:
        raise ValueError("need --singulated >= 0 and --clutter >= 0, not both 0")
    if not 1 <= a.objects_per_scene <= 12:
        raise ValueError(f"--objects-per-scene must be in 1..12, got {a.objects_per_scene}")
    if a.node_timeout <= 0:
        raise ValueError(f"--node-timeout must be > 0, got {a.node_timeout:g}")
    try:
        from vita_grasp_core.sim.objects import parse_object_set

        parse_object_set(a.objects)
    except ValueError as e:
        raise ValueError(str(e)) from None
    return Options(out=a.out.resolve(), model=a.model, objects=a.objects,
                   singulated=a.singulated, clutter=a.clutter,
                   objects_per_scene=a.objects_per_scene, seed=a.seed, label=not a.no_label,
                   device=a.device, domain_id=a.domain_id, node_timeout=a.node_timeout,
                   approach=a.approach, depth_fallback=a.depth_fallback == "on")


def _check_sim() -> None:
    from vita_grasp_core.sim import SimUnavailable, pybullet

    try:
        pybullet()
    except SimUnavailable as e:
        raise ValueError(str(e)) from None


def main(argv=None) -> int:
    try:
        o = parse_options(argv)
        _check_sim()
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    st = State()
    o.out.mkdir(parents=True, exist_ok=True)
    say(f"VITA-Grasp demo -> {rel(o.out)}  (a simulated robot picks objects it has never seen; "
        "CPU, a few minutes)")
    try:
        # SIGTERM ends the demo like Ctrl-C, so every finally block (the node process) runs.
        with sigterm_as_interrupt():
            return _run(o, st)
    except KeyboardInterrupt:
        print("\ndemo: interrupted (subprocesses stopped)", file=sys.stderr)
        return 130


def _run(o: Options, st: State) -> int:
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    status = 0
    try:
        with step(st, 1, "The shipped sim-trained model") as n:
            checkpoint = step_model(o, st, n)
        if o.label:
            with step(st, 2, "How the training data is made: physics labels") as n:
                step_labels(o, st, n)
        with step(st, 3, "Baselines on held-out objects: random, analytic") as n:
            step_baselines(o, st, n)
        with step(st, 4, "The model through the ROS 2 grasp node, same scenes") as n:
            try:
                if checkpoint is None:
                    say("   skipped: no model (see step 1)")
                    n["text"] = "skipped"
                else:
                    step_node(o, st, n, checkpoint)
            except ImportError as e:
                st.problems.append(f"ROS part skipped: {e} (run `make setup`)")
                say(f"   skipped: rclpy or the vita_grasp messages are missing ({e}); "
                    "run `make setup`")
                n["text"], status = "skipped", 1
            except (RuntimeError, ValueError) as e:
                st.problems.append(f"ROS part failed: {e}")
                say(f"   FAILED: {e}")
                n["text"], status = "failed", 1
        with step(st, 5, "Write the report") as n:
            report = write_report(o, st)
            n["text"] = rel(report)
        closing_summary(o, st, report)
    except ValueError as e:  # the model could not be found: one line
        print(f"\ndemo: {e}", file=sys.stderr)
        return 2 if len(st.steps) <= 1 else 1  # 2: the model named on the command line
    except Exception as e:  # noqa: BLE001 - a failed step: say which and where to look
        traceback.print_exc()
        print(f"\ndemo: failed in step {len(st.steps)}: {e}", file=sys.stderr)
        return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
