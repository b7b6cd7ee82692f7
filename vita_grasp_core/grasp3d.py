"""3-D grasp poses from an aligned depth image and pinhole intrinsics (CONVENTIONS §1, 3-D).

Pure numpy, no ROS. Frames: the camera's *optical* frame (x right, y down, z forward), the frame of
the image's ``header.frame_id``. Units: metres.

- position = back-projection of the grasp centre ``(x, y)`` (source pixels, pixel centres at
  integer coordinates as in OpenCV/ROS ``K``) with a robust depth ``z`` = median of the valid depth
  pixels in a ``window x window`` patch around it;
- orientation = rotation about +z by ``angle`` (so the gripper's local +x is the opening direction,
  local +z the approach direction = the camera's viewing direction);
- ``width_m = width * z / fx``.

Optionally (:func:`approach_quaternion`, :func:`reorient`; the node's and the API's
``approach: table``) the approach is a given direction instead, e.g. the normal of the table a
tilted camera sees: position and ``width_m`` as above, local +z = that direction, local +x = the
image opening direction ``(cos angle, sin angle, 0)`` made perpendicular to it. Along the optical
axis it is exactly the rotation about +z by ``angle``.

The depth image must be *registered* to the colour image (same viewpoint, e.g. Azure Kinect
``depth_to_rgb``); when its resolution differs, grasp pixels are scaled into it proportionally.

Intrinsics from a CameraInfo are checked before use (:func:`check_intrinsics`: finite, non-zero,
a pinhole form without skew, plausible focal lengths and principal point, a CameraInfo size of the
image's aspect ratio; :func:`check_distortion`: finite coefficients); so is a depth image's size
(:func:`check_size`). A pose is never computed from intrinsics or a depth image that fail, and
never contains a non-finite number. Poses assume a *rectified* image (the distortion
coefficients are not applied).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conventions import scale_intrinsics  # also re-exported


@dataclass(frozen=True)
class GraspPose:
    """A grasp in 3-D: ``position`` (x, y, z) [m] in the optical frame, ``quaternion``
    (x, y, z, w), ``width_m`` [m] and the depth ``z`` used [m]."""

    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    width_m: float
    depth: float


#: Plausible focal lengths [px] relative to the image width (fx) and height (fy): a lens from a
#: ~180 degree fisheye (about 0.3 x width) to a long telephoto (tens of widths) fits; 1e-30
#: does not.
FOCAL_RANGE = (0.1, 100.0)
#: The principal point may lie outside the image by at most this fraction of its size.
PRINCIPAL_MARGIN = 0.5
#: Largest relative difference between the aspect ratios of the CameraInfo and the image.
ASPECT_TOLERANCE = 0.02
#: A CameraInfo size more than this factor away from the image size is not the same camera mode.
SIZE_FACTOR = 16.0
#: Largest |skew| (K[0][1]) accepted, relative to fx (the back-projection ignores skew).
SKEW_TOLERANCE = 1e-6
_K_NAMES = {(0, 0): "fx", (1, 1): "fy", (0, 2): "cx", (1, 2): "cy"}


def _num(v: float) -> str:
    return "NaN" if v != v else f"{v:.6g}"


def check_size(what: str, size, image_size) -> str | None:
    """Why an image of ``size`` (h, w) cannot belong to the colour image of ``image_size`` (the
    same camera mode at another resolution), or ``None``: no zero side, at most
    :data:`SIZE_FACTOR` away from the image, the same aspect ratio within
    :data:`ASPECT_TOLERANCE`. ``what`` names it in the message ("CameraInfo", "depth image")."""
    h, w = int(size[0]), int(size[1])
    ih, iw = int(image_size[0]), int(image_size[1])
    if h <= 0 or w <= 0:
        return f"{what} size {w}x{h} has a zero side"
    if not (iw / SIZE_FACTOR <= w <= iw * SIZE_FACTOR and
            ih / SIZE_FACTOR <= h <= ih * SIZE_FACTOR):
        return (f"{what} size {w}x{h} is implausible for a {iw}x{ih} image (more than "
                f"{SIZE_FACTOR:g}x apart)")
    a_other, a_img = w / h, iw / ih
    if abs(a_other / a_img - 1.0) > ASPECT_TOLERANCE:
        return (f"{what} aspect ratio {a_other:.4g} ({w}x{h}) differs from the image's "
                f"{a_img:.4g} ({iw}x{ih}): not the same camera mode")
    return None


def _check_pinhole(K: np.ndarray) -> str | None:
    """The form of a pinhole K: finite, not all zero, positive focal lengths, no skew, bottom
    row (0, 0, 1) (the back-projection of :func:`grasp_poses` assumes exactly this form)."""
    for (i, j), v in np.ndenumerate(K):
        if not np.isfinite(v):
            return f"{_K_NAMES.get((i, j), f'K[{i}][{j}]')} is {_num(v)}"
    if not K.any():
        return "K is all zeros (an uncalibrated camera driver)"
    for name, v in (("fx", K[0, 0]), ("fy", K[1, 1])):
        if v <= 0:
            return f"{name} is {_num(v)}; focal lengths must be positive"
    if not np.allclose(K[2], (0.0, 0.0, 1.0), rtol=0.0, atol=1e-9):
        return (f"K's bottom row is ({', '.join(_num(v) for v in K[2])}), expected (0, 0, 1): "
                "not a pinhole camera matrix")
    if abs(K[1, 0]) > 1e-9:
        return f"K[1][0] is {_num(K[1, 0])}, expected 0: not a pinhole camera matrix"
    if abs(K[0, 1]) > SKEW_TOLERANCE * K[0, 0]:
        return (f"K has skew K[0][1] = {_num(K[0, 1])}; poses assume zero skew (rectify the "
                "image, e.g. with image_proc)")
    return None


def check_intrinsics(K, info_size=None, image_size=None) -> str | None:
    """Why the pinhole ``K`` cannot be trusted for 3-D poses, or ``None`` when it is plausible.

    Args:
        K: 3x3 intrinsics (row-major, 9 values), as in ``sensor_msgs/CameraInfo.k``.
        info_size: (h, w) the intrinsics belong to (the CameraInfo's height, width); ``None`` or
            (0, 0) = the image's size.
        image_size: (h, w) of the colour image the grasps are in; ``None`` skips the checks
            relative to the image (focal range, principal point, sizes).

    Checks, in order (the message names the first problem found): 9 finite values (``"fx is
    NaN"``), not all zero (an uncalibrated driver), positive focal lengths, a bottom row
    (0, 0, 1), no skew (``|K[0][1]|`` at most :data:`SKEW_TOLERANCE` x fx); a CameraInfo size
    that passes :func:`check_size`; then, with ``K`` scaled to the image size, focal lengths
    within :data:`FOCAL_RANGE` times the image width/height and the principal point within
    :data:`PRINCIPAL_MARGIN` of the image.
    """
    K = np.asarray(K, dtype=np.float64)
    if K.size != 9:
        return f"K has {K.size} values, expected 9 (3x3)"
    K = K.reshape(3, 3)
    reason = _check_pinhole(K)
    if reason or image_size is None:
        return reason
    ih, iw = int(image_size[0]), int(image_size[1])
    if info_size is not None and any(int(s) for s in info_size):
        h, w = int(info_size[0]), int(info_size[1])
        reason = check_size("CameraInfo", (h, w), image_size)
        if reason:
            return reason + (", K cannot be rescaled" if "camera mode" in reason else "")
        if (h, w) != (ih, iw):
            K = scale_intrinsics(K, (h, w), (ih, iw))
    lo, hi = FOCAL_RANGE
    for name, v, side, what in (("fx", K[0, 0], iw, "wide"), ("fy", K[1, 1], ih, "high")):
        if not lo * side <= v <= hi * side:
            return (f"{name} = {_num(v)} px is implausible for a {side} px {what} image "
                    f"(expected {lo * side:g} .. {hi * side:g})")
    cx, cy = K[0, 2], K[1, 2]
    m = PRINCIPAL_MARGIN
    if not (-m * iw <= cx <= (1 + m) * iw and -m * ih <= cy <= (1 + m) * ih):
        return (f"principal point (cx, cy) = ({_num(cx)}, {_num(cy)}) is far outside the "
                f"{iw}x{ih} image")
    return None


def check_distortion(D) -> str | None:
    """Why a CameraInfo's distortion coefficients ``D`` make its intrinsics untrustworthy (a
    non-finite value), or ``None``. Poses assume a *rectified* image: non-zero finite
    coefficients are accepted (see :func:`has_distortion`)."""
    d = np.asarray(D, dtype=np.float64).ravel()
    if d.size > 64:
        return f"the distortion array has {d.size} values (at most 64 expected)"
    bad = np.flatnonzero(~np.isfinite(d))
    if bad.size:
        return f"distortion coefficient D[{bad[0]}] is {_num(d[bad[0]])}"
    return None


def has_distortion(D) -> bool:
    """True when a CameraInfo's distortion coefficients are not all zero (an unrectified image;
    poses ignore the distortion)."""
    d = np.asarray(D, dtype=np.float64).ravel()
    return bool(d.size and np.any(d != 0))


def intrinsics_for_image(K, info_size, image_size) -> tuple[np.ndarray | None, str | None]:
    """``(K at image_size, None)`` when :func:`check_intrinsics` accepts ``K``, else
    ``(None, reason)``. ``info_size`` (h, w) is the CameraInfo's size ((0, 0) = the image's)."""
    reason = check_intrinsics(K, info_size, image_size)
    if reason:
        return None, reason
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    if info_size is not None and any(int(s) for s in info_size) and \
            (int(info_size[0]), int(info_size[1])) != (int(image_size[0]), int(image_size[1])):
        K = scale_intrinsics(K, info_size, image_size)
    return K, None


def valid_intrinsics(K) -> bool:
    """True when ``K`` has 9 finite values and positive focal lengths (the checks that need no
    image size; :func:`check_intrinsics` with the sizes is what the node uses)."""
    return check_intrinsics(K) is None


def robust_depth(depth_m: np.ndarray, x: float, y: float, window: int = 5) -> float:
    """Median of the valid (finite, > 0) depth values in a ``window x window`` patch centred on
    pixel ``(x, y)`` of ``depth_m`` (HxW float metres). NaN when the patch has no valid value or
    the centre is not finite."""
    h, w = depth_m.shape[:2]
    r = max(0, int(window) // 2)
    if not (np.isfinite(x) and np.isfinite(y)):
        return float("nan")
    c, rr = int(round(x)), int(round(y))
    if not (0 <= c < w and 0 <= rr < h):
        return float("nan")
    patch = depth_m[max(0, rr - r): rr + r + 1, max(0, c - r): c + r + 1]
    vals = patch[np.isfinite(patch) & (patch > 0)]
    return float(np.median(vals)) if vals.size else float("nan")


def quaternion_about_z(angle: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by ``angle`` [rad] about +z."""
    return (0.0, 0.0, float(np.sin(angle / 2.0)), float(np.cos(angle / 2.0)))


