"""A parallel-jaw gripper that executes a 3-D grasp and judges it.

The gripper floats (no arm): a palm and two prismatic fingers, its base moved by a force-limited
constraint, its fingers by force-limited position motors. Its frame ``G``: origin at the
fingertips' centre (the tool point), +x the opening direction, +z the approach direction (from
the palm towards the fingertips), as :mod:`vita_grasp_core.grasp3d` defines a grasp pose: a grasp
published in the camera's optical frame is executed as given (``G`` = the pose, rotated to the
world with the camera pose), never recomputed.

:meth:`Gripper.execute`:

1. checks the grasp: finite numbers, opening > 0 (an opening above :data:`MAX_OPENING` is
   clamped and flagged), an approach pointing down (at most :data:`MAX_APPROACH_TILT` from
   straight down) and a target inside the workspace, else ``unreachable``;
2. opens to the opening, appears ``APPROACH_DISTANCE`` back along the approach axis and moves
   along +z to ``GRASP_DEPTH`` past the grasp point, never with a fingertip lower than
   ``CLEARANCE`` above the table / tray floor (the robot knows its workcell); a contact force
   above ``STOP_FORCE`` stops the approach (a guarded move) and is remembered;
3. closes with at most ``GRIP_FORCE`` per finger, lifts 15 cm straight up, holds 1 s;
4. success: an object is still between the fingers and at least 10 cm above where it rested.
   Failure reasons: ``collided_table``, ``collided_tray``, ``collided_neighbour`` (the approach was
   stopped there and nothing was lifted), ``missed`` (closed on nothing), ``slipped`` (held at
   closing, lost or not lifted by the end), ``unreachable``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..grasp3d import matrix_to_quaternion
from . import pybullet
from .scene import TIME_STEP, SimWorld
from .shortcuts import (
    CHECK_EVERY,
    COAST_END,
    GRIP_STILL,
    NONE,
    STILL_CHECKS,
    Shortcuts,
    coast,
    free_run,
    held_still,
    nothing_to_catch,
)

MAX_OPENING = 0.11  # m, between the finger pads
FINGER_LENGTH = 0.06
FINGER_THICKNESS = 0.012
FINGER_WIDTH = 0.022  # jaw size along G's y
PALM_HALF = (0.08, 0.025, 0.015)
APPROACH_DISTANCE = 0.12
GRASP_DEPTH = 0.025
CLEARANCE = 0.003
STOP_FORCE = 15.0  # N
GRIP_FORCE = 25.0  # N per finger
LIFT_HEIGHT = 0.15
HOLD_TIME = 1.0
SUCCESS_HEIGHT = 0.10
MAX_APPROACH_TILT = math.radians(60.0)
REACH = 0.45  # m, half extent of the reachable workspace in x and y
SPEED = 0.25  # m/s of the approach and the lift
PARK = (5.0, 5.0, 5.0)

FAILURES = ("no_grasp", "no_pose", "unreachable", "collided_table", "collided_tray",
            "collided_neighbour", "missed", "slipped", "timeout", "not_settled", "load_failed",
            "empty_scene")


@dataclass
class GraspOutcome:
    """What happened to one executed grasp.

    Attributes:
        success: an object is between the fingers and >= 10 cm above its rest height.
        reason: ``"success"`` or the failure kind (:data:`FAILURES`).
        lifted: body ids of the objects that were picked.
        opening: opening executed [m]; ``clamped``: the grasp asked for more than the maximum.
        blocked_by: what stopped the approach (``table``, ``tray``, ``object``) or ``""``.
        target: body id of the object nearest to the grasp point (-1 when none).
        detail: one line for the report.
    """

    success: bool
    reason: str
    lifted: list[int] = field(default_factory=list)
    opening: float = 0.0
    clamped: bool = False
    blocked_by: str = ""
    target: int = -1
    detail: str = ""

    def to_dict(self) -> dict:
        return {"success": self.success, "reason": self.reason, "lifted": list(self.lifted),
                "opening_m": round(self.opening, 5), "clamped": self.clamped,
                "blocked_by": self.blocked_by, "detail": self.detail}


def _box(p, client, half, offset, rgba):
    col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, collisionFramePosition=offset,
                                 physicsClientId=client)
    vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, visualFramePosition=offset,
                              rgbaColor=rgba, physicsClientId=client)
    return col, vis


def rotation_about_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def quaternion_to_matrix(q) -> np.ndarray:
    """(x, y, z, w) -> 3x3 rotation matrix."""
    return np.asarray(pybullet().getMatrixFromQuaternion(list(q))).reshape(3, 3)


class Gripper:
    """The gripper in a :class:`~vita_grasp_core.sim.scene.SimWorld` (parked out of view when
    idle)."""

    def __init__(self, world: SimWorld):
        p = pybullet()
        self.world, c = world, world.client
        palm = _box(p, c, PALM_HALF, [0, 0, -FINGER_LENGTH - PALM_HALF[2]], [0.2, 0.2, 0.2, 1])
        fh = [FINGER_THICKNESS / 2, FINGER_WIDTH / 2, FINGER_LENGTH / 2]
        left = _box(p, c, fh, [-FINGER_THICKNESS / 2, 0, 0], [0.5, 0.5, 0.5, 1])
        right = _box(p, c, fh, [FINGER_THICKNESS / 2, 0, 0], [0.5, 0.5, 0.5, 1])
        self.body = p.createMultiBody(
            1.0, palm[0], palm[1], list(PARK), [0, 0, 0, 1],
            baseInertialFramePosition=[0, 0, 0],  # = the tool point: poses are G poses
            linkMasses=[0.05, 0.05], linkCollisionShapeIndices=[left[0], right[0]],
            linkVisualShapeIndices=[left[1], right[1]],
            linkPositions=[[0, 0, -FINGER_LENGTH / 2]] * 2, linkOrientations=[[0, 0, 0, 1]] * 2,
            linkInertialFramePositions=[[0, 0, 0]] * 2,
            linkInertialFrameOrientations=[[0, 0, 0, 1]] * 2, linkParentIndices=[0, 0],
            linkJointTypes=[p.JOINT_PRISMATIC] * 2, linkJointAxis=[[-1, 0, 0], [1, 0, 0]],
            physicsClientId=c)
        for link in (0, 1):
            p.changeDynamics(self.body, link, lateralFriction=1.0, spinningFriction=0.003,
                             jointLowerLimit=0.0, jointUpperLimit=MAX_OPENING / 2,
                             physicsClientId=c)
        self.cid = p.createConstraint(self.body, -1, -1, -1, p.JOINT_FIXED, [0, 0, 0], [0, 0, 0],
                                      list(PARK), physicsClientId=c)
        self.park()

    # ------------------------------------------------------------------ low level
    def _set_fingers(self, half_opening: float, force: float) -> None:
        pybullet().setJointMotorControlArray(
            self.body, [0, 1], pybullet().POSITION_CONTROL, targetPositions=[half_opening] * 2,
            forces=[force] * 2, positionGains=[0.05] * 2, physicsClientId=self.world.client)

    def _place(self, pos, orn, half_opening: float) -> None:
        p, c = pybullet(), self.world.client
        p.resetBasePositionAndOrientation(self.body, list(pos), list(orn), physicsClientId=c)
        p.resetBaseVelocity(self.body, [0, 0, 0], [0, 0, 0], physicsClientId=c)
        for j in (0, 1):
            p.resetJointState(self.body, j, half_opening, 0.0, physicsClientId=c)
        p.changeConstraint(self.cid, list(pos), list(orn), maxForce=400.0, physicsClientId=c)
        self._set_fingers(half_opening, 200.0)

    def park(self) -> None:
        """Move out of the workspace (and out of the camera's view), fingers open."""
        self._place(PARK, (0, 0, 0, 1), MAX_OPENING / 2)

    def tcp(self) -> np.ndarray:
        return np.asarray(pybullet().getBasePositionAndOrientation(
            self.body, physicsClientId=self.world.client)[0])

    def finger_opening(self) -> float:
        c = self.world.client
        return sum(pybullet().getJointState(self.body, j, physicsClientId=c)[0] for j in (0, 1))

    def _contacts(self) -> list:
        return pybullet().getContactPoints(bodyA=self.body, physicsClientId=self.world.client)

    def _blocking(self) -> tuple[float, int]:
        """Largest total normal force [N] on the gripper from one body, and that body."""
        forces: dict[int, float] = {}
        for cp in self._contacts():
            forces[cp[2]] = forces.get(cp[2], 0.0) + cp[9]
        if not forces:
            return 0.0, -1
        body = max(forces, key=forces.get)
        return forces[body], body

    def held_bodies(self) -> list[int]:
        """Objects pressed by both fingers' inner faces (contact normals along the opening
        axis, towards each finger: not a finger resting on top of an object)."""
        x_axis = quaternion_to_matrix(pybullet().getBasePositionAndOrientation(
            self.body, physicsClientId=self.world.client)[1])[:, 0]
        touched: dict[int, set] = {}
        for cp in self._contacts():
            if cp[3] in (0, 1) and cp[2] in self.world.objects:
                side = float(np.dot(cp[7], x_axis)) * (1.0 if cp[3] == 1 else -1.0)
                if side > 0.5:
                    touched.setdefault(cp[2], set()).add(cp[3])
        return [b for b, links in touched.items() if len(links) == 2]

    def _overlapping(self) -> int:
        """A body the gripper intersects where it appears (-1: none): its way there from above
        would have hit it."""
        p, c = pybullet(), self.world.client
        for body in [*self.world.static_bodies, *self.world.objects]:
            if any(cp[8] < -0.001 for cp in p.getClosestPoints(self.body, body, 0.0,
                                                               physicsClientId=c)):
                return body
        return -1

    def touched_bodies(self) -> set[int]:
        """Objects in contact with a finger."""
        return {cp[2] for cp in self._contacts() if cp[3] in (0, 1) and cp[2] in
                self.world.objects}

    def _raised(self) -> list[int]:
        """Objects at least SUCCESS_HEIGHT above their rest height."""
        return [b for b, o in self.world.objects.items()
                if self.world.position(b)[2] - o.rest_z >= SUCCESS_HEIGHT]

    def _move(self, start, end, orn, speed: float = SPEED, guard: bool = False,
              skip: float = 0.0):
        """Move the tool point from ``start`` to ``end`` (world) in a straight line. With
        ``guard``, stop at the first contact force above STOP_FORCE; returns the body that
        stopped it (-1: none). ``skip`` [m]: the first part of the way is known to be free:
        the gripper is put there, moving at the speed of the move, and goes on from there."""
        p, c = pybullet(), self.world.client
        start, end = np.asarray(start, float), np.asarray(end, float)
        n = max(1, int(np.linalg.norm(end - start) / (speed * TIME_STEP)))
        k = min(n - 1, int(skip / max(np.linalg.norm(end - start) / n, 1e-12)))
        if k > 0:
            p.resetBasePositionAndOrientation(self.body, (start + (end - start) * (k / n))
                                              .tolist(), list(orn), physicsClientId=c)
            p.resetBaseVelocity(self.body, ((end - start) / (n * TIME_STEP)).tolist(),
                                [0, 0, 0], physicsClientId=c)
        for i in range(k + 1, n + 1):
            target = start + (end - start) * (i / n)
            p.changeConstraint(self.cid, target.tolist(), list(orn), maxForce=400.0,
                               physicsClientId=c)
            p.stepSimulation(physicsClientId=c)
            if guard:
                force, body = self._blocking()
                if force > STOP_FORCE:
                    here = self.tcp()
                    p.changeConstraint(self.cid, here.tolist(), list(orn), maxForce=400.0,
                                       physicsClientId=c)
                    return body
        return -1

    def _close(self, max_time: float = 0.8, shortcuts: Shortcuts = NONE) -> None:
        """Close with GRIP_FORCE until the fingers stop (and see :class:`Shortcuts`)."""
        p, c = pybullet(), self.world.client
        self._set_fingers(0.0, GRIP_FORCE)
        still, openings = 0, []
        for i in range(1, int(max_time / TIME_STEP) + 1):
            p.stepSimulation(physicsClientId=c)
            v = max(abs(p.getJointState(self.body, j, physicsClientId=c)[1]) for j in (0, 1))
            still = still + 1 if v < 1e-3 else 0
            if still >= 12:
                break
            if i % CHECK_EVERY:
                continue
            if shortcuts.empty_close and nothing_to_catch(self):
                break
            openings.append(self.finger_opening())
            if (shortcuts.settled_grip and len(openings) >= 3
                    and np.ptp(openings[-3:]) < GRIP_STILL and self.held_bodies()):
                break

    def _check(self, position, R, opening) -> str:
        if not (np.isfinite(position).all() and np.isfinite(R).all() and np.isfinite(opening)):
            return "the grasp has a non-finite number"
        if opening <= 0:
            return f"opening {opening:.4f} m is not positive"
        tilt = math.acos(float(np.clip(-R[2, 2], -1.0, 1.0)))
        if tilt > MAX_APPROACH_TILT:
            return (f"the approach is {math.degrees(tilt):.0f} deg from straight down (at most "
                    f"{math.degrees(MAX_APPROACH_TILT):.0f})")
        x, y, z = position
        if abs(x) > REACH or abs(y) > REACH or not -0.05 <= z <= 0.5:
            return f"the grasp point ({x:.3f}, {y:.3f}, {z:.3f}) m is outside the workspace"
        return ""

    def _tool_target(self, position, R, half_opening: float) -> np.ndarray:
        """GRASP_DEPTH past ``position`` along the approach, raised (along the approach) so
        that no fingertip corner comes closer than CLEARANCE to the supporting surface."""
        a = R[:, 2]
        target = position + a * GRASP_DEPTH
        corners = [R @ np.array([sx * (half_opening + FINGER_THICKNESS), sy * FINGER_WIDTH / 2,
                                 0.0]) for sx in (-1, 1) for sy in (-1, 1)]
        low = min(c[2] for c in corners)
        floor = self.world.support_height(target[0], target[1]) + CLEARANCE
        excess = floor - (target[2] + low)
        if excess > 0 and a[2] < -1e-6:
            target = target + a * (excess / a[2])  # a[2] < 0: moves back up the approach
        return target

    def _nearest_object(self, point) -> int:
        best, best_d = -1, np.inf
        for body in self.world.objects:
            lo, hi = pybullet().getAABB(body, physicsClientId=self.world.client)
            d = np.linalg.norm(np.maximum(0, np.maximum(np.asarray(lo) - point,
                                                        point - np.asarray(hi))))
            if d < best_d:
                best, best_d = body, d
        return best

    def execute(self, position, R, opening: float, *,
                shortcuts: Shortcuts = NONE) -> GraspOutcome:
        """Execute a grasp given in the world: tool point ``position`` (3,), orientation ``R``
        (3x3, columns = G's x (opening), y, z (approach)), ``opening`` [m]. ``shortcuts``
        skip physics whose outcome is decided (:class:`Shortcuts`; the labeller's)."""
        position = np.asarray(position, np.float64)
        R = np.asarray(R, np.float64)
        opening = float(opening)
        problem = self._check(position, R, opening)
        if problem:
            return GraspOutcome(False, "unreachable", detail=problem)
        clamped = opening > MAX_OPENING
        opening = min(opening, MAX_OPENING)
        half = opening / 2
        target = self._tool_target(position, R, half)
        start = target - R[:, 2] * APPROACH_DISTANCE
        orn = matrix_to_quaternion(R)
        out = GraspOutcome(False, "missed", opening=opening, clamped=clamped,
                           target=self._nearest_object(position))
        self._approach(start, target, orn, half, out, shortcuts.free_approach)
        self._close(shortcuts=shortcuts)
        held = self.held_bodies()
        if held or self.touched_bodies() or not shortcuts.early_exit:
            self._lift_and_hold(orn, shortcuts)
        self._judge(out, held)
        return out

    def _approach(self, start, target, orn, half: float, out: GraspOutcome,
                  free: bool = False) -> None:
        """Appear at ``start`` (open) and move to ``target``; note what stopped the way.
        ``free``: skip the way's free part (:func:`~vita_grasp_core.sim.shortcuts.free_run`)."""
        self._place(start, orn, half)
        hit = self._overlapping()
        if hit < 0:
            skip = free_run(self, start, target, orn) if free else 0.0
            hit = self._move(start, target, orn, guard=True, skip=skip)
        if hit >= 0:
            out.blocked_by = self.world.body_kind(hit)
            if out.blocked_by == "object" and hit != out.target:
                out.blocked_by = "neighbour"

    def _lift(self, orn, shortcuts: Shortcuts) -> None:
        """Lift LIFT_HEIGHT straight up at SPEED (coasting where :class:`Shortcuts` allow)."""
        p, c = pybullet(), self.world.client
        start = self.tcp()
        end = start + np.array([0.0, 0.0, LIFT_HEIGHT])
        n = max(1, int(np.linalg.norm(end - start) / (SPEED * TIME_STEP)))  # as _move
        i, opening = 1, -1.0
        while i <= n:
            p.changeConstraint(self.cid, (start + (end - start) * (i / n)).tolist(), list(orn),
                               maxForce=400.0, physicsClientId=c)
            p.stepSimulation(physicsClientId=c)
            if shortcuts.coast_lift and i % CHECK_EVERY == 0:
                last, opening = opening, self.finger_opening()
                if abs(opening - last) < GRIP_STILL:
                    i += coast(self, (end - start) / (n * TIME_STEP), LIFT_HEIGHT / n,
                               n - COAST_END - i)
            i += 1

    def _lift_and_hold(self, orn, shortcuts: Shortcuts) -> None:
        self._lift(orn, shortcuts)
        still = 0
        for k in range(int(round(HOLD_TIME / TIME_STEP))):
            pybullet().stepSimulation(physicsClientId=self.world.client)
            # nothing high enough now cannot be high enough later: the outcome is known
            if shortcuts.early_exit and k % 24 == 0 and not self._raised():
                break
            if shortcuts.settled_hold and k % CHECK_EVERY == 0:
                still = still + 1 if held_still(self, SUCCESS_HEIGHT) else 0
                if still >= STILL_CHECKS:
                    break

    def _judge(self, out: GraspOutcome, held: list[int]) -> None:
        """Success, or the failure reason (see the module docstring), and the detail line."""
        out.lifted = sorted(set(self.held_bodies()) & set(self._raised()))
        if out.lifted:
            out.success, out.reason = True, "success"
        elif out.blocked_by in ("table", "tray", "neighbour"):
            out.reason = f"collided_{out.blocked_by}"
        elif held:
            out.reason = "slipped"
        out.detail = (f"opening {out.opening * 1e3:.0f} mm"
                      + (" (clamped)" if out.clamped else "")
                      + (f", approach stopped by the {out.blocked_by}" if out.blocked_by else "")
                      + (f", held {len(held)} at closing" if held else ""))

    def release(self) -> None:
        """Open, park, and let the world settle without the gripper."""
        self._set_fingers(MAX_OPENING / 2, 200.0)
        self.world.step(24)
        self.park()


def grasp_to_world(camera_pose, position_cam, quaternion_cam) -> tuple[np.ndarray, np.ndarray]:
    """A grasp pose in the camera's optical frame (position [m], quaternion x, y, z, w) -> world
    ``(position, R)`` for :meth:`Gripper.execute`."""
    R_cam = quaternion_to_matrix(quaternion_cam)
    return camera_pose.to_world(np.asarray(position_cam, np.float64)), camera_pose.R @ R_cam
