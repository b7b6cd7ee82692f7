"""Pairing side inputs (depth, CameraInfo, ...) with colour frames by their header stamps.

One :class:`StampedInput` per side topic. When a colour frame arrives, the node *opens* a
:class:`Pairing` for it on each side input (:meth:`StampedInput.open`); every side message that
has arrived or arrives later is offered to the open pairings, each keeping only its best
candidate, so memory stays bounded however slow the model is. After prediction the worker
*resolves* the pairing (:meth:`StampedInput.resolve`); :meth:`Pairing.final` tells before that
whether a message is there that resolving would use without waiting (the node's worker prefers
such frames, :mod:`.node_worker`):

1. a message with the image's exact stamp wins;
2. otherwise the worker waits - at most until ``deadline`` (the node's: ``depth_wait`` after its
   worker began looking for the frame) - until a message stamped at or after the image has
   arrived (the exact one may still be in transit: a driver publishing colour and depth back to
   back on a loaded machine), as ``message_filters``' synchronisers do; after a few frames in a
   row that waited in vain (nothing arrived at all since the frame came) frames stop waiting
   until a message arrives again;
3. then the nearest message is used only if it is within ``tolerance`` of the image stamp; a
   message from before a newer one nearer the image stamp is never used.

The :class:`Match` says which message was used (its stamp offset) or why none was, in words that
do not blame the stamps when they are identical. No ROS import: messages only need
``header.stamp`` (``sec``, ``nanosec``).
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from .node_support import stamp_ns


@dataclass(frozen=True)
class Match:
    """The side message paired with one colour frame.

    Attributes:
        msg: the message, or None when none qualifies.
        offset_s: ``msg stamp - image stamp`` [s] of ``msg`` (None without one); 0.0 = exact.
        waited_s: how long the worker waited for it [s].
        reason: why ``msg`` is None ("" when there is a message).
    """

    msg: object | None
    offset_s: float | None
    waited_s: float
    reason: str = ""

    @property
    def exact(self) -> bool:
        return self.msg is not None and self.offset_s == 0.0


class Pairing:
    """The best candidate of one side input for one colour frame (see the module docstring)."""

    __slots__ = ("stamp", "best", "best_dt", "settled", "arrivals")

    def __init__(self, stamp: int, arrivals: int = 0):
        self.stamp = stamp
        self.best = None
        self.best_dt: int | None = None  # side stamp - image stamp [ns]
        self.settled = False  # a message at or after the image stamp has arrived
        self.arrivals = arrivals  # the input's arrival count when the frame came

    @property
    def exact(self) -> bool:
        """A message with the image's exact stamp has arrived."""
        return self.best_dt == 0

    def within(self, tolerance_s: float) -> bool:
        """The best candidate so far is within ``tolerance_s`` of the image stamp."""
        return self.best_dt is not None and abs(self.best_dt) <= int(tolerance_s * 1e9)

    def final(self, tolerance_s: float) -> bool:
        """The pairing would give a message now, without waiting: the exact one has arrived, or
        a message stamped after the image has (unsynchronised streams) and the nearest is
        within ``tolerance_s``."""
        return self.exact or (self.settled and self.within(tolerance_s))

    def offer(self, msg) -> None:
        dt = stamp_ns(msg.header.stamp) - self.stamp
        if self.best_dt is None or abs(dt) < abs(self.best_dt) or \
                (abs(dt) == abs(self.best_dt) and dt > self.best_dt):
            self.best, self.best_dt = msg, dt
        if dt >= 0:
            self.settled = True


def _ms(ns: int) -> str:
    return f"{abs(ns) / 1e6:.1f} ms {'older' if ns < 0 else 'newer'}"


