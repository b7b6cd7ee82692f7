"""``vita-grasp doctor`` on bags of the simulated camera (vita_grasp_core.sim: pybullet's renderer,
its own scenes, textures, lights and sensor noise - made by other means than the doctor's own
fixtures): a good camera passes, a tilted one, millimetres in 32FC1 and depth from beside the
colour camera are named."""
from __future__ import annotations

import math

import numpy as np
import pytest
from fixtures.camera_bags import Faults, shifted, write_camera_bag

pytest.importorskip("pybullet")
pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from vita_grasp_ros.doctor.cli import main  # noqa: E402

pytestmark = [pytest.mark.slow]


def _render(seed: int, tilt_deg: float, n: int = 4):
    from vita_grasp_core.sim.camera import CameraPose
    from vita_grasp_core.sim.scene import SimWorld, random_appearance

    rng = np.random.default_rng(seed)
    with SimWorld(random_appearance(rng)) as world:
        world.drop([f"random/{i:03d}" for i in rng.choice(900, 5, replace=False)], rng)
        pose = CameraPose.look_at([0, 0, world.support_height(0, 0)], 0.6,
                                  math.radians(tilt_deg), rng.uniform(0, 6.28),
                                  rng.uniform(0, 6.28))
        out = []
        for _ in range(n):  # sensor noise differs per frame
            obs = world.render(pose, rng)
            out.append((obs.rgb, np.where(obs.depth > 0, obs.depth, np.nan), obs.K))
        return out


@pytest.fixture(scope="module")
def sim_frames():
    return {"down": _render(1, 10.0), "tilted": _render(2, 40.0)}


def _doctor(capsys, bag):
    rc = main([str(bag), "--quiet", "--overlay", "", "--frames", "3"])
    return rc, capsys.readouterr().out


def _status(out: str, check: str) -> str:
    return next(line[:4] for line in out.splitlines() if line[8:].startswith(check))


def test_simulated_camera(sim_frames, tmp_path, capsys):
    good = write_camera_bag(tmp_path / "good.mcap", sim_frames["down"],
                            Faults(depth_encoding="32FC1"), rate=10.0)
    rc, out = _doctor(capsys, good)
    assert rc == 0, out
    tilted = write_camera_bag(tmp_path / "tilt.mcap", sim_frames["tilted"], rate=10.0)
    rc, out = _doctor(capsys, tilted)
    assert rc == 1 and _status(out, "table plane") == "WARN" and "tilted 40.0 deg" in out, out
    mm = write_camera_bag(tmp_path / "mm.mcap", sim_frames["down"],
                          Faults(depth_encoding="32FC1", depth_scale=1000.0), rate=10.0)
    rc, out = _doctor(capsys, mm)
    assert rc == 1 and _status(out, "depth") == "FAIL" and "look like mm" in out, out
    side = [(rgb, shifted(d, 24), K) for rgb, d, K in sim_frames["down"]]
    rc, out = _doctor(capsys, write_camera_bag(tmp_path / "side.mcap", side, rate=10.0))
    assert rc == 1 and _status(out, "registration") == "FAIL", out
