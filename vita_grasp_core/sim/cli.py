"""``vita-grasp sim``: the simulated tabletop from the command line (docs/sim.md).

    vita-grasp sim label  --out DIR ...   physics-labelled data in the GraspNet layout
    vita-grasp sim bench  ...             the pick benchmark (success, clearance, latency)
    vita-grasp sim show   --out FILE ...  render one scene (a quick look at a set-up)

Bad arguments (an unknown object name, a camera size of another aspect ratio, ...) are one line
and exit status 2; a missing pybullet is one line and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cli_errors import sigterm_as_interrupt


def _ids(text: str) -> list[int]:
    """``"0-99"``, ``"0,5,7"``, ``"100-119,200"`` -> ids."""
    from ..cli.data import _int_list

    try:
        ids = _int_list(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of ids such as 0-99 or "
                                         "0,5,7") from None
    if not ids or min(ids) < 0 or max(ids) > 9999:
        raise argparse.ArgumentTypeError(f"scene ids must be in 0..9999, got {text!r}")
    return ids


def _fail(prog: str, message: str, code: int = 2) -> int:
    print(f"{prog}: {message}", file=sys.stderr)
    return code


def _objects_and_camera(prog: str, a) -> tuple[list[str], tuple[int, int]]:
    """The object names and camera size of the arguments ``a``, with pybullet importable;
    ``ValueError`` (one line) otherwise."""
    from . import SimUnavailable, pybullet
    from .camera import parse_image_size
    from .objects import parse_object_set

    try:
        names = parse_object_set(a.objects)
        size = parse_image_size(a.image_size)
        pybullet()
    except SimUnavailable as e:
        raise ValueError(str(e)) from None
    return names, size


def _check_ranges(checks) -> str:
    """The first ``(option, value, lo, hi)`` out of its range as a one-line message, or ""."""
    for name, v, lo, hi in checks:
        if not lo <= v <= hi:
            return f"{name} must be in {lo:g}..{hi:g}, got {v:g}"
    return ""


def add_camera_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--image-size", default="640x480",
                   help="camera mode WIDTHxHEIGHT: 640x480 (4:3, the central 960x720 crop of "
                        "the Kinect's 1280x720, resized) or 1280x720 (default 640x480)")


# ------------------------------------------------------------------------------------- label
def label_main(argv) -> int:
    from .objects import known_names

    p = argparse.ArgumentParser(
        prog="vita-grasp sim label",
        description="Physics-labelled grasp data: per scene (1 object or 5-8 in clutter, on "
                    "the table or in a tray, random colours, textures and light) and per view "
                    "(random camera height 0.35-0.75 m, tilt 0-20 deg, yaw), antipodal "
                    "candidates from depth and segmentation are executed by the simulated "
                    "gripper from one saved state; successes become the rectangles. Written in "
                    "the GraspNet-1Billion layout (scenes/scene_XXXX/kinect/...). Resumable: "
                    "run the same command again to continue a killed run.",
        epilog="Example: vita-grasp sim label --out /work/data/sim_train --objects "
               "random:000-899 --scenes 0-599 --views 4 --workers 2")
    p.add_argument("--out", required=True, type=Path, help="data set root (created)")
    p.add_argument("--objects", default="random:000-899",
                   help=f"object set (comma-separated). Known: {known_names()}. "
                        "Default random:000-899 (the training objects)")
    p.add_argument("--scenes", type=_ids, default=_ids("0-9"),
                   help="scene ids to label, e.g. 0-599 (default 0-9); each is a pure function "
                        "of --seed and its id")
    p.add_argument("--views", type=int, default=4, help="views (frames) per scene (default 4)")
    p.add_argument("--candidates", type=int, default=24,
                   help="grasp candidates tried per view (default 24)")
    p.add_argument("--kind", choices=("mixed", "singulated", "clutter"), default="mixed",
                   help="scene kind (default mixed: half singulated, half 5-8 objects)")
    p.add_argument("--tray", choices=("mixed", "yes", "no"), default="mixed",
                   help="objects in a tray (default mixed: a third of the scenes)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    add_camera_args(p)
    p.add_argument("--exact", action="store_true",
                   help="run every trial its full course: no shortcuts (free part of the "
                        "approach, settled hold, sleeping objects; docs/sim.md 'Speed'). "
                        "About 1.5x slower; to check the shortcuts")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    from .label import LabelSettings, label_dataset

    prog = "vita-grasp sim label"
    try:
        names, size = _objects_and_camera(prog, a)
    except ValueError as e:
        return _fail(prog, str(e))
    bad = _check_ranges((("--views", a.views, 1, 1000), ("--candidates", a.candidates, 1, 1000),
                         ("--workers", a.workers, 1, 64)))
    if bad:
        return _fail(prog, bad)
    settings = LabelSettings(tuple(names), a.objects, a.seed, a.views, a.candidates, a.kind,
                             a.tray, size)
    try:
        s = label_dataset(a.out, settings, a.scenes, workers=a.workers, progress=not a.quiet,
                          exact=a.exact)
    except (ValueError, OSError) as e:
        return _fail(prog, str(e), 1)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to continue", file=sys.stderr)
        return 130
    rate = f", {s['frames_per_hour']:.0f} frames/hour" if s["frames_per_hour"] else ""
    print(f"sim label: {s['frames_now']} frames labelled now (of {s['views_now']} views; "
          f"{s['frames_total']} in {a.out}), {s['positives']} successful and "
          f"{s['negatives']} failed grasps, {s['scenes_skipped']} scenes skipped, "
          f"{s['seconds']:.0f} s{rate}")
    return 0


# ------------------------------------------------------------------------------------- show
def show_main(argv) -> int:
    from .objects import known_names

    p = argparse.ArgumentParser(
        prog="vita-grasp sim show",
        description="Render one seeded scene (RGB | depth | segmentation side by side) to a "
                    "PNG: a quick look at objects, tray, camera and appearance.")
    p.add_argument("--out", required=True, type=Path, help="PNG file to write")
    p.add_argument("--objects", default="random:900-999", help=f"object set. Known: "
                                                                f"{known_names()}")
    p.add_argument("--scene", type=int, default=0, help="scene id (default 0)")
    p.add_argument("--kind", choices=("mixed", "singulated", "clutter"), default="clutter")
    p.add_argument("--tray", choices=("mixed", "yes", "no"), default="no")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--view", type=int, default=0, help="random view id (default 0)")
    add_camera_args(p)
    a = p.parse_args(argv)
    from . import SimError
    from .camera import SimCamera
    from .episode import random_view, scene_spec

    prog = "vita-grasp sim show"
    try:
        names, size = _objects_and_camera(prog, a)
    except ValueError as e:
        return _fail(prog, str(e))
    spec = scene_spec(a.seed, a.scene, names, kind=a.kind,
                      tray={"mixed": "mixed", "yes": True, "no": False}[a.tray])
    try:
        world = spec.build(SimCamera(size))
    except SimError as e:
        return _fail(prog, str(e), 1)
    with world:
        view, light = random_view(a.seed, a.scene, a.view)
        obs = world.render(view.pose(world.support_height(*view.target)), None, light)
    import cv2

    from .report import observation_panel

    a.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(a.out), cv2.cvtColor(observation_panel(obs), cv2.COLOR_RGB2BGR))
    print(f"wrote {a.out}: {spec.kind}, {len(spec.names)} objects ({', '.join(spec.names)}), "
          f"tray {spec.tray}, camera {view.height:.2f} m, tilt {view.tilt:.1f} deg")
    return 0


# ------------------------------------------------------------------------------------- bench
def _bench_parser() -> argparse.ArgumentParser:
    from ..approach import APPROACHES
    from ..decoding_settings import add_decode_arguments
    from .objects import known_names
    from .sources import available_sources

    sources, _ = available_sources()
    p = argparse.ArgumentParser(
        prog="vita-grasp sim bench",
        description="The pick benchmark: a grasp source sees the simulated camera (RGB, metric "
                    "depth, CameraInfo) and answers a 3-D grasp in the camera frame; the "
                    "simulated gripper executes it as answered (approach, close, lift 15 cm, "
                    "hold 1 s). Singulated: one object, one attempt per scene. Clutter: pick "
                    "until clear or two failures in a row. Prints the table and writes "
                    "summary.json, trials.jsonl, strip.png and report.md.",
        epilog="Sources: " + "; ".join(f"{k}: {v.help}" for k, v in sorted(sources.items()))
               + ". Example: vita-grasp sim bench --source analytic --protocol clutter --tray "
                 "--camera-tilt 10 --trials 10")
    p.add_argument("--source", default="analytic",
                   help=f"grasp source: {', '.join(sorted(sources))}, or several "
                        "comma-separated (run one after another on the same scenes, one "
                        "table; default analytic)")
    p.add_argument("--checkpoint", help="checkpoint path or short name (sources api, node)")
    p.add_argument("--device", default="auto", help="inference device for api (default auto)")
    p.add_argument("--protocol", choices=("singulated", "clutter"), default="singulated")
    p.add_argument("--objects", default="random:900-999",
                   help=f"object set (default random:900-999, held out). Known: "
                        f"{known_names()}")
    p.add_argument("--trials", type=int, default=20, help="scenes (default 20)")
    p.add_argument("--seed", type=int, default=0, help="scene series seed (default 0)")
    p.add_argument("--objects-per-scene", type=int, default=6,
                   help="objects of a clutter scene (default 6)")
    p.add_argument("--tray", action="store_true", help="objects in a tray")
    p.add_argument("--plain", action="store_true",
                   help="a fixed neutral table and light (default: random per scene)")
    add_camera_args(p)
    p.add_argument("--camera-height", type=float, default=0.65,
                   help="camera height above the table [m] (default 0.65)")
    p.add_argument("--camera-tilt", type=float, default=0.0,
                   help="camera tilt from straight down [deg] (default 0)")
    p.add_argument("--camera-azimuth", type=float, default=0.0,
                   help="direction the camera is moved to when tilted [deg] (default 0)")
    p.add_argument("--camera-yaw", type=float, default=0.0,
                   help="camera rotation about its axis [deg] (default 0)")
    p.add_argument("--random-views", action="store_true",
                   help="a random camera per scene (height 0.35-0.75 m, tilt 0-20 deg, yaw, "
                        "light) instead of the fixed one")
    p.add_argument("--node-timeout", type=float, default=30.0,
                   help="source node: seconds to wait for an answer (default 30)")
    p.add_argument("--node-param", action="append", default=[], metavar="NAME:=VALUE",
                   help="source node: an extra node parameter (repeatable)")
    p.add_argument("--node-rate", type=float, default=10.0, metavar="HZ",
                   help="source node: the camera streams the scene at this rate (fresh stamps) "
                        "until the node answers one frame (default 10; 0 = one frame)")
    p.add_argument("--node-depth-lead", type=float, default=0.0, metavar="SECONDS",
                   help="source node: publish depth and camera_info this long before the image "
                        "(default 0: back to back, as drivers do)")
    p.add_argument("--depth-check", choices=("on", "off"), default="on",
                   help="sources api and node: check and refine the model's grasps against "
                        "the depth image (openings that clear the object, fingers on free "
                        "space; docs/sim.md) before the best is executed (default on)")
    p.add_argument("--depth-check-set", action="append", default=[], metavar="NAME=VALUE",
                   help="source api: a setting of the depth check (DepthCheckSettings: "
                        "margin=0.015, opening=wider, turns=, ...; repeatable)")
    p.add_argument("--depth-fallback", choices=("on", "off"), default="off",
                   help="sources api and node: when the model has no grasp above its "
                        "threshold, the analytic grasp on the highest object standing above "
                        "the surface in the depth image (docs/sim.md; default off)")
    p.add_argument("--approach", choices=APPROACHES, default="camera",
                   help="every source: what the 3-D grasp approaches along: camera (the "
                        "optical axis, CONVENTIONS section 1, default) or table (the normal of "
                        "the table plane fitted to the depth image; the node gets approach:=)")
    p.add_argument("--retry", choices=("same", "next"), default="same",
                   help="clutter, after a failed attempt: same = execute the source's best "
                        "grasp again (the issue's protocol, default); next = its first grasp "
                        "more than --retry-distance from every failed one of the scene (the "
                        "node's next grasp in the GraspArray)")
    p.add_argument("--retry-distance", type=float, default=0.03, metavar="M",
                   help="--retry next: how far a grasp must be from a failed one [m] "
                        "(default 0.03)")
    p.add_argument("--strip", type=int, default=32, help="grasps in the picture strip")
    group = p.add_argument_group("decoding settings of the sources api and node (default: the "
                                 "checkpoint's own; the node gets them as its parameters)")
    add_decode_arguments(group)
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (default outputs/sim_bench/SOURCE_PROTOCOL)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def bench_main(argv) -> int:
    a = _bench_parser().parse_args(argv)
    from .bench import BenchConfig, results_table
    from .episode import ViewSpec

    prog = "vita-grasp sim bench"
    try:
        names, size = _objects_and_camera(prog, a)
    except ValueError as e:
        return _fail(prog, str(e))
    bad = _check_ranges((("--trials", a.trials, 1, 100000),
                         ("--objects-per-scene", a.objects_per_scene, 1, 12),
                         ("--camera-height", a.camera_height, 0.2, 1.5),
                         ("--camera-tilt", a.camera_tilt, 0.0, 45.0),
                         ("--node-timeout", a.node_timeout, 0.1, 3600.0),
                         ("--node-depth-lead", a.node_depth_lead, 0.0, 5.0),
                         ("--node-rate", a.node_rate, 0.0, 60.0),
                         ("--retry-distance", a.retry_distance, 0.0, 1.0)))
    if not bad:
        bad = _check_decode(a)
    if not bad:
        try:
            depth_check_settings(a.depth_check_set)
        except ValueError as e:
            bad = str(e)
    if bad:
        return _fail(prog, bad)
    view = None if a.random_views else ViewSpec(a.camera_height, a.camera_tilt,
                                                a.camera_azimuth, a.camera_yaw)
    cfg = BenchConfig(tuple(names), a.objects, a.protocol, a.trials, a.seed, a.tray,
                      a.objects_per_scene, size, view, a.plain, a.strip, a.retry,
                      a.retry_distance)
    sources = [x.strip() for x in a.source.split(",") if x.strip()]
    out = a.out or Path("outputs") / "sim_bench" / f"{'_'.join(sources)}_{a.protocol}"
    summaries = []
    with sigterm_as_interrupt():  # SIGTERM too stops the node source's process
        for name in sources:  # one after another, on the same scenes
            where = out if len(sources) == 1 else out / name
            try:
                summaries.append(_bench_one(a, name, cfg, where))
            except ValueError as e:
                return _fail(prog, str(e))
            except KeyboardInterrupt:
                return _fail(prog, "interrupted", 130)
    table = results_table(summaries)
    print(table)
    for s in summaries:
        if "pose_check" in s:
            c = s["pose_check"]
            print(f"{s['source']}: pose vs the documented back-projection of its pixel grasp "
                  f"(max over {c['answers']} answers): position {c['position_mm']:.2f} mm, "
                  f"angle {c['angle_deg']:.2f} deg, width {c['width_mm']:.2f} mm")
    if len(sources) > 1:
        (out / "report.md").write_text(
            f"# Pick benchmark, {a.protocol}, same scenes for every source\n\n{table}\n\n"
            + "".join(f"## {n}\n\n![executed grasps]({n}/strip.png)\n\n" for n in sources))
    print(f"wrote {out}/report.md" + (" and one directory per source" if len(sources) > 1
                                      else ", summary.json, trials.jsonl, strip.png"))
    return 0


def depth_check_settings(items) -> tuple:
    """``NAME=VALUE`` strings -> ``((name, value), ...)`` of
    :class:`~vita_grasp_core.grasp_depth.DepthCheckSettings` (checked); ``ValueError``."""
    from dataclasses import fields

    from ..grasp_depth import DepthCheckSettings

    types = {f.name: f.type for f in fields(DepthCheckSettings)}
    out = []
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or name not in types:
            raise ValueError(f"--depth-check-set {item!r}: expected NAME=VALUE with NAME one "
                             f"of {', '.join(types)}")
        kind = str(types[name])
        try:
            v = (tuple(float(t) for t in value.split(",") if t) if "tuple" in kind else
                 int(value) if kind == "int" else float(value) if kind == "float" else
                 _flag(value) if kind == "bool" else value)
        except ValueError:
            raise ValueError(f"--depth-check-set {item!r}: not a {kind}") from None
        out.append((name, v))
    DepthCheckSettings(**dict(out))
    return tuple(out)


def _flag(value: str) -> bool:
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(value)


def _check_decode(a) -> str:
    """The decoding settings' problem as one line, or ""."""
    from ..decoding_settings import DecodeConfig, decode_arguments

    try:
        DecodeConfig().replace(**decode_arguments(a))
    except ValueError as e:
        return str(e)
    return ""


