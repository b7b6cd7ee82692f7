"""Messages in and out of bags, with the project's one set of builders.

Writing builds rclpy messages with :mod:`vita_grasp_ros.grasp_msgs` (``GraspArray``) and
:mod:`vita_grasp_ros.image_conversions` (``Image``, ``CompressedImage``), exactly as the node
does; :class:`~.io.BagWriter` serialises them. Reading gets rosbags dataclasses from
:class:`~.io.BagReader`, which the same conversion functions accept (duck typing on the field
names). rclpy and the message packages are imported only by the builders that need them.
"""
from __future__ import annotations

import numpy as np

from ..grasp_msgs import msg_to_grasp_rows
from .types import FRAME_ID

#: ``GraspArray`` (rosbags dataclass or rclpy message) -> ``(N, 7)`` float32 rows in
#: :data:`vita_grasp_core.grasp.GRASP_FIELDS` order (one implementation, shared with the node).
grasp_array_rows = msg_to_grasp_rows


def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` (rclpy or rosbags) -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(ns: int):
    """int nanoseconds -> rclpy ``builtin_interfaces/msg/Time``."""
    from builtin_interfaces.msg import Time

    return Time(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def make_header(stamp_ns: int, frame_id: str = FRAME_ID):
    """rclpy ``std_msgs/msg/Header`` with ``stamp_ns`` [ns since epoch] and ``frame_id``."""
    from std_msgs.msg import Header

    return Header(stamp=ns_to_time(stamp_ns), frame_id=str(frame_id))


def camera_info_msg(K: np.ndarray, width: int, height: int, header):
    """Pinhole rclpy ``sensor_msgs/msg/CameraInfo`` without distortion (plumb_bob, zeros),
    ``P = [K | 0]``. ``K`` is the 3x3 intrinsics [px] of a ``width x height`` image."""
    from sensor_msgs.msg import CameraInfo

    K = np.asarray(K, np.float64).reshape(3, 3)
    P = np.zeros((3, 4), np.float64)
    P[:, :3] = K
    return CameraInfo(header=header, height=int(height), width=int(width),
                      distortion_model="plumb_bob", d=[0.0] * 5, k=K.reshape(-1).tolist(),
                      r=np.eye(3).reshape(-1).tolist(), p=P.reshape(-1).tolist())


def grasp_array_msg(rows, header, image_size: tuple[int, int]):
    """``(N, >=5)`` rows (x, y, angle, width, height[, quality[, object_score]]) -> rclpy
    ``vita_grasp/msg/GraspArray`` through :func:`vita_grasp_ros.grasp_msgs.grasps_to_msg`
    (``has_pose`` false, identity orientation, ``width_m`` 0; a missing quality is 1, a missing
    object_score 0). ``image_size`` is (height, width) of the source image."""
    from vita_grasp_core.grasp import grasps_from_array

    from ..grasp_msgs import grasps_to_msg

    rows = np.asarray(rows, np.float64)
    grasps = grasps_from_array(rows.reshape(0, 7) if rows.size == 0 else rows)
    return grasps_to_msg(grasps, header, image_size)


def image_from_msg(msg) -> np.ndarray:
    """A colour ``Image`` or ``CompressedImage`` (rosbags or rclpy) -> ``HxWx3 uint8 RGB``."""
    from ..image_conversions import compressed_msg_to_rgb, image_msg_to_rgb

    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_msg_to_rgb(msg)
    return image_msg_to_rgb(msg)


def to_rclpy(obj, cls):
    """A rosbags dataclass -> an rclpy message of class ``cls``, field by field by name (nested
    messages and sequences of them too). Fields ``cls`` has and ``obj`` lacks (a message
    recorded with an older definition) keep their defaults; fields only ``obj`` has are
    dropped."""
    import importlib

    msg = cls()
    for name, kind in cls.get_fields_and_field_types().items():
        if not hasattr(obj, name):
            continue
        value = getattr(obj, name)
        sub = _message_class(kind, importlib)
        if sub is None:
            setattr(msg, name, value.tolist() if isinstance(value, np.ndarray) else value)
        elif kind.startswith("sequence<") or kind.endswith("]"):
            setattr(msg, name, [to_rclpy(v, sub) for v in value])
        else:
            setattr(msg, name, to_rclpy(value, sub))
    return msg


def _message_class(kind: str, importlib):
    """rclpy field type (``geometry_msgs/Pose``, ``sequence<vita_grasp/Grasp>``,
    ``vita_grasp/Grasp[3]``) -> the message class, or ``None`` for a primitive."""
    base = kind.removeprefix("sequence<").split(">")[0].split("[")[0].split(",")[0]
    if "/" not in base:
        return None
    pkg, name = base.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)
