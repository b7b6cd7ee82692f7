"""``vita-grasp synth`` and ``vita-grasp data check|show``.

Both entry points take an argv list without the subcommand and return an exit code; the project's
:mod:`vita_grasp_core.cli` dispatches to them. Without it: ``python -m vita_grasp_core.cli.data
synth ...`` / ``python -m vita_grasp_core.cli.data data check ROOT``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from ..choices import CAMERAS, DEFAULT_CAMERA, format_choices
from ..cli_errors import one_line_errors


def _int_list(text: str) -> list[int]:
    """``"0,1,100"`` or ``"0-3,100"`` -> [0, 1, 2, 3, 100]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(int(part))
    return out


def _size(text: str) -> tuple[int, int]:
    h, w = (int(v) for v in text.lower().replace("x", ",").split(","))
    return h, w


# --------------------------------------------------------------------------- synth
@one_line_errors("vita-grasp synth")
def synth_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="vita-grasp synth",
        description="Write a synthetic data set in the GraspNet-1Billion layout "
                    "(scenes/scene_XXXX/<camera>/{rgb,depth,label,rect}, camK.npy): tabletop "
                    "scenes with 3-8 objects, 1280x720 rgb, uint16 depth in mm, instance labels "
                    "and thousands of scored grasp rectangles per frame. Deterministic per seed.",
        epilog="Example: vita-grasp synth --out data/synth --scenes 2 --frames 8 --seed 0; "
               "spread scenes over the GraspNet splits with --scene-ids 0,1,100,130.")
    p.add_argument("--out", required=True, type=Path, help="data set root to write (created)")
    p.add_argument("--scenes", type=int, default=2, help="number of scenes (default 2)")
    p.add_argument("--frames", type=int, default=8, help="frames (views) per scene (default 8)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--camera", choices=CAMERAS, default=DEFAULT_CAMERA,
                   help="camera folder and intrinsics (default kinect)")
    p.add_argument("--first-scene", type=int, default=0,
                   help="id of the first scene; scenes are numbered consecutively from it "
                        "(train 0-99, test_seen 100-129, test_similar 130-159, "
                        "test_novel 160-189)")
    p.add_argument("--scene-ids", type=_int_list, default=None,
                   help="explicit scene ids, e.g. '0,1,100,130' or '0-3' (overrides --scenes and "
                        "--first-scene)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    from ..data.synth import synthesize

    try:
        s = synthesize(a.out, a.scenes, a.frames, a.seed, a.camera, a.first_scene, a.scene_ids,
                       progress=not a.quiet)
    except ValueError as e:
        print(f"vita-grasp synth: {e}", file=sys.stderr)
        return 2
    lo, med, hi = s["rects_per_frame"]
    print(f"wrote {len(s['scenes'])} scenes x {s['frames']} frames ({s['camera']}) to {s['root']} "
          f"in {s['seconds']:.1f} s: scenes {s['scenes']}, {s['rects']} rectangles "
          f"(per frame min {lo} / median {med:g} / max {hi})")
    return 0


# --------------------------------------------------------------------------- data check
def check_dataset(root, camera: str = DEFAULT_CAMERA, full: bool = False, scenes=None, split=None,
                  progress: bool | None = None, format: str = "auto") -> dict:
    """Read every grasp file and every png header (``full``: decode every png) of a data set.

    Returns a dict: ``format``, ``root``, ``camera``, ``scenes_found`` / ``scenes`` (GraspNet:
    selected ids on disk / with a usable frame), ``frames_found``, ``frames_usable``,
    ``rects_total``, ``rects_per_frame`` (min, median, max over usable frames), ``problems``
    (kind -> files, scan and check), ``examples`` (kind -> up to 3 paths), ``rows_skipped`` and
    ``summary`` (:func:`~vita_grasp_core.data.summary.summarize`). Raises ``ValueError`` /
    ``FileNotFoundError`` for a root that is not a data set.
    """
    from ..data.common import FaultLog
    from ..data.formats import get_format, scan_dataset
    from ..data.summary import summarize

    res = scan_dataset(root, format, camera=camera, scenes=scenes, split=split)
    log = FaultLog()
    log.merge(res.faults)
    s = summarize(res.frames, full=full, faults=log,
                  progress=sys.stderr.isatty() if progress is None else bool(progress))
    r = s["rects_per_frame"]
    return {
        "format": res.format, "root": res.root,
        "camera": camera if get_format(res.format).scenes else None,
        "scenes_found": res.scene_ids, "scenes": s["usable_scenes"],
        "frames_found": res.found, "frames_usable": s["frames_usable"],
        "rects_total": s["rects_total"],
        "rects_per_frame": [r["min"], r["median"], r["max"]] if r else None,
        "problems": s["problems"], "examples": s["examples"],
        "rows_skipped": s["rows_skipped"], "summary": s,
    }


def _ranges(ids) -> str:
    if not ids:
        return "none"
    out, start, prev = [], ids[0], ids[0]
    for s in list(ids[1:]) + [None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ", ".join(out)


def _print_check(r: dict) -> None:
    from ..data.summary import format_summary

    cam = f", camera {r['camera']}" if r["camera"] else ""
    print(f"root: {r['root']} (format {r['format']}{cam})")
    if r["camera"]:  # a layout with scenes
        print(f"scenes: {len(r['scenes'])} usable of {len(r['scenes_found'])} found "
              f"({_ranges(r['scenes'])})")
    print(f"frames: {r['frames_usable']} usable of {r['frames_found']} found")
    for line in format_summary(r["summary"]).splitlines()[1:]:
        print(line)
    if not r["problems"]:
        print("problems: none")
    else:
        print(f"problems: {sum(r['problems'].values())} files")
        for kind, n in r["problems"].items():
            rows = r["rows_skipped"].get(kind)
            what = f"{rows} rows in {n} files" if rows is not None else str(n)
            print(f"  {kind}: {what}  e.g. {', '.join(r['examples'].get(kind, []))}")


def _format_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", default="auto", choices=format_choices(),
                   help="data set layout (default auto: detected from the files)")


def _check_main(argv) -> int:
    p = argparse.ArgumentParser(
        prog="vita-grasp data check",
        description="Check a data set (GraspNet-1Billion, Cornell or Jacquard layout): count "
                    "frames and rectangles, read every grasp file and every png header "
                    "(--full decodes every png), list missing / empty / corrupt files and "
                    "skipped rectangles, and print the data summary (image sizes, widths, jaw "
                    "sizes). Exit code 1 when no frame is usable, 2 on bad arguments.")
    p.add_argument("root", type=Path, help="data set root")
    _format_arg(p)
    p.add_argument("--camera", choices=CAMERAS, default=DEFAULT_CAMERA,
                   help="GraspNet camera folder (default kinect)")
    p.add_argument("--full", action="store_true", help="decode every png fully (slower)")
    p.add_argument("--scenes", type=_int_list, default=None,
                   help="GraspNet: only these scene ids ('0-3,100')")
    p.add_argument("--split", default=None, help="GraspNet: only the scenes of this split "
                   "(train, test_seen, test_similar, test_novel, test, all)")
    p.add_argument("--strict", action="store_true", help="exit 1 on any problem, too")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    if not a.root.is_dir():
        print(f"vita-grasp data check: data set root {a.root} is not a directory",
              file=sys.stderr)
        return 2
    try:
        r = check_dataset(a.root, a.camera, a.full, a.scenes, a.split,
                          progress=False if a.quiet else None, format=a.format)
    except ValueError as e:
        if a.format == "auto" and "no known data set layout" in str(e):
            print(f"vita-grasp data check: no usable frame: {e}", file=sys.stderr)
            return 1
        print(f"vita-grasp data check: {e}", file=sys.stderr)
        return 2
    _print_check(r)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(r, indent=2))
    if r["frames_usable"] == 0:
        print("error: no usable frame", file=sys.stderr)
        return 1
    return 1 if a.strict and r["problems"] else 0


