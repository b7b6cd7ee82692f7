"""Checks on the message streams (headers only): topics present, encodings, rates, stamps in
step, frame ids, intrinsics. Each returns a :class:`~.verdict.Verdict`."""
from __future__ import annotations

from collections import Counter

import numpy as np

from ..grasp3d import check_distortion
from ..grasp3d import check_intrinsics as intrinsics_problem
from .recording import COLOR, DEPTH, INFO, Recording
from .verdict import FAIL, PASS, SKIP, WARN, Verdict, verdict

#: Default largest |depth stamp - colour stamp| [s] (the node's ``depth_tolerance`` default).
DEPTH_TOLERANCE = 0.05
#: A period longer than this many median periods counts as a gap (frames lost on the way).
GAP_FACTOR = 1.8
#: Fraction of gaps above which the rate check warns.
MAX_GAP_FRACTION = 0.1
#: |receive time - stamp| [s] above which the camera's clock is called out of step.
MAX_CLOCK_OFFSET = 1.0
#: Fractions of colour frames with a depth frame in tolerance: pass at or above the first,
#: warn at or above the second, fail below.
SYNC_PASS, SYNC_WARN = 0.9, 0.5
#: A depth frame other than the stamp-paired one must fit the colour edges better by this much
#: (mean closeness, 0-1) to count as the frame that belongs to the colour frame.
CONTENT_MARGIN = 0.1
#: Image corners moved by more than this fraction of the width by the lens distortion: the
#: image is not rectified.
MAX_DISTORTION = 0.01

_DEPTH_FIX = ("start the depth stream registered to colour (Azure Kinect: depth_enabled, "
              "/depth_to_rgb/image_raw; RealSense: align_depth.enable:=true) or name it with "
              "--depth")


def check_topics(rec: Recording) -> Verdict:
    """Colour frames must arrive; depth and CameraInfo are needed for 3-D poses."""
    t, n = rec.topics, {r: rec.count(r) for r in (COLOR, DEPTH, INFO)}
    counts = ", ".join(f"{r} {n[r]}" for r in (COLOR, DEPTH, INFO) if t.get(r))
    span = f" in {rec.duration_s:.1f} s" if rec.duration_s else ""
    if not t.get(COLOR) or n[COLOR] == 0:
        where = f"on {t[COLOR]}" if t.get(COLOR) else "(no colour image topic found)"
        return verdict("topics", FAIL, f"no colour frames {where}{span}",
                       "check the topic name (ros2 topic list, vita-grasp bag info) and pass "
                       "--image TOPIC")
    if not t.get(DEPTH) or n[DEPTH] == 0:
        what = f"no messages on {t[DEPTH]}" if t.get(DEPTH) else "no depth topic"
        return verdict("topics", WARN, f"{counts} messages{span}; {what}: grasps get no 3-D "
                       "pose", _DEPTH_FIX, counts=n)
    if not t.get(INFO) or n[INFO] == 0:
        what = f"no messages on {t[INFO]}" if t.get(INFO) else "no CameraInfo topic"
        return verdict("topics", FAIL, f"{counts} messages{span}; {what}: depth cannot become "
                       "3-D poses without intrinsics", "publish the colour camera's CameraInfo "
                       "(usually <image namespace>/camera_info) or name it with --camera-info",
                       counts=n)
    return verdict("topics", PASS, f"{counts} messages{span}", counts=n)


