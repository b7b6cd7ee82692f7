"""Crash-safe file writing, written once for the whole project.

:func:`atomic_write` is used by checkpoints (:mod:`.checkpoint`), the feature cache
(:mod:`.training.feature_cache`) and the bag writer (:mod:`vita_grasp_ros.bag.io`).
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
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


#: errno -> words (what the user can act on).
_ERRNO_TEXT = {
    errno.ENOSPC: "disk full (no space left on device)",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a path component is not a directory",
    errno.EISDIR: "is a directory",
    errno.ENOENT: "no such file or directory",
    errno.EEXIST: "exists already",
    errno.ENAMETOOLONG: "file name too long",
    errno.EFBIG: "file too large for the file system",
    errno.EIO: "input/output error",
    errno.ENXIO: "no such device",
    errno.ENODEV: "no such device",
}
#: What :func:`disk_full_error` considers "nearly full" (bytes free).
NEARLY_FULL = 1 << 20


def os_error_text(e: OSError, path=None) -> str:
    """``"<path>: disk full (no space left on device)"``: the file and the reason in words."""
    where = path if path is not None else (e.filename if e.filename is not None else "")
    own = e.strerror if e.strerror and e.errno is not None and \
        e.strerror != os.strerror(e.errno) else None  # a message written for this case
    what = own or _ERRNO_TEXT.get(e.errno) or e.strerror or str(e) or type(e).__name__
    return f"{where}: {what}" if str(where) else what


def _free_bytes(path: Path) -> int | None:
    for p in (path, *path.parents):
        try:
            return shutil.disk_usage(p).free
        except OSError:
            continue
    return None


def disk_full_error(e: BaseException, path) -> OSError | None:
    """An ``OSError`` (``ENOSPC``) naming ``path`` when ``e``, raised while writing ``path``, is
    a full disk in disguise (torch's ``unexpected pos`` / ``file write failed``, or the disk has
    less than :data:`NEARLY_FULL` bytes left); else ``None``."""
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
        return OSError(e.errno, _ERRNO_TEXT[e.errno], str(path))
    if "No space left on device" in str(e) or "os error 28" in str(e):  # safetensors
        return OSError(errno.ENOSPC, _ERRNO_TEXT[errno.ENOSPC], str(path))
    if disk_is_full(path):
        return OSError(errno.ENOSPC, _ERRNO_TEXT[errno.ENOSPC], str(path))
    return None


def disk_is_full(path) -> bool:
    """The file system ``path`` would be written to has less than :data:`NEARLY_FULL` bytes
    free (for writers that only say "failed", like ``cv2.imwrite``)."""
    free = _free_bytes(Path(path).parent)
    return free is not None and free < NEARLY_FULL


_KINDS = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"))


def check_replaceable(path, directory: bool = False) -> None:
    """Refuse to replace what is not a regular file (with ``directory``: or a directory): the
    atomic rename would turn ``/dev/full`` or a FIFO into a plain file (as root). A symbolic link
    counts as what it points to (the link itself would be replaced).

    Raises:
        FileExistsError (an ``OSError``): ``path`` exists and is a device, FIFO, socket or, without
            ``directory``, a directory; the message says which.
    """
    try:
        mode = os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return
    if stat.S_ISREG(mode) or (directory and stat.S_ISDIR(mode)):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    raise FileExistsError(errno.EEXIST, f"exists and is {kind}; refusing to replace it",
                          str(path))


def _disk_full(e: BaseException, path):
    """``OSError(ENOSPC)`` naming ``path`` when ``e`` is a full disk in disguise (torch's
    "unexpected pos", safetensors' own error, a bare "write failed"), else ``None``."""
    return disk_full_error(e, path) if isinstance(e, Exception) else None


def atomic_write(path, write_fn: Callable[[Path], object], *, directory: bool = False,
                 durable: bool = True) -> Path:
    """Write ``path`` so that it either appears complete or not at all.

    ``write_fn(tmp)`` writes the content to ``tmp``, a fresh name in the same directory as
    ``path`` (so the final ``os.replace`` is a rename within one file system). The result is
    flushed to disk (``fsync``) and moved over ``path``; a previous file at ``path`` stays intact
    until that moment. On any failure (including ``KeyboardInterrupt``) the temporary is removed
    and the exception propagates; a failure on a full disk propagates as ``OSError(ENOSPC)``
    naming ``path``, whatever the writer raised.

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
    Raises:
        FileExistsError: ``path`` exists and is not a regular file (:func:`check_replaceable`).
    """
    path = Path(path)
    check_replaceable(path, directory)
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
    except BaseException as e:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        full = _disk_full(e, path)
        if full is not None:
            raise full from None
        raise
    if durable:
        _fsync_dir(path.parent)
    return path


def write_bytes(path, data: bytes, *, durable: bool = False) -> Path:
    """:func:`atomic_write` of ``data``: the file is complete or absent, and a full or read-only
    disk is an ``OSError`` that says so (``errno`` set, unlike ``numpy.save``'s "N requested and
    M written" or ``cv2.imwrite``'s bare ``False``)."""
    return atomic_write(path, lambda p: p.write_bytes(data), durable=durable)


def save_npy(path, array) -> Path:
    """``numpy.save`` through :func:`write_bytes`."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    return write_bytes(path, buf.getvalue())
