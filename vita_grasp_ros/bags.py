"""rosbag2 files without a ROS install: reading, writing and message conversion with ``rosbags``.

ROS-free on purpose (no rclpy import): ``vita-grasp bag make / eval / info`` run anywhere the
``rosbags`` package is installed; only ``play`` and ``record`` need rclpy.

Bag paths
    A path ending in ``.mcap`` or ``.db3`` is a *single storage file*: the rosbag2 metadata
    (topics, QoS, counts) lives inside it (rosbag2's mcap ``rosbag2`` metadata record, the sqlite3
    ``metadata`` table), so ``ros2 bag info B.mcap``, Foxglove and rosbags open it directly. Any
    other path is a *rosbag2 directory* (``metadata.yaml`` + one storage file) as ``ros2 bag
    record -o`` writes it; ``--storage`` picks mcap (default) or sqlite3. Writers build the output
    under a temporary name beside it and move it into place on success, so an interrupted write
    never leaves a half-written bag under the requested name.

Types
    The typestore is rosbags' ROS 2 Kilted store plus ``vita_grasp/msg/Grasp`` and
    ``GraspArray`` parsed from the ``.msg`` files (installed package share dir first, else the
    repository's ``msg/``). Type hashes (RIHS01) and the embedded message definitions are computed
    the way rosidl and rosbag2 do (checked against the installed ROS packages in the tests).
    Unknown types met while recording are registered on demand from ``share/<pkg>/msg/*.msg`` of
    the ament prefixes.

Messages
    Helpers build rosbags message dataclasses from numpy (images, camera info, grasp arrays) and
    back. Reading images reuses :mod:`vita_grasp_ros.image_conversions`, which accepts rosbags'
    dataclasses as well as rclpy messages (duck typing on the field names).
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import sqlite3
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np

from .grasp_msgs import msg_to_grasp_rows

#: Storage plug-in per file suffix.
STORAGE_SUFFIX = {".mcap": "mcap", ".db3": "sqlite3"}
STORAGES = ("mcap", "sqlite3")

#: Default topic names (Azure Kinect ROS driver naming; CONVENTIONS §6).
IMAGE_TOPIC = "/rgb/image_raw"
INFO_TOPIC = "/rgb/camera_info"
DEPTH_TOPIC = "/depth_to_rgb/image_raw"
GT_TOPIC = "/ground_truth/grasps"
PRED_TOPIC = "/grasps"
FRAME_ID = "rgb_camera_link"

IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_TYPE = "sensor_msgs/msg/CompressedImage"
INFO_TYPE = "sensor_msgs/msg/CameraInfo"
GRASP_TYPE = "vita_grasp/msg/Grasp"
GRASP_ARRAY_TYPE = "vita_grasp/msg/GraspArray"
VITA_GRASP_TYPES = ("Grasp", "GraspArray")


class BagError(Exception):
    """A bag that cannot be opened, read or written. The message names the file."""


# --------------------------------------------------------------------------- types
def _repo_msg_dir() -> Path:
    return Path(__file__).resolve().parents[1] / "msg"


def ament_prefixes() -> list[Path]:
    """Ament prefixes to search for interface definitions: ``AMENT_PREFIX_PATH``, then the
    interpreter's prefix (the venv is the ROS prefix when the ROS wheels are installed)."""
    import sys

    out = [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for p in (sys.prefix, sys.base_prefix):
        if Path(p) not in out:
            out.append(Path(p))
    return out


def vita_grasp_msg_dir() -> Path:
    """Directory holding ``Grasp.msg`` and ``GraspArray.msg``: the installed package's share dir
    when there is one (what the node was built from), else the repository's ``msg/``."""
    for prefix in ament_prefixes():
        d = prefix / "share" / "vita_grasp" / "msg"
        if all((d / f"{n}.msg").is_file() for n in VITA_GRASP_TYPES):
            return d
    d = _repo_msg_dir()
    if all((d / f"{n}.msg").is_file() for n in VITA_GRASP_TYPES):
        return d
    raise BagError("cannot find the vita_grasp message definitions (Grasp.msg, GraspArray.msg) in "
                   "share/vita_grasp/msg of the ament prefixes nor in the repository's msg/")


@functools.lru_cache(maxsize=None)
def typestore():
    """rosbags typestore: ROS 2 Kilted standard types + ``vita_grasp/msg/*`` (cached)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    d = vita_grasp_msg_dir()
    types = {}
    for name in VITA_GRASP_TYPES:
        types.update(get_types_from_msg((d / f"{name}.msg").read_text(), f"vita_grasp/msg/{name}"))
    store.register(types)
    return store


_FIELD_TYPE_RE = re.compile(r"^\s*([A-Za-z][\w]*)/([A-Za-z]\w*)(?:\[[^\]]*\])?\s+\w")


def ensure_type(msgtype: str, store=None) -> bool:
    """Make sure ``msgtype`` (``pkg/msg/Type``) is in the typestore, registering it (and the types
    it uses) from ``share/<pkg>/msg/<Type>.msg`` of the ament prefixes. Returns False when a
    definition cannot be found."""
    from rosbags.typesys import get_types_from_msg

    store = store or typestore()
    if msgtype in store.fielddefs:
        return True
    pending, found = [msgtype], {}
    while pending:
        name = pending.pop()
        if name in store.fielddefs or name in found:
            continue
        pkg, kind, typ = (name.split("/") + ["", ""])[:3]
        if kind != "msg" or not typ:
            return False
        text = None
        for prefix in ament_prefixes():
            f = prefix / "share" / pkg / "msg" / f"{typ}.msg"
            if f.is_file():
                text = f.read_text()
                break
        if text is None:
            return False
        found.update(get_types_from_msg(text, name))
        for line in text.splitlines():
            m = _FIELD_TYPE_RE.match(line.split("#", 1)[0])
            if m:
                pending.append(f"{m.group(1)}/msg/{m.group(2)}")
    store.register(found)
    return msgtype in store.fielddefs


def msg_class(msgtype: str):
    """rosbags dataclass of a message type."""
    return typestore().types[msgtype]


# --------------------------------------------------------------------------- QoS
def make_qos(reliable: bool = True, depth: int = 10, transient_local: bool = False):
    """A rosbags ``Qos`` record (what rosbag2 stores as a topic's ``offered_qos_profiles``)."""
    from rosbags.interfaces import (Qos, QosDurability, QosHistory, QosLiveliness,
                                    QosReliability, QosTime)

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, int(depth),
               QosReliability.RELIABLE if reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if transient_local else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


# --------------------------------------------------------------------------- writing
def storage_for(path, storage: str | None = None) -> tuple[str, bool]:
    """``(storage plug-in, single_file)`` for an output path and an optional ``--storage``."""
    suffix = Path(path).suffix.lower()
    if suffix in STORAGE_SUFFIX:
        inferred = STORAGE_SUFFIX[suffix]
        if storage and storage != inferred:
            raise BagError(f"{path}: the suffix {suffix} means storage {inferred!r}, but "
                           f"--storage {storage} was given")
        return inferred, True
    storage = storage or "mcap"
    if storage not in STORAGES:
        raise BagError(f"{path}: unknown storage {storage!r}; use one of {STORAGES}")
    return storage, False


def remove_bag(path) -> None:
    """Delete a bag file or rosbag2 directory (only something that looks like a bag)."""
    p = Path(path)
    if p.is_dir():
        if not (p / "metadata.yaml").exists() and not any(
                f.suffix in STORAGE_SUFFIX for f in p.iterdir()):
            raise BagError(f"{p}: refusing to delete a directory that is not a rosbag2 bag")
        shutil.rmtree(p)
    elif p.exists():
        p.unlink()


class BagWriter:
    """Write a rosbag2 (mcap or sqlite3; single file or directory, see the module docstring).

    Use as a context manager; on an exception the partial output is removed and nothing appears
    under ``path``. ``write`` takes either a rosbags message dataclass or raw CDR bytes (what
    rclpy's ``serialize_message`` and raw subscriptions produce; identical encodings).

    Args:
        path: output bag (``x.mcap``, ``x.db3`` or a directory name).
        storage: ``mcap`` / ``sqlite3``; inferred from the suffix for single files.
        overwrite: replace an existing bag at ``path``; otherwise an existing path is an error.
        compress: zstd chunk compression (mcap only).
    """

    def __init__(self, path, storage: str | None = None, *, overwrite: bool = False,
                 compress: bool = False):
        self.path = Path(path)
        self.storage, self.single_file = storage_for(self.path, storage)
        if self.path.exists() and not overwrite:
            raise BagError(f"{self.path}: exists already (use --force/overwrite to replace it)")
        if compress and self.storage != "mcap":
            raise BagError(f"{self.path}: compression is only supported for mcap storage")
        self.overwrite = overwrite
        self.compress = compress
        self.store = typestore()
        self._tmp = self.path.parent / f".{self.path.name}.partial-{os.getpid()}"
        self._writer = None
        self._conns: dict[str, object] = {}
        self.counts: dict[str, int] = {}

    # -- lifecycle -------------------------------------------------------------------------
    def open(self) -> "BagWriter":
        from rosbags.rosbag2 import StoragePlugin, Writer
        from rosbags.rosbag2.enums import CompressionFormat, CompressionMode

        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        self._tmp.mkdir()
        inner = self._tmp / (self.path.stem if self.single_file else self.path.name)
        plugin = StoragePlugin.MCAP if self.storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(inner, version=9, storage_plugin=plugin)
        if self.compress:
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._inner = inner
        self._writer.open()
        return self

    def close(self) -> Path:
        """Finish the bag and move it into place; returns the final path."""
        if self._writer is None:
            raise BagError(f"{self.path}: writer is not open")
        w, self._writer = self._writer, None
        try:
            w.close()
            if self.single_file:
                (src,) = [f for f in self._inner.iterdir() if f.suffix in STORAGE_SUFFIX]
            else:
                src = self._inner
            if self.path.exists():
                remove_bag(self.path)
            os.replace(src, self.path)
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the partial output."""
        w, self._writer = self._writer, None
        if w is not None:
            try:
                w.abort()
            except Exception:  # noqa: BLE001 - best effort before deleting the files anyway
                pass
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "BagWriter":
        return self.open()

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.close()
        else:
            self.abort()
        return False

    # -- topics and messages ----------------------------------------------------------------
    def add_topic(self, topic: str, msgtype: str, qos=None) -> None:
        """Declare ``topic`` with ``msgtype`` (``pkg/msg/Type``) and offered QoS profiles (a
        rosbags ``Qos`` or a list of them; default reliable, volatile, keep last 10)."""
        if topic in self._conns:
            return
        if not ensure_type(msgtype, self.store):
            raise BagError(f"{self.path}: no message definition found for {msgtype} (topic "
                           f"{topic}); is its package installed in an ament prefix?")
        profiles = [make_qos()] if qos is None else (list(qos) if isinstance(qos, (list, tuple))
                                                       else [qos])
        self._conns[topic] = self._writer.add_connection(
            topic, msgtype, typestore=self.store, offered_qos_profiles=profiles)
        self.counts[topic] = 0

    def write(self, topic: str, timestamp_ns: int, msg=None, *, raw: bytes | None = None) -> None:
        """Write one message (dataclass ``msg`` or serialized ``raw``) at ``timestamp_ns``."""
        conn = self._conns.get(topic)
        if conn is None:
            raise BagError(f"{self.path}: topic {topic} was not declared with add_topic")
        if raw is None:
            raw = self.store.serialize_cdr(msg, conn.msgtype)
        self._writer.write(conn, int(timestamp_ns), raw)
        self.counts[topic] += 1


# --------------------------------------------------------------------------- reading
#: Exceptions rosbags and its storage back ends raise for unreadable files.
def _read_errors() -> tuple[type[BaseException], ...]:
    from rosbags.rosbag2 import ReaderError

    errs: list[type[BaseException]] = [ReaderError, OSError, ValueError, KeyError, IndexError,
                                       EOFError, struct.error, sqlite3.Error, zlib.error,
                                       AssertionError, TypeError]
    try:
        from rosbags.serde import SerdeError

        errs.append(SerdeError)
    except ImportError:  # pragma: no cover
        pass
    try:
        from rosbags.typesys import TypesysError

        errs.append(TypesysError)
    except ImportError:  # pragma: no cover
        pass
    return tuple(errs)


@dataclass
class TopicSummary:
    topic: str
    msgtype: str
    count: int
    qos: list


class BagReader:
    """Read a rosbag2 file or directory. Every failure becomes a :class:`BagError` that names the
    file: a missing path, an unknown format, a truncated or corrupt storage file, a message that
    does not deserialize.

    ``messages()`` yields ``(topic, msgtype, timestamp_ns, raw_cdr)``; ``deserialize(raw, type)``
    turns raw CDR into a rosbags dataclass.
    """

    def __init__(self, path):
        self.path = Path(path)
        self._reader = None
        self.store = typestore()

    def _fail(self, what: str, e: BaseException) -> BagError:
        detail = str(e) or type(e).__name__
        return BagError(f"{self.path}: {what}: {detail} (corrupt or truncated bag?)")

    def open(self) -> "BagReader":
        from rosbags.rosbag2 import Reader

        if not self.path.exists():
            raise BagError(f"{self.path}: no such bag file or directory")
        if self.path.is_file() and self.path.suffix.lower() not in STORAGE_SUFFIX:
            raise BagError(f"{self.path}: not a rosbag2 file (expected .mcap, .db3 or a rosbag2 "
                           f"directory)")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
            conns = list(self._reader.connections)
        except _read_errors() as e:
            self._reader = None
            raise self._fail("cannot open bag", e) from None
        for c in conns:
            # Types defined in the bag itself (e.g. vita_grasp messages from another version).
            if c.msgtype not in self.store.fielddefs and c.msgdef.data:
                self._register_from_bag(c)
        return self

    def _register_from_bag(self, conn) -> None:
        from rosbags.typesys import get_types_from_idl, get_types_from_msg

        try:
            data = conn.msgdef.data
            if data.startswith("=" * 80 + "\nIDL: "):
                types = {}
                for part in data.split("=" * 80 + "\n")[1:]:
                    types.update(get_types_from_idl(part.split("\n", 1)[1]))
            else:
                parts = data.split("=" * 80 + "\n")
                types = get_types_from_msg(parts[0], conn.msgtype)
                for part in parts[1:]:
                    head, body = part.split("\n", 1)
                    name = head.removeprefix("MSG: ").strip()
                    if name.count("/") == 1:
                        name = name.replace("/", "/msg/")
                    types.update(get_types_from_msg(body, name))
            self.store.register({k: v for k, v in types.items() if k not in self.store.fielddefs})
        except Exception:  # noqa: BLE001 - an odd definition only matters if we deserialize it
            pass

    def close(self) -> None:
        if self._reader is not None:
            try:
                self._reader.close()
            except _read_errors():
                pass
            self._reader = None

    def __enter__(self) -> "BagReader":
        return self.open()

    def __exit__(self, *exc) -> bool:
        self.close()
        return False

    # -- summary ----------------------------------------------------------------------------
    @property
    def storage(self) -> str:
        if self.path.is_dir():
            files = [f for f in self.path.iterdir() if f.suffix in STORAGE_SUFFIX]
            return STORAGE_SUFFIX[files[0].suffix] if files else "unknown"
        return STORAGE_SUFFIX.get(self.path.suffix.lower(), "unknown")

    def topics(self) -> dict[str, TopicSummary]:
        out = {}
        for c in self._reader.connections:
            qos = list(getattr(c.ext, "offered_qos_profiles", []) or [])
            if c.topic in out:
                out[c.topic].count += c.msgcount
            else:
                out[c.topic] = TopicSummary(c.topic, c.msgtype, c.msgcount, qos)
        return out

    @property
    def message_count(self) -> int:
        return int(self._reader.message_count)

    @property
    def start_time(self) -> int:
        return int(self._reader.start_time) if self.message_count else 0

    @property
    def duration(self) -> int:
        return int(self._reader.duration) if self.message_count else 0

    # -- messages ---------------------------------------------------------------------------
    def messages(self, topics: Iterable[str] | None = None
                 ) -> Iterator[tuple[str, str, int, bytes]]:
        """Yield ``(topic, msgtype, timestamp_ns, raw_cdr)`` in timestamp order."""
        conns = self._reader.connections
        if topics is not None:
            wanted = set(topics)
            conns = [c for c in conns if c.topic in wanted]
            if not conns:
                return
        it = self._reader.messages(connections=conns)
        while True:
            try:
                conn, t, raw = next(it)
            except StopIteration:
                return
            except _read_errors() as e:
                raise self._fail("cannot read messages", e) from None
            yield conn.topic, conn.msgtype, int(t), raw

    def deserialize(self, raw, msgtype: str):
        try:
            return self.store.deserialize_cdr(raw, msgtype)
        except _read_errors() as e:
            raise self._fail(f"cannot deserialize a {msgtype} message", e) from None

    def read(self, topics: Iterable[str] | None = None):
        """Yield ``(topic, timestamp_ns, message dataclass)``."""
        for topic, msgtype, t, raw in self.messages(topics):
            yield topic, t, self.deserialize(raw, msgtype)


def open_bag(path) -> BagReader:
    """Open a bag for reading (context manager); raises :class:`BagError` with the file name."""
    return BagReader(path).open()


# --------------------------------------------------------------------------- conversions
def stamp_to_ns(stamp) -> int:
    """``builtin_interfaces/Time`` -> int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_stamp(ns: int):
    T = msg_class("builtin_interfaces/msg/Time")
    return T(sec=int(ns // 1_000_000_000), nanosec=int(ns % 1_000_000_000))


def make_header(stamp_ns: int, frame_id: str = FRAME_ID):
    H = msg_class("std_msgs/msg/Header")
    return H(stamp=ns_to_stamp(stamp_ns), frame_id=str(frame_id))


def image_msg(arr: np.ndarray, encoding: str, header):
    """numpy ``HxW`` / ``HxWxC`` -> rosbags ``sensor_msgs/msg/Image`` (little-endian, no padding).

    ``encoding`` must match the array (e.g. ``rgb8`` for ``HxWx3 uint8 RGB``, ``16UC1`` for
    ``HxW uint16`` millimetres).
    """
    from .image_conversions import ENCODINGS

    if encoding not in ENCODINGS:
        raise ValueError(f"unsupported encoding {encoding!r}")
    kind, ch = ENCODINGS[encoding]
    a = np.ascontiguousarray(arr, dtype=np.dtype(kind).newbyteorder("<"))
    if a.ndim != (2 if ch == 1 else 3) or (ch > 1 and a.shape[2] != ch):
        raise ValueError(f"{encoding} needs {'HxW' if ch == 1 else f'HxWx{ch}'}, got {a.shape}")
    h, w = a.shape[:2]
    Image = msg_class(IMAGE_TYPE)
    return Image(header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                 step=w * ch * a.dtype.itemsize, data=a.view(np.uint8).reshape(-1))


def compressed_image_msg(rgb: np.ndarray, header, quality: int = 90):
    """``HxWx3 uint8 RGB`` -> rosbags ``sensor_msgs/msg/CompressedImage`` (JPEG, written as
    compressed_image_transport does: BGR data, format ``"rgb8; jpeg compressed bgr8"``)."""
    import cv2

    ok, enc = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError("OpenCV could not encode the image as JPEG")
    C = msg_class(COMPRESSED_TYPE)
    return C(header=header, format="rgb8; jpeg compressed bgr8", data=enc.reshape(-1))


def camera_info_msg(K: np.ndarray, width: int, height: int, header):
    """Pinhole ``sensor_msgs/msg/CameraInfo`` without distortion (plumb_bob, zeros)."""
    K = np.asarray(K, np.float64).reshape(3, 3)
    P = np.zeros((3, 4), np.float64)
    P[:, :3] = K
    Info = msg_class(INFO_TYPE)
    Roi = msg_class("sensor_msgs/msg/RegionOfInterest")
    return Info(header=header, height=int(height), width=int(width), distortion_model="plumb_bob",
                d=np.zeros(5, np.float64), k=K.reshape(-1).copy(), r=np.eye(3).reshape(-1),
                p=P.reshape(-1), binning_x=0, binning_y=0,
                roi=Roi(x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def grasp_array_msg(rows: np.ndarray, header, image_size: tuple[int, int]):
    """``(N, >=5)`` rows (x, y, angle, width, height[, quality[, object_score]]) -> rosbags
    ``vita_grasp/msg/GraspArray`` (``has_pose`` false, identity orientation, ``width_m`` 0).

    ``image_size`` is (height, width) of the source image.
    """
    rows = np.asarray(rows, np.float64).reshape(len(rows), -1) if len(rows) else \
        np.zeros((0, 7), np.float64)
    if rows.shape[1] < 5:
        raise ValueError(f"grasp rows must be (N, >=5), got {rows.shape}")
    full = np.zeros((len(rows), 7), np.float64)
    full[:, 5] = 1.0
    full[:, :rows.shape[1]] = rows[:, :7]
    G = msg_class(GRASP_TYPE)
    Pose = msg_class("geometry_msgs/msg/Pose")
    Point = msg_class("geometry_msgs/msg/Point")
    Quat = msg_class("geometry_msgs/msg/Quaternion")
    pose = Pose(position=Point(x=0.0, y=0.0, z=0.0), orientation=Quat(x=0.0, y=0.0, z=0.0, w=1.0))
    grasps = [G(x=r[0], y=r[1], angle=r[2], width=r[3], height=r[4], quality=r[5],
                object_score=r[6], has_pose=False, pose=pose, width_m=0.0)
              for r in full.astype(np.float32).tolist()]
    GA = msg_class(GRASP_ARRAY_TYPE)
    return GA(header=header, image_width=int(image_size[1]), image_height=int(image_size[0]),
              grasps=grasps)


#: ``GraspArray`` (rosbags dataclass or rclpy message) -> ``(N, 7)`` float32 rows in
#: :data:`vita_grasp_core.grasp.GRASP_FIELDS` order (one implementation, shared with the node).
grasp_array_rows = msg_to_grasp_rows


def image_from_msg(msg) -> np.ndarray:
    """A colour ``Image`` or ``CompressedImage`` (rosbags or rclpy) -> ``HxWx3 uint8 RGB``."""
    from .image_conversions import compressed_msg_to_rgb, image_msg_to_rgb

    if hasattr(msg, "format") and not hasattr(msg, "encoding"):
        return compressed_msg_to_rgb(msg)
    return image_msg_to_rgb(msg)
