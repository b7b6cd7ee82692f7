"""The ``vita-grasp`` command line: the core names no ROS module, the ROS adapter's subcommands
arrive through the ``vita_grasp.commands`` entry points, every command is listed, and a command
whose module cannot be imported gives one line naming the missing module (exit 2)."""
from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from fixtures import CLI_TIMEOUT

from vita_grasp_core import cli

REPO = Path(__file__).resolve().parents[1]


def test_core_cli_names_no_ros_module():
    src = (REPO / "vita_grasp_core" / "cli" / "__init__.py").read_text()
    for name in ("vita_grasp_ros", "rclpy", "rosbags", "sensor_msgs", "vita_grasp.msg"):
        assert name not in src, name


def test_help_lists_every_command_without_importing_ros():
    """``--help`` shows the core's and the installed adapter's commands; collecting them imports
    neither rclpy nor the command modules themselves."""
    code = textwrap.dedent("""
        import sys
        from vita_grasp_core.cli import main
        rc = main(["--help"])
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in
                        ("rclpy", "rosbags", "sensor_msgs", "torch", "cv2")
                        or m.startswith(("vita_grasp_ros.bag", "vita_grasp_ros.grasp_node",
                                         "vita_grasp_ros.demo", "vita_grasp_ros.doctor")))
        print("LOADED", loaded)
        sys.exit(rc)
    """)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                       timeout=CLI_TIMEOUT)
    assert p.returncode == 0, p.stderr
    listed = [line.split()[0] for line in p.stdout.splitlines() if line.startswith("  ")]
    for name in ("synth", "data", "train", "eval", "infer", "weights", "bag", "node", "demo",
                 "doctor"):
        assert name in listed, p.stdout
    assert "LOADED []" in p.stdout
    assert p.stderr == ""  # no broken entry point


def test_entry_points_written_once():
    """setup.py (pip) and CMakeLists.txt (colcon) both take the ROS commands from one file."""
    import configparser

    cfg = configparser.ConfigParser()
    assert cfg.read(REPO / "cmake" / "vita_grasp_ros_entry_points.cfg")
    lines = [x.strip() for x in cfg["options.entry_points"][cli.ENTRY_POINT_GROUP].splitlines()
             if x.strip()]
    assert sorted(x.split("=")[0].strip() for x in lines) == ["bag", "demo", "doctor", "node"]
    assert "vita_grasp_ros_entry_points.cfg" in (REPO / "CMakeLists.txt").read_text()
    assert "vita_grasp_ros_entry_points.cfg" in (REPO / "setup.py").read_text()
    assert "vita_grasp_ros.commands" not in (REPO / "setup.py").read_text()


def test_ros_commands_come_from_entry_points():
    eps = {e.name: e.value for e in
           importlib.metadata.entry_points(group=cli.ENTRY_POINT_GROUP)}
    if not eps:
        pytest.skip("package not installed (run make setup: pip install -e .)")
    assert eps == {"bag": "vita_grasp_ros.commands:BAG", "node": "vita_grasp_ros.commands:NODE",
                   "demo": "vita_grasp_ros.commands:DEMO",
                   "doctor": "vita_grasp_ros.commands:DOCTOR"}
    commands, problems = cli.installed_commands()
    assert problems == []
    assert commands["bag"].target == "vita_grasp_ros.bag.cli:main"
    assert set(cli.COMMANDS) <= set(commands)


class _EP:
    """A stand-in for importlib.metadata.EntryPoint."""

    def __init__(self, name, value, obj=None, error=None):
        self.name, self.value, self._obj, self._error = name, value, obj, error

    def load(self):
        if self._error is not None:
            raise self._error
        return self._obj


@pytest.fixture
def plugins(monkeypatch, tmp_path):
    """Fake entry points: a working command (installed twice, as pip + colcon installs do), one
    whose module imports a missing package, a broken plug-in, a non-command object and one
    shadowing a core command."""
    (tmp_path / "vg_fake_cmd.py").write_text(
        "def main(argv):\n    print('fake', argv)\n    return 7\n")
    (tmp_path / "vg_needs_missing.py").write_text(
        "import vg_no_such_package  # noqa\n\ndef main(argv):\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [_EP("fake", "x:FAKE", cli.Command("vg_fake_cmd:main", "a fake command")),
           _EP("fake", "x:FAKE", cli.Command("vg_fake_cmd:main", "a fake command")),  # twice
           _EP("needy", "x:NEEDY", cli.Command("vg_needs_missing:main", "needs a package")),
           _EP("broken", "x:BROKEN", error=ImportError("boom")),
           _EP("odd", "x:ODD", obj=42),
           _EP("eval", "x:EVAL", cli.Command("vg_fake_cmd:main", "shadow"))]

    def fake_entry_points(group=None):
        return eps if group == cli.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    return eps


def test_entry_point_commands_dispatch(plugins, capsys):
    assert cli.main(["fake", "a", "--b"]) == 7
    assert "fake ['a', '--b']" in capsys.readouterr().out
    commands, problems = cli.installed_commands()
    assert commands["eval"] == cli.COMMANDS["eval"]  # the core's command wins
    assert "odd" not in commands and "broken" not in commands
    assert len(problems) == 3 and any("boom" in p for p in problems)
    assert cli.main(["--help"]) == 0
    out, err = capsys.readouterr()
    assert "a fake command" in out and "needs a package" in out
    assert "broken" in err and "boom" in err  # broken plug-ins are named, the rest still works


def test_missing_module_one_line(plugins, capsys):
    assert cli.main(["needy"]) == 2
    err = capsys.readouterr().err
    assert err.strip().count("\n") == 0 and "Traceback" not in err
    assert "vg_no_such_package" in err and "make setup" in err
    assert cli.main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["bag", "demo"])
def test_installed_ros_commands_run(command):
    p = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli", command, "--help"],
                       capture_output=True, text=True, cwd=REPO, timeout=CLI_TIMEOUT)
    if "unknown command" in p.stderr:
        pytest.skip("package not installed (run make setup: pip install -e .)")
    assert p.returncode == 0, p.stderr
    assert "usage:" in p.stdout
