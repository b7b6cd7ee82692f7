"""``vita-grasp bag record``: subscribe to topics and write what arrives into a rosbag2.

Subscriptions are raw (``raw=True``): the CDR bytes received are written unchanged, with the
*receive* time (``MessageInfo.received_timestamp``, system clock, ns) as the bag timestamp - the
same convention as ``ros2 bag record``. A topic is subscribed as soon as it has a publisher (polled
from the graph), with the type from the graph or from ``--types``.

QoS: like ``ros2 bag record``, the subscription adapts to the publishers: reliable when every
publisher offers reliable, else best effort; transient-local when every publisher offers it. The
offered profiles are stored in the bag.

Stops on Ctrl-C / SIGTERM, after ``--duration`` seconds, after ``--max-messages`` messages, or
after ``--idle-timeout`` seconds without a message; the bag is always closed properly. What was
received is flushed every ``flush_interval`` seconds (0: after every message), so a recorder
that is killed (``kill -9``, power cut) leaves a scratch folder that ``vita-grasp bag recover``
turns into a complete bag with everything up to the last flush (:mod:`.recover`).
"""
from __future__ import annotations

import threading
import time

from vita_grasp_core.bounds import Range, check_bounds, count
from vita_grasp_core.fileio import os_error_text

from .io import BagWriter
from .types import BagError, import_msg_type, make_qos

#: Ranges of the numeric options of ``bag record`` (a NaN duration recorded forever).
RECORD_BOUNDS = {"duration": Range(0, 1e7, lo_open=True, none=True),
                 "max_messages": count(1, 10**12, none=True),
                 "idle_timeout": Range(0, 1e7, lo_open=True, none=True),
                 "qos_depth": count(1, 10_000), "flush_interval": Range(0, 3600)}


def check_record_options(args) -> None:
    """``ValueError`` (one line) for a numeric option outside :data:`RECORD_BOUNDS`."""
    check_bounds(args, RECORD_BOUNDS, "")


def _qos_to_bag(q):
    """rclpy ``QoSProfile`` -> rosbags ``Qos`` (what rosbag2 stores as offered profiles)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    def t(d):
        ns = int(getattr(d, "nanoseconds", 0))
        # "infinite" durations come back as huge values; rosbag2 writes them as 0.
        if ns <= 0 or ns >= 2**62:
            return QosTime(0, 0)
        return QosTime(ns // 1_000_000_000, ns % 1_000_000_000)

    def enum(cls, name, default):
        return cls[name] if name in cls.__members__ else default

    return Qos(enum(QosHistory, q.history.name, QosHistory.KEEP_LAST), int(q.depth),
               enum(QosReliability, q.reliability.name, QosReliability.RELIABLE),
               enum(QosDurability, q.durability.name, QosDurability.VOLATILE),
               t(q.deadline), t(q.lifespan),
               enum(QosLiveliness, q.liveliness.name, QosLiveliness.AUTOMATIC),
               t(q.liveliness_lease_duration), bool(q.avoid_ros_namespace_conventions))


def subscription_qos(node, topic: str, depth: int = 10, mode: str = "auto"):
    """``(rclpy QoSProfile, offered profiles as rosbags Qos)`` for subscribing ``topic``:
    ``mode`` ``reliable``, ``best_effort`` or ``auto`` (reliable when every publisher offers
    it, else best effort - a reliable subscription never matches a best-effort camera;
    transient-local when every publisher offers it)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    offered = [i.qos_profile for i in node.get_publishers_info_by_topic(topic)]
    if mode == "reliable":
        rel = ReliabilityPolicy.RELIABLE
    elif mode == "best_effort":
        rel = ReliabilityPolicy.BEST_EFFORT
    else:
        rel = ReliabilityPolicy.RELIABLE if offered and all(
            q.reliability == ReliabilityPolicy.RELIABLE for q in offered) else \
            ReliabilityPolicy.BEST_EFFORT
    dur = DurabilityPolicy.TRANSIENT_LOCAL if offered and all(
        q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered) else \
        DurabilityPolicy.VOLATILE
    return (QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth), reliability=rel,
                       durability=dur), [_qos_to_bag(q) for q in offered])


