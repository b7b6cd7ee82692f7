"""The simulated tabletop: object names, settling, and the gripper's judgement of grasps
(success, missed, collided with a neighbour, unreachable, clamped), including a grasp given in a
tilted camera's optical frame through the documented pixel -> 3-D convention. Tiny scenes, a few
seconds in all; skipped without pybullet (except the test that the core works without it)."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from fixtures import CLI_TIMEOUT

from vita_grasp_core.sim.objects import OTHER_OBJECTS, parse_object_set

DOWN = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])  # G: x = world x, approach down


def test_object_names_and_unknown_names():
    assert parse_object_set("random:000-002,mug") == ["mug", "random/000", "random/001",
                                                      "random/002"]
    assert len(parse_object_set("random:900-999")) == 100
    assert parse_object_set("others") == sorted(OTHER_OBJECTS)
    for bad, word in (("spoon", "spoon"), ("random:999-900", "999-900"),
                      ("random:1000", "random:1000"), ("", "no objects")):
        with pytest.raises(ValueError) as e:
            parse_object_set(bad)
        msg = str(e.value)
        assert word in msg and "\n" not in msg
        if bad == "spoon":
            assert "mug" in msg and "random:" in msg  # lists what exists


def test_core_and_sim_modules_import_without_pybullet(tmp_path):
    code = (
        "import sys; sys.modules['pybullet'] = None\n"
        "import vita_grasp_core, vita_grasp_core.cli\n"
        "import vita_grasp_core.sim, vita_grasp_core.sim.camera, vita_grasp_core.sim.scene\n"
        "import vita_grasp_core.sim.gripper, vita_grasp_core.sim.label, vita_grasp_core.sim.cli\n"
        "import vita_grasp_core.sim.sources, vita_grasp_core.sim.bench\n"
        "from vita_grasp_core.sim.cli import main\n"
        f"sys.exit(main(['label', '--out', {str(tmp_path / 'x')!r}]))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=CLI_TIMEOUT)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "pybullet" in lines[0] and "make setup" in lines[0]


pytest.importorskip("pybullet")

from vita_grasp_core.sim import SimError, pybullet  # noqa: E402
from vita_grasp_core.sim.camera import CameraPose  # noqa: E402
from vita_grasp_core.sim.gripper import MAX_OPENING, Gripper, grasp_to_world  # noqa: E402
from vita_grasp_core.sim.scene import SimWorld  # noqa: E402


def _world_with_cubes(positions, size=0.05):
    """Cubes of side ``size`` placed at (x, y) on the table, settled."""
    world = SimWorld()
    world.drop(["cube"] * len(positions), np.random.default_rng(0), size_range=(size, size))
    p = pybullet()
    for body, (x, y) in zip(sorted(world.objects), positions):
        p.resetBasePositionAndOrientation(body, [x, y, size / 2 + 0.002], [0, 0, 0, 1],
                                          physicsClientId=world.client)
    world.settle()
    return world


def test_top_down_grasp_lifts_the_cube_and_others_fail_for_their_reason():
    world = _world_with_cubes([(0.0, 0.0)])
    with world:
        g = Gripper(world)
        state = world.save()
        body = next(iter(world.objects))
        top = world.position(body) + [0, 0, 0.025]
        out = g.execute(top, DOWN, 0.08)
        assert out.success and out.reason == "success" and out.lifted == [body]
        assert world.position(body)[2] - world.objects[body].rest_z >= 0.10

        world.restore(state)
        out = g.execute(top + [0.2, 0.0, -0.05], DOWN, 0.08)  # on the empty table
        assert not out.success and out.reason == "missed"

        world.restore(state)
        out = g.execute(top, DOWN, 0.02)  # narrower than the cube: fingers land on its top
        assert not out.success and out.reason == "missed" and out.blocked_by == "object"

        world.restore(state)
        out = g.execute(top, -DOWN @ np.diag([1, 1, 1]), 0.08)  # approach pointing up
        assert out.reason == "unreachable" and "from straight down" in out.detail

        world.restore(state)
        out = g.execute(top + [2.0, 0, 0], DOWN, 0.08)
        assert out.reason == "unreachable" and "workspace" in out.detail

        world.restore(state)
        out = g.execute(top, DOWN, 0.5)  # asks for more than the gripper opens: clamped
        assert out.clamped and out.opening == pytest.approx(MAX_OPENING) and out.success

        world.restore(state)
        assert g.execute(top * np.nan, DOWN, 0.08).reason == "unreachable"


def test_a_finger_on_a_neighbour_is_a_collision():
    world = _world_with_cubes([(0.0, 0.0), (0.07, 0.0)])
    with world:
        g = Gripper(world)
        target = min(world.objects, key=lambda b: world.position(b)[0])
        top = world.position(target) + [0, 0, 0.025]
        out = g.execute(top, DOWN, 0.11)  # the +x finger comes down on the neighbour
        assert not out.success and out.reason == "collided_neighbour"
        assert out.target == target


def test_camera_frame_grasp_from_pixels_with_a_tilted_camera():
    """Pixel grasp -> 3-D pose (grasp3d, the node's convention) -> world -> executed."""
    from vita_grasp_core.grasp import Grasp
    from vita_grasp_core.sim.candidates import pixel_to_pose

    world = _world_with_cubes([(0.03, -0.02)], size=0.04)
    with world:
        g = Gripper(world)
        pose = CameraPose.look_at([0, 0, 0], 0.55, math.radians(15), 1.0, 0.3)
        obs = world.render(pose)
        body = next(iter(world.objects))
        ys, xs = np.nonzero(obs.segmentation == body)
        grasp = Grasp(xs.mean(), ys.mean(), 0.3, 0.075 * obs.K[0, 0] / 0.5, 10)
        gp = pixel_to_pose(grasp, obs.depth, obs.K)
        # the back-projected point lies on the cube's visible surface
        pw, Rw = grasp_to_world(pose, gp.position, gp.quaternion)
        assert np.linalg.norm(pw[:2] - world.position(body)[:2]) < 0.03
        assert -0.005 < pw[2] < 0.045
        assert np.allclose(Rw[:, 2], pose.R[:, 2])  # approach = the camera's viewing axis
        out = g.execute(pw, Rw, gp.width_m)
        assert out.success, out.detail


def test_a_scene_that_does_not_settle_is_one_line_and_a_bad_file_fails_to_load(monkeypatch):
    world = SimWorld()
    with world:
        from vita_grasp_core.sim.objects import spawn

        obj = spawn("cube", world.client, np.random.default_rng(0), [0, 0, 0.5])
        world.objects[obj.body] = obj
        with pytest.raises(SimError) as e:
            world.settle(max_time=0.1)  # still falling after 0.1 s
        assert e.value.reason == "not_settled"
        assert "did not settle" in str(e.value) and "cube" in str(e.value)
        assert "\n" not in str(e.value)
        monkeypatch.setitem(OTHER_OBJECTS, "cube", "no/such/file.urdf")
        with pytest.raises(SimError) as e:
            spawn("cube", world.client, np.random.default_rng(0), [0, 0, 0.5])
        assert e.value.reason == "load_failed" and "no/such/file.urdf" in str(e.value)


def test_orientations_are_exact_also_for_half_turns():
    """Top-down grasps are half turns (w = 0): the conversion must keep the angle's sign."""
    from scipy.spatial.transform import Rotation

    from vita_grasp_core.sim.gripper import (
        matrix_to_quaternion,
        quaternion_to_matrix,
        rotation_about_z,
    )

    mats = [DOWN @ rotation_about_z(a) for a in np.linspace(-3.1, 3.1, 25)]
    mats += list(Rotation.random(200, random_state=0).as_matrix())
    for R in mats:
        assert np.allclose(quaternion_to_matrix(matrix_to_quaternion(R)), R, atol=1e-9)
    world = SimWorld()
    with world:
        g = Gripper(world)
        p = pybullet()
        for a in (0.7, -0.7, 1.3):
            R = DOWN @ rotation_about_z(a)
            g._place([0, 0, 0.3], matrix_to_quaternion(R), 0.03)
            fingers = [np.asarray(p.getLinkState(g.body, j, physicsClientId=world.client)[4])
                       for j in (0, 1)]
            # the fingers sit at -/+ the half opening along the grasp's opening axis
            assert np.allclose(fingers[1] - fingers[0], 2 * 0.03 * R[:, 0], atol=1e-6)


def test_a_bar_is_grasped_across_not_along_for_either_sign_of_the_angle():
    """Pixel angle -> camera frame -> world -> executed: a 10 cm bar turned either way is lifted
    by a 4.5 cm opening across it and missed along it (a mirrored angle would swap them)."""
    from vita_grasp_core.grasp import Grasp
    from vita_grasp_core.sim.candidates import pixel_to_pose

    p = pybullet()
    for yaw in (0.7, -0.7):
        world = SimWorld()
        with world:
            world.drop(["block"], np.random.default_rng(0), size_range=(0.10, 0.10))
            body = next(iter(world.objects))
            q = p.getQuaternionFromEuler([0, 0, yaw])
            p.resetBasePositionAndOrientation(body, [0.02, 0.01, 0.01], q,
                                              physicsClientId=world.client)
            world.settle()
            g = Gripper(world)
            state = world.save()
            cam = CameraPose.look_at([0, 0, 0], 0.5)
            obs = world.render(cam)
            ys, xs = np.nonzero(obs.segmentation == body)
            across = math.atan2(-math.cos(yaw), -math.sin(yaw))  # image y = -world y
            results = {}
            for name, angle in (("across", across), ("along", across + math.pi / 2)):
                wrapped = (angle + math.pi / 2) % math.pi - math.pi / 2
                grasp = Grasp(xs.mean(), ys.mean(), wrapped, 0.045 * obs.K[0, 0] / 0.49, 10)
                gp = pixel_to_pose(grasp, obs.depth, obs.K)
                world.restore(state)
                results[name] = g.execute(*grasp_to_world(cam, gp.position, gp.quaternion),
                                          gp.width_m).success
            assert results == {"across": True, "along": False}, (yaw, results)
