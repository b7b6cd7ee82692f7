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


def _ids(text: str) -> list[int]:
    """``"0-99"``, ``"0,5,7"``, ``"100-119,200"`` -> ids."""
    from ..data.cli import _int_list

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
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    from . import SimUnavailable, pybullet
    from .camera import parse_image_size
    from .label import LabelSettings, label_dataset
    from .objects import parse_object_set

    prog = "vita-grasp sim label"
    try:
        names = parse_object_set(a.objects)
        size = parse_image_size(a.image_size)
        pybullet()
    except (ValueError, SimUnavailable) as e:
        return _fail(prog, str(e))
    for name, v, lo, hi in (("--views", a.views, 1, 1000), ("--candidates", a.candidates, 1,
                                                              1000), ("--workers", a.workers, 1,
                                                                      64)):
        if not lo <= v <= hi:
            return _fail(prog, f"{name} must be in {lo}..{hi}, got {v}")
    settings = LabelSettings(tuple(names), a.objects, a.seed, a.views, a.candidates, a.kind,
                             a.tray, size)
    try:
        s = label_dataset(a.out, settings, a.scenes, workers=a.workers, progress=not a.quiet)
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
    from . import SimError, SimUnavailable, pybullet
    from .camera import SimCamera, parse_image_size
    from .episode import random_view, scene_spec
    from .objects import parse_object_set

    prog = "vita-grasp sim show"
    try:
        names = parse_object_set(a.objects)
        size = parse_image_size(a.image_size)
        pybullet()
    except (ValueError, SimUnavailable) as e:
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


SUBCOMMANDS = {"label": (label_main, "physics-labelled data in the GraspNet layout"),
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
