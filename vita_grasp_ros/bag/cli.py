"""``vita-grasp bag make|play|record|eval|info``: rosbag2 tools without ros2cli or rosbag2.

See docs/bags.md.

Options accept both spellings, ``--max_frames`` and ``--max-frames``. Exit codes: 0 success,
1 failure at run time, 2 bad arguments, an unreadable / corrupt bag or a checkpoint that cannot be
loaded (one line on stderr that names the file, no traceback), 130 interrupted.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time

from vita_grasp_core.choices import CAMERAS, DEFAULT_CAMERA
from vita_grasp_core.decoding_settings import DECODE_FIELDS, DecodeConfig, decode_arguments
from vita_grasp_core.fileio import os_error_text

from .types import (
    DEPTH_TOPIC,
    FRAME_ID,
    GT_TOPIC,
    IMAGE_TOPIC,
    INFO_TOPIC,
    PRED_TOPIC,
    STORAGES,
    BagError,
)

PROG = "vita-grasp bag"


def _opt(name: str) -> list[str]:
    """``"max_frames"`` -> ``["--max_frames", "--max-frames"]``."""
    names = [f"--{name}"]
    if "_" in name:
        names.append(f"--{name.replace('_', '-')}")
    return names


def _csv_ints(s: str) -> list[int]:
    out = []
    for part in s.split(","):
        part = part.strip()
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="Make, play, record, evaluate and inspect "
                                "rosbag2 files (.mcap/.db3) for VITA-Grasp. See docs/bags.md.")
    sub = p.add_subparsers(dest="cmd", metavar="{make,play,record,eval,info}")
    sub.required = True

    m = sub.add_parser("make", help="data set (GraspNet, Cornell or Jacquard layout) -> "
                       "evaluation bag (images, camera info, depth, ground-truth grasps)")
    m.add_argument(*_opt("dataset_root"), required=True,
                   help="data set root: GraspNet-1Billion, Cornell or Jacquard layout")
    m.add_argument("--format", default="auto",
                   help="data set layout: auto (default: detected), graspnet, cornell, jacquard")
    m.add_argument("--split", help="GraspNet: train | test_seen | test_similar | test_novel | "
                   "test | all")
    m.add_argument("--scenes", type=_csv_ints, help="GraspNet scene ids, e.g. 0,1 or 100-103")
    m.add_argument("--out", required=True, help="x.mcap / x.db3 (single file) or a directory")
    m.add_argument("--storage", choices=STORAGES, help="for directory outputs (default mcap)")
    m.add_argument("--camera", default=DEFAULT_CAMERA, choices=CAMERAS,
                   help="GraspNet camera folder and default intrinsics")
    m.add_argument("--rate", type=float, default=5.0, help="frames per second (default 5)")
    m.add_argument("--compressed", action="store_true",
                   help="JPEG CompressedImage on <image_topic>/compressed instead of rgb8")
    m.add_argument(*_opt("jpeg_quality"), type=int, default=90)
    m.add_argument(*_opt("max_frames"), type=int)
    m.add_argument(*_opt("image_topic"), default=IMAGE_TOPIC)
    m.add_argument(*_opt("info_topic"), default=INFO_TOPIC)
    m.add_argument(*_opt("depth_topic"), default=DEPTH_TOPIC, help="'' to leave depth out")
    m.add_argument(*_opt("gt_topic"), default=GT_TOPIC)
    m.add_argument(*_opt("frame_id"), default=FRAME_ID)
    m.add_argument(*_opt("start_time"), type=float, default=None,
                   help="first header stamp [s since epoch] (default 1700000000, fixed)")
    m.add_argument("--force", action="store_true", help="overwrite an existing output")
    m.add_argument("--quiet", action="store_true")

    pl = sub.add_parser("play", help="publish a bag with rclpy at the recorded timing")
    pl.add_argument("bag")
    pl.add_argument("--rate", type=float, default=1.0, help="speed factor (default 1)")
    pl.add_argument("--remap", nargs="+", default=[], metavar="FROM:=TO")
    pl.add_argument("--topics", nargs="+", help="only these bag topics")
    pl.add_argument("--loop", action="store_true", help="replay until Ctrl-C")
    pl.add_argument("--clock", type=float, nargs="?", const=40.0, default=0.0, metavar="HZ",
                    help="publish /clock (rosgraph_msgs/Clock) from the bag's time line for "
                    "use_sim_time nodes, HZ times a second (default 40) and before every message")
    pl.add_argument("--qos", choices=("reliable", "best_effort", "bag"), default="reliable")
    pl.add_argument(*_opt("qos_depth"), type=int, default=10)
    pl.add_argument(*_opt("wait_for_subscribers"), type=int, default=0, metavar="N",
                    help="wait until each topic (or --wait-topics) has N subscriptions")
    pl.add_argument(*_opt("wait_topics"), nargs="+", help="topics --wait-for-subscribers checks")
    pl.add_argument(*_opt("wait_timeout"), type=float, default=10.0)
    pl.add_argument("--delay", type=float, default=0.0, help="seconds to sleep before playing")
    pl.add_argument(*_opt("ack_timeout"), type=float, default=5.0,
                    help="max seconds to wait at the end for reliable subscribers to ack")
    pl.add_argument("--quiet", action="store_true")

    r = sub.add_parser("record", help="subscribe to topics and write a bag")
    r.add_argument("--topics", nargs="+", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--types", nargs="+", default=[], metavar="TYPE|TOPIC:=TYPE",
                   help="message types (pkg/msg/Type) in --topics order, or TOPIC:=TYPE pairs; "
                   "otherwise discovered from the graph")
    r.add_argument("--storage", choices=STORAGES)
    r.add_argument("--duration", type=float, help="stop after S seconds")
    r.add_argument(*_opt("max_messages"), type=int, help="stop after N messages (all topics)")
    r.add_argument(*_opt("idle_timeout"), type=float,
                   help="stop S seconds after the last message (once one arrived)")
    r.add_argument("--qos", choices=("auto", "reliable", "best_effort"), default="auto")
    r.add_argument(*_opt("qos_depth"), type=int, default=100)
    r.add_argument("--force", action="store_true", help="overwrite an existing output")
    r.add_argument(*_opt("flush_interval"), type=float, default=0.5, metavar="S",
                   help="hand what was received to the OS every S seconds (0: every message), "
                        "so `bag recover` can rebuild a killed recording (default 0.5)")
    r.add_argument("--quiet", action="store_true")

    rc = sub.add_parser("recover", help="rebuild the bag of a killed `bag record`")
    rc.add_argument("path", help="the .NAME.partial-PID folder beside the output, or the output "
                                 "name the killed recorder was writing")
    rc.add_argument("--out", help="the bag to write (default: the name it was going to have)")
    rc.add_argument("--force", action="store_true", help="overwrite an existing --out")
    rc.add_argument("--keep", action="store_true", help="keep the partial folder")

    e = sub.add_parser("eval", help="accuracy / latency / drops of grasps against a bag's GT")
    e.add_argument("--bag", required=True, help="the bag with ground truth (from bag make)")
    src = e.add_mutually_exclusive_group(required=True)
    src.add_argument("--predictions", help="online: bag recorded from the node's output")
    src.add_argument("--checkpoint", help="offline: run this checkpoint over the bag's images")
    e.add_argument(*_opt("gt_topic"), default=GT_TOPIC)
    e.add_argument(*_opt("pred_topic"), default=PRED_TOPIC)
    e.add_argument(*_opt("image_topic"), default=IMAGE_TOPIC)
    e.add_argument(*_opt("info_topic"), default=INFO_TOPIC)
    e.add_argument(*_opt("latency_ref"), default="auto",
                   help="auto | input | stamp | none | /topic (see docs/bags.md)")
    e.add_argument("--device", default="auto")
    e.add_argument(*_opt("pretrained_model"), metavar="DIR",
                   help="offline: local encoder weights (hub id or directory) instead of the "
                   "reference stored in the checkpoint")
    for f in DECODE_FIELDS:
        e.add_argument(*_opt(f.name), dest=f.name, type=f.type, default=None,
                       help=f"offline decoding: {f.description} Default: the checkpoint's "
                       f"setting, else {f.default}.")
    e.add_argument("--out", help="directory for eval.json and plots")
    e.add_argument("--json", action="store_true", help="print the summary as JSON")
    e.add_argument("--quiet", action="store_true")

    i = sub.add_parser("info", help="topics, types, counts, duration of a bag")
    i.add_argument("bag")
    i.add_argument("--json", action="store_true")
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"make": cmd_make, "play": cmd_play, "record": cmd_record, "eval": cmd_eval,
                "info": cmd_info, "recover": cmd_recover}[args.cmd](args)
    except (BagError, ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"{PROG} {args.cmd}: error: {e}", file=sys.stderr)
        return 2
    except ImportError as e:  # make / play / record without the ROS 2 Python packages
        print(f"{PROG} {args.cmd}: error: needs the ROS 2 Python packages ({e}); run "
              "`make setup` or source ROS 2", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full disk, a path through a file ...
        print(f"{PROG} {args.cmd}: error: {os_error_text(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG} {args.cmd}: interrupted", file=sys.stderr)
        return 130


# --------------------------------------------------------------------------- make / info / eval
def cmd_make(a) -> int:
    from .make import DEFAULT_START_TIME, BagLayout, FrameSelection, make_bag

    sel = FrameSelection(format=a.format, scenes=a.scenes, split=a.split, camera=a.camera,
                         max_frames=a.max_frames)
    lay = BagLayout(storage=a.storage, rate=a.rate, compressed=a.compressed,
                    jpeg_quality=a.jpeg_quality, image_topic=a.image_topic,
                    info_topic=a.info_topic, depth_topic=a.depth_topic or None,
                    gt_topic=a.gt_topic, frame_id=a.frame_id,
                    start_time=DEFAULT_START_TIME if a.start_time is None else a.start_time)
    s = make_bag(a.dataset_root, a.out, sel, lay, overwrite=a.force, progress=not a.quiet)
    src = f"scenes {s['scenes']}" if s["scenes"] else f"a {s['format']} data set"
    print(f"wrote {s['path']} ({s['storage']}): {s['frames']} frames at {s['rate']:g} Hz from "
          f"{src}, {s['gt_rects']} GT rectangles, {s['seconds']:.1f} s")
    for t, n in s["topics"].items():
        print(f"  {t}: {n}")
    if s["skipped"]:
        print(f"  skipped: {s['skipped']}")
    return 0


def bag_info(path) -> dict:
    from .io import open_bag

    with open_bag(path) as r:
        topics = r.topics()
        return {"path": str(path), "storage": r.storage, "messages": r.message_count,
                "start_ns": r.start_time, "duration_s": r.duration / 1e9,
                "topics": [{"topic": t.topic, "type": t.msgtype, "count": t.count,
                            "reliability": t.qos[0].reliability.name.lower() if t.qos else None}
                           for t in topics.values()]}


def cmd_info(a) -> int:
    info = bag_info(a.bag)
    if a.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"Files:       {info['path']}\nStorage:     {info['storage']}\n"
          f"Duration:    {info['duration_s']:.3f} s\nStart:       {info['start_ns'] / 1e9:.3f} s"
          f"\nMessages:    {info['messages']}\nTopics:")
    w = max([len(t["topic"]) for t in info["topics"]] + [5])
    for t in info["topics"]:
        print(f"  {t['topic']:<{w}}  {t['type']:<34} {t['count']:>7}  {t['reliability'] or ''}")
    return 0


def cmd_eval(a) -> int:
    from vita_grasp_core.checkpoint import CheckpointError

    from .evaluate import BagTopics, evaluate_bag, format_table, write_outputs

    decode = decode_arguments(a)
    DecodeConfig().replace(**decode)  # bad values: one line, exit 2, before anything loads
    if a.predictions and (decode or a.pretrained_model):
        raise ValueError("decoding options and --pretrained_model apply to --checkpoint "
                         "(offline) only")
    try:
        res = evaluate_bag(a.bag, a.predictions, a.checkpoint,
                           topics=BagTopics(a.gt_topic, a.pred_topic, a.image_topic,
                                            a.info_topic),
                           latency_ref=a.latency_ref, decode=decode,
                           load_options={"device": a.device,
                                         "pretrained_model": a.pretrained_model},
                           progress=not a.quiet)
    except CheckpointError as e:
        print(f"{PROG} eval: error: {e}", file=sys.stderr)
        return 2
    if a.out:
        files = write_outputs(res, a.out)
        res["files"] = files
    if a.json:
        print(json.dumps({k: v for k, v in res.items() if k != "per_frame"}, indent=2))
    else:
        print(format_table(res))
        if a.out:
            print(f"  wrote {', '.join(res['files'].values())}")
    return 0


# --------------------------------------------------------------------------- ROS commands
def _init_ros(name: str):
    """rclpy context + node without rclpy's own SIGINT handling (we stop cleanly ourselves)."""
    try:
        import rclpy
        from rclpy.signals import SignalHandlerOptions
    except ImportError as e:
        raise ValueError(f"rclpy is not importable ({e}); run `make setup` or source "
                         "ROS 2") from None
    rclpy.init(args=[name], signal_handler_options=SignalHandlerOptions.NO)
    return rclpy, rclpy.create_node(name.replace("-", "_"))


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event, reason: dict):
    """While inside: SIGINT / SIGTERM set ``stop`` and ``reason["why"]`` (the signal's name)
    instead of raising KeyboardInterrupt wherever the main thread happens to be (one raised
    inside a destructor or a callback is swallowed, and the command would never stop)."""
    def on_signal(signum, _frame):
        reason["why"] = signal.Signals(signum).name
        stop.set()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def cmd_play(a) -> int:
    from .io import open_bag
    from .play import PlayOptions, PlayStats, parse_remaps, play

    remaps = parse_remaps(a.remap)
    if a.clock < 0:
        raise ValueError(f"--clock must be a frequency >= 0 Hz, got {a.clock:g}")
    opts = PlayOptions(rate=a.rate, remaps=remaps, topics=a.topics, loop=a.loop,
                       clock_hz=a.clock, qos=a.qos, qos_depth=a.qos_depth,
                       wait_for_subscribers=a.wait_for_subscribers,
                       wait_topics=a.wait_topics, wait_timeout=a.wait_timeout,
                       delay=a.delay, ack_timeout=a.ack_timeout, progress=not a.quiet)
    opts.check()
    with open_bag(a.bag):  # fail fast (exit 2) before touching ROS
        pass
    log = (lambda *x, **k: None) if a.quiet else (lambda m: print(m, file=sys.stderr))
    st = PlayStats()
    stop, reason = threading.Event(), {}
    with _stop_on_signals(stop, reason):
        rclpy, node = _init_ros("vita_grasp_bag_play")
        try:
            play(a.bag, node, opts, log=log, stop=stop, stats=st)
        except KeyboardInterrupt:
            st.interrupted = True  # reported below (exit 130)
        finally:
            node.destroy_node()
            rclpy.try_shutdown()
    st.interrupted = st.interrupted or bool(reason)
    print(f"played {st.total} messages in {st.seconds:.2f} s ({st.loops} loop(s)); "
          + ", ".join(f"{t}: {n}" for t, n in st.published.items())
          + (f"; {st.clock_published} /clock messages" if st.clock_published else "")
          + (f"; not acknowledged by every subscriber: {st.unacked}" if st.unacked else "")
          + ("; interrupted" if st.interrupted else ""))
    return (143 if reason.get("why") == "SIGTERM" else 130) if st.interrupted else 0


