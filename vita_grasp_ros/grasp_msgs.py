"""Prediction -> ROS messages: ``vita_grasp/GraspArray``, RViz markers, the debug image.

Thin adapters over the core: grasp maths in :mod:`vita_grasp_core.grasp3d`, drawing in
:mod:`vita_grasp_core.visualize`. Every result message carries the *source image's* header
(stamp and frame_id; CONVENTIONS §6); the node may override the frame_id.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from vita_grasp_core.grasp3d import GraspPose

#: Gripper drawing in RViz (metres): finger length, palm-to-wrist stem length.
FINGER_LENGTH = 0.04
STEM_LENGTH = 0.04
#: Minimum drawn opening [m] (a zero-width grasp stays visible).
MIN_DRAWN_WIDTH = 0.005


def copy_header(header, frame_id: str | None = None):
    """A new ``std_msgs/Header`` with ``header``'s stamp and frame_id (``frame_id`` if given)."""
    from std_msgs.msg import Header

    h = Header()
    h.stamp.sec = header.stamp.sec
    h.stamp.nanosec = header.stamp.nanosec
    h.frame_id = header.frame_id if not frame_id else frame_id
    return h


def grasps_to_msg(grasps, header, image_size: tuple[int, int],
                  poses: Sequence[GraspPose | None] | None = None, depth_stamp=None):
    """Build a ``vita_grasp/GraspArray``.

    Args:
        grasps: list of :class:`~vita_grasp_core.grasp.Grasp`, best first, source pixels
            (``Grasp.target`` becomes ``target_id``).
        header: ``std_msgs/Header`` to put on the message (the source image's, copied as is).
        image_size: (height, width) of the source image.
        poses: optional, one :class:`GraspPose` or ``None`` per grasp (``has_pose`` false).
        depth_stamp: ``builtin_interfaces/Time`` of the depth frame the poses came from (the
            message's ``depth_stamp``; left zero when None).
    """
    from vita_grasp.msg import Grasp as GraspMsg
    from vita_grasp.msg import GraspArray

    out = GraspArray()
    out.header = header
    out.image_height, out.image_width = int(image_size[0]), int(image_size[1])
    if depth_stamp is not None:
        out.depth_stamp.sec, out.depth_stamp.nanosec = depth_stamp.sec, depth_stamp.nanosec
    msgs = []
    for i, g in enumerate(grasps):
        m = GraspMsg(x=float(g.x), y=float(g.y), angle=float(g.angle), width=float(g.width),
                     height=float(g.height), quality=float(g.quality),
                     object_score=float(g.object_score), target_id=str(g.target))
        p = poses[i] if poses is not None and i < len(poses) else None
        if p is not None:
            m.has_pose = True
            m.pose.position.x, m.pose.position.y, m.pose.position.z = p.position
            (m.pose.orientation.x, m.pose.orientation.y, m.pose.orientation.z,
             m.pose.orientation.w) = p.quaternion
            m.width_m = float(p.width_m)
        else:
            m.pose.orientation.w = 1.0
        msgs.append(m)
    out.grasps = msgs
    return out


def msg_to_grasp_rows(msg) -> np.ndarray:
    """``GraspArray`` -> ``(N, 7)`` float32 rows (x, y, angle, width, height, quality,
    object_score) in :data:`vita_grasp_core.grasp.GRASP_FIELDS` order (tests, bag tools)."""
    return np.array([[g.x, g.y, g.angle, g.width, g.height, g.quality, g.object_score]
                     for g in msg.grasps], dtype=np.float32).reshape(-1, 7)


def _gripper_points(width_m: float) -> list[tuple[float, float, float]]:
    """LINE_LIST segments of a parallel gripper in the grasp frame (x = opening, z = approach;
    fingertips at z = 0, the object; palm and stem towards the camera, -z)."""
    w = max(float(width_m), MIN_DRAWN_WIDTH) / 2.0
    f, s = FINGER_LENGTH, STEM_LENGTH
    return [(-w, 0.0, 0.0), (-w, 0.0, -f),   # finger 1
            (w, 0.0, 0.0), (w, 0.0, -f),     # finger 2
            (-w, 0.0, -f), (w, 0.0, -f),     # palm
            (0.0, 0.0, -f), (0.0, 0.0, -f - s)]  # stem


def grasps_to_markers(grasp_array_msg, *, ns: str = "grasps", line_width: float = 0.004,
                      lifetime_s: float = 0.0):
    """``visualization_msgs/MarkerArray`` for the grasps that have a pose: a DELETEALL first, then
    one LINE_LIST gripper per grasp (best = green and thicker, others red -> yellow by quality).

    Returns ``None`` when no grasp has a pose (nothing to draw in 3-D).
    """
    from geometry_msgs.msg import Point
    from std_msgs.msg import ColorRGBA
    from visualization_msgs.msg import Marker, MarkerArray

    from vita_grasp_core.visualize import grasp_colors

    posed = [(i, g) for i, g in enumerate(grasp_array_msg.grasps) if g.has_pose]
    if not posed:
        return None
    header = grasp_array_msg.header
    out = MarkerArray()
    clear = Marker()
    clear.header = header
    clear.ns = ns
    clear.action = Marker.DELETEALL
    markers = [clear]
    colors = grasp_colors(len(grasp_array_msg.grasps), [g.quality for g in grasp_array_msg.grasps])
    for i, g in posed:
        m = Marker()
        m.header = header
        m.ns = ns
        m.id = i
        m.type = Marker.LINE_LIST
        m.action = Marker.ADD
        m.pose = g.pose
        m.scale.x = line_width * (1.5 if i == 0 else 1.0)
        r, gg, b = colors[i]
        m.color = ColorRGBA(r=float(r), g=float(gg), b=float(b), a=1.0 if i == 0 else 0.8)
        m.points = [Point(x=p[0], y=p[1], z=p[2]) for p in _gripper_points(g.width_m)]
        m.lifetime.sec = int(lifetime_s)
        m.lifetime.nanosec = int((lifetime_s % 1.0) * 1e9)
        markers.append(m)
    out.markers = markers
    return out


def debug_image_msg(rgb: np.ndarray, prediction, header, *, alpha: float = 0.45,
                    max_grasps: int | None = None):
    """``sensor_msgs/Image`` (bgr8) of the heatmap blended over the frame with the grasps drawn."""
    import cv2

    from vita_grasp_core.visualize import render_prediction

    from .image_conversions import numpy_to_image_msg

    vis = render_prediction(rgb, prediction, alpha=alpha, max_grasps=max_grasps)
    return numpy_to_image_msg(cv2.cvtColor(vis, cv2.COLOR_RGB2BGR), "bgr8", header)
