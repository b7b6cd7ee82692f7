"""Start-up of the node: a missing/corrupt checkpoint or a bad parameter is one clear error line
and a non-zero exit (no traceback); --help; the parameter file and the RViz configuration agree
with the node (the launch file: test_ros_launch.py)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from fixtures import REPO

from vita_grasp_ros.testing import START_TIMEOUT, ros_env

pytestmark = [pytest.mark.ros]


def _hub_checkpoint(path: Path) -> Path:
    """A checkpoint whose frozen encoder is referenced by a hub id (not stored): what training on
    a connected machine writes. Offline, the encoder cannot be found."""
    import torch

    from vita_grasp_ros.testing import write_tiny_checkpoint

    blob = torch.load(write_tiny_checkpoint(path), weights_only=True)
    blob["model_config"]["pretrained_model"] = "OpenGVLab/InternViT-300M-448px"
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items() if k.startswith("decoder.")}
    torch.save(blob, path)
    return path


def _run_many(cases, tmp_path, timeout=START_TIMEOUT):
    """Start every case's node at once (saves the start-up time), wait for all."""
    env = ros_env(tmp_path, HF_HUB_OFFLINE=1)
    procs = {}
    for name, args in cases.items():
        procs[name] = subprocess.Popen(
            [sys.executable, "-m", "vita_grasp_ros.grasp_node", *args], env=env, cwd=str(REPO),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = {}
    try:
        for name, p in procs.items():
            text, _ = p.communicate(timeout=timeout)
            out[name] = (p.returncode, text)
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(5)
    return out


def test_bad_start_up_is_one_clear_error_and_a_nonzero_exit(tmp_path):
    pytest.importorskip("rclpy")
    pytest.importorskip("vita_grasp.msg")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    params = str(REPO / "config" / "vita_grasp.yaml")
    res = _run_many({
        "missing": ["--ros-args", "--params-file", params,
                    "-p", f"checkpoint:={tmp_path / 'nope' / 'best_model.pt'}"],
        "corrupt": ["--ros-args", "-p", f"checkpoint:={corrupt}"],
        "empty": ["--ros-args", "--params-file", params],
        "reliability": ["--ros-args", "-p", f"checkpoint:={corrupt}",
                        "-p", "input_reliability:=sometimes"],
        "range": ["--ros-args", "-p", f"checkpoint:={corrupt}", "-p", "score_threshold:=2.0"],
        "directory": ["--ros-args", "-p", f"checkpoint:={tmp_path}"],
        "hub": ["--ros-args", "-p", f"checkpoint:={_hub_checkpoint(tmp_path / 'hub.pt')}"],
        "lifecycle": ["--lifecycle", "--ros-args", "-p", f"checkpoint:={corrupt}",
                      "-p", "input_depth:=0"],
    }, tmp_path)
    expect = {
        "missing": "checkpoint not found",
        "corrupt": "is not a VITA-Grasp checkpoint (unknown file format",
        "empty": "parameter 'checkpoint' is empty",
        "reliability": "parameter 'input_reliability' is 'sometimes'",
        "range": "parameter 'score_threshold' is 2.0; it must be in [0, 1]",
        "directory": "checkpoint is a directory, not a file",
        "hub": "not available locally",
        "lifecycle": "parameter 'input_depth' is 0; it must be in [1, 100]",
    }
    for name, (rc, text) in res.items():
        assert rc == 1, (name, rc, text)
        assert expect[name] in text, (name, text)
        assert "Traceback" not in text, (name, text)
        errors = [ln for ln in text.splitlines() if "ERROR" in ln]
        assert len(errors) == 1, (name, text)
        if name == "hub":  # the node's way to pass a local encoder, not the CLI's
            assert "-p pretrained_model:=DIR" in errors[0] and "--pretrained_model" not in text


def test_help_and_bad_arguments(tmp_path):
    env = ros_env(tmp_path)
    p = subprocess.run([sys.executable, "-m", "vita_grasp_ros.grasp_node", "--help"], env=env,
                       capture_output=True, text=True, timeout=START_TIMEOUT)
    assert p.returncode == 0 and "--ros-args" in p.stdout
    p = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli", "node", "--help"], env=env,
                       capture_output=True, text=True, timeout=START_TIMEOUT)
    assert p.returncode == 0 and "vita-grasp-node" in p.stdout
    p = subprocess.run([sys.executable, "-m", "vita_grasp_ros.grasp_node", "stray"], env=env,
                       capture_output=True, text=True, timeout=START_TIMEOUT)
    assert p.returncode == 2 and "unexpected arguments" in p.stderr


def test_params_file_covers_every_parameter():
    """Every start-up parameter is in the file with the node's default; the decoding parameters
    are left out (only commented) so the checkpoint's calibrated decoding applies."""
    from vita_grasp_ros.node_outputs import parameter_table
    from vita_grasp_ros.node_params import DECODING_PARAMETERS

    text = (REPO / "config" / "vita_grasp.yaml").read_text()
    params = yaml.safe_load(text)["/**"]["ros__parameters"]
    specs = {n: s for n, s in parameter_table().specs.items() if not s.from_checkpoint}
    assert set(params) == set(specs)
    for name, value in params.items():
        default = specs[name].default
        assert type(value) is type(default), (name, value, default)  # noqa: E721
        assert value == default, f"{name}: the file and the node's default disagree"
    for spec in DECODING_PARAMETERS:
        assert spec.name not in params
        assert f"# {spec.name}: {spec.default}" in text, spec.name


def test_rviz_config():
    data = yaml.safe_load((REPO / "config" / "vita_grasp.rviz").read_text())
    vm = data["Visualization Manager"]
    displays = {d["Class"]: d for d in vm["Displays"]}
    assert displays["rviz_default_plugins/Image"]["Topic"]["Value"] == "debug/heatmap"
    assert displays["rviz_default_plugins/MarkerArray"]["Topic"]["Value"] == "markers"
    assert vm["Global Options"]["Fixed Frame"] == "rgb_camera_link"


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "vita-grasp-node"
    if not script.exists():
        pytest.skip("vita-grasp-node is not installed in this environment (pip install -e .)")
    assert "vita_grasp_ros.grasp_node" in script.read_text()