def _parse_types(topics, items) -> dict[str, str]:
    out = {}
    pairs = [i for i in items if ":=" in i]
    plain = [i for i in items if ":=" not in i]
    if plain and len(plain) != len(topics):
        raise ValueError(f"--types: give one type per topic ({len(topics)}) or TOPIC:=TYPE pairs")
    if plain:
        out.update(zip(topics, plain, strict=True))
    for i in pairs:
        t, ty = i.split(":=", 1)
        out[t] = ty
    return out


def cmd_recover(a) -> int:
    from .recover import recover

    res = recover(a.path, a.out, overwrite=a.force, keep=a.keep)
    counts = ", ".join(f"{t} {n}" for t, n in res.counts.items()) or "none"
    print(f"wrote {res.path}: {res.total} messages ({counts})" + (
        f"; {res.dropped_bytes} bytes of an incomplete last record dropped"
        if res.dropped_bytes else "") + (f"; removed {res.source}" if res.source and not a.keep
                                         else ""))
    return 0


def _record_limit(a, rec, elapsed: float, now: float) -> str | None:
    """Which stop condition of ``bag record`` is met (``duration``, ``max_messages``,
    ``idle_timeout``), or ``None``."""
    if a.duration is not None and elapsed >= a.duration:
        return "duration"
    if a.max_messages is not None and rec.total >= a.max_messages:
        return "max_messages"
    if (a.idle_timeout is not None and rec.last_monotonic is not None
            and now - rec.last_monotonic >= a.idle_timeout):
        return "idle_timeout"
    return None


