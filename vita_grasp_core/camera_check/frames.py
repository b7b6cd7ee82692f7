"""Checks on decoded frames: exposure, depth unit and coverage, the table plane, depth
registered to colour, and (with a model) grasps with 3-D poses. Each returns a
:class:`~.verdict.Verdict` (some also the measured object, for the overlay picture)."""
from __future__ import annotations

import numpy as np

from ..grasp3d import check_size, grasp_poses, intrinsics_for_image
from . import depth as D
from . import registration as R
from .verdict import FAIL, PASS, SKIP, WARN, Verdict, verdict

#: Luminance (0-255) at or below which a pixel is black-clipped, at or above which white-clipped.
DARK, BRIGHT = 10, 245
#: Exposure limits: clipped fractions and median luminance. (A plain table with small objects
#: on it has little contrast and is well exposed: contrast is not judged, clipping is.)
MAX_BRIGHT_FRACTION, MAX_DARK_FRACTION = 0.10, 0.30
MEDIAN_RANGE = (25, 230)
#: A view tilted more than this [deg] passes with a hint to run the node with approach:=table
#: (in the simulator, grasps along the optical axis missed flat objects from 10-15 deg on).
TILT_HINT_DEG = 8.0
#: Luminance spread (99th - 1st percentile) below which the image is blank.
BLANK_SPREAD = 4

_REGISTER_FIX = ("use depth registered to colour (Azure Kinect: /depth_to_rgb/image_raw; "
                 "RealSense: align_depth.enable:=true) or register it (depth_image_proc "
                 "register)")


def luminance(rgb: np.ndarray) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float32 luminance 0-255 (ITU-R BT.601 weights)."""
    return rgb[..., :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


def check_exposure(rgbs) -> Verdict:
    """Under- / over-exposure (clipped pixels, median luminance) and blank frames of HxWx3
    uint8 RGB frames."""
    if not rgbs:
        return verdict("exposure", SKIP, "no decoded colour frame")
    y = np.concatenate([luminance(r[::2, ::2]).reshape(-1) for r in rgbs])
    p1, med, p99 = (float(v) for v in np.percentile(y, [1, 50, 99]))
    dark, bright = float((y <= DARK).mean()), float((y >= BRIGHT).mean())
    vals = dict(median=med, dark_fraction=dark, bright_fraction=bright, spread=p99 - p1)
    text = (f"median luminance {med:.0f}/255, {100 * dark:.1f} % black, {100 * bright:.1f} % "
            "white")
    if p99 - p1 < BLANK_SPREAD:
        return verdict("exposure", FAIL, f"the colour frames are blank (every pixel about "
                       f"{med:.0f}/255)", "check the lens cap, the light and the driver's "
                       "colour stream", **vals)
    if bright > MAX_BRIGHT_FRACTION or med > MEDIAN_RANGE[1]:
        return verdict("exposure", WARN, f"over-exposed: {text}", "lower the exposure / gain "
                       "or enable auto-exposure; avoid direct light on the table", **vals)
    if dark > MAX_DARK_FRACTION or med < MEDIAN_RANGE[0]:
        return verdict("exposure", WARN, f"under-exposed: {text}", "raise the exposure / gain "
                       "or enable auto-exposure; add light", **vals)
    return verdict("exposure", PASS, text, **vals)


def _depths(samples):
    return [s for s in samples if s.depth_m is not None]


def check_depth(samples) -> Verdict:
    """Depth unit (16UC1 mm vs 32FC1 m: a median scene depth that is implausible) and the share
    of valid pixels."""
    with_depth = _depths(samples)
    if not with_depth:
        return verdict("depth", SKIP, "no decoded depth frame")
    enc = with_depth[0].depth_encoding
    st = D.depth_stats(np.concatenate([s.depth_m[::2, ::2].reshape(-1) for s in with_depth]))
    vals = dict(encoding=enc, median_m=st.median_m, valid_fraction=st.valid_fraction)
    if st.valid_fraction < D.VALID_FAIL:
        return verdict("depth", FAIL, f"only {100 * st.valid_fraction:.1f} % of the depth "
                       "pixels are valid", "check the depth camera: range, IR projector, "
                       "exposure, and that it looks at the scene", **vals)
    problem = D.depth_unit_problem(st.median_m, enc)
    if problem:
        return verdict("depth", *problem, **vals)
    unit = D.implied_unit(enc)
    text = (f"{enc} ({unit}): median {st.median_m:.2f} m (5-95 %: {st.p5_m:.2f}-"
            f"{st.p95_m:.2f} m), {100 * st.valid_fraction:.0f} % valid")
    if st.valid_fraction < D.VALID_WARN:
        return verdict("depth", WARN, text, "fill the view with the table (too much is out of "
                       "the depth camera's range or field of view)", **vals)
    return verdict("depth", PASS, text, **vals)


def _depth_K(sample):
    """K at the depth image's size, or ``(None, reason)``."""
    info = sample.info
    if info is None:
        return None, "no CameraInfo"
    return intrinsics_for_image(info.K, (info.height, info.width), sample.depth_m.shape[:2])


