#!/usr/bin/env python3
"""The VITA-Grasp demo (`make demo`): synthetic data -> tiny model -> ROS 2 node fed from a rosbag2
-> online/offline evaluation -> outputs/demo/report.md. See docs/demo.md and
`python scripts/demo.py --help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vita_grasp_ros.demo.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