def _note_stale_partials(out) -> None:
    from .partials import stale_partials

    for old_partial in stale_partials(out):
        print(f"note: {old_partial} holds an interrupted recording: `vita-grasp bag recover "
              f"{old_partial}` rebuilds it", file=sys.stderr)


def cmd_record(a) -> int:
    from .record import check_record_options

    check_record_options(a)

    topics = [t if t.startswith("/") else "/" + t for t in a.topics]
    types = {(t if t.startswith("/") else "/" + t): ty
             for t, ty in _parse_types(a.topics, a.types).items()}
    stop = threading.Event()
    reason = {"why": "end"}
    with _stop_on_signals(stop, reason):
        return _record(a, topics, types, stop, reason)


def _record(a, topics, types, stop, reason) -> int:
    from .record import Recorder

    rclpy, node = _init_ros("vita_grasp_bag_record")
    from rclpy.executors import SingleThreadedExecutor

    ex = SingleThreadedExecutor()
    ex.add_node(node)
    rec = None
    try:
        _note_stale_partials(a.out)
        rec = Recorder(node, a.out, topics, types=types, storage=a.storage, depth=a.qos_depth,
                       qos=a.qos, overwrite=a.force, flush_interval=a.flush_interval)
        say = (lambda m: None) if a.quiet else (lambda m: print(m, flush=True))
        say(f"recording {' '.join(topics)} -> {rec.path}")
        announced: set[str] = set()
        t0 = time.monotonic()
        last_poll = last_status = 0.0
        while not stop.is_set() and rec.failed is None:
            ex.spin_once(timeout_sec=0.05)
            now = time.monotonic()
            if now - last_poll > 0.25:
                last_poll = now
                rec.poll()
                rec.flush()
                matched = rec.matched()
                for t in rec.subscriptions:
                    if t not in announced and matched.get(t):
                        announced.add(t)
                        say(f"subscribed {t} ({matched[t]} publisher(s) matched)")
            why = _record_limit(a, rec, now - t0, now)
            if why:
                reason["why"] = why
                break
            if not a.quiet and now - last_status > 2.0:
                last_status = now
                print(f"  {rec.total} messages: " + ", ".join(f"{t} {n}" for t, n in
                                                               rec.counts.items()),
                      file=sys.stderr, flush=True)
    finally:
        try:
            path = rec.close() if rec is not None else None  # BagError: a full disk
        finally:
            ex.shutdown()
            node.destroy_node()
            rclpy.try_shutdown()
    if rec is not None:
        print(f"wrote {path}: {rec.total} messages (" + ", ".join(f"{t} {n}" for t, n in
                                                                rec.counts.items())
              + f"); stopped by {reason['why']}" + (f"; never seen: {rec.pending}"
                                                    if rec.pending else ""))
    return 0
