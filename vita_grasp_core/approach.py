"""Along what a grasp pose approaches: the camera's optical axis or the table's normal.

CONVENTIONS §1 orients a 3-D grasp about the optical axis: the gripper comes in along the
camera's line of sight. For a camera looking straight down that is the table's normal; for a
tilted camera it is oblique, and a parallel gripper coming in obliquely at a flat object puts one
fingertip on the table while the other passes over the object (measured in the simulator,
docs/sim.md "Tilted cameras"). ``approach="table"`` keeps the position and ``width_m`` of the
convention and turns the pose so it approaches along the normal of the table plane fitted to the
depth image (:func:`~.camera_check.depth.table_approach`), its opening the image opening
direction made perpendicular to that normal (:func:`~.grasp3d.approach_quaternion`). Where no
table plane can be trusted, the poses keep the camera axis and the note says why.

The API (:meth:`~.predictor.GraspPredictor.predict`), the node (parameter ``approach``) and the
simulator's pose check all call :func:`orient_poses`, so they orient a grasp the same way.
"""
from __future__ import annotations

import numpy as np

from .camera_check.depth import table_approach
from .conventions import scale_intrinsics
from .grasp3d import reorient

#: What a pose may approach along: ``camera`` (CONVENTIONS §1, the default) or ``table``.
APPROACHES = ("camera", "table")


def check_approach(approach: str) -> None:
    """``ValueError`` (one line) unless ``approach`` is one of :data:`APPROACHES`."""
    if approach not in APPROACHES:
        raise ValueError(f"approach must be one of {', '.join(APPROACHES)}, got {approach!r}")


def approach_vector(depth, K, image_size, approach: str = "camera"):
    """``(vector, note)``: the direction grasps of an image of ``image_size`` (3x3 ``K``)
    approach along: None for ``camera`` (the optical axis); for ``table`` the normal of the
    table plane of ``depth`` (HxW metres, registered, any size of the image's aspect ratio,
    optical frame, pointing away from the camera), or None when there is no plane to trust
    (``note`` says why, starting with ``camera axis:``)."""
    check_approach(approach)
    if approach == "camera":
        return None, "camera axis"
    depth = np.asarray(depth, dtype=np.float32)
    vec, note = table_approach(depth, scale_intrinsics(K, image_size, depth.shape[:2]))
    if vec is None:
        return None, f"camera axis: {note}"
    return vec, note


def orient_poses(poses, grasps, depth, K, image_size, approach: str = "camera"):
    """``(poses, note)``: ``poses`` (of ``grasps``, pixels of an image of ``image_size`` with
    the 3x3 ``K``) approaching along ``approach``: ``camera``, as they are; ``table``, the
    normal of the table plane of ``depth`` (:func:`approach_vector`), or as they are when
    there is no plane to trust (``note`` says why)."""
    check_approach(approach)
    if approach == "camera" or not poses or all(p is None for p in poses):
        return poses, "camera axis"
    vec, note = approach_vector(depth, K, image_size, approach)
    return (poses if vec is None else reorient(poses, grasps, vec)), note