def grasp_poses(grasps, depth_m: np.ndarray, K, image_size, *, window: int = 5,
                min_depth: float = 0.05, max_depth: float = 20.0) -> list[GraspPose | None]:
    """3-D poses of grasps; ``None`` where the depth around the centre is missing.

    Args:
        grasps: list of :class:`~vita_grasp_core.grasp.Grasp` (or objects with x, y, angle, width)
            in pixels of the colour image.
        depth_m: ``HxW`` float depth in metres (NaN/0 invalid), registered to the colour image.
        K: 3x3 intrinsics of the colour image *at* ``image_size``, checked by the caller
            (:func:`check_intrinsics` / :func:`intrinsics_for_image`).
        image_size: (h, w) of the colour image the grasps are in.
        window: side of the median window in depth pixels.
        min_depth, max_depth: depths outside this range [m] count as missing.
    """
    K = np.asarray(K, dtype=np.float64).reshape(3, 3)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    ih, iw = int(image_size[0]), int(image_size[1])
    dh, dw = depth_m.shape[:2]
    sx, sy = dw / iw, dh / ih
    out: list[GraspPose | None] = []
    for g in grasps:
        dx, dy = (g.x + 0.5) * sx - 0.5, (g.y + 0.5) * sy - 0.5
        z = robust_depth(depth_m, dx, dy, window)
        if not (np.isfinite(z) and min_depth <= z <= max_depth):
            out.append(None)
            continue
        px = (g.x - cx) * z / fx
        py = (g.y - cy) * z / fy
        width_m = g.width * z / fx
        if not np.isfinite([px, py, width_m, g.angle]).all():
            out.append(None)  # never a pose with a non-finite number in it
            continue
        out.append(GraspPose((float(px), float(py), float(z)), quaternion_about_z(g.angle),
                             float(width_m), float(z)))
    return out


