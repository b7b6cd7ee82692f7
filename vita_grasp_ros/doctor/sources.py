"""Where ``vita-grasp doctor`` gets its messages: the topics to check (named, or found by name
and type), a rosbag2 file, or live topics subscribed for a while."""
from __future__ import annotations

import re
import sys
import time

from vita_grasp_core.camera_check import COLOR, DEPTH, INFO, Recording

from ..bag.types import (
    COMPRESSED_TYPE,
    DEPTH_TOPIC,
    IMAGE_TOPIC,
    IMAGE_TYPE,
    INFO_TOPIC,
    INFO_TYPE,
    BagError,
)
from .collect import Collector

#: Name parts that mark an image topic as not the colour stream.
_NOT_COLOR = ("depth", "disparity", "ir", "infra", "confidence", "points", "heatmap", "debug",
              "mask", "label")
#: Name parts preferred for the colour and the registered depth stream, best first.
_COLOR_HINTS = ("rgb", "color", "colour", "image_rect", "image_raw")
_DEPTH_HINTS = ("depth_to_rgb", "aligned_depth_to_color", "registered", "aligned", "depth")


#: Bag reading stops after this many depth + CameraInfo messages per colour frame read.
OTHER_PER_FRAME = 10


class SourceError(ValueError):
    """A bag or topic choice that cannot be checked (exit 2)."""


def _not_colour(topic: str) -> bool:
    """True when a name token (split at / and _) starts with a :data:`_NOT_COLOR` word."""
    tokens = [t for t in re.split(r"[/_\-]", topic.lower()) if t]
    return any(t.startswith(w) for t in tokens for w in _NOT_COLOR)


def _rank(topic: str, hints) -> int:
    name = topic.lower()
    for i, h in enumerate(hints):
        if h in name:
            return i
    return len(hints)


def _best(cands, hints):
    return sorted(cands, key=lambda t: (_rank(t, hints), len(t), t))[0] if cands else None


def info_sibling(image_topic: str) -> str:
    """The CameraInfo topic beside an image topic (image_transport's convention):
    ``/ns/image_raw`` and ``/ns/image_raw/compressed`` -> ``/ns/camera_info``."""
    parts = image_topic.rstrip("/").split("/")
    if parts and parts[-1] in ("compressed", "compressedDepth", "theora"):
        parts = parts[:-1]
    return "/".join(parts[:-1]) + "/camera_info"


def choose_topics(available: dict, image=None, depth=None, info=None) -> dict:
    """Topics to check, role -> name or ``None``.

    Args:
        available: topic -> message type (``pkg/msg/Type``) of the bag or the graph.
        image, depth, info: names given by the user (``""`` for depth / info: leave it out);
            ``None`` = the Azure Kinect defaults when present, else found by type and name.
    """
    images = {t for t, ty in available.items() if ty in (IMAGE_TYPE, COMPRESSED_TYPE)}
    if image and image not in available and f"{image.rstrip('/')}/compressed" in available:
        image = f"{image.rstrip('/')}/compressed"  # the node's use_compressed input
    if image is None:
        if IMAGE_TOPIC in available:
            image = IMAGE_TOPIC
        elif f"{IMAGE_TOPIC}/compressed" in available:
            image = f"{IMAGE_TOPIC}/compressed"
        else:
            image = _best([t for t in images if not _not_colour(t)], _COLOR_HINTS)
    if depth is None:
        depth = DEPTH_TOPIC if DEPTH_TOPIC in available else _best(
            [t for t in images if "depth" in t.lower() and t != image
             and available[t] == IMAGE_TYPE], _DEPTH_HINTS)
    if info is None and image:
        infos = [t for t, ty in available.items() if ty == INFO_TYPE]
        sib = info_sibling(image)
        info = sib if sib in infos else (INFO_TOPIC if INFO_TOPIC in infos else
                                         (infos[0] if len(infos) == 1 else None))
    return {COLOR: image or None, DEPTH: depth or None, INFO: info or None}


def _check_types(topics: dict, available: dict, where: str) -> None:
    want = {COLOR: (IMAGE_TYPE, COMPRESSED_TYPE), DEPTH: (IMAGE_TYPE, COMPRESSED_TYPE),
            INFO: (INFO_TYPE,)}
    listing = ", ".join(f"{t} [{ty}]" for t, ty in sorted(available.items())) or "none"
    for role, topic in topics.items():
        if topic is None:
            continue
        if topic not in available:
            raise SourceError(f"{where}: no topic {topic} for {role} (topics: {listing})")
        if available[topic] not in want[role]:
            raise SourceError(f"{where}: {topic} is {available[topic]}, not a {role} topic "
                              f"({' or '.join(want[role])})")