class Recorder:
    """Record ``topics`` through ``node`` into ``out`` (thread-safe; callbacks may run in an
    executor thread while another thread polls).

    Call :meth:`poll` periodically (it subscribes to topics as they appear in the graph) while the
    node spins, then :meth:`close`.

    Args:
        topics: fully qualified topic names.
        types: optional ``{topic: "pkg/msg/Type"}`` overriding the type seen in the graph.
        depth: history depth of the subscriptions.
        qos: ``auto`` (adapt to publishers), ``reliable`` or ``best_effort``.
        flush_interval: seconds between flushes of what was received (0: every message).
    """

    def __init__(self, node, out, topics, *, types=None, storage: str | None = None,
                 depth: int = 100, qos: str = "auto", overwrite: bool = False,
                 flush_interval: float = 0.5):
        if not 0 <= float(flush_interval) <= 3600:
            raise ValueError(f"flush interval must be in [0, 3600] s, got {flush_interval}")
        self.flush_interval = float(flush_interval)
        self._last_flush = time.monotonic()
        if not topics:
            raise ValueError("no topics to record")
        self.node = node
        self.topics = [t if t.startswith("/") else "/" + t for t in topics]
        self.types = dict(types or {})
        self.depth = int(depth)
        self.qos = qos
        self.writer = BagWriter(out, storage, overwrite=overwrite).open()
        self.path = self.writer.path
        self.counts = {t: 0 for t in self.topics}
        self.subscriptions: dict[str, object] = {}
        self.first_ns: int | None = None
        self.last_monotonic: float | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.failed: OSError | None = None  # a write failed (full disk): recording stopped
        self.poll()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pending(self) -> list[str]:
        """Topics not subscribed yet (no publisher seen and no type given)."""
        return [t for t in self.topics if t not in self.subscriptions]

    def matched(self) -> dict[str, int]:
        """``{topic: matched publishers}`` of the subscribed topics (0 for pending ones)."""
        out = {t: 0 for t in self.topics}
        for t, sub in self.subscriptions.items():
            try:
                out[t] = int(sub.get_publisher_count())
            except Exception:  # noqa: BLE001 - older rclpy: fall back to the graph
                out[t] = int(self.node.count_publishers(t))
        return out

    def _subscription_qos(self, topic: str):
        return subscription_qos(self.node, topic, self.depth, self.qos)

    def poll(self) -> list[str]:
        """Subscribe to topics that appeared since the last call; returns the new ones."""
        if self._closed or not self.pending:
            return []
        graph = dict(self.node.get_topic_names_and_types())
        new = []
        for topic in self.pending:
            # Subscribe once a publisher exists, so the QoS can be adapted to what it offers
            # (a reliable subscription would never match a best-effort camera).
            if self.node.count_publishers(topic) == 0:
                continue
            msgtype = self.types.get(topic) or (graph.get(topic) or [None])[0]
            if msgtype is None:
                continue
            try:
                cls = import_msg_type(msgtype)
            except (ImportError, AttributeError) as e:
                raise BagError(f"{self.path}: cannot record {topic}: type {msgtype} is not "
                                    f"installed ({e})") from None
            qos, offered = self._subscription_qos(topic)
            with self._lock:
                self.writer.add_topic(topic, msgtype, offered or [make_qos(depth=self.depth)])
            self.subscriptions[topic] = self.node.create_subscription(
                cls, topic, self._callback(topic), qos, raw=True)
            new.append(topic)
        return new

    def _callback(self, topic):
        def on_message(raw, info):
            t = int(info["received_timestamp"]) if info and info.get("received_timestamp") else \
                time.time_ns()
            with self._lock:
                if self._closed:
                    return
                try:
                    self.writer.write(topic, t, raw=raw)
                    self.counts[topic] += 1
                    if self.first_ns is None:
                        self.first_ns = t
                    self.last_monotonic = time.monotonic()
                    self._flush_if_due(self.last_monotonic)
                except OSError as e:  # a full disk: stop, keep what was flushed
                    self.failed, self._closed = e, True
        return on_message

    def _flush_if_due(self, now: float) -> None:
        """(Under the lock.) Flush when ``flush_interval`` has passed since the last flush."""
        if now - self._last_flush >= self.flush_interval:
            self._last_flush = now
            self.writer.flush()

    def flush(self) -> None:
        """Flush now if due (the CLI calls this between spins, so a quiet topic is flushed
        too)."""
        with self._lock:
            if not self._closed:
                try:
                    self._flush_if_due(time.monotonic())
                except OSError as e:
                    self.failed, self._closed = e, True

    def close(self):
        """Unsubscribe and finish the bag (idempotent); returns the bag path.

        Raises:
            BagError: a write or finishing the bag failed (a full disk): one line naming the
                scratch folder that keeps everything flushed so far and how to recover it.
        """
        with self._lock:
            if self._closed and self.failed is None:
                return self.path
            self._closed = True
        for sub in self.subscriptions.values():
            try:
                self.node.destroy_subscription(sub)
            except Exception:  # noqa: BLE001 - the node may already be gone at shutdown
                pass
        with self._lock:
            try:
                if self.failed is None:
                    return self.writer.close(keep_on_error=True)
            except OSError as e:
                self.failed = e
            return self._give_up()

    def _give_up(self):
        """(Under the lock.) Leave the scratch folder for ``bag recover`` and say so."""
        e, self.failed = self.failed, None
        folder = self.writer.detach()
        raise BagError(f"{self.path}: {os_error_text(e)} after {self.total} message(s); what "
                       f"was flushed until then is in {folder}: `vita-grasp bag recover "
                       f"{folder} --out BAG` on a disk with space rebuilds it")

    def abort(self) -> None:
        with self._lock:
            self._closed = True
            self.writer.abort()

