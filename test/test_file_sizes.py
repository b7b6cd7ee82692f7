"""The house rule of issue 19: no Python source file of the repository is over 450 lines, so a
reader can hold each one; a file that grows past it is split where its parts separate."""
from __future__ import annotations

import os
from pathlib import Path

MAX_LINES = 450
ROOT = Path(__file__).resolve().parents[1]
SKIP = {"build", "install", "log", "runs", "node_modules"}


def _sources():
    """The repository's ``.py`` files; environments, build products, run outputs and hidden
    folders (``.venv``, ``.git``) are not entered at all."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP and not d.startswith(".")]
        yield from (Path(folder) / f for f in files if f.endswith(".py"))


def test_no_python_file_is_over_450_lines():
    sizes = {p.relative_to(ROOT): len(p.read_text(encoding="utf-8").splitlines())
             for p in _sources()}
    assert len(sizes) > 50, f"found only {len(sizes)} Python files under {ROOT}"
    over = sorted(f"{p}: {n} lines" for p, n in sizes.items() if n > MAX_LINES)
    assert not over, "over 450 lines (split them): " + ", ".join(over)
