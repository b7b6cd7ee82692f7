"""The ``vita-grasp`` subcommands of the ROS adapter, registered in setup.py under the
entry-point group ``vita_grasp.commands`` (read by :func:`vita_grasp_core.cli.installed_commands`).

Importing this module imports no ROS package: the targets load only when their command runs.
"""
from vita_grasp_core.cli import Command

BAG = Command("vita_grasp_ros.bag.cli:main", "make, play, record and evaluate rosbag2 files")
NODE = Command("vita_grasp_ros.grasp_node:main", "run the ROS 2 grasp node (= vita-grasp-node)")
DOCTOR = Command("vita_grasp_ros.doctor.cli:main",
                 "check a camera (bag or live topics) for the grasp node")
DEMO = Command("vita_grasp_ros.demo.cli:main", "the whole loop on synthetic data (= make demo)")
