"""launch/vita_grasp.launch.py through the real ``ros2 launch`` (upstream launch, launch_ros and
ros2cli from ``../shared/ros2-tools/install.sh``; ``make test`` installs them into the venv where
that folder exists; skipped where they are absent).

Checked as a robot runs it: the node comes up with the launch arguments (namespace, image topic,
checkpoint), answers frames, and a terminal Ctrl-C (SIGINT to the whole process group: the node
gets the terminal's and launch's) stops it cleanly within launch's 5 s (no escalation to
SIGTERM); a params file can hold the checkpoint and
the decoding (launch arguments win when given); a `params_file:=` that does not exist is refused
in one line before anything starts; `use_rviz:=true` without rviz2 warns at WARNING level and
starts the node alone; `lifecycle:=true` starts the managed node; a missing checkpoint is one
error line from the node.
"""
from __future__ import annotations

import importlib.util
import os
import signal
import sys
from pathlib import Path

import pytest
from fixtures import REPO

from vita_grasp_ros.testing import (
    START_TIMEOUT,
    NodeProcess,
    RosHarness,
    allocate_domain_id,
    make_stamp,
    ros_env,
    stamp_ns,
    until_answered,
    wait_for,
    write_tiny_checkpoint,
)

pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")
pytest.importorskip("launch_ros", reason="launch/launch_ros are not installed: run "
                    "`bash ../shared/ros2-tools/install.sh .venv` (make test does it)")

pytestmark = [pytest.mark.ros, pytest.mark.slow]

LAUNCH_FILE = REPO / "launch" / "vita_grasp.launch.py"
ROS2 = Path(sys.executable).parent / "ros2"
CONFIG = REPO / "config" / "vita_grasp.yaml"


