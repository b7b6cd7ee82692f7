"""Messages -> :class:`vita_grasp_core.camera_check.Recording`, from a bag or live topics.

:class:`Collector` takes colour, depth and CameraInfo messages in arrival order (rclpy messages
or rosbags dataclasses: the same field names) and keeps every message's header facts plus a few
decoded frames spread evenly over the time span: each is a colour frame with the depth frame
nearest to it in stamp and the newest CameraInfo. Decoding uses the node's own conversions
(:mod:`vita_grasp_ros.image_conversions`), so a frame the node would refuse is refused here
with the same message. Memory stays bounded: only the sampled frames and a few recent depth
messages are kept.
"""
from __future__ import annotations

from collections import deque

from vita_grasp_core.camera_check import (
    COLOR,
    DEPTH,
    INFO,
    CameraInfoMessage,
    FrameSample,
    Recording,
    StreamMessage,
)
from vita_grasp_core.camera_check.registration import resize_depth, work_size

from ..bag.messages import image_from_msg, stamp_to_ns
from ..image_conversions import (
    ImageConversionError,
    compressed_image_size,
    depth_msg_to_meters,
    image_msg_to_numpy,
)

#: Depth frames within this many seconds of a sampled colour frame's stamp are kept (at the
#: checks' working size) to find the one whose content matches it (the sync check), at most
#: MAX_CANDIDATES per frame.
CONTENT_WINDOW, MAX_CANDIDATES = 0.35, 64
#: Image data of the recent depth messages kept at most [bytes].
RECENT_BYTES = 256 * 2**20


#: Decoded frames kept for the checks are at most this many px on their longer side (a few
#: kilobytes of PNG may declare 16384 x 16384 px: the node's limit, 800 MB decoded).
MAX_SAMPLE_SIDE = 2048


def bounded(img):
    """``img`` scaled down to :data:`MAX_SAMPLE_SIDE` on its longer side (colour: area
    averaging; depth: nearest, so invalid pixels stay invalid); unchanged when smaller. The
    checks scale intrinsics and sizes to the image they get."""
    import cv2

    h, w = img.shape[:2]
    if max(h, w) <= MAX_SAMPLE_SIDE:
        return img
    s = MAX_SAMPLE_SIDE / max(h, w)
    size = (max(1, round(w * s)), max(1, round(h * s)))
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA if img.ndim == 3
                      else cv2.INTER_NEAREST)


def compressed_encoding(fmt: str) -> str:
    """A ``CompressedImage.format`` reduced to what the checks compare: ``compressedDepth``,
    ``jpeg``, ``png``, else the string itself."""
    f = str(fmt).lower()
    if "compresseddepth" in f:
        return "compressedDepth"
    for kind in ("jpeg", "png"):
        if kind in f or (kind == "jpeg" and "jpg" in f):
            return kind
    return str(fmt)


def image_meta(msg, time_ns: int) -> StreamMessage:
    """Header facts of an ``Image`` or ``CompressedImage`` (size 0x0 for compressed images
    whose header cannot be read)."""
    stamp = stamp_to_ns(msg.header.stamp)
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        size = compressed_image_size(msg.data) if len(msg.data) else None
        w, h = (size[1], size[2]) if size else (0, 0)
        return StreamMessage(stamp, int(time_ns), str(msg.header.frame_id),
                             compressed_encoding(msg.format), int(w), int(h))
    return StreamMessage(stamp, int(time_ns), str(msg.header.frame_id), str(msg.encoding),
                         int(msg.width), int(msg.height))


def info_meta(msg, time_ns: int) -> CameraInfoMessage:
    return CameraInfoMessage(stamp_to_ns(msg.header.stamp), int(time_ns),
                             str(msg.header.frame_id), int(msg.width), int(msg.height),
                             tuple(float(v) for v in msg.k), str(msg.distortion_model),
                             tuple(float(v) for v in msg.d))


def _check_readable(msg) -> None:
    """Raise :class:`ImageConversionError` when the node could not read ``msg`` (cheap: no
    decoding of compressed data, a view of raw data)."""
    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        if compressed_image_size(msg.data) is None:
            raise ImageConversionError(f"no PNG or JPEG header ({len(msg.data)} bytes)")
        return
    image_msg_to_numpy(msg)