class StampedInput:
    """One side input (e.g. ``depth``) paired with colour frames by stamp; thread-safe.

    Args:
        name: what the messages are, for the reasons ("depth frame", "CameraInfo").
        keep: how many of the newest messages are kept for frames that arrive after them
            (:meth:`set_keep`; the node keeps ``depth_queue``).
        give_up_after: after this many frames in a row waited in vain (nothing at all arrived
            between the frame's arrival and the end of its wait) the stream counts as *silent*:
            frames do not wait for it until a message arrives again (a dead depth camera must
            not slow every frame down by ``depth_wait``; a camera that publishes one frame on
            request is never silent).

    Likewise the stream counts as *out of step* after ``give_up_after`` frames in a row whose
    nearest message, once a newer one had arrived, was outside the tolerance (stamps that never
    match: nothing to wait for), until a frame pairs again or a message arrives with the stamp
    of a frame waiting for it. Lost messages do not make a stream out of step: the frames around
    them get theirs.

    ``on_add`` (settable): called after each message arrived (outside the lock; the node wakes
    its worker with it).
    """

    def __init__(self, name: str, keep: int = 6, give_up_after: int = 3):
        self.name = name
        self.give_up_after = give_up_after
        self.on_add = None
        self._cv = threading.Condition()
        self._recent: deque = deque(maxlen=keep)
        self._open: set[Pairing] = set()
        self._last_arrival: float | None = None
        self._arrivals = 0
        self._vain = 0  # frames in a row that waited and saw nothing arrive
        self._off = 0  # frames in a row whose nearest message was outside the tolerance

    def add(self, msg) -> None:
        """A side message arrived (subscription callback)."""
        with self._cv:
            self._recent.append(msg)
            self._last_arrival = time.monotonic()
            self._arrivals += 1
            self._vain = 0
            for p in self._open:
                p.offer(msg)
                if p.exact:  # a frame has its own: the stamps are in step
                    self._off = 0
            self._cv.notify_all()
        if self.on_add is not None:
            self.on_add()

    def set_keep(self, keep: int) -> None:
        """Keep the ``keep`` newest messages (>= 1) for frames that arrive after them."""
        with self._cv:
            self._recent = deque(self._recent, maxlen=max(1, int(keep)))

    @property
    def silent(self) -> bool:
        """The last ``give_up_after`` frames waited in vain (see the class docstring)."""
        return self._vain >= self.give_up_after

    @property
    def out_of_step(self) -> bool:
        """The last ``give_up_after`` frames found only messages outside the tolerance."""
        return self._off >= self.give_up_after

    def open(self, stamp: int) -> Pairing:
        """Start pairing the colour frame stamped ``stamp`` [ns] (when it arrives)."""
        with self._cv:
            p = Pairing(stamp, self._arrivals)
            for msg in self._recent:
                p.offer(msg)
            self._open.add(p)
        return p

    def close(self, pairing: Pairing | None) -> None:
        """Forget a pairing (its frame was dropped)."""
        if pairing is not None:
            with self._cv:
                self._open.discard(pairing)

    def newest(self):
        """The newest message received (any stamp), or None."""
        with self._cv:
            return self._recent[-1] if self._recent else None

    def clear(self) -> None:
        with self._cv:
            self._recent.clear()
            self._open.clear()
            self._last_arrival = None
            self._cv.notify_all()

    def resolve(self, pairing: Pairing, tolerance_s: float, deadline: float,
                stop: threading.Event | None = None) -> Match:
        """Wait (until ``deadline``, a ``time.monotonic()`` value) for the message of
        ``pairing``'s frame, close the pairing and return the :class:`Match`."""
        t0 = time.monotonic()
        with self._cv:
            silent = self.silent
            while not (pairing.settled or silent or (stop is not None and stop.is_set())):
                now = time.monotonic()
                if now >= deadline:
                    if self._arrivals == pairing.arrivals:  # nothing since the frame came
                        self._vain += 1
                    break
                self._cv.wait(min(deadline - now, 0.1))
            self._open.discard(pairing)
            last = self._last_arrival
        waited = time.monotonic() - t0
        if pairing.best is None:
            return Match(None, None, waited, self._nothing_reason(last))
        dt = pairing.best_dt
        if pairing.within(tolerance_s):
            self._off = 0
            return Match(pairing.best, dt / 1e9, waited)
        if pairing.settled:
            self._off += 1
        if dt < 0 and not pairing.settled:
            # Only older messages arrived within the wait: the stamps may well be identical
            # and the frame late; say that, not that the stamps are off.
            why = (f"no {self.name} with the image's stamp arrived within depth_wait (waited "
                   f"{waited * 1e3:.0f} ms; the newest is {_ms(dt)} than the image): it arrives "
                   "late or not at all (raise depth_wait on a loaded machine)")
        else:
            why = (f"the nearest {self.name} stamp is {_ms(dt)} than the image's, more than "
                   f"depth_tolerance {tolerance_s:.3f} s: the image's own was lost or the "
                   "streams are not in step")
        return Match(None, None, waited, why)

    def _nothing_reason(self, last: float | None) -> str:
        if last is None:
            return f"no {self.name} received yet"
        return (f"no {self.name} arrived for this frame (the last one came "
                f"{time.monotonic() - last:.1f} s ago)")