def _launch_module():
    spec = importlib.util.spec_from_file_location("vita_grasp_launch", LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_launch_arguments_logic():
    """The pure parts of the file with the real launch_ros classes."""
    mod = _launch_module()
    assert mod.node_parameters("/p.yaml") == ["/p.yaml"]  # not given: the file decides
    params_file, overrides = mod.node_parameters("/p.yaml", "/m/best_model.pt", "False")
    assert params_file == "/p.yaml" and overrides["use_compressed"] is False
    assert overrides["checkpoint"].value == "/m/best_model.pt"
    with pytest.raises(ValueError, match="use_compressed:='maybe' is not a boolean"):
        mod.node_parameters("/p.yaml", "", "maybe")
    _, overrides = mod.node_parameters("/p.yaml", "", "", "true", "table", "true")
    assert overrides == {"use_depth": True, "approach": "table", "depth_fallback": True}
    with pytest.raises(ValueError, match="depth_fallback:='maybe' is not a boolean"):
        mod.node_parameters("/p.yaml", "", "", "", "", "maybe")
    with pytest.raises(ValueError, match="approach:='side' is not one of camera, table"):
        mod.node_parameters("/p.yaml", "", "", "", "side")
    assert mod.remappings("/rgb/image_raw") == [("image", "/rgb/image_raw"),
                                                ("image/compressed", "/rgb/image_raw/compressed")]
    assert mod.remappings("/i", "/d", "/c")[2:] == [("depth", "/d"), ("camera_info", "/c")]
    from vita_grasp_core.approach import APPROACHES

    assert mod.APPROACHES == APPROACHES  # the launch file's copy of the node's choices
    with pytest.raises(RuntimeError, match="does not exist"):
        mod.check_params_file("/nonexistent/params.yaml")
    from vita_grasp_ros.node_params import NODE_NAME

    assert mod.NODE_NAME == NODE_NAME


def _launch(tmp_path, name, env, *args) -> NodeProcess:
    if not ROS2.exists():
        pytest.skip(f"{ROS2} is not installed (ros2cli from ../shared/ros2-tools)")
    return NodeProcess([], env, tmp_path / f"{name}.log",
                       command=[str(ROS2), "launch", str(LAUNCH_FILE), *args])


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return write_tiny_checkpoint(tmp_path_factory.mktemp("launch") / "best_model.pt")


def _env(tmp_path, domain):
    # the venv is the ROS prefix: the ament index finds vita_grasp (and no rviz2) there
    return ros_env(tmp_path, domain, AMENT_PREFIX_PATH=sys.prefix)


def _ctrl_c(proc: NodeProcess) -> int:
    """A terminal Ctrl-C: SIGINT to the whole process group (launch forwards a second one to
    the node). Returns launch's exit status."""
    os.killpg(proc.pid, signal.SIGINT)
    return proc.wait(40)


def _frame(stamp):
    import numpy as np

    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    m = rgb_to_image_msg(np.random.default_rng(0).integers(0, 256, (120, 160, 3), np.uint8))
    m.header.stamp = stamp
    m.header.frame_id = "cam"
    return m


def _answers(h, pub, results, timeout=START_TIMEOUT):
    """Publish frames until one comes back (the first ones may precede matching)."""
    def send():
        stamp = make_stamp()
        pub.publish(_frame(stamp))
        return stamp_ns(stamp)
    return until_answered(send, lambda want: any(stamp_ns(r.header.stamp) == want
                                                 for r in results.msgs),
                          timeout, resend=2.0, what="a result through the launched node")


def test_launched_node_answers_and_a_terminal_ctrl_c_stops_it_cleanly(tmp_path, ckpt):
    from sensor_msgs.msg import Image
    from vita_grasp.msg import GraspArray

    domain = allocate_domain_id()
    env = _env(tmp_path, domain)
    own = tmp_path / "robot.yaml"  # the checkpoint in the file and a decoding override
    own.write_text(f"/**:\n  ros__parameters:\n    checkpoint: \"{ckpt}\"\n    max_grasps: 3\n")
    runs = {
        "args": _launch(tmp_path, "args", env, f"checkpoint:={ckpt}", "namespace:=robot",
                        "image_topic:=/cam/image", f"params_file:={CONFIG}"),
        "file": _launch(tmp_path, "file", env, f"params_file:={own}", "namespace:=file",
                        "image_topic:=/file_cam/image", "use_rviz:=true"),
    }
    h = RosHarness(domain)
    try:
        for name, topic, out in (("args", "/cam/image", "/robot/grasps"),
                                 ("file", "/file_cam/image", "/file/grasps")):
            pub = h.publisher(Image, topic)
            results = h.subscribe(GraspArray, out)
            _answers(h, pub, results)
            assert runs[name].alive()
        assert all(len(r.grasps) <= 3 for r in results.msgs)  # max_grasps from the file
        rcs = {name: _ctrl_c(p) for name, p in runs.items()}
    finally:
        for p in runs.values():
            p.stop()
        h.close()
    for name, p in runs.items():
        out = p.output()
        assert rcs[name] == 0, (name, out)
        assert "Traceback" not in out and "KeyboardInterrupt" not in out, (name, out)
        assert "process has finished cleanly" in out, (name, out)
        assert "has died" not in out and "escalating" not in out, (name, out)
    warn = [ln for ln in runs["file"].output().splitlines() if "rviz2 package is not" in ln]
    assert len(warn) == 1 and "[WARNING]" in warn[0], runs["file"].output()


def test_bad_launches_are_one_clear_line(tmp_path, ckpt):
    env = _env(tmp_path, allocate_domain_id())
    missing = tmp_path / "nope" / "my.yaml"
    runs = {
        "params_file": _launch(tmp_path, "params_file", env, f"checkpoint:={ckpt}",
                               f"params_file:={missing}"),
        "checkpoint": _launch(tmp_path, "checkpoint", env, f"params_file:={CONFIG}",
                              f"checkpoint:={tmp_path / 'missing.pt'}", "namespace:=bad"),
        "lifecycle": _launch(tmp_path, "lifecycle", env, f"params_file:={CONFIG}",
                             f"checkpoint:={ckpt}", "namespace:=lc", "lifecycle:=true"),
    }
    try:
        rc = runs["params_file"].wait(START_TIMEOUT)
        wait_for(lambda: "has died" in runs["checkpoint"].output()
                 or not runs["checkpoint"].alive(), START_TIMEOUT,
                 what="the node without a checkpoint")
        wait_for(lambda: "unconfigured: waiting" in runs["lifecycle"].output(), START_TIMEOUT,
                 what="the managed node")
        lc_rc = _ctrl_c(runs["lifecycle"])
    finally:
        for p in runs.values():
            p.stop()
    out = runs["params_file"].output()
    assert rc != 0, out
    assert f"params_file:={missing} does not exist" in out, out
    assert "process started" not in out and "Traceback" not in out, out
    assert len([ln for ln in out.splitlines() if "does not exist" in ln]) == 1, out
    out = runs["checkpoint"].output()
    errors = [ln for ln in out.splitlines() if "ERROR" in ln and "checkpoint not found" in ln]
    assert len(errors) == 1 and "Traceback" not in out, out
    assert "exit code 1" in out, out
    out = runs["lifecycle"].output()
    assert lc_rc == 0 and "Traceback" not in out and "has died" not in out, out
    assert "escalating" not in out, out
