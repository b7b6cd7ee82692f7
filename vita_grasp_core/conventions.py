"""The project's shared conventions (docs/CONVENTIONS.md), each written exactly once.

Every module that encodes or decodes an angle, a width, a letterbox warp, camera intrinsics, the
channel order or an input normalisation imports it from here; a test pins the constants.

Units: pixels (x = column, y = row, y down, pixel centres at integer coordinates, OpenCV's
convention), angles in radians from +x towards +y (clockwise on screen).
"""
from __future__ import annotations

import numpy as np

# ----------------------------------------------------------------------------- output channels
#: Channel order of the five output maps (SPGrasp order, CONVENTIONS §3).
CHANNELS = ("position", "cos2a", "sin2a", "width", "semantic")
CH_POSITION, CH_COS, CH_SIN, CH_WIDTH, CH_SEMANTIC = range(len(CHANNELS))

# ----------------------------------------------------------------------------- normalisation
#: RGB mean / std on the 0-1 scale.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def mean_rgb_255(mean=IMAGENET_MEAN) -> tuple[float, float, float]:
    """The mean colour on the 0-255 scale (padding that normalises to zero)."""
    return tuple(float(m) * 255.0 for m in mean)


# ----------------------------------------------------------------------------- angles
def wrap_angle(angle):
    """Wrap angles (radians) into [-pi/2, pi/2): a parallel-jaw grasp is symmetric under a half
    turn. Scalars give a float, arrays an array."""
    a = np.mod(np.asarray(angle, dtype=np.float64) + np.pi / 2, np.pi) - np.pi / 2
    return a if a.ndim else float(a)


def angle_difference(a, b):
    """Absolute angle difference modulo pi, in [0, pi/2] (radians)."""
    d = np.abs(np.mod(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), np.pi))
    return np.minimum(d, np.pi - d)


def angle_to_channels(angle):
    """Angle (rad) -> ``(cos 2a, sin 2a)``, the values of channels 1 and 2."""
    a2 = 2.0 * np.asarray(angle, dtype=np.float64)
    return np.cos(a2), np.sin(a2)


def channels_to_angle(cos2a, sin2a):
    """``(cos 2a, sin 2a)`` (need not be unit length) -> angle in [-pi/2, pi/2)."""
    return wrap_angle(0.5 * np.arctan2(np.asarray(sin2a, np.float64),
                                       np.asarray(cos2a, np.float64)))


# ----------------------------------------------------------------------------- width (channel 3)
def width_to_channel(width_map_px, width_scale: float, map_width: int):
    """Opening width in *map* pixels -> channel-3 value in [0, 1] (clipped).

    ``ch3 = width / (width_scale * map_width)``: resolution independent, ``width_scale`` is stored
    in the model config.
    """
    w = np.asarray(width_map_px, dtype=np.float64) / (float(width_scale) * int(map_width))
    return np.clip(w, 0.0, 1.0)


def channel_to_width(ch3, width_scale: float, map_width: int):
    """Inverse of :func:`width_to_channel`: channel-3 values (clipped to [0, 1]) -> map pixels."""
    return np.clip(np.asarray(ch3, dtype=np.float64), 0.0, 1.0) * (float(width_scale)
                                                                   * int(map_width))


# ----------------------------------------------------------------------------- letterbox warp
def axis_affine_matrix(sx: float, sy: float, px: float, py: float) -> np.ndarray:
    """2x3 OpenCV matrix of ``x' = (x + 0.5) * sx - 0.5 + px`` (same for y with sy, py).

    The letterbox (uniform scale ``s`` and padding) is ``axis_affine_matrix(s, s, pad_x, pad_y)``;
    pixel-centre aligned, so ``cv2.warpAffine`` with it agrees with mapping points exactly.
    """
    return np.array([[sx, 0.0, 0.5 * sx - 0.5 + px], [0.0, sy, 0.5 * sy - 0.5 + py]],
                    dtype=np.float64)


# ----------------------------------------------------------------------------- intrinsics
#: Pinhole intrinsics (fx, fy, cx, cy) at 1280x720 of the GraspNet-1Billion cameras (§2).
CAMERA_INTRINSICS_1280x720 = {
    "kinect": (631.55, 631.21, 638.43, 366.50),
    "realsense": (927.17, 927.37, 651.32, 349.62),
}
CAMERA_SIZE = (720, 1280)  # (h, w) the table above belongs to


def scale_intrinsics(K, from_size, to_size) -> np.ndarray:
    """3x3 ``K`` of an image of ``from_size`` (h, w) -> the same camera at ``to_size`` (h, w).

    Pixel-centre aware (the same mapping as an OpenCV resize): ``u' = (u + 0.5) * s - 0.5``.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3).copy()
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    K[0, 0] *= sx
    K[0, 2] = (K[0, 2] + 0.5) * sx - 0.5
    K[1, 1] *= sy
    K[1, 2] = (K[1, 2] + 0.5) * sy - 0.5
    return K


def camera_matrix(camera: str | None = None, image_size=CAMERA_SIZE) -> np.ndarray:
    """3x3 ``K`` of a GraspNet camera (a key of the table above; default the first, ``kinect``)
    at ``image_size`` (h, w)."""
    camera = next(iter(CAMERA_INTRINSICS_1280x720)) if camera is None else camera
    try:
        fx, fy, cx, cy = CAMERA_INTRINSICS_1280x720[camera]
    except KeyError:
        raise ValueError(f"unknown camera {camera!r}; known: "
                         f"{sorted(CAMERA_INTRINSICS_1280x720)}") from None
    K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
    return scale_intrinsics(K, CAMERA_SIZE, image_size)