def check_table(samples, depth_ok: bool = True) -> tuple[Verdict, "D.Plane | None"]:
    """The table plane from depth: distance and tilt of the view (warn beyond
    :data:`~.depth.MAX_TILT_DEG` from top-down, where planar grasps stop meaning what they say).
    ``depth_ok`` False (the depth check failed): skipped, distances would be meaningless."""
    with_depth = _depths(samples)
    if not with_depth or not depth_ok:
        return verdict("table plane", SKIP, "needs depth" if not with_depth else
                       "needs depth that passes the depth check"), None
    sample = with_depth[len(with_depth) // 2]
    K, reason = _depth_K(sample)
    if K is None:
        return verdict("table plane", SKIP, f"needs plausible intrinsics ({reason})"), None
    plane = D.fit_plane(sample.depth_m, K)
    if plane is None or plane.inlier_fraction < D.MIN_PLANE_FRACTION:
        frac = f" (the largest plane holds {100 * plane.inlier_fraction:.0f} % of the depth)" \
            if plane else ""
        return verdict("table plane", WARN, f"no dominant table plane{frac}", "point the camera "
                       "at the table so that it fills most of the view"), plane
    text = (f"table {plane.distance:.2f} m from the camera, view tilted {plane.tilt_deg:.1f} "
            f"deg from top-down ({100 * plane.inlier_fraction:.0f} % of the depth on it)")
    vals = dict(distance_m=plane.distance, tilt_deg=plane.tilt_deg,
                inlier_fraction=plane.inlier_fraction, normal=list(plane.normal))
    if plane.tilt_deg > D.MAX_TILT_DEG:
        return verdict("table plane", WARN, f"{text}: more than {D.MAX_TILT_DEG:g} deg, planar "
                       "grasps approach along the optical axis, not down onto the table",
                       f"mount the camera looking down at the table (tilt under "
                       f"{D.MAX_TILT_DEG:g} deg), or run the node with approach:=table (poses "
                       "along the table's normal)", **vals), plane
    lo, hi = D.TABLE_DISTANCE
    if not lo <= plane.distance <= hi:
        return verdict("table plane", WARN, f"{text}: outside {lo:g}-{hi:g} m", "mount the "
                       f"camera {lo:g}-{hi:g} m from the table (depth range, object size in "
                       "pixels)", **vals), plane
    if plane.tilt_deg > TILT_HINT_DEG:
        text += "; run the node with approach:=table for poses straight down onto it"
    return verdict("table plane", PASS, text, **vals), plane


def _content_depth(sample, shift_s: float | None):
    """The sample's depth, or with ``shift_s`` the candidate stamped nearest to that offset
    (the depth frame that belongs to the colour frame when the stamps are offset)."""
    if shift_s is None or not sample.depth_candidates:
        return sample.depth_m
    want = sample.stamp_ns + shift_s * 1e9
    return min(sample.depth_candidates, key=lambda c: abs(c[0] - want))[1]


def check_registration(samples, depth_shift_s: float | None = None
                       ) -> tuple[Verdict, "R.Alignment | None"]:
    """Depth outlines must lie on colour edges (:mod:`.registration`). ``depth_shift_s``: the
    stamp offset the sync check found; each colour frame is then compared with the depth frame
    captured with it, so that an offset is not also reported as a registration fault."""
    with_depth = _depths(samples)
    if not with_depth:
        return verdict("registration", SKIP, "needs depth"), None
    w = with_depth[0].rgb.shape[1]
    problem = check_size("depth image", with_depth[0].depth_m.shape[:2],
                         with_depth[0].rgb.shape[:2])
    if problem:  # what the node checks too: another size is another camera (mode)
        return verdict("registration", FAIL, f"{problem}: the depth camera's own image, not "
                       "registered to colour", _REGISTER_FIX), None
    pairs = [(s.rgb, _content_depth(s, depth_shift_s)) for s in with_depth]
    search, size = R.search_frames(pairs)
    a = R.best_alignment(search, size, w)
    if a is None or a.edge_pixels < R.MIN_EDGE_PIXELS or a.contrast < R.MIN_CONTRAST:
        what = (f"too few depth outlines ({a.edge_pixels if a else 0} edge px)"
                if a is None or a.edge_pixels < R.MIN_EDGE_PIXELS else
                f"depth outlines match no colour edges clearly (contrast {a.contrast:.2f})")
        return verdict("registration", WARN, f"cannot tell: {what}", "put objects with clear "
                       "outlines on the table and run the check again"), a
    return _registration_verdict(a, w), a


def _registration_verdict(a: "R.Alignment", width: int) -> Verdict:
    local = a.local_offset
    fit = (f"best fit: shift ({a.shift[0]:+.0f}, {a.shift[1]:+.0f}) px, scale {a.scale:.3f}"
           + (f"; outlines {local:.0f} px from colour edges" if local is not None else "")
           + f"; {a.edge_pixels} edge px in {a.frames} frame(s)")
    vals = dict(shift_px=list(a.shift), scale=a.scale, displacement_px=a.displacement,
                identity_score=a.identity, best_score=a.best, background=a.background,
                unique=a.unique, outline_offset_px=local)
    globally = (a.displacement <= R.REGISTERED * width and a.identity_share >= R.MIN_SHARE) or \
        a.identity_share >= R.SAME_AS_BEST
    if globally and (local is None or local <= R.REGISTERED * width):
        weak = "; few distinct outlines, weak evidence" if a.unique < R.AMBIGUOUS else ""
        return verdict("registration", PASS, f"depth outlines lie on colour edges ({fit}{weak})",
                       **vals)
    if globally:  # the whole image fits, the objects' outlines do not: parallax, a rotation
        off = (f"depth outlines lie {local:.0f} px from the colour edges of the objects though "
               f"the image as a whole fits ({fit})")
        if local <= R.SLIGHTLY_OFF * width:
            return verdict("registration", WARN, off, "check the depth-to-colour calibration "
                           "(extrinsics) of the camera", **vals)
        return verdict("registration", FAIL, f"depth is not registered to colour: {off}",
                       _REGISTER_FIX, **vals)
    clearly_off = (a.identity_share < R.OFF_SHARE and a.displacement > R.SLIGHTLY_OFF * width) \
        or (local is not None and local > R.SLIGHTLY_OFF * width)
    if not clearly_off and (a.unique < R.AMBIGUOUS or a.identity_share >= R.IDENTITY_SHARE):
        return verdict("registration", WARN, f"cannot tell: the depth outlines fit the colour "
                       f"edges about as well at several placements ({fit})", "put objects "
                       "with clear outlines on the table and run the check again", **vals)
    if a.displacement <= R.SLIGHTLY_OFF * width:
        return verdict("registration", WARN, f"depth is off colour by up to "
                       f"{a.displacement:.0f} px ({fit})", "check the depth-to-colour "
                       "calibration (extrinsics) of the camera", **vals)
    why = "another field of view" if abs(np.log(a.scale)) > 0.04 else \
        "another viewpoint or a shifted image"
    if a.unique < R.AMBIGUOUS:
        why += "; where exactly is ambiguous"
    return verdict("registration", FAIL, f"depth is not registered to colour: its outlines "
                   f"fit the colour edges only after moving them by up to {a.displacement:.0f}"
                   f" px ({why}; {fit})", _REGISTER_FIX, **vals)


def content_offsets(samples) -> list[tuple[float, float]]:
    """For each decoded colour frame with depth frames stamped around it: ``(dt, gain)`` where
    ``dt`` [s] is the stamp offset of the depth frame whose outlines fit the colour edges best
    and ``gain`` how much better it fits than the stamp-paired one (0 when that one is best).
    A static scene fits every candidate alike and says nothing."""
    import cv2

    out = []
    for s in samples:
        cands = s.depth_candidates
        if len(cands) < 3 or s.depth_stamp_ns is None:
            continue
        size = cands[0][1].shape
        close = R.color_edge_closeness(cv2.resize(s.rgb, (size[1], size[0]),
                                                  interpolation=cv2.INTER_AREA))
        scores = {st: R.identity_score(close, d) for st, d in cands}
        scores = {st: v for st, v in scores.items() if v is not None}
        if s.depth_stamp_ns not in scores or len(scores) < 3:
            continue
        best = max(scores, key=scores.get)
        out.append(((best - s.stamp_ns) / 1e9, scores[best] - scores[s.depth_stamp_ns]))
    return out


def check_grasps(grasps, sample, plane=None) -> Verdict:
    """Grasps predicted on ``sample`` and how many get a 3-D pose from its depth."""
    n = len(grasps)
    if n == 0:
        return verdict("grasps", WARN, "the model found no grasp above its score threshold",
                       "put objects in view; check exposure and the model's training data")
    if sample.depth_m is None:
        return verdict("grasps", PASS, f"{n} grasps (no depth: no 3-D poses)", grasps=n)
    K, reason = (None, "no CameraInfo") if sample.info is None else intrinsics_for_image(
        sample.info.K, (sample.info.height, sample.info.width), sample.rgb.shape[:2])
    if K is None:
        return verdict("grasps", WARN, f"{n} grasps, none with a 3-D pose ({reason})",
                       "fix the intrinsics (see above)", grasps=n)
    poses = grasp_poses(grasps, sample.depth_m, K, sample.rgb.shape[:2])
    ok = [p for p in poses if p is not None]
    text = f"{n} grasps, {len(ok)} with a 3-D pose"
    if poses[0] is not None:
        text += f"; best at {poses[0].depth:.2f} m"
        if plane is not None:
            height = plane.distance - float(np.dot(plane.normal, poses[0].position))
            text += f", {100 * height:.1f} cm above the table plane"
    if not ok:
        return verdict("grasps", WARN, text, "no depth under the grasps: check the depth "
                       "checks above", grasps=n, poses=0)
    return verdict("grasps", PASS, text, grasps=n, poses=len(ok))
