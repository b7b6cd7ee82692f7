"""``vita-grasp bag play``: publish a rosbag2 with real rclpy publishers, at the recorded timing.

Messages go out as the raw CDR stored in the bag (``Publisher.publish(bytes)``, no
deserialisation): the bytes the subscriber sees are the bytes that were recorded, header stamps
included (they are not rewritten, as with ``ros2 bag play``).

Timing: a message recorded ``dt`` after the bag's first message is published ``dt / rate`` after
playback starts (``time.perf_counter`` schedule, so delays do not accumulate).

QoS (see docs/bags.md for measurements): ``reliable`` (default; keep-last ``--qos-depth`` 10,
volatile), ``best_effort``, or ``bag`` (the first offered profile stored in the bag per topic).
Before the first message ``--wait-for-subscribers N`` waits until every played topic matched
``N`` subscriptions (or ``--wait-timeout`` passes), and after the last message the player waits
until reliable subscribers acknowledged everything (``wait_for_all_acked``), so a replay into a
freshly started node loses nothing to discovery or to exiting early.
"""
from __future__ import annotations

import importlib
import sys
import time
from dataclasses import dataclass, field

from . import bags


def import_msg_type(msgtype: str):
    """``pkg/msg/Type`` -> the generated rclpy message class (ImportError/AttributeError if
    the package is not installed)."""
    parts = msgtype.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    if len(parts) != 3:
        raise ImportError(f"not a message type name: {msgtype!r}")
    mod = importlib.import_module(f"{parts[0]}.{parts[1]}")
    return getattr(mod, parts[2])


