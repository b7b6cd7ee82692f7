"""The simulated tabletop: scenes, a Kinect-like camera, a parallel-jaw gripper, physics-labelled
data and the pick benchmark (docs/sim.md).

pybullet is an optional dependency (``requirements/sim.txt``): nothing here imports it at module
level; :func:`pybullet` imports it on first use and turns its absence into one clear
:class:`SimUnavailable` line. Everything else in ``vita_grasp_core`` works without it.

Frames and units: metres, radians. World frame: z up, the table top at ``z = TABLE_TOP``. Camera
frames are *optical* (x right, y down, z forward), as in ROS and :mod:`vita_grasp_core.grasp3d`.
"""
from __future__ import annotations

import contextlib
import os
import sys


class SimUnavailable(RuntimeError):
    """pybullet is not installed (one line naming the fix)."""


class SimError(RuntimeError):
    """A simulation problem reported as one line; ``reason`` is the short failure kind
    (``not_settled``, ``load_failed``, ...) a trial records."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def _flush_c_stdio() -> None:
    """Flush the C library's stdio buffers (what native code printed but has not written)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


def pybullet():
    """The ``pybullet`` module, imported on first use (:class:`SimUnavailable` when absent);
    its build banner is not printed."""
    module = sys.modules.get("pybullet")
    if module is not None:
        return module
    try:
        with quiet_native_output():
            import pybullet as p
    except ImportError:
        raise SimUnavailable("the simulator needs pybullet: run `make setup` (it installs "
                             "requirements/sim.txt) or `pip install pybullet==3.2.7`") from None
    return p


def data_path() -> str:
    """Directory of ``pybullet_data`` (the objects, tray and textures the simulator loads)."""
    pybullet()
    import pybullet_data

    return pybullet_data.getDataPath()


@contextlib.contextmanager
def quiet_native_output():
    """Silence what pybullet's C++ code prints to the process's stdout/stderr (its build banner,
    b3Warning lines of URDF loading); Python-level errors still raise."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:  # no real file descriptors (rare embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield
    finally:
        _flush_c_stdio()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