def check_encodings(rec: Recording, color_ok, depth_ok) -> Verdict:
    """Encodings the node accepts (``color_ok`` / ``depth_ok``: collections of encodings) and
    frames that cannot be decoded."""
    seen = {r: Counter(m.encoding for m in rec.streams[r]) for r in (COLOR, DEPTH)}
    for role, ok, fix in ((COLOR, color_ok, "publish rgb8 or bgr8 colour (the driver's colour "
                           "format, or image_proc to debayer / convert)"),
                          (DEPTH, depth_ok, "publish depth as 16UC1 (millimetres) or 32FC1 "
                           "(metres)")):
        bad = [e for e in seen[role] if e not in ok]
        if bad:
            return verdict("encodings", FAIL, f"{role} encoding {bad[0]!r} is not accepted by "
                           f"the node (accepted: {', '.join(ok)})", fix)
    for role in (COLOR, DEPTH, INFO):
        if rec.error_counts[role]:
            n = max(rec.count(role), rec.error_counts[role])
            return verdict("encodings", FAIL, f"{rec.error_counts[role]} of {n} {role} "
                           f"messages cannot be read: {rec.errors[role][0]}",
                           "fix the driver's messages (width, height, step and data size must "
                           "agree with the encoding)")
    names = ", ".join(f"{r} {'/'.join(seen[r])}" for r in (COLOR, DEPTH) if seen[r])
    for role in (COLOR, DEPTH):
        if len(seen[role]) > 1:
            return verdict("encodings", WARN, f"{names}: the {role} encoding changes between "
                           "frames", "publish one encoding per topic")
    if any(e in ("mono8", "mono16") for e in seen[COLOR]):
        return verdict("encodings", WARN, f"{names}: the colour image is grey; the model was "
                       "trained on colour", "subscribe the colour stream (rgb8 / bgr8)")
    return verdict("encodings", PASS, f"{names or 'none'}: accepted")


def _periods(stamps_ns) -> np.ndarray:
    s = np.asarray(stamps_ns, np.int64)
    return np.diff(s).astype(np.float64) / 1e9 if len(s) > 1 else np.zeros(0)


def _latency(msgs) -> float:
    """Median arrival (or recording) time minus stamp [s]."""
    return float(np.median([(m.time_ns - m.stamp_ns) / 1e9 for m in msgs])) if msgs else 0.0


def stream_rate(msgs) -> dict:
    """Rate facts of a stream from its header stamps: ``hz`` (1 / median period), ``gaps``
    (periods over :data:`GAP_FACTOR` medians), ``backwards`` (stamps not increasing), ``zero``
    (stamps equal to 0) and ``clock_offset_s`` (median arrival time minus stamp)."""
    st = [m.stamp_ns for m in msgs]
    d = _periods(st)
    pos = d[d > 0]
    med = float(np.median(pos)) if pos.size else 0.0
    off = _latency(msgs)
    return {"hz": 1.0 / med if med > 0 else 0.0, "periods": int(d.size),
            "gaps": int((pos > GAP_FACTOR * med).sum()) if med > 0 else 0,
            "backwards": int((d <= 0).sum()), "zero": int(sum(1 for s in st if s == 0)),
            "clock_offset_s": float(off)}


def check_rates(rec: Recording) -> Verdict:
    """Frame rates from header stamps; zero, repeated or backwards stamps; lost frames; the
    camera clock against the arrival (or recording) clock."""
    rates = {r: stream_rate(rec.streams[r]) for r in (COLOR, DEPTH, INFO) if rec.streams[r]}
    if not rates:
        return verdict("rates", SKIP, "no messages")
    text = ", ".join(f"{r} {v['hz']:.1f} Hz" for r, v in rates.items())
    vals = {r: round(v["hz"], 3) for r, v in rates.items()}
    for role, v in rates.items():
        if v["zero"]:
            return verdict("rates", FAIL, f"{v['zero']} {role} messages have a zero header "
                           "stamp: depth cannot be paired by time, latency is unknown",
                           "stamp every message with its capture time in the driver", hz=vals)
    for role, v in rates.items():
        if role != INFO and v["backwards"]:
            return verdict("rates", WARN, f"{text}; {v['backwards']} {role} stamps repeat or "
                           "go backwards", "stamp frames with their capture time (monotonic)",
                           hz=vals)
    for role, v in rates.items():
        if role != INFO and v["periods"] >= 5 and v["gaps"] > MAX_GAP_FRACTION * v["periods"]:
            return verdict("rates", WARN, f"{text}; {v['gaps']} gaps in the {role} stream "
                           f"({100 * v['gaps'] / v['periods']:.0f} % of periods longer than "
                           f"{GAP_FACTOR:g}x the median): frames are lost", "lower the "
                           "resolution or rate, or use a reliable QoS / a faster link", hz=vals)
    off = rates[COLOR]["clock_offset_s"] if COLOR in rates else 0.0
    if abs(off) > MAX_CLOCK_OFFSET:
        return verdict("rates", WARN, f"{text}; colour stamps are {off:+.3g} s off the "
                       "receiving clock", "synchronise the camera computer's clock (chrony / "
                       "PTP) or stamp frames on the robot computer", hz=vals)
    return verdict("rates", PASS, text, hz=vals)


