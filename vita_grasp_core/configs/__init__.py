"""The training configs shipped with the package (``tiny.yaml``, ``dinov2_cornell.yaml``, ...).

They are package data: :func:`configs_dir` finds them through the installed package
(``importlib.resources``), so a pip or colcon install finds them as a source checkout does.
``--config NAME.yaml`` (or the former ``config/NAME.yaml``) names one from any directory.
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def configs_dir() -> Path:
    """The directory that holds the shipped ``*.yaml`` training configs."""
    return Path(str(files(__name__)))


def shipped_names() -> list[str]:
    """File names of the shipped configs, sorted."""
    return sorted(p.name for p in configs_dir().glob("*.yaml"))
