"""pip install -e .  (scripts/setup.sh does it): the Python packages of VITA-Grasp.

Installs the ROS-free core `vita_grasp_core` and the ROS adapter `vita_grasp_ros` with the console
scripts `vita-grasp` and `vita-grasp-node`. The adapter adds its `vita-grasp` subcommands (bag,
node, demo) through the entry-point group `vita_grasp.commands` (see
vita_grasp_core/cli/__init__.py) and its grasp source of the pick benchmark (node) through
`vita_grasp.sim_sources`
(vita_grasp_core/sim/sources.py), so the core names no ROS module; they are listed in
cmake/vita_grasp_ros_entry_points.cfg, which colcon builds (CMakeLists.txt) read too.

The distribution is named `vita-grasp-python`, not `vita_grasp`: the message build installs a
`vita_grasp` egg-info (the `vita_grasp.msg` module) into the same site-packages, and pip must not
take one for the other.

Dependencies are not listed here on purpose: requirements.txt / requirements/*.txt are the source
of truth (pinned torch CPU build, ROS 2 wheels in a venv; apt packages on a real ROS install).
"""
import configparser
from pathlib import Path

from setuptools import find_packages, setup

PACKAGES = find_packages(
    include=['vita_grasp_core', 'vita_grasp_core.*', 'vita_grasp_ros', 'vita_grasp_ros.*'])


def _ros_entry_points() -> dict[str, list[str]]:
    """Group -> `name = module:object` lines of the ROS adapter's entry points (one
    definition, shared with the colcon build)."""
    cfg = configparser.ConfigParser()
    path = Path(__file__).resolve().parent / 'cmake' / 'vita_grasp_ros_entry_points.cfg'
    if not cfg.read(path):
        raise SystemExit(f'setup.py: {path} is missing')
    return {group: [line.strip() for line in text.splitlines() if line.strip()]
            for group, text in cfg['options.entry_points'].items()}


setup(
    name='vita-grasp-python',
    version='0.1.0',
    description='Planar grasp detection with frozen ViT features, with a ROS 2 node',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=PACKAGES,
    include_package_data=True,
    package_data={'': ['*.yaml', '*.json'], 'vita_grasp_core.zoo': ['*.safetensors', '*.md']},
    install_requires=[],
    entry_points={
        'console_scripts': [
            'vita-grasp = vita_grasp_core.cli:main',
            'vita-grasp-node = vita_grasp_ros.grasp_node:main',
        ],
        **_ros_entry_points(),
    },
    zip_safe=False,
)