def nearest_offsets(stamps_ns, other_ns) -> np.ndarray:
    """Signed ``other - stamp`` [s] of the nearest ``other`` stamp for each stamp."""
    o = np.sort(np.asarray(other_ns, np.int64))
    s = np.asarray(stamps_ns, np.int64)
    if not o.size or not s.size:
        return np.zeros(0)
    i = np.clip(np.searchsorted(o, s), 1, len(o) - 1) if len(o) > 1 else np.zeros(len(s), int)
    cand = np.stack([o[np.maximum(i - 1, 0)], o[i]], axis=1) - s[:, None]
    pick = np.argmin(np.abs(cand), axis=1)
    return cand[np.arange(len(s)), pick].astype(np.float64) / 1e9


def _content_shift(content, margin: float) -> float | None:
    """The stamp offset [s] that most decoded frames agree the depth content sits at, when the
    stamp-paired depth is the wrong frame in most of them (at least 2); else ``None``."""
    moved = [dt for dt, gain in content if gain > margin]
    if len(moved) < 2 or len(moved) < 0.6 * len(content):
        return None
    return float(np.median(moved))


def judged_colour(colour_ns, depth_ns, tolerance: float) -> np.ndarray:
    """The colour stamps the sync check judges: those inside the depth stream's time span
    (live, a subscription may start later) and not inside a gap of the depth stream (a depth
    frame lost on the way is the rates check's business, not a sync fault). All of them when
    that leaves none."""
    c = np.asarray(colour_ns, np.int64)
    d = np.sort(np.asarray(depth_ns, np.int64))
    tol = int(tolerance * 1e9)
    keep = (c >= d[0] - tol) & (c <= d[-1] + tol)
    if len(d) > 2:
        period = float(np.median(np.diff(d)))
        i = np.clip(np.searchsorted(d, c), 1, len(d) - 1)
        keep &= (d[i] - d[i - 1]) <= GAP_FACTOR * period
    return c[keep] if keep.any() else c


