"""The grasp node's frame worker: a small mailbox of the newest frames and the thread that
empties it.

The subscription callback (executor thread) only :meth:`FrameWorker.put` s each frame into the
mailbox; a frame pushed out of it before the worker took it is handed back to the caller (counted
as *dropped*). The worker thread takes a frame and runs ``process(frame)``. So a slow model never
builds a backlog: results are at most a couple of model times old and memory stays bounded.

- ``capacity`` 1 (no ``ready`` test): one slot, the newest frame wins.
- With a ``ready(frame)`` test (the node with ``use_depth``: the frame's depth frame with its
  exact stamp has arrived) the mailbox holds the ``capacity`` newest frames, and the worker takes
  the **newest ready** one - as ``message_filters``' synchronisers hand over only complete sets:
  a colour frame whose depth frame was lost in transport (DDS drops samples of a busy reader on a
  loaded machine) is passed over for one whose depth frame is there. When none is ready the
  worker waits for one: each frame at most ``patience()`` seconds (re-read while waiting) from
  its arrival or from when the worker became free, whichever is later; then it takes the newest
  frame whose wait is over (a frame that came just now still gets its full wait, even when
  older ones have had theirs). Frames older than the one taken are handed to ``on_drop``.

No ROS import: ``process``, ``on_error``, ``ready``, ``patience`` and ``on_drop`` are plain
callables.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable


@dataclass
class Frame:
    """A colour frame waiting in (or taken from) the worker's slot."""

    msg: object
    arrival: float  # time.monotonic() when the callback got it
    pairings: tuple | None = None  # depth / CameraInfo pairings (use_depth)
    skipped: bool = False  # taken by the worker with stream off, not predicted
    taken: float | None = None  # when the worker began looking for it (time.monotonic())


class FrameWorker:
    """A mailbox of the newest frames + the worker thread (see the module docstring).

    Args:
        process: called in the worker thread with each frame taken.
        on_error: called with the exception when ``process`` raises (the worker goes on); it is
            not called once :meth:`stop` was requested.
        name: thread name.
        capacity: how many of the newest frames the mailbox holds (>= 1).
        ready: ``ready(frame) -> bool``; not given: every frame is ready.
        patience: ``patience() -> seconds`` the worker waits for a ready frame (default 0).
        on_drop: called (worker thread, no lock held) with the list of frames passed over.
    """

    def __init__(self, process: Callable[[object], None],
                 on_error: Callable[[BaseException], None], name: str = "vita_grasp_worker", *,
                 capacity: int = 1, ready: Callable[[object], bool] | None = None,
                 patience: Callable[[], float] | None = None,
                 on_drop: Callable[[list], None] | None = None):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, not {capacity}")
        self._process = process
        self._on_error = on_error
        self._name = name
        self.capacity = int(capacity)
        self._ready = ready
        self._patience = patience or (lambda: 0.0)
        self._on_drop = on_drop or (lambda frames: None)
        self._cv = threading.Condition()
        self._frames: deque = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: when the worker began looking for the frame it is processing (``time.monotonic()``;
        #: worker thread only): a wait for the frame's side inputs is counted from here
        self.looking_since = 0.0

    # ---------------------------------------------------------------- producer side
    def put(self, frame):
        """Store ``frame`` as the newest; returns the unprocessed frame it pushed out of the
        mailbox (the oldest one, when full), or None."""
        with self._cv:
            self._frames.append((time.monotonic(), frame))
            pushed = self._frames.popleft()[1] if len(self._frames) > self.capacity else None
            self._cv.notify_all()
        return pushed

    def wake(self) -> None:
        """Something a ``ready`` test depends on changed (e.g. a depth frame arrived)."""
        with self._cv:
            self._cv.notify_all()

    def pending(self) -> list:
        """The frames in the mailbox, oldest first (a copy)."""
        with self._cv:
            return [f for _, f in self._frames]

    # ---------------------------------------------------------------- thread
    @property
    def stopping(self) -> threading.Event:
        """Set once :meth:`stop` was called (long waits inside ``process`` should watch it)."""
        return self._stop

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 3.0) -> list:
        """Stop the thread (waits up to ``timeout`` s for the frame in progress). Returns the
        frames left in the mailbox (discarded, never processed)."""
        self._stop.set()
        with self._cv:
            left = [f for _, f in self._frames]
            self._frames.clear()
            self._cv.notify_all()
        if self._thread is not None and self._thread.is_alive() \
                and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        return left

    def _choose(self, since: float) -> int | None:
        """Index of the frame to take now (lock held), or None to wait on."""
        last = len(self._frames) - 1
        if self._ready is None:
            return last
        for i in range(last, -1, -1):
            if self._ready(self._frames[i][1]):
                return i
        now, patience = time.monotonic(), self._patience()
        for i in range(last, -1, -1):
            if max(since, self._frames[i][0]) + patience <= now:
                return i
        return None

    def _take(self):
        """Wait for a frame to take; ``(frame, passed_over)`` or ``(None, [])`` when stopping."""
        since = None
        with self._cv:
            while not self._stop.is_set():
                if not self._frames:
                    since = None
                    self._cv.wait(0.2)
                    continue
                since = time.monotonic() if since is None else since
                i = self._choose(since)
                if i is not None:
                    older = [self._frames.popleft()[1] for _ in range(i)]
                    t, frame = self._frames.popleft()
                    self.looking_since = max(since, t)
                    return frame, older
                left = max(since, self._frames[0][0]) + self._patience() - time.monotonic()
                self._cv.wait(min(max(left, 0.001), 0.2))
        return None, []

    def _loop(self) -> None:
        while not self._stop.is_set():
            frame, older = self._take()
            if older:
                self._on_drop(older)
            if frame is None or self._stop.is_set():
                continue
            try:
                self._process(frame)
            except Exception as e:  # noqa: BLE001 - the worker must survive anything
                if self._stop.is_set():
                    break  # shutting down: publishing into a closed context fails
                self._on_error(e)
