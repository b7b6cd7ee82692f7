#!/usr/bin/env python3
"""The VITA-Grasp demo (`make demo`): a simulated robot picks held-out objects with the shipped
sim-trained model through the ROS 2 grasp node, next to a random and an analytic baseline; report
in outputs/demo/report.md. See docs/demo.md and `python scripts/demo.py --help`."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vita_grasp_ros.demo.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
