"""The grasp node's frame worker: a one-slot mailbox and the thread that empties it.

The subscription callback (executor thread) only :meth:`FrameWorker.put` s the newest frame into
the slot; a frame replaced there before the worker took it is handed back to the caller (counted
as *dropped*). The worker thread takes the slot and runs ``process(frame)``. So a slow model never
builds a backlog: results are at most about two model times old and memory stays bounded.

No ROS import: ``process`` and ``on_error`` are plain callables.
"""
from __future__ import annotations

import threading
from typing import Callable


class FrameWorker:
    """One-slot mailbox + worker thread.

    Args:
        process: called in the worker thread with each frame taken from the slot.
        on_error: called with the exception when ``process`` raises (the worker goes on); it is
            not called once :meth:`stop` was requested.
        name: thread name.
    """

    def __init__(self, process: Callable[[object], None],
                 on_error: Callable[[BaseException], None], name: str = "vita_grasp_worker"):
        self._process = process
        self._on_error = on_error
        self._name = name
        self._cv = threading.Condition()
        self._slot = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- producer side
    def put(self, frame):
        """Store ``frame`` as the newest; returns the unprocessed frame it replaced (or None)."""
        with self._cv:
            replaced, self._slot = self._slot, frame
            self._cv.notify()
        return replaced

    def take_pending(self):
        """Empty the slot; returns what it held (None if empty)."""
        with self._cv:
            frame, self._slot = self._slot, None
        return frame

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

    def stop(self, timeout: float = 3.0):
        """Stop the thread (waits up to ``timeout`` s for the frame in progress). Returns the
        frame left in the slot, if any (discarded, never processed)."""
        self._stop.set()
        with self._cv:
            left, self._slot = self._slot, None
            self._cv.notify_all()
        if self._thread is not None and self._thread.is_alive() \
                and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        return left

    def _loop(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                while self._slot is None and not self._stop.is_set():
                    self._cv.wait(0.2)
                frame, self._slot = self._slot, None
            if frame is None or self._stop.is_set():
                continue
            try:
                self._process(frame)
            except Exception as e:  # noqa: BLE001 - the worker must survive anything
                if self._stop.is_set():
                    break  # shutting down: publishing into a closed context fails
                self._on_error(e)
