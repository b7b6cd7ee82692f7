"""A depth check of planar grasps: openings that clear the object, fingers that land on free space.

Pure numpy, no ROS. The model proposes grasps from RGB; with a registered depth image and ``K``
each grasp is checked against the 3-D scene the way a parallel-jaw gripper executes it (the
executor of :mod:`vita_grasp_core.grasp3d`'s poses: fingertips at the pose, approach along the
camera's +z, or along the table normal with ``check_grasps(..., approach=)``, the fingers going
:attr:`DepthCheckSettings.approach_depth` past the grasp point but
never into the surface the objects rest on):

1. the depth pixels around the grasp are back-projected and expressed in the grasp frame
   (``x`` along the opening, ``y`` along the jaws, ``z`` along the approach, origin at the pose);
2. the local **support surface** is a plane fitted to them and to those 5 cm farther out (a
   small seeded RANSAC: the plane facing the camera with the most points near it and few
   points beyond it);
3. **obstacles** are the points the fingertips would reach: nearer than the fingertips' depth
   (the approach depth past the grasp point) and above the support surface, both by more than
   the depth :attr:`~DepthCheckSettings.tolerance`;
4. the object's **extent** along the closing line: from the centre outwards, the obstacles in
   the jaws' band, up to the first gap a finger fits into; the **opening** = twice the larger
   side + a :attr:`~DepthCheckSettings.margin` on each side, clamped to the gripper's maximum;
5. each finger's footprint (thickness x width at that opening) must hold no obstacle, and the
   palm's footprint nothing standing higher than the fingers are long.

A grasp whose fingers would hit something (``collision``) or that has nothing between its fingers
(``empty``) is first turned by the angles of :attr:`~DepthCheckSettings.turns`; if no turn
clears it, it is demoted behind every grasp that passed, unchanged (the model's grasp as it
was, executed only when nothing passed); so is a grasp on an object wider than the gripper
(``too_wide``). With ``failing="drop"`` such grasps are dropped instead. The rest keep the
model's order (quality first, then the free space beside the fingers). Every grasp carries one
line saying what was changed or why it was demoted or dropped (:class:`GraspCheck`).

The refined grasp stays a grasp of CONVENTIONS §1: its pixel ``width`` is the chosen opening at
the centre's depth (``width = opening * fx / z``), so ``width_m = width * z / fx`` still holds and
its pose is :func:`~vita_grasp_core.grasp3d.grasp_poses` of it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from .conventions import scale_intrinsics, wrap_angle
from .depth_scene import (
    BIN,
    GraspFrame,
    LocalScene,
    finger_hits,
    local_points,
    object_extent,
    support_plane,
)
from .grasp import Grasp
from .grasp3d import GraspPose, approach_frame, grasp_poses

#: Statuses of a checked grasp, best first (the rank tier of each).
STATUSES = ("ok", "collision", "empty", "too_wide", "no_depth", "unchecked")
FAILING_POLICIES = ("demote", "drop")
#: Statuses of grasps that failed the check (demoted or dropped).
FAILING = ("collision", "empty", "too_wide")
_TIER = {"ok": 0, "collision": 1, "empty": 1, "too_wide": 1, "unchecked": 2, "no_depth": 3}
OPENING_MODES = ("fit", "wider")
_MIN_POINTS = 3  # obstacle points a footprint may hold before it counts as hit (noise)
_SUPPORT_EXTRA = 0.05  # m beyond the gripper's reach seen when fitting the support surface


@dataclass(frozen=True)
class DepthCheckSettings:
    """The gripper and the check's tolerances. Defaults: a WSG-50-like parallel gripper (the
    simulator's, docs/sim.md): 110 mm maximum opening, finger pads 12 mm thick and 22 mm wide.

    Attributes:
        max_opening: largest opening between the finger pads [m].
        finger_width: size of a finger along the jaws (the grasp's ``y``) [m].
        finger_thickness: size of a finger along the opening, outside the pad [m].
        finger_length: from the fingertips to the palm along the approach [m].
        palm_length, palm_width: the palm's size along the opening and the jaws [m]; nothing
            may stand higher than the fingers are long under it.
        margin: free space left between each finger pad and the object's extent [m].
        approach_depth: how far past the grasp point (the pose, on the object's top surface)
            the fingertips go along the approach [m].
        tolerance: depth noise: a point must lie this far inside a finger's path to count [m].
        failing: what happens to a grasp that fails the check (collision, empty, too wide):
            ``demote`` (unchanged, behind every grasp that passed) or ``drop``.
        turns: angles [deg] tried, both ways, on a grasp that fails (fingers that would
            collide, an object too wide across, nothing between the fingers), the first that
            passes taken; up to 90 (across: an elongated object grasped along its length).
        opening: ``fit`` (extent + margins) or ``wider`` (the model's opening when it is larger
            and clear, else the fit).
        recentre: move the grasp centre along the closing line to the middle of the object's
            extent (when the fingers are clear there).
        align: of the model's angle and its turns (:attr:`turns`), take the clear one across
            the narrowest extent of the object (not only when the model's angle fails).
        max_checked: only the model's best this many grasps are checked (about 18 ms each);
            the rest follow them unchecked (``unchecked``, after the failing ones).
        window: depth median window of the pose (as :func:`~.grasp3d.grasp_poses`).
    """

    max_opening: float = 0.11
    finger_width: float = 0.022
    finger_thickness: float = 0.012
    finger_length: float = 0.06
    palm_length: float = 0.16
    palm_width: float = 0.05
    margin: float = 0.01
    approach_depth: float = 0.025
    tolerance: float = 0.005
    failing: str = "demote"
    turns: tuple[float, ...] = (15.0, 30.0, 45.0, 60.0, 90.0)
    recentre: bool = False
    align: bool = False
    max_checked: int = 20
    opening: str = "fit"
    window: int = 5

    def __post_init__(self):
        for name in ("max_opening", "finger_width", "finger_thickness", "finger_length",
                     "palm_length", "palm_width", "approach_depth"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.0 < v <= 1.0):
                raise ValueError(f"depth check: {name} must be in (0, 1] m, got {v}")
        for name in ("margin", "tolerance"):
            v = getattr(self, name)
            if not (math.isfinite(v) and 0.0 <= v <= 0.2):
                raise ValueError(f"depth check: {name} must be in [0, 0.2] m, got {v}")
        if self.failing not in FAILING_POLICIES:
            raise ValueError(f"depth check: failing must be one of {FAILING_POLICIES}, "
                             f"got {self.failing!r}")
        if self.opening not in OPENING_MODES:
            raise ValueError(f"depth check: opening must be one of {OPENING_MODES}, "
                             f"got {self.opening!r}")
        if not all(math.isfinite(t) and 0.0 < abs(t) <= 90.0 for t in self.turns):
            raise ValueError(f"depth check: turns must be angles in (0, 90] deg, got "
                             f"{self.turns}")
        if not 1 <= int(self.max_checked) <= 1000:
            raise ValueError(f"depth check: max_checked must be 1..1000, got {self.max_checked}")
        if not 1 <= int(self.window) <= 99:
            raise ValueError(f"depth check: window must be 1..99 px, got {self.window}")


@dataclass
class GraspCheck:
    """One grasp after the check.

    Attributes:
        grasp: the grasp as refined (pixel ``width`` = the opening; ``angle`` turned if it was).
        pose: its 3-D pose (:func:`~.grasp3d.grasp_poses` of ``grasp``), or None (no depth).
        status: one of :data:`STATUSES`.
        rank: the grasp's rank in the model's list (0 = its best).
        opening_m, extent_m: chosen opening and the object's extent along the closing line [m].
        free_m: free space beside the fingers (nearest obstacle outside them, at most 5 cm).
        note: one line: what was changed, or why the grasp was demoted or dropped.
    """

    grasp: Grasp
    pose: GraspPose | None
    status: str
    rank: int
    opening_m: float = 0.0
    extent_m: float = 0.0
    free_m: float = 0.0
    note: str = ""

    def to_dict(self) -> dict:
        return {"rank": self.rank, "status": self.status, "opening_m": round(self.opening_m, 4),
                "extent_m": round(self.extent_m, 4), "free_m": round(self.free_m, 4),
                "note": self.note}


@dataclass
class DepthCheck:
    """The checked grasps of one frame: ``kept`` best first (what to execute: ``kept[0]``),
    ``dropped`` (the failing ones with ``failing="drop"``)."""

    kept: list[GraspCheck] = field(default_factory=list)
    dropped: list[GraspCheck] = field(default_factory=list)

    @property
    def grasps(self) -> list[Grasp]:
        return [c.grasp for c in self.kept]

    @property
    def poses(self) -> list[GraspPose | None]:
        return [c.pose for c in self.kept]

    def summary(self) -> str:
        """One line: how many grasps passed, were changed, demoted, dropped."""
        n = {s: sum(c.status == s for c in self.kept + self.dropped) for s in STATUSES}
        changed = sum(bool(c.note) for c in self.kept if c.status == "ok")
        return (f"{n['ok']} clear ({changed} changed), {sum(n[s] for s in FAILING)} "
                f"failing, {n['no_depth']} without depth, {len(self.dropped)} dropped")


@dataclass
class _Verdict:
    status: str
    half: float
    extent: float
    free: float = 0.0
    why: str = ""
    shift: float = 0.0  # the centre moved along the closing line [m]


def _judge(fr: GraspFrame, model_half: float) -> _Verdict:
    """Opening and status of the grasp of frame ``fr`` (the model's half opening given): the
    object's extent with the full margin on each side, else the margin shrunk (down to the depth
    tolerance) until both fingers are clear."""
    s = fr.s
    left, right = object_extent(fr)
    extent, side = left + right, max(left, right)
    if side > s.max_opening / 2 - s.tolerance:
        return _Verdict("too_wide", s.max_opening / 2, extent,
                        why=f"object wider than the gripper: {extent * 1e3:.0f} mm occupied "
                            f"along the closing line (no room for a finger in it), the gripper "
                            f"opens {s.max_opening * 1e3:.0f} mm")
    if extent <= 0.0:
        return _Verdict("empty", model_half, 0.0,
                        why="nothing between the fingers above the support")
    if s.recentre and abs(right - left) > 2 * BIN and not fr.shift:
        v = _judge(GraspFrame(fr.local, fr.angle, s, (right - left) / 2), model_half)
        if v.status == "ok":
            return v
    halves = [side + m for m in (s.margin, s.margin / 2, s.tolerance)]
    if s.opening == "wider" and model_half > halves[0]:
        halves.insert(0, model_half)
    first = None
    for h in halves:
        v = _check_fingers(fr, min(h, s.max_opening / 2), extent)
        if v.status == "ok":
            return v
        first = first or v
    return first


def _check_fingers(fr: GraspFrame, h: float, extent: float) -> _Verdict:
    v = _finger_verdict(fr, h, extent)
    v.shift = fr.shift
    return v


def _finger_verdict(fr: GraspFrame, h: float, extent: float) -> _Verdict:
    left, right, free = finger_hits(fr, h)
    if fr.palm >= _MIN_POINTS:
        return _Verdict("collision", h, extent, free,
                        f"the palm would hit something standing more than "
                        f"{fr.s.finger_length * 1e3:.0f} mm above the fingertips")
    if left >= _MIN_POINTS or right >= _MIN_POINTS:
        side = " and ".join(n for n, k in (("left", left), ("right", right)) if k >= _MIN_POINTS)
        return _Verdict("collision", h, extent, free,
                        f"the {side} finger would land on something (opening "
                        f"{2 * h * 1e3:.0f} mm)")
    return _Verdict("ok", h, extent, free)


# ------------------------------------------------------------------------------ the check
def _local_scene(grasp: Grasp, pose: GraspPose, depth: np.ndarray, Kd: np.ndarray,
                 image_size, s: DepthCheckSettings, axes=None) -> LocalScene:
    ih, iw = int(image_size[0]), int(image_size[1])
    dh, dw = depth.shape[:2]
    centre = ((grasp.x + 0.5) * dw / iw - 0.5, (grasp.y + 0.5) * dh / ih - 0.5)
    radius = max(s.max_opening / 2 + s.finger_thickness,
                 math.hypot(s.palm_length / 2, s.palm_width / 2)) + 0.02
    wide = radius + _SUPPORT_EXTRA  # the support plane is fitted on a wider neighbourhood
    # a laterally wider patch when the approach is tilted (its radius is measured across it)
    pts = local_points(depth, Kd, centre, pose.depth, wide * (1.0 if axes is None else 1.2))
    pts = pts - np.asarray(pose.position)
    if axes is not None:
        pts = pts @ axes  # coordinates along the approach frame's axes
    r = np.hypot(pts[:, 0], pts[:, 1])
    return LocalScene(pts[r <= radius], support_plane(pts[r <= wide], s.tolerance), axes)


def _turn_angles(turns) -> list[float]:
    """Each turn both ways (a half turn once: +90 and -90 degrees give the same grasp)."""
    return [t * sign for t in turns for sign in (1, -1) if sign > 0 or abs(t) != 90.0]


def _check_one(grasp: Grasp, rank: int, depth, K, Kd, image_size,
               s: DepthCheckSettings, axes=None) -> GraspCheck:
    pose = grasp_poses([grasp], depth, K, image_size, window=s.window)[0]
    if pose is None:
        return GraspCheck(grasp, None, "no_depth", rank, note="no valid depth at the centre")
    local = _local_scene(grasp, pose, depth, Kd, image_size, s, axes)
    fx = float(np.asarray(K, np.float64).reshape(3, 3)[0, 0])
    model_half = grasp.width * pose.depth / fx / 2
    first = v = _judge(GraspFrame(local, grasp.angle, s), model_half)
    turn = 0.0
    if s.align and v.status == "ok":
        for t in _turn_angles(s.turns):
            w = _judge(GraspFrame(local, grasp.angle + math.radians(t), s), model_half)
            if w.status == "ok" and w.extent < v.extent - 2 * BIN:
                v, turn = w, t
    if v.status in ("collision", "empty", "too_wide"):
        for t in _turn_angles(s.turns):
            w = _judge(GraspFrame(local, grasp.angle + math.radians(t), s), model_half)
            if w.status == "ok":
                v, turn = w, t
                break
    if v.status != "ok":  # demoted or dropped: the model's grasp as it was
        return GraspCheck(grasp, pose, v.status, rank, 2 * model_half, v.extent, v.free,
                          v.why)
    refined, new_pose = _refined(grasp, v, turn, pose, depth, K, image_size, s)
    if new_pose is None:  # no depth at the re-centred point: keep the model's centre
        v.shift = 0.0
        refined, new_pose = _refined(grasp, v, turn, pose, depth, K, image_size, s)
    return GraspCheck(refined, new_pose, v.status, rank, 2 * v.half, v.extent, v.free,
                      _note(first, v, turn, model_half))


def _refined(grasp: Grasp, v: _Verdict, turn: float, pose: GraspPose, depth, K, image_size,
             s: DepthCheckSettings) -> tuple[Grasp, GraspPose | None]:
    """The grasp with the verdict's opening, turn and centre shift, and its pose (the pixel
    width is the opening at the new centre's depth, so width_m = the opening)."""
    K = np.asarray(K, np.float64).reshape(3, 3)
    a = grasp.angle + math.radians(turn)
    x = grasp.x + v.shift * math.cos(a) * K[0, 0] / pose.depth
    y = grasp.y + v.shift * math.sin(a) * K[1, 1] / pose.depth
    out = replace(grasp, x=float(x), y=float(y), angle=float(wrap_angle(a)))
    for _ in range(2):  # the width in pixels at the depth of the (new) centre
        z = pose.depth
        out = replace(out, width=float(2 * v.half * K[0, 0] / z))
        pose = grasp_poses([out], depth, K, image_size, window=s.window)[0]
        if pose is None or not v.shift:
            break
    return out, pose


def _note(first: _Verdict, v: _Verdict, turn: float, model_half: float) -> str:
    parts = []
    if abs(v.half - model_half) > 0.0005:
        parts.append(f"opening {2 * model_half * 1e3:.0f} -> {2 * v.half * 1e3:.0f} mm "
                     f"(object {v.extent * 1e3:.0f} mm)")
    if turn:
        why = first.why or (f"the object is {v.extent * 1e3:.0f} mm across there, "
                            f"{first.extent * 1e3:.0f} mm at the model's angle")
        parts.append(f"turned {turn:+.0f} deg ({why})")
    if v.shift:
        parts.append(f"centred {v.shift * 1e3:+.0f} mm along the closing line")
    return "; ".join(parts)


def check_grasps(grasps, depth_m: np.ndarray, K, image_size,
                 settings: DepthCheckSettings | None = None, approach=None) -> DepthCheck:
    """Check and refine ``grasps`` (best first, pixels of the colour image of ``image_size``
    (h, w)) against ``depth_m`` (HxW metres, registered, NaN/0 invalid) and ``K`` (3x3 at
    ``image_size``, checked by the caller as for :func:`~.grasp3d.grasp_poses`).

    ``approach``: the direction the gripper will come in along (optical frame, pointing away
    from the camera, e.g. the table normal of :func:`~.approach.approach_vector`); None = the
    camera axis (CONVENTIONS §1). The fingers, the palm and the support surface are judged
    along it, as the pose will be executed.

    Returns a :class:`DepthCheck`: ``kept`` ordered ``ok`` first (the model's order, then more
    free space), then the failing ones (``collision``, ``empty``, ``too_wide``; unchanged, in
    the model's order), then ``no_depth``; ``dropped`` the failing ones with
    ``failing="drop"``. Each keeps its pose.
    """
    s = settings or DepthCheckSettings()
    grasps = list(grasps)
    depth_m = np.asarray(depth_m)
    K = np.asarray(K, np.float64).reshape(3, 3)
    Kd = scale_intrinsics(K, image_size, depth_m.shape[:2])
    axes = None if approach is None else approach_frame(0.0, approach)
    checks = [_check_one(g, i, depth_m, K, Kd, image_size, s, axes)
              for i, g in enumerate(grasps[:s.max_checked])]
    rest = grasps[s.max_checked:]
    for i, (g, p) in enumerate(zip(rest, grasp_poses(rest, depth_m, K, image_size,
                                                     window=s.window)), len(checks)):
        checks.append(GraspCheck(g, p, "unchecked" if p else "no_depth", i,
                                 note=f"not checked (after the best {s.max_checked})"))
    drop = set(FAILING) if s.failing == "drop" else set()
    kept = [c for c in checks if c.status not in drop]
    kept.sort(key=lambda c: (_TIER[c.status], -c.grasp.quality, -c.free_m, c.rank))
    return DepthCheck(kept, [c for c in checks if c.status in drop])

