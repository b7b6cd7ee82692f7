"""Names and message types of the bag tools: default topics, the rosbags typestore (with the
``vita_grasp`` messages), on-demand type registration, and the one ``pkg/msg/Type`` -> rclpy class
lookup.

ROS-free at import time: :func:`typestore` needs only ``rosbags``; :func:`import_msg_type` imports
the generated rclpy message package it is asked for.

Types
    The typestore is rosbags' ROS 2 Kilted store plus ``vita_grasp/msg/Grasp`` and
    ``GraspArray`` parsed from the ``.msg`` files of the installed package's share dir. Type
    hashes (RIHS01) and the embedded message definitions are computed the way rosidl and rosbag2
    do (checked against the installed ROS packages in the tests).
    Unknown types met while recording are registered on demand from ``share/<pkg>/msg/*.msg`` of
    the ament prefixes.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from pathlib import Path

#: Storage plug-in per file suffix.
STORAGE_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}
STORAGES = ("mcap", "sqlite3")

#: Default topic names (Azure Kinect ROS driver naming; CONVENTIONS §6).
IMAGE_TOPIC = "/rgb/image_raw"
INFO_TOPIC = "/rgb/camera_info"
DEPTH_TOPIC = "/depth_to_rgb/image_raw"
GT_TOPIC = "/ground_truth/grasps"
PRED_TOPIC = "/grasps"
CLOCK_TOPIC = "/clock"
FRAME_ID = "rgb_camera_link"

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
CLOCK_TYPE = "rosgraph_msgs/msg/Clock"
GRASP_TYPE = "vita_grasp/msg/Grasp"
GRASP_ARRAY_TYPE = "vita_grasp/msg/GraspArray"
VITA_GRASP_TYPES = ("Grasp", "GraspArray")


class BagError(Exception):
    """A bag that cannot be opened, read or written. The message names the file."""


def ament_prefixes() -> list[Path]:
    """Ament prefixes to search for interface definitions: ``AMENT_PREFIX_PATH``, then the
    interpreter's prefix (the venv is the ROS prefix when the ROS wheels are installed)."""
    out = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for p in (sys.prefix, sys.base_prefix):
        if Path(p) not in out:
            out.append(Path(p))
    return out


def vita_grasp_msg_dir() -> Path:
    """Directory holding ``Grasp.msg`` and ``GraspArray.msg``: ``share/vita_grasp/msg`` of the
    installed ROS package (the ament prefixes: what the node was built from), never the source
    checkout."""
    for prefix in ament_prefixes():
        d = prefix / "share" / "vita_grasp" / "msg"
        if all((d / f"{n}.msg").is_file() for n in VITA_GRASP_TYPES):
            return d
    raise BagError("cannot find the vita_grasp message definitions (Grasp.msg, GraspArray.msg) in "
                   "share/vita_grasp/msg of the ament prefixes (AMENT_PREFIX_PATH, "
                   f"{sys.prefix}): build and install the messages (make setup, or colcon build "
                   "and source install/setup.bash)")


@functools.lru_cache(maxsize=None)
def typestore():
    """rosbags typestore: ROS 2 Kilted standard types + ``vita_grasp/msg/*`` (cached)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    d = vita_grasp_msg_dir()
    types = {}
    for name in VITA_GRASP_TYPES:
        types.update(get_types_from_msg((d / f"{name}.msg").read_text(), f"vita_grasp/msg/{name}"))
    store.register(types)
    return store


_FIELD_TYPE_RE = re.compile(r"^\s*([A-Za-z][\w]*)/([A-Za-z]\w*)(?:\[[^\]]*\])?\s+\w")


def ensure_type(msgtype: str, store=None) -> bool:
    """Make sure ``msgtype`` (``pkg/msg/Type``) is in the typestore, registering it (and the types
    it uses) from ``share/<pkg>/msg/<Type>.msg`` of the ament prefixes. Returns False when a
    definition cannot be found."""
    from rosbags.typesys import get_types_from_msg

    store = store or typestore()
    if msgtype in store.fielddefs:
        return True
    pending, found = [msgtype], {}
    while pending:
        name = pending.pop()
        if name in store.fielddefs or name in found:
            continue
        pkg, kind, typ = (name.split("/") + ["", ""])[:3]
        if kind != "msg" or not typ:
            return False
        text = None
        for prefix in ament_prefixes():
            f = prefix / "share" / pkg / "msg" / f"{typ}.msg"
            if f.is_file():
                text = f.read_text()
                break
        if text is None:
            return False
        found.update(get_types_from_msg(text, name))
        for line in text.splitlines():
            m = _FIELD_TYPE_RE.match(line.split("#", 1)[0])
            if m:
                pending.append(f"{m.group(1)}/msg/{m.group(2)}")
    store.register(found)
    return msgtype in store.fielddefs


def import_msg_type(msgtype: str):
    """``pkg/msg/Type`` (or ``pkg/Type``) -> the generated rclpy message class.

    Raises ``ImportError`` when the package is not installed or the name is malformed, and
    ``AttributeError`` when the package has no such type.
    """
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3 or not all(parts):
        raise ImportError(f"not a message type name: {msgtype!r}")
    mod = importlib.import_module(f"{parts[0]}.{parts[1]}")
    return getattr(mod, parts[2])


def make_qos(reliable: bool = True, depth: int = 10, transient_local: bool = False):
    """A rosbags ``Qos`` record (what rosbag2 stores as a topic's ``offered_qos_profiles``)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, int(depth),
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)
