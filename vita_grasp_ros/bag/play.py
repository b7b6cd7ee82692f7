"""``vita-grasp bag play``: publish a rosbag2 with real rclpy publishers, at the recorded timing.

Messages go out as the raw CDR stored in the bag (``Publisher.publish(bytes)``, no
deserialisation): the bytes the subscriber sees are the bytes that were recorded, header stamps
included (they are not rewritten, as with ``ros2 bag play``). The one exception: messages of a
type the bag recorded in an older definition than the installed one (``vita_grasp/msg/Grasp``
version 1, before ``target_id``) are converted to the installed definition first
(:meth:`~.io.BagReader.upgrade`), so subscribers of the installed type can read them.

Timing: a message recorded ``dt`` after the bag's first message is published ``dt / rate`` after
playback starts (``time.perf_counter`` schedule, so delays do not accumulate).

Clock (``clock_hz > 0``, ``--clock``): ``/clock`` (rosgraph_msgs/Clock) carries the bag's time
line - the bag timestamp of the first message at the start, advancing at ``rate`` times wall
speed - published ``clock_hz`` times a second and once more right before every message with
that message's bag timestamp, so a ``use_sim_time`` node's ``now()`` is never behind the data it
receives. QoS as rosbag2's: best effort, keep last 1. With ``loop`` every pass starts over at the
bag's first timestamp (the clock jumps back, as with ``ros2 bag play --loop --clock``).

QoS (see docs/bags.md for measurements): ``reliable`` (default; keep-last ``--qos-depth`` 10,
volatile), ``best_effort``, or ``bag`` (the first offered profile stored in the bag per topic).
Before the first message ``--wait-for-subscribers N`` waits until every played topic matched
``N`` subscriptions (or ``--wait-timeout`` passes), and after the last message the player waits
until reliable subscribers acknowledged everything (``wait_for_all_acked``), so a replay into a
freshly started node loses nothing to discovery or to exiting early.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from vita_grasp_core.bounds import Range, check_bounds, count

from .io import open_bag
from .types import CLOCK_TOPIC, BagError, import_msg_type


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
    clock_published: int = 0  # /clock messages
    interrupted: bool = False

    @property
    def total(self) -> int:
        return sum(self.published.values())


class _Clock:
    """``/clock`` publisher: bag time = ``t0_bag + (now - w0) * rate`` between messages."""

    def __init__(self, node, hz: float, stats: PlayStats):
        from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
        from rosgraph_msgs.msg import Clock

        self._cls = Clock
        self.pub = node.create_publisher(
            Clock, CLOCK_TOPIC, QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                                           reliability=ReliabilityPolicy.BEST_EFFORT,
                                           durability=DurabilityPolicy.VOLATILE))
        self.period = 1.0 / hz
        self.stats = stats
        self.next_due = 0.0

    def publish(self, bag_ns: int, now: float) -> None:
        msg = self._cls()
        msg.clock.sec, msg.clock.nanosec = divmod(int(bag_ns), 1_000_000_000)
        self.pub.publish(msg)
        self.stats.clock_published += 1
        self.next_due = now + self.period


@dataclass(frozen=True)
class PlayOptions:
    """How :func:`play` publishes a bag.

    Attributes:
        rate: playback speed factor (2 = twice as fast).
        remaps: ``{bag topic: published topic}``.
        topics: only these bag topics (default all with an importable type).
        loop: start over at the end until ``stop`` is set (or Ctrl-C).
        clock_hz: publish ``/clock`` from the bag's time line at this rate [Hz] (0 = off; see
            the module docstring).
        qos, qos_depth: publisher QoS (``reliable``, ``best_effort`` or ``bag``) and depth.
        wait_for_subscribers: before starting, wait until each topic in ``wait_topics`` (default:
            all published topics) has at least this many matched subscriptions, at most
            ``wait_timeout`` s.
        delay: seconds to wait before the first message.
        ack_timeout: at the end, wait up to this long for reliable subscribers to acknowledge.
        progress: a progress bar on stderr.
    """

    rate: float = 1.0
    remaps: dict | None = None
    topics: list | None = None
    loop: bool = False
    clock_hz: float = 0.0
    qos: str = "reliable"
    qos_depth: int = 10
    wait_for_subscribers: int = 0
    wait_topics: list | None = None
    wait_timeout: float = 10.0
    delay: float = 0.0
    ack_timeout: float = 5.0
    progress: bool = True

    def check(self) -> None:
        """``ValueError`` (one line) for a number outside :data:`PLAY_BOUNDS` (NaN, inf ...)."""
        check_bounds(self, PLAY_BOUNDS, "")


#: Ranges of the numbers of :class:`PlayOptions` (a NaN rate or an infinite delay would hang).
PLAY_BOUNDS = {"rate": Range(0, 1000, lo_open=True), "clock_hz": Range(0, 1000),
               "qos_depth": count(1, 10_000), "wait_for_subscribers": count(0, 10_000),
               "wait_timeout": Range(0, 86_400), "delay": Range(0, 86_400),
               "ack_timeout": Range(0, 3600)}


def _publishers(node, summary, o: PlayOptions, stats, log, bag) -> dict:
    """``{bag topic: publisher}`` for the wanted topics whose type is installed."""
    remaps = o.remaps or {}
    wanted = list(summary) if o.topics is None else list(o.topics)
    missing = [t for t in wanted if t not in summary]
    if missing:
        raise BagError(f"{bag}: no topic(s) {missing} in the bag (it has {sorted(summary)})")
    if o.clock_hz > 0 and CLOCK_TOPIC in [remaps.get(t, t) for t in wanted]:
        raise ValueError(f"--clock publishes {CLOCK_TOPIC} itself, but the bag's "
                         f"{CLOCK_TOPIC} would be played too; leave it out with --topics")
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
        pubs[t] = node.create_publisher(cls, out_topic, qos_profile(o.qos, o.qos_depth, info.qos))
        stats.published[out_topic] = 0
    if not pubs:
        raise BagError(f"{bag}: nothing to play (no topic with an installed type)")
    return pubs


def play(bag, node, options: PlayOptions | None = None, *, stop=None, log=print,
         stats: PlayStats | None = None) -> PlayStats:
    """Publish the messages of ``bag`` through ``node`` (an rclpy node; nothing needs spinning).

    Args:
        bag: bag path (see :mod:`.io`).
        options: :class:`PlayOptions` (rate, topics, loop, clock, QoS, waiting).
        stop: optional ``threading.Event`` that ends playback early (without waiting for the
            subscribers' acknowledgements; ``bag play`` sets it on SIGINT / SIGTERM).
        stats: a :class:`PlayStats` to fill (still readable when Ctrl-C interrupts playback).
    Raises:
        :class:`~.types.BagError` when the bag cannot be read; ``KeyboardInterrupt`` is re-raised
        after the publishers are cleaned up (``stats.interrupted`` is set).
    """
    o = options or PlayOptions()
    o.check()
    remaps = dict(o.remaps or {})
    stats = PlayStats() if stats is None else stats
    with open_bag(bag) as reader:
        summary = reader.topics()
        pubs = _publishers(node, summary, o, stats, log, bag)
        clock = _Clock(node, o.clock_hz, stats) if o.clock_hz > 0 else None
        t_play = bar = None
        try:
            if o.wait_for_subscribers > 0:
                _wait_matched(pubs, remaps, o.wait_for_subscribers, o.wait_topics,
                              o.wait_timeout, stats, stop, log)
            if o.delay > 0:
                stop.wait(o.delay) if stop is not None else time.sleep(o.delay)
            t_play = time.perf_counter()
            if o.progress:
                from tqdm import tqdm

                n_total = sum(summary[t].count for t in pubs)
                bar = tqdm(total=None if o.loop else n_total, desc="bag play", unit="msg",
                           file=sys.stderr)
            while True:
                stats.loops += 1
                _play_once(reader, pubs, remaps, o.rate, clock, stop, stats, bar)
                if not o.loop or (stop is not None and stop.is_set()):
                    break
        except KeyboardInterrupt:
            stats.interrupted = True
            raise
        finally:
            if bar is not None:
                bar.close()
            stats.seconds = 0.0 if t_play is None else time.perf_counter() - t_play
            if not stats.interrupted and not (stop is not None and stop.is_set()):
                _wait_acked(pubs, remaps, o.qos, o.ack_timeout, stats)
            for p in pubs.values():
                node.destroy_publisher(p)
            if clock is not None:
                node.destroy_publisher(clock.pub)
    return stats


def _play_once(reader, pubs, remaps, rate, clock, stop, stats, bar) -> None:
    """One pass over the bag: sleep until each message is due (publishing ``/clock`` on the way),
    then publish its raw bytes."""
    t_first = None
    w0 = time.perf_counter()
    for topic, msgtype, t, raw in reader.messages(list(pubs)):
        if stop is not None and stop.is_set():
            return
        if msgtype in reader.outdated:  # recorded with an older definition of the type
            raw = reader.upgrade(raw, msgtype)
        if t_first is None:
            t_first = t
            if clock is not None:
                clock.publish(t, w0)
        due = w0 + (t - t_first) / 1e9 / rate
        now = time.perf_counter()
        while now < due:
            if stop is not None and stop.is_set():
                return
            wake = due if clock is None else min(due, clock.next_due)
            if wake > now:
                time.sleep(min(wake - now, 0.05))
            now = time.perf_counter()
            if clock is not None and clock.next_due <= now < due:
                clock.publish(t_first + int((now - w0) * rate * 1e9), now)
        stats.max_lag_ms = max(stats.max_lag_ms, (now - due) * 1e3)
        if clock is not None:
            clock.publish(t, now)
        pubs[topic].publish(raw if isinstance(raw, bytes) else bytes(raw))
        stats.published[remaps.get(topic, topic)] += 1
        if bar is not None:
            bar.update(1)


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
