"""The core never imports ROS (STYLE: the core is ROS-free; issue #11 item 6)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PROBE = r"""
import importlib, json, pkgutil, sys
import vita_grasp_core
names = ["vita_grasp_core"] + [m.name for m in pkgutil.walk_packages(
    vita_grasp_core.__path__, "vita_grasp_core.") if not m.name.endswith(".__main__")]
for n in names:
    importlib.import_module(n)
ros = sorted(m for m in sys.modules
             if m.split(".")[0] in ("rclpy", "rosidl_runtime_py", "rosbags", "vita_grasp",
                                    "launch", "launch_ros", "ament_index_python")
             or m.split(".")[0].endswith(("_msgs", "_interfaces")))
print(json.dumps({"modules": names, "ros": ros}))
"""


def test_importing_every_core_module_loads_no_ros():
    out = subprocess.run([sys.executable, "-c", _PROBE], cwd=REPO, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    files = [f for f in (REPO / "vita_grasp_core").rglob("*.py") if f.name != "__main__.py"]
    assert len(res["modules"]) == len(files) > 30  # every module was imported
    assert res["ros"] == [], f"vita_grasp_core imports ROS: {res['ros']}"


def test_core_sources_name_no_ros_module():
    """Not even by string (e.g. a command table naming vita_grasp_ros modules); docstrings may
    point readers to the ROS package."""
    bad = []
    for f in (REPO / "vita_grasp_core").rglob("*.py"):
        text = f.read_text()
        for word in ("import rclpy", "from rclpy", "import vita_grasp_ros", "from vita_grasp_ros",
                     '"vita_grasp_ros.', "'vita_grasp_ros.", "from vita_grasp.msg", "_msgs.msg"):
            if word in text:
                bad.append(f"{f.relative_to(REPO)}: {word}")
    assert not bad, bad