class Collector:
    """Build a :class:`Recording` from messages fed with :meth:`add`.

    Args:
        source: what is read (for the report).
        topics: role -> topic name (``None`` for a role without a topic).
        samples: how many frames to decode, spread evenly over ``[start_ns, start_ns + span_ns]``
            of arrival time (``start_ns`` ``None``: the first colour message's), or over
            ``total`` colour frames when their number is known (a bag).
        span_ns: the time span the messages cover (live collection time).
        total: the number of colour frames that will be fed (``None``: unknown).
        max_messages: stop keeping headers of a role after this many messages.
    """

    def __init__(self, source: str, topics: dict, *, samples: int = 5, span_ns: int = 0,
                 start_ns: int | None = None, total: int | None = None,
                 max_messages: int = 100_000):
        self.rec = Recording(source, dict(topics))
        self.n_samples = max(1, int(samples))
        self.span_ns = max(0, int(span_ns))
        self.start_ns = start_ns
        self.max_messages = int(max_messages)
        self._depth_recent: deque = deque(maxlen=MAX_CANDIDATES)
        self._pending: list[dict] = []  # sampled colour frames: rgb, stamp, depth msg, info
        self._info = None
        self._picks = None if not total else \
            {int((k + 0.5) * total / self.n_samples) for k in range(self.n_samples)}

    @property
    def sampled(self) -> int:
        """Colour frames decoded so far."""
        return len(self._pending)

    def _next_sample_ns(self) -> int:
        i = len(self._pending)
        return self.start_ns + int((i + 0.5) * self.span_ns / self.n_samples) \
            if self.span_ns else self.start_ns

    def add(self, role: str, msg, time_ns: int) -> None:
        """Take one message of ``role`` (:data:`COLOR`, :data:`DEPTH`, :data:`INFO`)."""
        if len(self.rec.streams[role]) >= self.max_messages:
            return
        try:
            meta = info_meta(msg, time_ns) if role == INFO else image_meta(msg, time_ns)
        except (ValueError, TypeError, AttributeError) as e:
            self.rec.add_error(role, f"not a {role} message: {e}")
            return
        self.rec.streams[role].append(meta)
        if role != INFO and not self._readable(role, msg):
            return
        if role == INFO:
            self._info = meta
            for p in self._pending:
                p["info"] = p["info"] or meta
        elif role == DEPTH:
            self._remember(meta.stamp_ns, msg)
            for p in self._pending:
                self._pair(p, meta.stamp_ns, msg)
        else:
            self._on_color(meta, msg, time_ns)

    def _readable(self, role: str, msg) -> bool:
        """False (and the problem counted) when the node could not read ``msg``; an encoding
        it does not accept is left to the encodings check, which names it."""
        try:
            _check_readable(msg)
        except ImageConversionError as e:
            if e.kind != "encoding":
                self.rec.add_error(role, str(e))
            return False
        return True

    def _remember(self, stamp: int, msg) -> None:
        """Recent depth messages, for colour frames sampled after them (a window of stamps, at
        most :data:`RECENT_BYTES` of image data)."""
        win = int(CONTENT_WINDOW * 1e9)
        self._depth_recent.append((stamp, msg))
        size = sum(len(m.data) for _, m in self._depth_recent)
        while self._depth_recent and (self._depth_recent[0][0] < stamp - win
                                      or size > RECENT_BYTES):
            size -= len(self._depth_recent.popleft()[1].data)

    def _pair(self, p: dict, stamp: int, msg) -> None:
        """Offer a depth message to a sampled colour frame: the nearest in stamp is its depth;
        every one within the content window becomes a candidate at the working size."""
        if p["depth"] is None or abs(stamp - p["stamp"]) < abs(p["depth"][0] - p["stamp"]):
            p["depth"] = (stamp, msg)
        if abs(stamp - p["stamp"]) <= CONTENT_WINDOW * 1e9 and stamp not in p["cands"] \
                and len(p["cands"]) < MAX_CANDIDATES:
            try:
                p["cands"][stamp] = resize_depth(depth_msg_to_meters(msg),
                                                 work_size(p["rgb"].shape))
            except ImageConversionError:
                pass  # named by the encodings check

    def _on_color(self, meta: StreamMessage, msg, time_ns: int) -> None:
        if self.start_ns is None:
            self.start_ns = time_ns
        if self._picks is not None:
            if self.rec.count(COLOR) - 1 not in self._picks:
                return
        elif len(self._pending) >= self.n_samples or time_ns < self._next_sample_ns():
            return
        try:
            rgb = bounded(image_from_msg(msg))
        except ImageConversionError as e:
            if e.kind != "encoding":
                self.rec.add_error(COLOR, str(e))
            return
        p = {"stamp": meta.stamp_ns, "rgb": rgb, "depth": None, "info": self._info,
             "cands": {}}
        for stamp, dmsg in self._depth_recent:
            self._pair(p, stamp, dmsg)
        self._pending.append(p)

    def finish(self) -> Recording:
        """Decode the depth of the sampled frames and return the :class:`Recording`."""
        rec = self.rec
        for p in self._pending:
            depth, enc, dstamp = None, "", None
            if p["depth"] is not None:
                dstamp, dmsg = p["depth"]
                enc = str(getattr(dmsg, "encoding", getattr(dmsg, "format", "")))
                try:
                    depth = bounded(depth_msg_to_meters(dmsg))
                except ImageConversionError:
                    depth = None  # counted by the encodings check (not an accepted encoding)
            rec.samples.append(FrameSample(p["stamp"], p["rgb"], depth, enc, dstamp, p["info"],
                                           sorted(p["cands"].items())))
        times = [m.time_ns for r in (COLOR, DEPTH, INFO) for m in rec.streams[r]]
        if times:
            rec.duration_s = (max(times) - min(times)) / 1e9
        return rec
