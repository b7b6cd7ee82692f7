"""Smoke test of the demo (``make demo``) with a shrunken config: 3 scenes x 2 frames, 1 epoch
(scene 0 trains, 1 validates, 2 is scored).

Slow (about a minute on 2 busy cores): deselect with ``-m 'not slow'``. Checks the whole chain
(synth -> train -> bag -> node subprocess fed by the in-process player/recorder -> eval ->
report), that the scored scene is used neither for training nor for validation, that online equals
offline, that the node process is gone afterwards, and that a second run reuses the data and the
checkpoint.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from vita_grasp_ros.testing import allocate_domain_id  # noqa: E402

pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

pytestmark = [pytest.mark.slow, pytest.mark.ros]

REPO = Path(__file__).resolve().parents[1]


def _run(args, tmp_path, timeout=600):
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.run([sys.executable, str(REPO / "scripts" / "demo.py"), *args],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=timeout)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.split(")")[-1].split()[0] != "Z"


def test_demo_small(tmp_path):
    raw = yaml.safe_load((REPO / "vita_grasp_core" / "configs" / "tiny.yaml").read_text())
    raw["data"].update(train_scenes=[0], val_scenes=[1])
    raw["train"].update(epochs=1)
    cfg = tmp_path / "tiny_smoke.yaml"
    cfg.write_text(yaml.safe_dump(raw))
    out = tmp_path / "demo"
    args = ["--out", str(out), "--scenes", "3", "--frames", "2", "--config", str(cfg),
            "--domain-id", str(allocate_domain_id()), "--rate", "1"]
    p = _run(args, tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for step in range(1, 7):
        assert f"[{step}/6]" in p.stdout
    assert "online and offline metrics are identical" in p.stdout
    pid = int(re.search(r"started the grasp node \(pid (\d+)\)", p.stdout).group(1))
    assert not _alive(pid)  # the node subprocess was stopped
    assert "eval.mcap: scene 2 (training scenes [0], validation scenes [1])" in p.stdout
    report = (out / "report.md").read_text()
    assert "scene 2, used neither for training (scenes [0]) nor for choosing the checkpoint" \
        in report
    assert "| online (node via ROS, recorded) | 2 | 2 | 0 |" in report
    assert "**identical**" in report and "ros2 launch vita_grasp" in report
    for f in re.findall(r"\]\(([^)]+\.png)\)", report):
        assert (out / f).is_file(), f
    on = json.loads((out / "eval" / "online" / "eval.json").read_text())
    off = json.loads((out / "eval" / "offline" / "eval.json").read_text())
    assert on["metrics"] == off["metrics"] and on["latency"]["count"] == 2
    assert (out / "train" / "best_model.pt").is_file() and (out / "online.mcap").is_file()

    p2 = _run(args, tmp_path)
    assert p2.returncode == 0, p2.stdout[-3000:] + p2.stderr[-3000:]
    assert "reusing" in p2.stdout and "same config and data" in p2.stdout


def test_demo_refuses_a_scene_it_trained_or_validated_on(tmp_path):
    """The score must come from a scene that neither trained nor selected the model: exit 2 with
    one line, before anything is synthesized or trained."""
    cfg = REPO / "vita_grasp_core" / "configs" / "tiny.yaml"  # trains on 0-2, validates on 3
    for extra, why in ((["--eval-scene", "3"], "validation scene"),
                       (["--eval-scene", "1"], "training scene"),
                       (["--scenes", "4"], "--scenes 5")):
        p = _run(["--out", str(tmp_path / "d"), "--config", str(cfg), *extra], tmp_path,
                 timeout=120)
        assert p.returncode == 2, p.stdout + p.stderr
        assert why in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert not (tmp_path / "d").exists()