# --------------------------------------------------------------------------- data show
def _pick_frame(a, frames):
    """The frame selected by --key / --index / --scene + --frame, or an error text."""
    if a.key is not None:
        rec = next((f for f in frames if f.key == a.key), None)
        return rec, None if rec else f"no usable frame with key {a.key!r}"
    if a.index is not None:
        if not 0 <= a.index < len(frames):
            return None, f"--index {a.index} out of range: {len(frames)} usable frames"
        return frames[a.index], None
    if a.scene is None or a.frame is None:
        return None, "choose the frame with --key KEY, --index N, or --scene S --frame F"
    rec = next((f for f in frames if f.scene == a.scene and f.frame == a.frame), None)
    return rec, None if rec else (f"scene {a.scene} frame {a.frame} not found or unusable")


def _show_main(argv) -> int:
    p = argparse.ArgumentParser(
        prog="vita-grasp data show",
        description="Save a picture of one frame: its grasp rectangles (subsampled) and the five "
                    "training target maps with the owned mask, as the dataset renders them.")
    p.add_argument("root", type=Path, help="data set root")
    p.add_argument("--out", type=Path, required=True, help="output image (.png)")
    _format_arg(p)
    p.add_argument("--key", default=None, help="frame key, e.g. pcd0100, <object>/0_<id>, "
                   "kinect/s0000/f0001 (see the keys in data check --json)")
    p.add_argument("--index", type=int, default=None, help="n-th usable frame (sorted by key)")
    p.add_argument("--scene", type=int, default=None, help="GraspNet scene id (with --frame)")
    p.add_argument("--frame", type=int, default=None, help="GraspNet frame id (with --scene)")
    p.add_argument("--camera", choices=CAMERAS, default=DEFAULT_CAMERA)
    p.add_argument("--output-size", type=_size, default=(480, 640), help="map size HxW (480x640)")
    p.add_argument("--width-scale", type=float, default=0.25, help="model width_scale (0.25)")
    p.add_argument("--sigma", type=float, default=2.0, help="heatmap sigma in map px (2.0)")
    p.add_argument("--max-rects", type=int, default=300, help="rectangles drawn at most (300)")
    p.add_argument("--augment-seed", type=int, default=None,
                   help="apply the default training augmentation with this seed first")
    a = p.parse_args(argv)

    from ..data.augment import Augment
    from ..data.common import FrameFault, inside_image
    from ..data.formats import load_frame, scan_dataset
    from ..data.show import show_frame
    from ..data.targets import render_targets
    from ..geometry import Letterbox

    try:
        res = scan_dataset(a.root, a.format, camera=a.camera,
                           scenes=[a.scene] if a.scene is not None else None)
    except (ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"vita-grasp data show: {e}", file=sys.stderr)
        return 2
    rec, err = _pick_frame(a, res.frames)
    if rec is None:
        print(f"vita-grasp data show: {err} under {a.root} ({res.format}; problems: "
              f"{res.faults.summary()})", file=sys.stderr)
        return 1
    try:
        fr = load_frame(rec)
    except FrameFault as e:
        print(f"vita-grasp data show: {e}", file=sys.stderr)
        return 1
    rgb, label, g = fr.rgb, fr.label, fr.grasps
    title = (f"scene {rec.scene} frame {rec.frame} ({rec.camera})" if rec.camera
             else f"{rec.format} {rec.key}")
    if a.augment_seed is not None:
        g = g[inside_image(g, rgb.shape[:2])]
        rgb, label, g = Augment()(rgb, label, g, np.random.default_rng(a.augment_seed))
        title += f", augmented (seed {a.augment_seed})"
    lb = Letterbox.fit(rgb.shape[:2], a.output_size)
    try:
        t = render_targets(g, label, lb, a.width_scale, a.sigma)
    except ValueError as e:
        print(f"vita-grasp data show: {e}", file=sys.stderr)
        return 2
    if label is None:
        title += " [no mask: ch4 = union of rectangles]"
    out = show_frame(rgb, g, t, lb, a.out, title=title, max_rects=a.max_rects)
    print(f"wrote {out}")
    return 0


@one_line_errors("vita-grasp data", known=(ValueError,))
def data_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: vita-grasp data {check,show} ...  (GraspNet-1Billion, Cornell, Jacquard)"
             "\n\n"
             "  check ROOT   count frames/rectangles, list problems, summarise sizes "
             "(exit 1: nothing usable)\n"
             "  show ROOT    picture of a frame with its rectangles and target maps\n\n"
             "vita-grasp data <command> --help for details")
    if not argv or argv[0] in ("-h", "--help"):
        print(usage)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "check":
        return _check_main(rest)
    if cmd == "show":
        return _show_main(rest)
    print(f"vita-grasp data: unknown command {cmd!r}\n\n{usage}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """``python -m vita_grasp_core.cli.data {synth,data} ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "synth":
        return synth_main(argv[1:])
    if argv and argv[0] == "data":
        return data_main(argv[1:])
    print("usage: python -m vita_grasp_core.cli.data {synth,data} ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
