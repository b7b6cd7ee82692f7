"""Crash-safe file writing, written once for the whole project.

:func:`atomic_write` is used by checkpoints (:mod:`.checkpoint`), the feature cache
(:mod:`.training.feature_cache`) and the bag writer (:mod:`vita_grasp_ros.bag.io`).
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable


def _fsync_path(path: Path) -> None:
    """Flush a written file (or every file of a written directory) to disk."""
    if path.is_dir():
        for f in sorted(path.rglob("*")):
            if f.is_file():
                _fsync_path(f)
        return
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(directory: Path) -> None:
    """Make a rename in ``directory`` durable (best effort: not every OS opens directories)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write_fn: Callable[[Path], object], *, directory: bool = False,
                 durable: bool = True) -> Path:
    """Write ``path`` so that it either appears complete or not at all.

    ``write_fn(tmp)`` writes the content to ``tmp``, a fresh name in the same directory as
    ``path`` (so the final ``os.replace`` is a rename within one file system). The result is
    flushed to disk (``fsync``) and moved over ``path``; a previous file at ``path`` stays intact
    until that moment. On any failure (including ``KeyboardInterrupt``) the temporary is removed
    and the exception propagates.

    Args:
        path: final file (or, with ``directory=True``, directory) name.
        write_fn: called with the temporary ``Path``; its return value is ignored. For a file
            the temporary exists (empty) when it is called; with ``directory=True`` it does not
            exist yet and ``write_fn`` creates it (a file or a directory).
        directory: the output may be a directory (e.g. a rosbag2 directory). An existing
            directory at ``path`` is replaced only when ``write_fn`` produced a directory, and
            is removed just before the rename (the one step that is not atomic).
        durable: ``fsync`` the file and the directory (default). ``False`` keeps the atomic
            rename (a killed process never leaves a partial file) but skips the flushes, for
            caches that can be recomputed (the fsync's cost: docs/benchmarks.md).
    Returns:
        ``path`` as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        tmp.rmdir()
    else:
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        write_fn(tmp)
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: the writer produced no output for {path}")
        if durable:
            _fsync_path(tmp)
        if directory and tmp.is_dir() and path.is_dir():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)
    return path