def approach_frame(angle: float, approach) -> np.ndarray:
    """3x3 rotation (columns = the grasp frame's x, y, z in the optical frame) whose +z is
    ``approach`` (a direction in the optical frame pointing away from the camera; normalised
    here) and whose +x is the image opening direction ``(cos angle, sin angle, 0)`` made
    perpendicular to it. ``ValueError`` for an approach that is not finite, not pointing away
    from the camera, or parallel to the opening direction."""
    a = np.asarray(approach, dtype=np.float64).reshape(3)
    n = float(np.linalg.norm(a))
    if not np.isfinite(a).all() or n < 1e-9 or a[2] <= 0:
        raise ValueError(f"approach {tuple(a.tolist())} must be finite and point away from "
                         "the camera (z > 0)")
    z = a / n
    d = np.array([np.cos(angle), np.sin(angle), 0.0])
    x = d - (d @ z) * z
    nx = float(np.linalg.norm(x))
    if nx < 1e-6:
        raise ValueError("approach parallel to the opening direction")
    x /= nx
    return np.stack([x, np.cross(z, x), z], axis=1)


def approach_quaternion(angle: float, approach) -> tuple[float, float, float, float]:
    """(x, y, z, w) of :func:`approach_frame`: the grasp frame whose +z is ``approach`` and
    whose +x is the image opening direction made perpendicular to it. ``approach = (0, 0, 1)``
    gives :func:`quaternion_about_z` of ``angle``. ``ValueError`` as :func:`approach_frame`."""
    return matrix_to_quaternion(approach_frame(angle, approach), canonical=True)


def matrix_to_quaternion(R, canonical: bool = False) -> tuple[float, float, float, float]:
    """3x3 rotation (columns = the rotated axes) -> (x, y, z, w), valid for every rotation (also
    half turns, where the usual sign-copying shortcut mirrors the angle); ``canonical``: the
    sign with ``w >= 0``."""
    from scipy.spatial.transform import Rotation

    q = Rotation.from_matrix(np.asarray(R, np.float64)).as_quat(canonical=canonical)
    return tuple(float(v) for v in q)


def reorient(poses, grasps, approach) -> list[GraspPose | None]:
    """``poses`` (of ``grasps``, as :func:`grasp_poses` gives them) with their approach along
    ``approach`` (:func:`approach_quaternion`); position, ``width_m`` and depth unchanged, None
    kept."""
    return [None if p is None else GraspPose(p.position, approach_quaternion(g.angle, approach),
                                             p.width_m, p.depth)
            for p, g in zip(poses, grasps)]
