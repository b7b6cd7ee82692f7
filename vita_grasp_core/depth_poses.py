"""From pixel grasps and a registered depth frame to the 3-D poses a gripper executes.

One function, :func:`depth_poses`, shared by the Python API
(:func:`~vita_grasp_core.predictor.add_poses`) and the ROS node, so both turn a frame's grasps
into poses the same way:

1. the depth fallback (optional, :mod:`.depth_fallback`): analytic grasps on the objects the
   depth image shows, when the model has no grasp;
2. the approach direction: the camera axis, or the table normal (``approach="table"``,
   :func:`~.approach.approach_vector`);
3. the depth check (optional, :mod:`.grasp_depth`), judged along that approach;
4. the poses (CONVENTIONS §1), turned to approach along that direction.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .approach import approach_vector, check_approach
from .depth_fallback import FallbackSettings, fallback_grasps
from .grasp3d import GraspPose, grasp_poses, reorient
from .grasp_depth import DepthCheck, DepthCheckSettings, check_grasps


@dataclass
class DepthPoses:
    """The grasps of one frame after :func:`depth_poses` (best first) and their poses (None
    where there was no depth), with what was done on the way.

    Attributes:
        check: the :class:`~.grasp_depth.DepthCheck` (None without the check).
        fallback_note: what the depth fallback found ("" when it was not used).
        approach_note: ``camera axis``, ``table normal N deg`` or ``camera axis: why`` (no
            table plane to trust in this frame).
    """

    grasps: list
    poses: list[GraspPose | None]
    check: DepthCheck | None = None
    fallback_note: str = ""
    approach_note: str = "camera axis"


def depth_poses(grasps, depth: np.ndarray, K, image_size, *,
                check: DepthCheckSettings | None = None, approach: str = "camera",
                fallback: FallbackSettings | None = None, window: int = 5) -> DepthPoses:
    """The poses of ``grasps`` (best first, pixels of the colour image of ``image_size``
    (h, w)) from ``depth`` (HxW metres, registered; checked by the caller) and ``K`` (3x3).

    ``check``: depth check settings (None = no check, poses with a depth median ``window``);
    ``approach``: ``camera`` or ``table``; ``fallback``: the depth fallback's settings (None =
    off): its grasps (quality 0) are used when ``grasps`` is empty.
    """
    check_approach(approach)
    grasps = list(grasps)
    fallback_note = ""
    if fallback is not None and not grasps:
        grasps, fallback_note = fallback_grasps(depth, K, image_size, fallback)
    vec, approach_note = (None, "camera axis")
    if approach != "camera" and grasps:  # the table plane only for grasps to check and orient
        vec, approach_note = approach_vector(depth, K, image_size, approach)
    result = None
    if check is None:
        poses = grasp_poses(grasps, depth, K, image_size, window=window)
    else:
        result = check_grasps(grasps, depth, K, image_size, check, approach=vec)
        grasps, poses = result.grasps, result.poses
    if vec is not None and poses and any(p is not None for p in poses):
        poses = reorient(poses, grasps, vec)
    return DepthPoses(grasps, poses, result, fallback_note, approach_note)
