"""pip install -e .  (scripts/setup.sh does it): the Python packages of VITA-Grasp.

Installs the ROS-free core `vita_grasp_core` and the ROS adapter `vita_grasp_ros` with the console
scripts `vita-grasp` and `vita-grasp-node`. The adapter adds its `vita-grasp` subcommands (bag,
node, demo) through the entry-point group `vita_grasp.commands` (see vita_grasp_core/cli.py), so
the core's command line names no ROS module. The distribution is named `vita-grasp-python`, not
`vita_grasp`: the message build installs a `vita_grasp` egg-info (the `vita_grasp.msg` module)
into the same site-packages, and pip must not take one for the other.

Dependencies are not listed here on purpose: requirements.txt / requirements/*.txt are the source
of truth (pinned torch CPU build, ROS 2 wheels in a venv; apt packages on a real ROS install).
"""
from setuptools import find_packages, setup

PACKAGES = find_packages(
    include=['vita_grasp_core', 'vita_grasp_core.*', 'vita_grasp_ros', 'vita_grasp_ros.*'])

setup(
    name='vita-grasp-python',
    version='0.1.0',
    description='Planar grasp detection with frozen ViT features, with a ROS 2 node',
    license='Apache-2.0',
    python_requires='>=3.10',
    packages=PACKAGES,
    include_package_data=True,
    package_data={'': ['*.yaml', '*.json']},
    install_requires=[],
    entry_points={
        'console_scripts': [
            'vita-grasp = vita_grasp_core.cli:main',
            'vita-grasp-node = vita_grasp_ros.grasp_node:main',
        ],
        'vita_grasp.commands': [
            'bag = vita_grasp_ros.commands:BAG',
            'node = vita_grasp_ros.commands:NODE',
            'demo = vita_grasp_ros.commands:DEMO',
        ],
    },
    zip_safe=False,
)
