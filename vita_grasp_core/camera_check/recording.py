"""What the camera check looks at: the headers of every message of the colour, depth and
CameraInfo streams, plus a few decoded frames. Filled by a collector (the ROS adapter reads a bag
or subscribes to live topics); plain data here, no ROS types.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

COLOR, DEPTH, INFO = "colour", "depth", "camera_info"
ROLES = (COLOR, DEPTH, INFO)


@dataclass(frozen=True)
class StreamMessage:
    """The header facts of one image message.

    Attributes:
        stamp_ns: ``header.stamp`` [ns].
        time_ns: when it arrived (live) or was recorded (bag) [ns].
        encoding: ``Image.encoding``; for a ``CompressedImage`` its ``format`` reduced to
            ``jpeg`` / ``png`` / ``compressedDepth`` (or the raw string when unknown).
    """

    stamp_ns: int
    time_ns: int
    frame_id: str
    encoding: str
    width: int = 0
    height: int = 0


@dataclass(frozen=True)
class CameraInfoMessage:
    """The fields of a ``sensor_msgs/CameraInfo`` the checks use (K row-major, D as given)."""

    stamp_ns: int
    time_ns: int
    frame_id: str
    width: int
    height: int
    K: tuple
    distortion_model: str = ""
    D: tuple = ()


@dataclass
class FrameSample:
    """One decoded colour frame with the depth frame and CameraInfo nearest to it in stamp.

    Attributes:
        rgb: HxWx3 uint8 RGB (as the node converts it).
        depth_m: HxW float32 metres, NaN invalid (as the node converts it), or ``None``.
        depth_encoding: the depth message's encoding.
        info: the CameraInfo in force at this frame, or ``None``.
        depth_candidates: ``(stamp_ns, depth_m)`` of the depth frames stamped near this one,
            at the working size of :mod:`.registration` (which of them matches the colour
            content tells whether the stamps mean the same instant).
    """

    stamp_ns: int
    rgb: np.ndarray
    depth_m: np.ndarray | None = None
    depth_encoding: str = ""
    depth_stamp_ns: int | None = None
    info: CameraInfoMessage | None = None
    depth_candidates: list = field(default_factory=list)


@dataclass
class Recording:
    """Everything collected from one camera.

    Attributes:
        source: what was read (a bag path or ``live``), for the report.
        topics: role (:data:`COLOR`, :data:`DEPTH`, :data:`INFO`) -> topic name, or ``None``
            when the role has no topic.
        streams: role -> the messages seen, in arrival order.
        samples: decoded frames spread over the recording.
        errors: role -> messages of frames that could not be decoded (first few kept).
        error_counts: role -> how many could not be decoded.
        duration_s: time covered [s].
    """

    source: str
    topics: dict = field(default_factory=dict)
    streams: dict = field(default_factory=lambda: {r: [] for r in ROLES})
    samples: list = field(default_factory=list)
    errors: dict = field(default_factory=lambda: {r: [] for r in ROLES})
    error_counts: dict = field(default_factory=lambda: {r: 0 for r in ROLES})
    duration_s: float = 0.0

    def add_error(self, role: str, message: str, keep: int = 3) -> None:
        self.error_counts[role] += 1
        if len(self.errors[role]) < keep:
            self.errors[role].append(message)

    def count(self, role: str) -> int:
        return len(self.streams[role])