def check_sync(rec: Recording, tolerance: float = DEPTH_TOLERANCE, content=(),
               content_margin: float = CONTENT_MARGIN) -> Verdict:
    """Every colour frame needs a depth frame within ``tolerance`` s of its stamp (the node's
    ``depth_tolerance``), and the stamps must mean the same instant. Depth stamped with an
    offset shows in two ways: a different delay between stamp and arrival than colour's (depth
    arriving sooner after its stamp than colour by more than ``tolerance``: its stamps are late;
    later by more than twice that: early, or a slow driver - between the two a warning), and,
    when the scene moves, depth content that matches the colour frame's edges in another frame
    than the stamp-paired one (``content``: ``(dt, gain)`` per decoded frame, see
    :func:`.frames.content_offsets`). CameraInfo stamps should follow the colour stamps."""
    cs, ds = rec.streams[COLOR], rec.streams[DEPTH]
    if not cs or not ds:
        return verdict("sync", SKIP, "needs colour and depth messages")
    d_ns = [m.stamp_ns for m in ds]
    dt = nearest_offsets(judged_colour([m.stamp_ns for m in cs], d_ns, tolerance), d_ns)
    frac = float((np.abs(dt) <= tolerance).mean())
    med = float(np.median(dt))
    lag = _latency(ds) - _latency(cs)
    text = (f"depth within {tolerance * 1e3:.0f} ms of {100 * frac:.0f} % of {len(dt)} colour "
            "frames "
            f"(median offset {round(med * 1e3, 1) + 0.0:+.1f} ms)")
    vals = dict(fraction=round(frac, 4), median_offset_s=med, arrival_lag_s=lag)
    fix = ("synchronise colour and depth in the driver (Azure Kinect: "
           "synchronized_images_only; RealSense: enable_sync:=true)")
    shift = _content_shift(content, content_margin)
    if shift is not None:
        return verdict("sync", FAIL, f"{text}, but the depth frame whose outlines match the "
                       f"colour content is stamped {shift * 1e3:+.0f} ms from it: the node "
                       "pairs frames captured at different times", fix + " and stamp both "
                       "streams with the capture time", content_shift_s=shift, **vals)
    if lag < -tolerance or lag > 2 * tolerance or (lag > tolerance and frac < SYNC_PASS):
        return verdict("sync", FAIL, f"{text}, but the depth stamps are {-lag * 1e3:+.0f} ms "
                       f"off (stamp-to-arrival delay: colour {_latency(cs) * 1e3:.0f} ms, depth "
                       f"{_latency(ds) * 1e3:.0f} ms): the node pairs frames captured at "
                       "different times", fix + " and stamp both streams with the capture "
                       "time", **vals)
    if lag > tolerance:  # depth takes longer after its stamp: slow processing, or early stamps
        return verdict("sync", WARN, f"{text}; depth arrives {lag * 1e3:.0f} ms later after "
                       "its stamp than colour: slow depth processing, or depth stamped early",
                       "if the driver stamps depth after processing, stamp it with the capture "
                       "time", **vals)
    if frac < SYNC_PASS:
        need = float(np.percentile(np.abs(dt), 95))
        return verdict("sync", WARN if frac >= SYNC_WARN else FAIL, text, fix + ", or raise "
                       f"the node's depth_tolerance to {need + 0.005:.3g}", **vals)
    info = rec.streams[INFO]
    if len(info) > 2:
        di = nearest_offsets([m.stamp_ns for m in cs], [m.stamp_ns for m in info])
        if float(np.median(np.abs(di))) > tolerance:
            return verdict("sync", WARN, f"{text}; CameraInfo stamps are "
                           f"{float(np.median(di)) * 1e3:+.0f} ms off the colour stamps",
                           "publish CameraInfo with the colour frame's header (the node uses "
                           "the newest CameraInfo whatever its stamp)", **vals)
    return verdict("sync", PASS, text, **vals)


def check_frame_ids(rec: Recording) -> Verdict:
    """Registered depth and the colour CameraInfo share the colour image's frame_id."""
    ids = {r: Counter(m.frame_id for m in rec.streams[r]) for r in (COLOR, DEPTH, INFO)}
    if not ids[COLOR]:
        return verdict("frame ids", SKIP, "no colour messages")
    color = ids[COLOR].most_common(1)[0][0]
    for role, fix in ((DEPTH, "use the depth image registered to colour (Azure Kinect: "
                       "/depth_to_rgb/image_raw; RealSense: /camera/aligned_depth_to_color/"
                       "image_raw): it carries the colour frame_id"),
                      (INFO, "use the colour camera's CameraInfo (the camera_info beside the "
                       "colour image topic)")):
        other = [f for f in ids[role] if f != color]
        if other:
            return verdict("frame ids", FAIL, f"{role} frame_id {other[0]!r} differs from the "
                           f"colour frame_id {color!r}: {role} of another camera frame", fix)
    if len(ids[COLOR]) > 1:
        return verdict("frame ids", WARN, f"the colour frame_id changes between frames "
                       f"({', '.join(map(repr, ids[COLOR]))})", "publish one frame_id")
    if not color:
        return verdict("frame ids", WARN, "the colour frames have an empty frame_id: grasps "
                       "cannot be placed in TF", "set the driver's frame_id, or the node's "
                       "frame_id parameter")
    return verdict("frame ids", PASS, f"{color!r} on every stream")


