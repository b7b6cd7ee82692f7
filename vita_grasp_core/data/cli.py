"""``vita-grasp synth`` and ``vita-grasp data check|show``.

Both entry points take an argv list without the subcommand and return an exit code; the project's
``vita_grasp_core/cli.py`` dispatches to them. Without it: ``python -m vita_grasp_core.data.cli
synth ...`` / ``python -m vita_grasp_core.data.cli data check ROOT``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


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
    p.add_argument("--camera", choices=("kinect", "realsense"), default="kinect",
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
    from .synth import synthesize

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
def check_dataset(root, camera: str = "kinect", full: bool = False, scenes=None, split=None,
                  progress: bool | None = None) -> dict:
    """Read every rect file and every png header (``full``: decode every png) of a data set.

    Returns a dict: ``scenes`` (ids with at least one usable frame), ``frames_found``,
    ``frames_usable``, ``rects_total``, ``rects_per_frame`` (min, median, max over usable frames),
    ``problems`` (kind -> count), ``examples`` (kind -> up to 3 paths).
    """
    from tqdm import tqdm

    from ..grasp import graspnet_rects_to_grasps
    from .graspnet import FaultLog, FrameFault, png_header, read_png, read_rect, scan, scenes_dir
    from .targets import valid_grasp_rows

    frames, faults, ids = scan(root, camera, scenes, split, require_label=True)
    bad_keys = {(str(Path(q).parent.parent), Path(q).stem) for k, v in faults.paths.items()
                if k != "missing_camera" for q in v}
    n_found = len(frames) + len(bad_keys)
    counts, usable_scenes = [], set()
    it = tqdm(frames, desc="check", unit="frame", disable=(None if progress is None
                                                           else not progress))
    for rec in it:
        try:
            sizes = {}
            for what, path in (("rgb", rec.rgb), ("label", rec.label), ("depth", rec.depth)):
                if path is None:
                    continue
                try:
                    hdr = png_header(path)
                    sizes[what] = (hdr["height"], hdr["width"])
                    if full:
                        img = read_png(path, color=(what == "rgb"))
                        if img.shape[:2] != sizes[what]:
                            raise FrameFault("corrupt", path, "decoded size differs from header")
                except FrameFault as e:
                    if what == "depth":  # depth is optional for 2-D training: report, keep frame
                        faults.add(f"{e.kind}_depth", e.path)
                        continue
                    raise FrameFault(f"{e.kind}_{what}", e.path, e.detail) from None
            for what in ("label", "depth"):
                if what in sizes and sizes[what] != sizes["rgb"]:
                    if what == "depth":
                        faults.add("size_mismatch_depth", getattr(rec, what))
                        continue
                    raise FrameFault(f"size_mismatch_{what}", getattr(rec, what))
            try:
                raw = read_rect(rec.rect)
            except FrameFault as e:
                raise FrameFault(f"{e.kind}_rect", e.path, e.detail) from None
            with np.errstate(all="ignore"):
                g = graspnet_rects_to_grasps(raw.astype(np.float64)) if len(raw) else raw
            n_ok = int(valid_grasp_rows(g, sizes["rgb"]).sum()) if len(raw) else 0
            if n_ok == 0:
                raise FrameFault("no_rects_in_image", rec.rect)
            counts.append(n_ok)
            usable_scenes.add(rec.scene)
        except FrameFault as e:
            faults.add(e.kind, e.path)
    c = np.array(counts) if counts else np.zeros(0)
    log = FaultLog()
    log.merge(faults)
    return {
        "root": str(scenes_dir(root)), "camera": camera, "scenes_found": ids,
        "scenes": sorted(usable_scenes), "frames_found": n_found, "frames_usable": len(counts),
        "rects_total": int(c.sum()),
        "rects_per_frame": ([int(c.min()), float(np.median(c)), int(c.max())] if len(c) else None),
        "problems": log.counts(), "examples": {k: v[:3] for k, v in sorted(log.paths.items())},
    }


def _print_check(r: dict) -> None:
    def ranges(ids):
        if not ids:
            return "none"
        out, start, prev = [], ids[0], ids[0]
        for s in ids[1:] + [None]:
            if s is not None and s == prev + 1:
                prev = s
                continue
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            if s is not None:
                start = prev = s
        return ", ".join(out)

    print(f"root: {r['root']} (camera {r['camera']})")
    print(f"scenes: {len(r['scenes'])} usable of {len(r['scenes_found'])} found "
          f"({ranges(r['scenes'])})")
    print(f"frames: {r['frames_usable']} usable of {r['frames_found']} found")
    if r["rects_per_frame"]:
        lo, med, hi = r["rects_per_frame"]
        print(f"rectangles (centre inside the image): {r['rects_total']} total; per frame "
              f"min {lo} / median {med:g} / max {hi}")
    if not r["problems"]:
        print("problems: none")
    else:
        print(f"problems: {sum(r['problems'].values())}")
        for kind, n in r["problems"].items():
            print(f"  {kind}: {n}  e.g. {', '.join(r['examples'][kind])}")


def _check_main(argv) -> int:
    p = argparse.ArgumentParser(
        prog="vita-grasp data check",
        description="Check a GraspNet-layout data set: count scenes, frames and rectangles, read "
                    "every rect .npy and every png header (--full decodes every png), list "
                    "missing / empty / corrupt files. Exit code 1 when no frame is usable.")
    p.add_argument("root", type=Path, help="data set root (holding scenes/)")
    p.add_argument("--camera", choices=("kinect", "realsense"), default="kinect")
    p.add_argument("--full", action="store_true", help="decode every png fully (slower)")
    p.add_argument("--scenes", type=_int_list, default=None,
                   help="only these scene ids ('0-3,100')")
    p.add_argument("--split", default=None, help="only the scenes of this GraspNet split "
                   "(train, test_seen, test_similar, test_novel, test, all)")
    p.add_argument("--strict", action="store_true", help="exit 1 on any problem, too")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        r = check_dataset(a.root, a.camera, a.full, a.scenes, a.split,
                          progress=False if a.quiet else None)
    except ValueError as e:
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
def _show_main(argv) -> int:
    p = argparse.ArgumentParser(
        prog="vita-grasp data show",
        description="Save a picture of one frame: its grasp rectangles (subsampled) and the five "
                    "training target maps with the owned mask, as the dataset renders them.")
    p.add_argument("root", type=Path, help="data set root (holding scenes/)")
    p.add_argument("--scene", type=int, required=True, help="scene id")
    p.add_argument("--frame", type=int, required=True, help="frame id")
    p.add_argument("--out", type=Path, required=True, help="output image (.png)")
    p.add_argument("--camera", choices=("kinect", "realsense"), default="kinect")
    p.add_argument("--output-size", type=_size, default=(480, 640), help="map size HxW (480x640)")
    p.add_argument("--width-scale", type=float, default=0.25, help="model width_scale (0.25)")
    p.add_argument("--sigma", type=float, default=2.0, help="heatmap sigma in map px (2.0)")
    p.add_argument("--max-rects", type=int, default=300, help="rectangles drawn at most (300)")
    p.add_argument("--augment-seed", type=int, default=None,
                   help="apply the default training augmentation with this seed first")
    a = p.parse_args(argv)

    from ..geometry import Letterbox
    from .augment import Augment
    from .graspnet import FrameFault, load_frame, scan
    from .show import show_frame
    from .targets import render_targets

    frames, faults, _ = scan(a.root, a.camera, scenes=[a.scene], require_label=False)
    rec = next((f for f in frames if f.frame == a.frame), None)
    if rec is None:
        print(f"vita-grasp data show: scene {a.scene} frame {a.frame} ({a.camera}) not found or "
              f"unusable under {a.root} ({faults.summary()})", file=sys.stderr)
        return 1
    try:
        rgb, label, g = load_frame(rec, require_label=False)
    except FrameFault as e:
        print(f"vita-grasp data show: {e}", file=sys.stderr)
        return 1
    title = f"scene {a.scene} frame {a.frame} ({a.camera})"
    if a.augment_seed is not None:
        rgb, label, g = Augment()(rgb, label, g, np.random.default_rng(a.augment_seed))
        title += f", augmented (seed {a.augment_seed})"
    lb = Letterbox.fit(rgb.shape[:2], a.output_size)
    t = render_targets(g, label, lb, a.width_scale, a.sigma)
    if label is None:
        title += " [no label: ch4 = union of rectangles]"
    out = show_frame(rgb, g, t, lb, a.out, title=title, max_rects=a.max_rects)
    print(f"wrote {out}")
    return 0


def data_main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    usage = ("usage: vita-grasp data {check,show} ...\n\n"
             "  check ROOT   count scenes/frames/rectangles, list problems "
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
    """``python -m vita_grasp_core.data.cli {synth,data} ...``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "synth":
        return synth_main(argv[1:])
    if argv and argv[0] == "data":
        return data_main(argv[1:])
    print("usage: python -m vita_grasp_core.data.cli {synth,data} ...", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
