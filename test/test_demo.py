"""Smoke test of the demo (``make demo``), shrunk: the tiny random-init checkpoint instead of the
shipped ``sim`` model, 2 singulated scenes and 1 tray of 3 objects.

Slow (about a minute on 2 busy cores): deselect with ``-m 'not slow'``. Checks the whole chain
(labelling picture -> baselines -> the node process in the loop -> report), that every source met
the same scenes, that the node's pose follows the documented convention, that the node process
is gone afterwards; bad arguments are one line and exit 2 before anything runs.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from vita_grasp_ros.testing import allocate_domain_id, write_tiny_checkpoint

pytest.importorskip("pybullet")
pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

pytestmark = [pytest.mark.slow, pytest.mark.ros]

REPO = Path(__file__).resolve().parents[1]


def _run(args, tmp_path, timeout=900):
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


def _scenes(path: Path) -> list:
    return [(r["trial"], tuple(r["scene_objects"])) for r in
            map(json.loads, path.read_text().splitlines()) if r["attempt"] == 0]


def test_demo_small(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "demo"
    p = _run(["--out", str(out), "--model", str(ckpt), "--singulated", "2", "--clutter", "1",
              "--objects-per-scene", "3", "--domain-id", str(allocate_domain_id())], tmp_path)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for step in range(1, 6):
        assert f"[{step}/5]" in p.stdout
    pid = int(re.search(r"started the grasp node \(pid (\d+)\)", p.stdout).group(1))
    assert not _alive(pid)  # the node process was stopped
    report = (out / "report.md").read_text()
    for scenario in ("singulated", "clutter"):
        for source in ("random", "analytic", "node"):
            s = json.loads((out / "bench" / scenario / source / "summary.json").read_text())
            assert s["attempts"] >= 1 and (out / "bench" / scenario / source / "strip.png"
                                           ).is_file()
        # every source met the same scenes
        trials = {src: _scenes(out / "bench" / scenario / src / "trials.jsonl")
                  for src in ("random", "analytic", "node")}
        assert trials["random"] == trials["analytic"] == trials["node"], trials
    assert report.count("**the sim model through the ROS 2 node**") == 2
    assert "analytic grasp on the ground-truth mask (baseline)" in report
    m = re.search(r"position ([\d.]+) mm, rotation ([\d.]+) deg", report)
    assert m and float(m.group(1)) <= 2.0 and float(m.group(2)) <= 1.0, report
    assert (out / "labels.png").is_file() and "![labelled candidates](labels.png)" in report
    for f in re.findall(r"\]\(([^)]+\.png)\)", report):
        assert (out / f).is_file(), f


@pytest.mark.parametrize("args,why", [
    (["--model", "no_such_model"], "no_such_model"),
    (["--singulated", "0", "--clutter", "0"], "not both 0"),
    (["--objects", "random:5000"], "random"),
    (["--objects-per-scene", "40"], "--objects-per-scene"),
])
def test_demo_bad_arguments_are_one_line(tmp_path, args, why):
    """Exit 2 with one line naming the problem, before the benchmark runs."""
    p = _run(["--out", str(tmp_path / "d"), "--no-label", *args], tmp_path, timeout=300)
    assert p.returncode == 2, p.stdout + p.stderr
    err = p.stderr.strip().splitlines()
    assert len(err) == 1 and why in err[0] and "Traceback" not in p.stderr, p.stderr
    assert not (tmp_path / "d" / "bench").exists()


def test_demo_without_the_shipped_model_runs_the_baselines(monkeypatch):
    """A checkout without the shipped ``sim`` model: step 1 says so in one line, the node step
    is skipped (no traceback), and the report names the problem."""
    from vita_grasp_core import zoo
    from vita_grasp_ros.demo import cli
    from vita_grasp_ros.demo.report import State

    monkeypatch.setattr(zoo, "list_models", lambda: {})
    st, note = State(), {"text": ""}
    assert cli.step_model(cli.Options(), st, note) is None
    assert st.problems == [cli.NOT_SHIPPED] and "not in this checkout" in cli.NOT_SHIPPED
    with pytest.raises(zoo.ZooError):  # a model named on the command line must exist
        cli.step_model(cli.Options(model="no_such_model"), State(), {"text": ""})
