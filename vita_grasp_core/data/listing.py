"""Listing a data set's folders for the format scanners: which files a frame has, and what is
wrong with one before it is opened.

An entry that is there but is not a regular file (a FIFO, a directory, a socket, a device, a
dangling link) is listed with the size :data:`NOT_A_FILE`: a scanner reports it
(``not_a_file_<file>``) instead of taking it for absent, and never opens it (reading a FIFO
blocks until something writes to it).
"""
from __future__ import annotations

import os
from pathlib import Path

#: The size listed for an entry that is not a regular file.
NOT_A_FILE = -1


def entry_size(entry: os.DirEntry) -> int:
    """A regular file's size in bytes, else :data:`NOT_A_FILE`."""
    try:
        return entry.stat().st_size if entry.is_file() else NOT_A_FILE
    except OSError:  # gone since the listing, or unreadable
        return NOT_A_FILE


def folder_sizes(folder) -> dict[str, int]:
    """``{name: size}`` of the entries of ``folder`` (:data:`NOT_A_FILE` for those that are not
    regular files); a missing or unreadable folder lists nothing."""
    try:
        with os.scandir(folder) as it:
            return {e.name: entry_size(e) for e in it}
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return {}


def walk_folders(root: Path, max_depth: int, depth: int = 0):
    """Yield ``(folder, {name: size})`` (as :func:`folder_sizes`) for ``root`` and its
    sub-folders down to ``max_depth`` levels, in name order; hidden and unreadable folders are
    skipped."""
    try:
        with os.scandir(root) as it:
            entries = sorted(it, key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return
    yield Path(root), {e.name: entry_size(e) for e in entries}
    if depth < max_depth:
        for e in entries:
            if e.is_dir() and not e.name.startswith("."):
                yield from walk_folders(Path(e.path), max_depth, depth + 1)


def file_fault(faults, kind: str, path, size: int | None, required: bool = True) -> bool:
    """Record in ``faults`` (a :class:`~.common.FaultLog`) what is wrong with one file of a frame
    listed with ``size`` (``None``: absent); True when the frame cannot be used.

    Kinds: ``missing_<kind>`` (absent; only when ``required``), ``empty_<kind>`` (0 bytes),
    ``not_a_file_<kind>`` (:data:`NOT_A_FILE`: a FIFO, a directory ...).
    """
    if size is None:
        if required:
            faults.add(f"missing_{kind}", path)
        return required
    if size in (0, NOT_A_FILE):
        faults.add(f"{'empty' if size == 0 else 'not_a_file'}_{kind}", path)
        return True
    return False


def optional_file(faults, kind: str, path, size: int | None) -> str | None:
    """An optional file of a frame (depth, negatives): its path when usable, else ``None``;
    an empty one or one that is not a regular file is recorded (the frame is kept without it)."""
    if size is None or file_fault(faults, kind, path, size, required=False):
        return None
    return str(path)
