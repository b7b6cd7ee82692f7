"""One line and a non-zero exit instead of a traceback: how command lines report errors that come
from their input or their environment (a full or read-only disk, a file where a directory is
expected, an unknown device).

- :class:`CommandError`: raised with a one-line message; the command prints ``prog: message``
  and exits with ``status`` (2: bad arguments or environment);
- :func:`~vita_grasp_core.fileio.os_error_text` (in :mod:`.fileio`): an ``OSError`` in words
  (``disk full``, ``read-only file system`` ...);
- :func:`writable_dir`: create an output directory and prove it is writable before any work;
- :func:`one_line_errors`: the decorator every command's ``main(argv)`` wears;
- :func:`sigterm_as_interrupt`: SIGTERM stops a command like Ctrl-C (its ``finally`` blocks,
  e.g. stopping a child process, run).
"""
from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import tempfile
import threading
from pathlib import Path

from .fileio import check_replaceable, os_error_text


class CommandError(Exception):
    """A command cannot do what it was asked: one line (no traceback), exit ``status``."""

    def __init__(self, message: str, status: int = 2):
        super().__init__(message)
        self.status = status


def writable_dir(path, what: str = "--output_dir") -> Path:
    """Create directory ``path`` (and its parents) and check that a file can be written in it.

    Raises:
        CommandError: ``path`` is a file, or cannot be created or written (read-only, full,
            permission denied), with the reason in one line.
    """
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CommandError(f"{what} {p} exists and is not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p, prefix=".write-test-") as f:
            f.write(b"\0" * 4096)  # a block: an empty file fits on a full disk
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CommandError(f"{what} {p} is not writable: {os_error_text(e, '').lstrip(': ')}")\
            from None
    return p


def output_file(path, what: str = "--out") -> Path:
    """Check an output file's place before any work: ``path`` is not a directory, device, FIFO
    or socket (:func:`vita_grasp_core.fileio.check_replaceable`) and its folder can be created
    and written. Raises :class:`CommandError` (one line)."""
    p = Path(path)
    try:
        check_replaceable(p)
    except FileExistsError as e:
        raise CommandError(f"{what} {p} {e.strerror}") from None
    except OSError as e:  # a name too long, a path through a file ...
        raise CommandError(f"{what} {os_error_text(e, p)}") from None
    writable_dir(p.parent, what=f"the folder of {what}")
    return p


def one_line_errors(prog: str, known: tuple = ()):
    """Decorator for ``main(argv) -> int``: a :class:`CommandError`, an ``OSError`` or one of the
    ``known`` error types (the command's own: a config, checkpoint or encoder error ...) that
    escapes becomes ``prog: message`` on stderr and exit status 2 (a CommandError's own
    ``status``); a ``FloatingPointError`` (training diverged) exit 1; Ctrl-C ``prog:
    interrupted`` and 130. Other exceptions (programming errors) still show a traceback."""

    def wrap(main):
        @functools.wraps(main)
        def run(argv=None):
            try:
                return main(argv)
            except CommandError as e:
                _say(prog, str(e))
                return e.status
            except OSError as e:
                _say(prog, os_error_text(e))
                return 2
            except FloatingPointError as e:
                _say(prog, str(e))
                return 1
            except known as e:
                _say(prog, str(e) or type(e).__name__)
                return 2
            except KeyboardInterrupt:
                _say(prog, "interrupted")
                return 130
        return run

    return wrap


def _say(prog: str, text: str) -> None:
    text = " ".join(str(text).split()) or "failed"
    try:
        print(f"{prog}: {text}", file=sys.stderr, flush=True)
    except OSError:  # stderr itself is gone (a closed pipe)
        os._exit(2)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


@contextlib.contextmanager
def sigterm_as_interrupt():
    """While inside, SIGTERM raises ``KeyboardInterrupt`` (as Ctrl-C does), so every ``finally``
    block runs (child processes are stopped) instead of Python dying at once. Only in the main
    thread (elsewhere signals cannot be handled; nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def interrupts_deferred():
    """While inside, SIGINT and SIGTERM are held back and delivered again, to the handlers that
    were in place, on the way out: a child process being started is always recorded (and so
    stopped later by the caller's ``finally``) before an interrupt unwinds the caller. Without
    it, a Ctrl-C or SIGTERM that lands inside ``subprocess.Popen`` after the fork leaves the
    child running with nobody holding it. Only in the main thread (elsewhere nothing changes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum))
           for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(held):  # once each, in the order they came
            signal.raise_signal(s)
