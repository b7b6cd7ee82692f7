"""Interrupted recordings: a :class:`~.io.BagWriter` builds ``NAME`` in a scratch folder
``.NAME.partial-PID`` and renames it when done; these helpers name that folder, find the ones
whose recorder is gone (:mod:`.recover` rebuilds them) and say so in read errors."""
from __future__ import annotations

import os
import re
from pathlib import Path

from .types import STORAGE_SUFFIX

#: The scratch folder a :class:`BagWriter` builds ``NAME`` in: ``.NAME.partial-PID``.
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


def partial_folder(path, pid: int | None = None) -> Path:
    """The scratch folder the writer of ``path`` (this process, or ``pid``) builds it in."""
    path = Path(path)
    return path.parent / f".{path.name}.partial-{os.getpid() if pid is None else pid}"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def partial_target(folder) -> Path | None:
    """The bag a scratch folder ``.NAME.partial-PID`` was going to become (``None`` if it is not
    one)."""
    m = _PARTIAL.match(Path(folder).name)
    return Path(folder).parent / m["name"] if m else None


def stale_partials(path) -> list[Path]:
    """Scratch folders of recorders that are gone, for the bag ``path`` (or, for a directory
    that is not a bag, every one inside it)."""
    p = Path(path)
    if p.is_dir() and not any(f.suffix in STORAGE_SUFFIX or f.name == "metadata.yaml"
                              for f in p.iterdir()):
        candidates = [c for c in p.iterdir() if _PARTIAL.match(c.name)]
    else:
        try:
            candidates = [c for c in p.parent.iterdir()
                          if (m := _PARTIAL.match(c.name)) and m["name"] == p.name]
        except OSError:
            return []
    return sorted(c for c in candidates if c.is_dir()
                  and not _pid_alive(int(_PARTIAL.match(c.name)["pid"])))


def recover_hint(path) -> str:
    """``"; an interrupted recording of it is in X: vita-grasp bag recover X"`` or ``""``."""
    found = stale_partials(path)
    if not found:
        return ""
    return (f"; an interrupted recording of it is in {found[0]} (recover it with `vita-grasp "
            f"bag recover {found[0]}`)")
