"""Crops shown at a camera's scale: the "full frame" check of widths (issue 18).

Cornell-style data sets are crops: the shared 224x224 copy shows a part of the 640x480 camera
frame around the object, enlarged. A robot's camera frame letterboxed onto the same model canvas
shows the object smaller, and a model that learned widths in canvas pixels then opens too wide.
:func:`embed_in_frame` rebuilds such a frame from a crop: the crop, enlarged by ``zoom``, placed
in a camera-sized frame whose rest is filled with the crop's border colour (the table continues),
the grasps moved along. ``zoom`` follows from how much smaller the object appears on the model
canvas (:func:`zoom_for_scale`).

The fill is :func:`~vita_grasp_core.data.augment.border_colour`, as in the augmentation's
``pad: border`` zoom-out views.
"""
from __future__ import annotations

import numpy as np

from .augment import apply_affine, border_colour, scale_matrix

#: The camera frame of the check (h, w): a Kinect / RealSense colour frame.
CAMERA_FRAME = (480, 640)


def zoom_for_scale(object_scale: float, crop_size, canvas_size,
                   frame_size=CAMERA_FRAME) -> float:
    """Enlargement of a crop in a camera frame such that, both letterboxed onto the model canvas
    (``canvas_size``), the object appears at ``object_scale`` times its size in the crop.

    E.g. a 224x224 crop on a 224x224 canvas and a 640x480 frame: 0.5 -> 1.43 (the crop covers
    320x320 px of the frame)."""
    from ..geometry import Letterbox

    s_crop = Letterbox.fit(tuple(crop_size), tuple(canvas_size)).scale
    s_frame = Letterbox.fit(tuple(frame_size), tuple(canvas_size)).scale
    return float(object_scale) * s_crop / s_frame


def embed_in_frame(rgb: np.ndarray, grasps: np.ndarray, zoom: float,
                   frame_size=CAMERA_FRAME, offset=(0.0, 0.0)):
    """``(frame, grasps)``: ``rgb`` enlarged by ``zoom`` about its centre, placed at the centre
    of a ``frame_size`` frame (+ ``offset`` px) filled with :func:`border_colour`; grasps
    (``(N, >=5)`` source px) moved and scaled along (those that leave the frame are dropped)."""
    h, w = rgb.shape[:2]
    fh, fw = frame_size
    shift = ((fw - 1) / 2 - (w - 1) / 2 + offset[0], (fh - 1) / 2 - (h - 1) / 2 + offset[1])
    m = scale_matrix(float(zoom), ((w - 1) / 2, (h - 1) / 2), shift)
    frame, _, g = apply_affine(rgb, None, grasps, m, (fh, fw), border_colour(rgb))
    return np.ascontiguousarray(frame), g
