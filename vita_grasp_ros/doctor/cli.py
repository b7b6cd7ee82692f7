"""``vita-grasp doctor``: is this camera set up the way the grasp node needs it?

Checks a rosbag2 (``vita-grasp doctor BAG``) or live topics (``vita-grasp doctor``): encodings,
rates, stamps and frame ids in step, intrinsics, exposure, depth unit, depth registered to
colour, the table plane (distance, tilt) and, with ``--checkpoint``, the grasps of a model. Prints
a table (pass / warn / fail, each with a one-line fix) and writes an overlay picture. See
docs/ros.md, "Camera check".

Exit status: 0 every check passed (or only warnings with ``--fail-on fail``); 1 a check warned
or failed; 2 bad arguments, an unreadable bag or checkpoint; 130 interrupted.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

PROG = "vita-grasp doctor"
DEFAULT_OVERLAY = "doctor_overlay.png"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=PROG, description="Check a camera for the grasp node: on a rosbag2 file or on live "
        "topics. Topics default to the Azure Kinect names (/rgb/image_raw, "
        "/depth_to_rgb/image_raw, /rgb/camera_info) when present, else are found by type and "
        "name. Exit status: 0 all checks passed, 1 a check warned or failed (see --fail-on), 2 "
        "bad arguments. See docs/ros.md, 'Camera check'.")
    p.add_argument("bag", nargs="?", help="rosbag2 file (.mcap, .db3) or directory; without it "
                   "the live topics are checked")
    p.add_argument("--image", help="colour topic (sensor_msgs/Image or CompressedImage)")
    p.add_argument("--depth", help="depth topic registered to colour ('' = no depth)")
    p.add_argument("--camera-info", "--camera_info", dest="camera_info",
                   help="CameraInfo topic of the colour camera (default: the one beside the "
                   "image topic)")
    p.add_argument("--duration", type=float, default=3.0,
                   help="live: seconds to collect after the first colour frame (default 3)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="live: seconds to wait for the first colour frame (default 10)")
    p.add_argument("--frames", type=int, default=5,
                   help="frames decoded for the image checks, spread over the time span "
                   "(default 5)")
    p.add_argument("--max-frames", "--max_frames", dest="max_frames", type=int, default=600,
                   help="bag: read at most this many colour frames (default 600)")
    p.add_argument("--depth-tolerance", "--depth_tolerance", dest="depth_tolerance",
                   type=float, default=0.05, help="largest |depth stamp - colour stamp| [s] "
                   "(the node's depth_tolerance, default 0.05)")
    p.add_argument("--checkpoint", help="also run this model on a frame: grasps on the "
                   "overlay, a 'grasps' check with their 3-D poses")
    p.add_argument("--device", default="auto", help="device for --checkpoint (default auto)")
    p.add_argument("--overlay", default=DEFAULT_OVERLAY, help="picture to write (default "
                   f"{DEFAULT_OVERLAY}; '' for none)")
    p.add_argument("--json", metavar="FILE", help="also write the verdicts as JSON ('-' = "
                   "stdout instead of the table)")
    p.add_argument("--fail-on", "--fail_on", dest="fail_on", choices=("warn", "fail"),
                   default="warn", help="exit 1 when a check reaches this status (default "
                   "warn)")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    return p


def _validate(a) -> None:
    for name in ("duration", "timeout", "depth_tolerance"):
        v = getattr(a, name)
        if not v >= 0 or v != v or v == float("inf"):
            raise ValueError(f"--{name.replace('_', '-')} must be a finite number >= 0, got {v}")
    for name, hi in (("frames", 50), ("max_frames", 1_000_000)):
        v = getattr(a, name)
        if not 1 <= v <= hi:
            raise ValueError(f"--{name.replace('_', '-')} must be 1-{hi}, got {v}")
    if a.duration > 600 or a.timeout > 3600:
        raise ValueError("--duration is at most 600 s and --timeout at most 3600 s")
    if a.depth_tolerance > 1.0:  # the node's depth_tolerance range
        raise ValueError(f"--depth-tolerance is at most 1 s (the node's range), got "
                         f"{a.depth_tolerance:g}")
    if a.overlay and Path(a.overlay).suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise ValueError(f"--overlay must end in .png or .jpg, got {a.overlay!r}")
    if a.bag is not None and not Path(a.bag).exists():
        raise ValueError(f"{a.bag}: no such bag file or directory")


def _live(a, log):
    from ..bag.cli import _init_ros
    from .sources import collect_live

    rclpy, node = _init_ros("vita_grasp_doctor")
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor()
    ex.add_node(node)
    try:
        return collect_live(node, ex, image=a.image, depth=a.depth, info=a.camera_info,
                            duration=a.duration, timeout=a.timeout, samples=a.frames, log=log)
    finally:
        ex.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()


def _predict_fn(a):
    if not a.checkpoint:
        return None
    from vita_grasp_core.predictor import load_predictor

    predictor = load_predictor(a.checkpoint, device=a.device)
    return lambda rgb: predictor.predict(rgb).grasps


def _write_overlay(report, path: str) -> str | None:
    import cv2

    from vita_grasp_core.camera_check.overlay import render_overlay
    from vita_grasp_core.fileio import atomic_write

    img = render_overlay(report)
    if img is None:
        return None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)

    def write(tmp: Path):
        ok, buf = cv2.imencode(out.suffix.lower(), bgr)
        if not ok:
            raise ValueError(f"cannot encode {out}")
        tmp.write_bytes(buf.tobytes())

    atomic_write(out, write)
    return str(out)


def run(a, log) -> int:
    from vita_grasp_core.camera_check import exit_status, format_table, run_checks

    from ..image_conversions import COLOR_ENCODINGS, DEPTH_ENCODINGS
    from .sources import read_bag

    predict = _predict_fn(a)  # a bad checkpoint: exit 2 before reading anything
    if a.bag is not None:
        log(f"reading {a.bag}")
        rec = read_bag(a.bag, image=a.image, depth=a.depth, info=a.camera_info,
                       samples=a.frames, max_frames=a.max_frames,
                       progress=not a.quiet and a.json != "-")
    else:
        log(f"waiting up to {a.timeout:g} s for the colour topic, then collecting for "
            f"{a.duration:g} s")
        rec = _live(a, log)
    log(f"checking {', '.join(f'{r} {t}' for r, t in rec.topics.items() if t)}")
    report = run_checks(rec, color_encodings=COLOR_ENCODINGS + ("jpeg", "png"),
                        depth_encodings=DEPTH_ENCODINGS, depth_tolerance=a.depth_tolerance,
                        predict=predict)
    status = exit_status(report.verdicts, a.fail_on)
    written = _write_overlay(report, a.overlay) if a.overlay else None
    result = dict(report.as_dict(), exit_status=status, overlay=written)
    if a.json and a.json != "-":
        Path(a.json).write_text(json.dumps(result, indent=2, default=float) + "\n")
    if a.json == "-":
        print(json.dumps(result, indent=2, default=float))
    else:
        print(f"{PROG}: {rec.source} ({rec.duration_s:.1f} s, {len(rec.samples)} frames "
              "decoded)")
        print(format_table(report.verdicts))
        if written:
            print(f"overlay: {written}")
    return status


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    log = (lambda m: None) if a.quiet or a.json == "-" else \
        (lambda m: print(m, file=sys.stderr, flush=True))
    try:
        _validate(a)
        return run(a, log)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except ImportError as e:
        print(f"{PROG}: error: needs the ROS 2 Python packages ({e}); run `make setup` or "
              "source ROS 2", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - sorted below: known input errors exit 2
        from vita_grasp_core.checkpoint import CheckpointError

        from ..bag.types import BagError

        if isinstance(e, (ValueError, BagError, CheckpointError, OSError)):
            print(f"{PROG}: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