def qos_profile(kind: str = "reliable", depth: int = 10, bag_qos=None):
    """An rclpy ``QoSProfile``: ``reliable`` / ``best_effort`` (keep last ``depth``, volatile) or
    ``bag`` (from a rosbags ``Qos`` stored in the bag; reliable when missing)."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    if kind == "bag" and bag_qos:
        q = bag_qos[0]
        rel = ReliabilityPolicy.BEST_EFFORT if q.reliability.name == "BEST_EFFORT" else \
            ReliabilityPolicy.RELIABLE
        dur = DurabilityPolicy.TRANSIENT_LOCAL if q.durability.name == "TRANSIENT_LOCAL" else \
            DurabilityPolicy.VOLATILE
        hist = HistoryPolicy.KEEP_ALL if q.history.name == "KEEP_ALL" else HistoryPolicy.KEEP_LAST
        return QoSProfile(history=hist, depth=max(int(q.depth), 1), reliability=rel,
                          durability=dur)
    if kind not in ("reliable", "best_effort", "bag"):
        raise ValueError(f"unknown QoS {kind!r}; use reliable, best_effort or bag")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=int(depth),
                      reliability=ReliabilityPolicy.BEST_EFFORT if kind == "best_effort"
                      else ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


def parse_remaps(items) -> dict[str, str]:
    """``["/a:=/b", ...]`` -> ``{"/a": "/b"}``."""
    out = {}
    for it in items or ():
        if ":=" not in it:
            raise ValueError(f"bad remap {it!r}; use FROM:=TO")
        a, b = it.split(":=", 1)
        if not a or not b:
            raise ValueError(f"bad remap {it!r}; use FROM:=TO")
        out[a] = b
    return out


@dataclass
class PlayStats:
    published: dict = field(default_factory=dict)  # output topic -> count
    skipped_topics: dict = field(default_factory=dict)  # bag topic -> reason
    seconds: float = 0.0
    loops: int = 0
    max_lag_ms: float = 0.0  # worst lateness of a publish versus its schedule
    matched: dict = field(default_factory=dict)  # output topic -> subscriptions at the start
    unacked: list = field(default_factory=list)  # topics whose subscribers did not ack in time
    interrupted: bool = False

    @property
    def total(self) -> int:
        return sum(self.published.values())


def play(bag, node, *, rate: float = 1.0, remaps=None, topics=None, loop: bool = False,
         qos: str = "reliable", qos_depth: int = 10, wait_for_subscribers: int = 0,
         wait_topics=None, wait_timeout: float = 10.0, delay: float = 0.0,
         ack_timeout: float = 5.0, progress: bool = True, stop=None, log=print,
         stats: PlayStats | None = None) -> PlayStats:
    """Publish the messages of ``bag`` through ``node`` (an rclpy node; nothing needs spinning).

    Args:
        bag: bag path (see :mod:`.bags`).
        rate: playback speed factor (2 = twice as fast).
        remaps: ``{bag topic: published topic}``.
        topics: only these bag topics (default all with an importable type).
        loop: start over at the end until ``stop`` is set (or Ctrl-C).
        wait_for_subscribers: before starting, wait until each topic in ``wait_topics`` (default:
            all published topics) has at least this many matched subscriptions.
        stop: optional ``threading.Event`` that ends playback early.
        stats: a :class:`PlayStats` to fill (still readable when Ctrl-C interrupts playback).
    Raises:
        :class:`~vita_grasp_ros.bags.BagError` when the bag cannot be read; ``KeyboardInterrupt``
        is re-raised after the publishers are cleaned up (``stats.interrupted`` is set).
    """
    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    remaps = dict(remaps or {})
    stats = PlayStats() if stats is None else stats
    with bags.open_bag(bag) as reader:
        summary = reader.topics()
        wanted = list(summary) if topics is None else list(topics)
        missing = [t for t in wanted if t not in summary]
        if missing:
            raise bags.BagError(f"{bag}: no topic(s) {missing} in the bag (it has "
                                f"{sorted(summary)})")
        pubs = {}
        for t in wanted:
            info = summary[t]
            try:
                cls = import_msg_type(info.msgtype)
            except (ImportError, AttributeError) as e:
                stats.skipped_topics[t] = f"type {info.msgtype} not importable ({e})"
                log(f"bag play: skipping {t}: message type {info.msgtype} is not installed")
                continue
            out_topic = remaps.get(t, t)
            pubs[t] = node.create_publisher(cls, out_topic,
                                            qos_profile(qos, qos_depth, info.qos))
            stats.published[out_topic] = 0
        if not pubs:
            raise bags.BagError(f"{bag}: nothing to play (no topic with an installed type)")
        n_total = sum(summary[t].count for t in pubs)
        t_play = None
        bar = None
        try:
            if wait_for_subscribers > 0:
                _wait_matched(pubs, remaps, wait_for_subscribers, wait_topics, wait_timeout,
                              stats, stop, log)
            if delay > 0:
                time.sleep(delay)
            t_play = time.perf_counter()
            if progress:
                from tqdm import tqdm

                bar = tqdm(total=n_total * (1 if not loop else 0) or None, desc="bag play",
                           unit="msg", file=sys.stderr)
            while True:
                stats.loops += 1
                t_first = None
                w0 = time.perf_counter()
                for topic, _, t, raw in reader.messages(list(pubs)):
                    if stop is not None and stop.is_set():
                        break
                    if t_first is None:
                        t_first = t
                    due = w0 + (t - t_first) / 1e9 / rate
                    now = time.perf_counter()
                    while now < due:
                        if stop is not None and stop.is_set():
                            break
                        time.sleep(min(due - now, 0.05))
                        now = time.perf_counter()
                    stats.max_lag_ms = max(stats.max_lag_ms, (now - due) * 1e3)
                    pubs[topic].publish(raw if isinstance(raw, bytes) else bytes(raw))
                    stats.published[remaps.get(topic, topic)] += 1
                    if bar is not None:
                        bar.update(1)
                if not loop or (stop is not None and stop.is_set()):
                    break
        except KeyboardInterrupt:
            stats.interrupted = True
            raise
        finally:
            if bar is not None:
                bar.close()
            stats.seconds = 0.0 if t_play is None else time.perf_counter() - t_play
            if not stats.interrupted:
                _wait_acked(pubs, remaps, qos, ack_timeout, stats)
            for p in pubs.values():
                node.destroy_publisher(p)
    return stats


def _wait_matched(pubs, remaps, n, wait_topics, timeout, stats, stop, log) -> None:
    sel = {t: p for t, p in pubs.items()
           if wait_topics is None or t in wait_topics or remaps.get(t, t) in wait_topics}
    deadline = time.monotonic() + timeout
    while True:
        counts = {remaps.get(t, t): p.get_subscription_count() for t, p in sel.items()}
        if all(c >= n for c in counts.values()):
            break
        if time.monotonic() > deadline or (stop is not None and stop.is_set()):
            log(f"bag play: waited {timeout:.0f} s for {n} subscriber(s); matched: {counts} - "
                "playing anyway")
            break
        time.sleep(0.05)
    stats.matched = {remaps.get(t, t): p.get_subscription_count() for t, p in pubs.items()}


def _wait_acked(pubs, remaps, qos, timeout, stats) -> None:
    if qos == "best_effort" or timeout <= 0:
        return
    from rclpy.duration import Duration

    deadline = time.monotonic() + timeout
    for t, p in pubs.items():
        left = max(deadline - time.monotonic(), 0.0)
        try:
            ok = p.wait_for_all_acked(Duration(nanoseconds=int(left * 1e9)))
        except Exception:  # noqa: BLE001 - not supported by every rmw; just skip the wait
            ok = True
        if not ok:
            stats.unacked.append(remaps.get(t, t))


def main(argv) -> int:
    """CLI (``vita-grasp bag play``); see :mod:`.bag_cli` for the argument parser."""
    from .bag_cli import main as cli_main

    return cli_main(["play", *argv])
