"""Grasps -> ``vision_msgs/Detection2DArray`` (the optional ``detections`` topic of the node).

``vision_msgs`` is an optional dependency: :func:`load_vision_msgs` returns its module or
``None``. Each grasp becomes one ``Detection2D`` (CONVENTIONS §1 units and frame):

- ``header``: the source image's header (as on the Detection2DArray);
- ``bbox``: the grasp rectangle in source-image pixels: ``center.position.x/y`` = grasp centre,
  ``center.theta`` = grasp angle [rad] (opening direction, from +x towards +y with y down, i.e.
  the same sense as a rotation about the optical frame's +z), ``size_x`` = opening width,
  ``size_y`` = jaw height [px];
- ``results[0].hypothesis``: ``class_id`` "grasp", ``score`` = quality; ``results[0].pose.pose``
  the 3-D grasp pose (optical frame, metres) when depth gave one, else identity at the origin;
- ``id``: empty (grasps are not tracked across frames).

The older vision_msgs 3.x layout (``BoundingBox2D.center`` a ``geometry_msgs/Pose2D`` with
``x``/``y``) is filled as well.
"""
from __future__ import annotations

from typing import Sequence

from vita_grasp_core.grasp3d import GraspPose

#: ``ObjectHypothesis.class_id`` of every grasp detection.
GRASP_CLASS_ID = "grasp"


def load_vision_msgs():
    """The ``vision_msgs.msg`` module, or ``None`` when vision_msgs is not installed."""
    try:
        import vision_msgs.msg as vm
    except ImportError:
        return None
    return vm if hasattr(vm, "Detection2DArray") else None


def grasps_to_detections(grasps, header, poses: Sequence[GraspPose | None] | None = None,
                         vision_msgs=None):
    """Build a ``vision_msgs/Detection2DArray``.

    Args:
        grasps: :class:`~vita_grasp_core.grasp.Grasp` list (best first, source pixels).
        header: ``std_msgs/Header`` of the source image (copied into every detection).
        poses: optional, one :class:`GraspPose` or ``None`` per grasp.
        vision_msgs: the ``vision_msgs.msg`` module (default: imported here).
    """
    vm = vision_msgs or load_vision_msgs()
    if vm is None:
        raise ImportError("vision_msgs is not installed")
    out = vm.Detection2DArray()
    out.header = header
    dets = []
    for i, g in enumerate(grasps):
        d = vm.Detection2D()
        d.header = header
        center = d.bbox.center
        if hasattr(center, "position"):  # vision_msgs >= 4 (Humble and later)
            center.position.x, center.position.y = float(g.x), float(g.y)
        else:  # vision_msgs 3.x: geometry_msgs/Pose2D
            center.x, center.y = float(g.x), float(g.y)
        center.theta = float(g.angle)
        d.bbox.size_x, d.bbox.size_y = float(g.width), float(g.height)
        hyp = vm.ObjectHypothesisWithPose()
        hyp.hypothesis.class_id = GRASP_CLASS_ID
        hyp.hypothesis.score = float(g.quality)
        p = poses[i] if poses is not None and i < len(poses) else None
        pose = hyp.pose.pose
        if p is not None:
            pose.position.x, pose.position.y, pose.position.z = p.position
            (pose.orientation.x, pose.orientation.y, pose.orientation.z,
             pose.orientation.w) = p.quaternion
        else:
            pose.orientation.w = 1.0
        d.results = [hyp]
        dets.append(d)
    out.detections = dets
    return out
