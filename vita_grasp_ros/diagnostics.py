"""Run-time statistics of the grasp node and their ``diagnostic_msgs/DiagnosticArray`` form.

:class:`NodeStats` is thread-safe (the subscription callback, the inference worker and the
diagnostics timer all touch it) and has no ROS imports; :func:`stats_to_diagnostic_array` builds
the message.

Published key/values (``/diagnostics``, one ``DiagnosticStatus`` named ``<node fqn>: grasp
detection``) - see docs/ros.md:

=========================  ===================================================================
input_rate_hz              frames received per second since the previous report
output_rate_hz             GraspArray messages published per second since the previous report
frames_received            total colour frames received
frames_processed           total frames run through the model and published
frames_dropped             total frames never processed (pushed out of the worker's mailbox,
                           or passed over for a newer one whose depth frame had arrived)
frames_bad                 total frames refused (bad encoding/size/data) or failed in prediction
frames_kept                total frames only kept for get_grasps (``stream`` false)
requests, requests_failed  get_grasps requests answered, of which with ``success`` false
request_ms_p50 / _p95      get_grasps answer time (request in -> response out), last requests
inference_ms_p50 / _p95    predictor time (pre-process + model + decode) over the last frames
latency_ms_p50 / _p95      ``now - header.stamp`` when the GraspArray is published (last frames)
last_error                 the latest bad-frame reason (empty if none yet)
=========================  ===================================================================

Level: OK; WARN when no frame arrived for ``stale_after`` s (after the first one), when there
are no frames at all yet, or when bad frames arrived since the previous report; ERROR when the
last ``error_after`` processed-or-refused frames were all bad.
"""
from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np


class NodeStats:
    """Counters and rolling timing windows (last ``window`` frames)."""

    def __init__(self, window: int = 200):
        self._lock = threading.Lock()
        self.received = 0
        self.processed = 0
        self.dropped = 0
        self.bad = 0
        self.kept = 0
        self.requests = 0
        self.requests_failed = 0
        self._request_s = deque(maxlen=window)
        self.consecutive_bad = 0
        self.last_error = ""
        self.last_receive_time: float | None = None
        self._inference = deque(maxlen=window)
        self._latency = deque(maxlen=window)
        self._last_report = (time.monotonic(), 0, 0, 0)  # time, received, processed, bad

    def on_received(self, replaced_unprocessed: bool) -> None:
        with self._lock:
            self.received += 1
            self.last_receive_time = time.monotonic()
            if replaced_unprocessed:
                self.dropped += 1

    def on_dropped(self, n: int) -> None:
        """``n`` received frames the worker passed over for a newer one."""
        with self._lock:
            self.dropped += int(n)

    def on_bad(self, reason: str) -> None:
        with self._lock:
            self.bad += 1
            self.consecutive_bad += 1
            self.last_error = reason

    def on_kept(self) -> None:
        """A frame taken by the worker with ``stream`` off: kept for get_grasps only."""
        with self._lock:
            self.kept += 1

    def on_request(self, ok: bool, seconds: float) -> None:
        with self._lock:
            self.requests += 1
            self.requests_failed += 0 if ok else 1
            self._request_s.append(float(seconds))

    def on_processed(self, inference_s: float, latency_s: float | None) -> None:
        """``latency_s`` None: the frame had no stamp (left out of the latency window)."""
        with self._lock:
            self.processed += 1
            self.consecutive_bad = 0
            self._inference.append(float(inference_s))
            if latency_s is not None:
                self._latency.append(float(latency_s))

    @staticmethod
    def _pct(values, q) -> float:
        return float(np.percentile(np.asarray(values), q) * 1e3) if values else float("nan")

    def snapshot(self, *, reset_rates: bool = True) -> dict:
        """A consistent copy of everything (rates over the time since the previous snapshot)."""
        now = time.monotonic()
        with self._lock:
            t0, r0, p0, b0 = self._last_report
            dt = max(now - t0, 1e-6)
            snap = {
                "input_rate_hz": (self.received - r0) / dt,
                "output_rate_hz": (self.processed - p0) / dt,
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_dropped": self.dropped,
                "frames_bad": self.bad,
                "frames_kept": self.kept,
                "requests": self.requests,
                "requests_failed": self.requests_failed,
                "request_ms_p50": self._pct(self._request_s, 50),
                "request_ms_p95": self._pct(self._request_s, 95),
                "bad_since_last": self.bad - b0,
                "consecutive_bad": self.consecutive_bad,
                "inference_ms_p50": self._pct(self._inference, 50),
                "inference_ms_p95": self._pct(self._inference, 95),
                "latency_ms_p50": self._pct(self._latency, 50),
                "latency_ms_p95": self._pct(self._latency, 95),
                "last_error": self.last_error,
                "seconds_since_input": (now - self.last_receive_time
                                        if self.last_receive_time is not None else float("inf")),
            }
            if reset_rates:
                self._last_report = (now, self.received, self.processed, self.bad)
        return snap


def diagnostic_level(snap: dict, *, stale_after: float = 3.0, error_after: int = 10):
    """(level byte, message) for a :meth:`NodeStats.snapshot`."""
    from diagnostic_msgs.msg import DiagnosticStatus

    if snap["consecutive_bad"] >= error_after:
        return DiagnosticStatus.ERROR, f"last {snap['consecutive_bad']} frames were bad: " \
                                       f"{snap['last_error']}"
    if snap["frames_received"] == 0:
        return DiagnosticStatus.WARN, "no input frames yet"
    if snap["seconds_since_input"] > stale_after:
        return DiagnosticStatus.WARN, f"no input for {snap['seconds_since_input']:.1f} s"
    if snap["bad_since_last"] > 0:
        return DiagnosticStatus.WARN, f"{snap['bad_since_last']} bad frames: {snap['last_error']}"
    return DiagnosticStatus.OK, "ok"


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if v != v else f"{v:.2f}"
    return str(v)


#: Keys published (in this order).
PUBLISHED_KEYS = ("input_rate_hz", "output_rate_hz", "frames_received", "frames_processed",
                  "frames_dropped", "frames_bad", "inference_ms_p50", "inference_ms_p95",
                  "latency_ms_p50", "latency_ms_p95", "last_error", "frames_kept", "requests",
                  "requests_failed", "request_ms_p50", "request_ms_p95")


def stats_to_diagnostic_array(snap: dict, stamp, *, name: str, hardware_id: str = "",
                              extra: dict | None = None, **level_kwargs):
    """Build a ``diagnostic_msgs/DiagnosticArray`` with one status from a snapshot."""
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    level, message = diagnostic_level(snap, **level_kwargs)
    st = DiagnosticStatus()
    st.level = level
    st.name = name
    st.message = message
    st.hardware_id = hardware_id
    values = [KeyValue(key=k, value=_fmt(snap[k])) for k in PUBLISHED_KEYS]
    values += [KeyValue(key=str(k), value=_fmt(v)) for k, v in (extra or {}).items()]
    st.values = values
    arr = DiagnosticArray()
    arr.header.stamp = stamp
    arr.status = [st]
    return arr


def diagnostic_values(array_msg) -> dict[str, str]:
    """``{key: value}`` of the first status of a DiagnosticArray (tests, tools)."""
    return {kv.key: kv.value for kv in array_msg.status[0].values} if array_msg.status else {}