def distortion_shift(info, size) -> float:
    """Largest pixel shift the lens distortion ``info.D`` causes at the image's corners and edge
    midpoints (plumb_bob, rational_polynomial, equidistant); 0 for other models."""
    K = np.asarray(info.K, np.float64).reshape(3, 3)
    D = np.asarray(tuple(info.D) + (0.0,) * 8, np.float64)
    h, w = size
    u = np.array([0, w - 1, 0, w - 1, (w - 1) / 2, (w - 1) / 2, 0, w - 1], np.float64)
    v = np.array([0, 0, h - 1, h - 1, 0, h - 1, (h - 1) / 2, (h - 1) / 2], np.float64)
    x, y = (u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1]
    r2 = x * x + y * y
    model = (info.distortion_model or "").lower()
    if model in ("plumb_bob", "rational_polynomial"):
        k1, k2, p1, p2, k3, k4, k5, k6 = D[:8]
        if model == "plumb_bob":
            k4 = k5 = k6 = 0.0
        radial = (1 + r2 * (k1 + r2 * (k2 + r2 * k3))) / (1 + r2 * (k4 + r2 * (k5 + r2 * k6)))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    elif model == "equidistant":
        r = np.sqrt(r2)
        th = np.arctan(r)
        thd = th * (1 + D[0] * th ** 2 + D[1] * th ** 4 + D[2] * th ** 6 + D[3] * th ** 8)
        f = np.where(r > 1e-12, thd / np.maximum(r, 1e-12), 1.0)
        xd, yd = x * f, y * f
    else:
        return 0.0
    shift = np.hypot((xd - x) * K[0, 0], (yd - y) * K[1, 1])
    return float(np.nanmax(shift)) if np.isfinite(shift).any() else float("inf")


def check_camera_info(rec: Recording, image_topic: str = "") -> Verdict:
    """The CameraInfo's K is plausible for the colour image
    (:func:`vita_grasp_core.grasp3d.check_intrinsics`), constant, and the image is rectified."""
    infos, colour = rec.streams[INFO], rec.streams[COLOR]
    if not infos or not colour:
        return verdict("intrinsics", SKIP, "needs CameraInfo and colour messages")
    info, img = infos[-1], colour[-1]
    size = (img.height, img.width)
    reason = intrinsics_problem(info.K, (info.height, info.width), size) or \
        check_distortion(info.D)
    if reason:
        return verdict("intrinsics", FAIL, f"the CameraInfo cannot be trusted: {reason}",
                       "calibrate the colour camera (camera_calibration) and publish its "
                       "CameraInfo; until then grasps get no 3-D pose")
    K = np.asarray(info.K, np.float64).reshape(3, 3)
    text = (f"fx {K[0, 0]:.1f}, fy {K[1, 1]:.1f}, cx {K[0, 2]:.1f}, cy {K[1, 2]:.1f} for "
            f"{info.width or img.width}x{info.height or img.height}")
    vals = dict(K=[float(v) for v in K.reshape(-1)])
    if len({tuple(i.K) for i in infos}) > 1:
        return verdict("intrinsics", WARN, f"{text}; K changes between messages",
                       "publish one calibration per camera mode", **vals)
    shift = distortion_shift(info, (info.height or img.height, info.width or img.width))
    if shift > MAX_DISTORTION * (info.width or img.width) and "rect" not in image_topic:
        return verdict("intrinsics", WARN, f"{text}; the lens distortion moves the image "
                       f"edges by up to {shift:.0f} px and the node assumes a pinhole image",
                       "subscribe the rectified image (image_proc: image_rect_color)", **vals)
    return verdict("intrinsics", PASS, text, **vals)