def read_bag(path, *, image=None, depth=None, info=None, samples: int = 5,
             max_frames: int = 600, progress: bool = False) -> Recording:
    """Collect the camera topics of a rosbag2 (.mcap, .db3 or directory): headers of at most
    ``max_frames`` colour frames (and of the depth / CameraInfo messages among them, at most
    :data:`OTHER_PER_FRAME` per colour frame) and ``samples`` decoded frames spread over them."""
    from ..bag.io import open_bag

    with open_bag(path) as r:
        available = {t: s.msgtype for t, s in r.topics().items()}
        topics = choose_topics(available, image, depth, info)
        if topics[COLOR] is None:
            raise SourceError(f"{path}: no colour image topic found (topics: "
                              f"{', '.join(sorted(available)) or 'none'}); name it with --image")
        _check_types(topics, available, str(path))
        total = min(r.topics()[topics[COLOR]].count, max_frames)
        col = Collector(str(path), topics, samples=samples, total=total)
        roles = {t: role for role, t in topics.items() if t}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=total, desc="doctor: reading", unit="frame", file=sys.stderr)
        n_color = n_other = 0
        try:
            for topic, t, msg in r.read(list(roles)):
                if roles[topic] == COLOR:
                    n_color += 1
                    if n_color > max_frames:
                        break
                    if bar is not None:
                        bar.update(1)
                else:
                    n_other += 1
                    if n_other > OTHER_PER_FRAME * (max_frames + 1):
                        break  # a flood of depth / CameraInfo: enough to judge
                col.add(roles[topic], msg, t)
        finally:
            if bar is not None:
                bar.close()
    return col.finish()


# --------------------------------------------------------------------------- live
class _LiveSubscriber:
    """Subscribes the chosen topics as their publishers appear (QoS adapted to them)."""

    def __init__(self, node, collector: Collector, log):
        self.node, self.col, self.log = node, collector, log
        self.subs: dict[str, object] = {}

    def poll(self) -> None:
        from ..bag.record import subscription_qos
        from ..bag.types import import_msg_type

        available = {t: ty[0] for t, ty in self.node.get_topic_names_and_types() if ty}
        for role, topic in self.col.rec.topics.items():
            if topic is None or topic in self.subs or topic not in available \
                    or self.node.count_publishers(topic) == 0:
                continue
            try:
                cls = import_msg_type(available[topic])
            except (ImportError, AttributeError) as e:
                raise SourceError(f"cannot subscribe {topic}: type {available[topic]} is not "
                                  f"installed ({e})") from None
            qos, _ = subscription_qos(self.node, topic, depth=10)
            self.subs[topic] = self.node.create_subscription(
                cls, topic, lambda m, r=role: self.col.add(r, m, time.time_ns()), qos)
            self.log(f"subscribed {topic} ({role}, {available[topic]})")

    def close(self) -> None:
        for s in self.subs.values():
            self.node.destroy_subscription(s)
        self.subs.clear()


def _discover(node, executor, image, depth, info, deadline) -> dict:
    """Topic choice from the graph, waiting (until ``deadline``) for a colour publisher."""
    topics = choose_topics({}, image, depth, info)
    while time.monotonic() < deadline:
        available = {t: types[0] for t, types in node.get_topic_names_and_types() if types}
        topics = choose_topics(available, image, depth, info)
        if topics[COLOR] and node.count_publishers(topics[COLOR]):
            break
        executor.spin_once(timeout_sec=0.1)
    return topics


def collect_live(node, executor, *, image=None, depth=None, info=None, duration: float = 3.0,
                 timeout: float = 10.0, samples: int = 5, log=print) -> Recording:
    """Subscribe to the camera topics through ``node`` and collect for ``duration`` s after the
    first colour frame; give up waiting for one after ``timeout`` s (the Recording then has no
    colour message, which the topics check reports). Topics whose publishers appear later are
    subscribed then. When fewer than ``samples`` frames were decoded by then (a slow camera or a
    busy machine), collection goes on for up to another ``duration`` s until they are."""
    deadline = time.monotonic() + timeout
    topics = _discover(node, executor, image, depth, info, deadline)
    col = Collector("live", topics, samples=samples, span_ns=int(duration * 1e9))
    sub = _LiveSubscriber(node, col, log)
    end, last_poll = None, 0.0
    try:
        while True:
            now = time.monotonic()
            if now - last_poll > 0.25:
                sub.poll()
                last_poll = now
            if end is None and col.rec.count(COLOR):
                end = now + duration
            if end is None and now >= deadline:
                break
            if end is not None and now >= end and (col.sampled >= col.n_samples
                                                   or now >= end + duration):
                break
            executor.spin_once(timeout_sec=0.05)
    finally:
        sub.close()
    return col.finish()


__all__ = ["BagError", "SourceError", "choose_topics", "collect_live", "info_sibling",
           "read_bag"]
