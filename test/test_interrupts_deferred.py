"""cli_errors.interrupts_deferred: a SIGTERM or Ctrl-C that lands while a child process is being
started is held until the start is recorded, then delivered to the handler in place (the
`sim bench --source node` race: an interrupt inside Popen left the node process running)."""
from __future__ import annotations

import signal

import pytest

from vita_grasp_core.cli_errors import interrupts_deferred, sigterm_as_interrupt


def _interrupt(signum: int) -> None:
    """Send ``signum`` to this thread and run its Python handler before returning
    (``os.kill`` to the process may land in another thread of a test worker)."""
    signal.raise_signal(signum)


def test_sigterm_inside_is_held_until_the_block_ends_then_interrupts():
    started = []
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        with interrupts_deferred():
            _interrupt(signal.SIGTERM)
            started.append("child")  # reached: the signal did not unwind the block
        started.append("after")  # not reached: delivered on the way out
    assert started == ["child"]


def test_ctrl_c_inside_is_held_too_and_handlers_come_back():
    # Python's own Ctrl-C handler, whatever an earlier test in this worker left in place (an
    # ignored SIGINT is rightly delivered as ignored); conftest restores the handlers afterwards
    signal.signal(signal.SIGINT, signal.default_int_handler)
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    done = False
    with pytest.raises(KeyboardInterrupt):
        with interrupts_deferred():
            _interrupt(signal.SIGINT)
            done = True
    assert done
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_nothing_held_nothing_raised():
    with interrupts_deferred():
        value = 1
    assert value == 1