def _bench_one(a, name: str, cfg, out: Path) -> dict:
    """Run the benchmark with source ``name`` into ``out``; ``ValueError`` (one line) when the
    source cannot be built."""
    from ..decoding_settings import decode_arguments
    from .bench import run_bench
    from .sources import SourceOptions, make_source

    decode = decode_arguments(a)
    on = a.depth_check == "on"
    fallback = a.depth_fallback == "on"
    node_params = (f"depth_check:={'true' if on else 'false'}", f"approach:={a.approach}",
                   f"depth_fallback:={'true' if fallback else 'false'}",
                   *a.node_param,
                   *(f"{k}:={v}" for k, v in decode.items()))
    check = depth_check_settings(a.depth_check_set) if on else None
    try:
        source = make_source(name, SourceOptions(a.checkpoint, a.device, a.node_timeout,
                                                 node_params, str(out), a.node_depth_lead,
                                                 a.node_rate, tuple(decode.items()), check,
                                                 a.approach, fallback))
    except (ValueError, OSError, RuntimeError) as e:
        raise ValueError(str(e).splitlines()[0] if str(e) else type(e).__name__) from None
    try:
        return run_bench(cfg, source, out, progress=not a.quiet)
    finally:
        source.close()


SUBCOMMANDS = {"label": (label_main, "physics-labelled data in the GraspNet layout"),
               "bench": (bench_main, "the pick benchmark (success, clearance, latency)"),
               "show": (show_main, "render one scene to a PNG")}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: vita-grasp sim <command> [options]   (vita-grasp sim <command> --help)\n\n"
              "commands:\n" + "\n".join(f"  {k:<6} {v[1]}" for k, v in SUBCOMMANDS.items()))
        return 0 if argv else 2
    if argv[0] not in SUBCOMMANDS:
        return _fail("vita-grasp sim", f"unknown command {argv[0]!r}; use one of "
                                       f"{', '.join(SUBCOMMANDS)}")
    return SUBCOMMANDS[argv[0]][0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
