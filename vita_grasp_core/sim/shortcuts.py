"""Physics the labeller skips because its outcome is already decided (docs/sim.md, "Speed").

A labelled frame tries 24 grasps, each about 400 physics steps when every phase runs its full
course. Most of those steps decide nothing: the gripper travelling through free space, fingers
jittering on an object they already hold, an object lifted at a steady speed, a grasp at rest
during the hold. :class:`Shortcuts` names what :meth:`Gripper.execute
<vita_grasp_core.sim.gripper.Gripper.execute>` may skip; the success rule (lift 15 cm, hold 1 s,
10 cm above rest, held by both fingers) and the failure reasons are unchanged, and
``test/test_sim_shortcuts.py`` checks that the verdicts agree with the full course.

The functions here take the :class:`~vita_grasp_core.sim.gripper.Gripper` and query the engine
(distances, contacts, velocities); only :func:`coast` moves bodies.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import pybullet

#: Clearance [m] kept to every other body when a free part of a motion is skipped.
LEAD = 0.02
#: The settled hold: an object this far [m] above the success height, slower than STILL_SPEED
#: [m/s] and STILL_SPIN [rad/s] at STILL_CHECKS checks in a row.
HOLD_MARGIN = 0.02
STILL_SPEED = 0.005
STILL_SPIN = 0.05
STILL_CHECKS = 3
#: Physics steps between two checks.
CHECK_EVERY = 12
#: The settled grip: the opening changed less than this [m] over two checks.
GRIP_STILL = 0.0003
#: Steps at the end of the lift always simulated (the stop's jolt).
COAST_END = 24


@dataclass(frozen=True)
class Shortcuts:
    """What a grasp trial may skip (all on: :data:`FAST`, the labeller's default).

    Attributes:
        free_approach: the way from the approach start to the first body within :data:`LEAD`
            is free (:func:`free_run`): the gripper starts there, already moving at the
            approach speed.
        settled_grip: the close ends once an object is between both fingers and the opening
            changed less than :data:`GRIP_STILL` over two checks (a held object's jitter can
            keep the fingers' speed above the stop threshold until the close times out).
        empty_close: the close ends as a miss once nothing can come between the fingers
            (:func:`nothing_to_catch`).
        coast_lift: while the gripper lifts held objects at a steady speed, touching nothing
            else, with every other object at rest, gripper and held objects are moved up
            together (:func:`coast`): uniform motion, the same physics anywhere.
        settled_hold: the hold ends as a success once a held object is :data:`HOLD_MARGIN`
            above the success height and still (:func:`held_still`) at :data:`STILL_CHECKS`
            checks in a row.
        early_exit: stop as soon as a failure is certain (nothing touched after closing;
            nothing high enough during the hold).
        asleep: every trial starts with the objects asleep (:meth:`SimWorld.sleep
            <vita_grasp_core.sim.scene.SimWorld.sleep>`; the labeller applies it).
    """

    free_approach: bool = True
    settled_grip: bool = True
    empty_close: bool = True
    coast_lift: bool = True
    settled_hold: bool = True
    early_exit: bool = True
    asleep: bool = True


#: The labeller's default: every shortcut.
FAST = Shortcuts()
#: The labeller before the shortcuts (only the failure exits): ``sim label --exact``.
EXACT = Shortcuts(free_approach=False, settled_grip=False, empty_close=False,
                  coast_lift=False, settled_hold=False, asleep=False)
#: Every phase runs its full course (the benchmark).
NONE = Shortcuts(False, False, False, False, False, False, False)


def _at_rest(p, body: int, client: int, velocity=(0.0, 0.0, 0.0)) -> bool:
    lin, ang = p.getBaseVelocity(body, physicsClientId=client)
    return (float(np.linalg.norm(np.subtract(lin, velocity))) < STILL_SPEED
            and float(np.linalg.norm(ang)) < STILL_SPIN)


def _gap(p, client: int, movers, others, reach: float) -> float:
    """Smallest distance [m] between a body of ``movers`` and one of ``others`` (``reach``
    when none is closer)."""
    return min([cp[8] for a in movers for b in others
                for cp in p.getClosestPoints(a, b, reach, physicsClientId=client)],
               default=reach)


def free_run(gripper, start, end, orn) -> float:
    """How far [m] the gripper can move from ``start`` towards ``end`` and stay at least
    :data:`LEAD` from every body: conservative advancement with distance queries (a
    translation by d changes no distance by more than d); no physics, the gripper is put back
    at ``start``."""
    p, c = pybullet(), gripper.world.client
    start, end = np.asarray(start, float), np.asarray(end, float)
    length = float(np.linalg.norm(end - start))
    if length <= LEAD:
        return 0.0
    u, s = (end - start) / length, 0.0
    others = [*gripper.world.static_bodies, *gripper.world.objects]
    for _ in range(50):
        p.resetBasePositionAndOrientation(gripper.body, (start + u * s).tolist(), list(orn),
                                          physicsClientId=c)
        gap = _gap(p, c, [gripper.body], others, length)
        if gap - LEAD < 1e-3 or s >= length - LEAD:
            break
        s = min(s + gap - LEAD, length - LEAD)
    p.resetBasePositionAndOrientation(gripper.body, start.tolist(), list(orn),
                                      physicsClientId=c)
    return s


def nothing_to_catch(gripper) -> bool:
    """No object within the fingers' gap (+ 2 mm) of either finger and every object at rest:
    closing further touches nothing."""
    p, c = pybullet(), gripper.world.client
    gap = gripper.finger_opening() + 0.002
    for b in gripper.world.objects:
        if not _at_rest(p, b, c):
            return False
        if any(p.getClosestPoints(gripper.body, b, gap, linkIndexA=j, physicsClientId=c)
               for j in (0, 1)):
            return False
    return True


def held_still(gripper, min_height: float) -> bool:
    """An object is held ``min_height`` + :data:`HOLD_MARGIN` above its rest height and at
    rest."""
    p, c, world = pybullet(), gripper.world.client, gripper.world
    return any(world.position(b)[2] - world.objects[b].rest_z >= min_height + HOLD_MARGIN
               and _at_rest(p, b, c) for b in gripper.held_bodies())


def _steady(p, c, gripper, held, velocity) -> bool:
    """Gripper and ``held`` move at ``velocity`` and touch only each other; every other object
    is at rest. (The fingers' joint speeds are no test: they read up to 0.1 m/s on a grip
    whose opening does not change; the caller compares openings.)"""
    if not held or not _at_rest(p, gripper.body, c, velocity):
        return False
    group = {gripper.body, *held}
    for b in held:
        if not _at_rest(p, b, c, velocity) or any(
                cp[2] not in group for cp in p.getContactPoints(bodyA=b, physicsClientId=c)):
            return False
    if any(cp[2] not in group for cp in p.getContactPoints(bodyA=gripper.body,
                                                            physicsClientId=c)):
        return False
    return all(_at_rest(p, b, c) for b in gripper.world.objects if b not in group)


def coast(gripper, velocity, step_length: float, most: int) -> int:
    """When :func:`_steady` holds (and the caller saw the opening settled), move the gripper and
    the objects it holds along ``velocity`` (their velocities kept) by whole steps of
    ``step_length`` [m], at most ``most`` steps, never closer than :data:`LEAD` to any other
    body. Returns the number of steps moved (0: not steady)."""
    p, c, world = pybullet(), gripper.world.client, gripper.world
    held = gripper.held_bodies()
    velocity = np.asarray(velocity, float)
    if most <= 0 or step_length <= 0 or not _steady(p, c, gripper, held, velocity):
        return 0
    movers = [gripper.body, *held]
    others = [b for b in [*world.static_bodies, *world.objects] if b not in movers]
    u = velocity / max(float(np.linalg.norm(velocity)), 1e-12)
    done = 0
    while done < most:
        reach = (most - done) * step_length + LEAD
        n = min(int((_gap(p, c, movers, others, reach) - LEAD) / step_length), most - done)
        if n <= 0:
            break
        for b in movers:
            pos, orn = p.getBasePositionAndOrientation(b, physicsClientId=c)
            lin, ang = p.getBaseVelocity(b, physicsClientId=c)
            p.resetBasePositionAndOrientation(b, (np.asarray(pos) + u * n * step_length)
                                              .tolist(), orn, physicsClientId=c)
            p.resetBaseVelocity(b, lin, ang, physicsClientId=c)
        done += n
    return done
