"""``vita-grasp bag recover``: turn an interrupted recording into a complete bag.

``bag record`` writes into a hidden scratch folder beside its output
(``.NAME.partial-PID/``) and moves the finished bag into place when it stops. A recorder killed
with ``kill -9`` (or a power cut) never gets there: the scratch folder holds an MCAP file
without its summary and footer (or an sqlite3 file without its metadata), which ``bag info``,
``eval`` and ``play`` refuse. The recorder flushes what it received every
``--flush-interval`` seconds (:meth:`~.io.BagWriter.flush`: the pending MCAP chunk is closed
and written, the sqlite3 transaction committed), so such a folder holds every message received
up to the last flush. :func:`recover` reads them back (the MCAP records one by one up to the
first incomplete one; the committed sqlite3 rows) and writes a complete bag.

:func:`~.partials.stale_partials` finds the scratch folders of recorders that are gone, so ``bag
record`` and the bag readers point at them.
"""
from __future__ import annotations

import mmap
import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from .partials import partial_target, stale_partials
from .types import STORAGE_SUFFIX, BagError

_MAGIC = b"\x89MCAP0\r\n"
#: MCAP opcodes read here.
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK = 0x03, 0x04, 0x05, 0x06


@dataclass
class Recovered:
    """What :func:`recover` wrote: ``path``, messages per topic, the bytes it could not use
    (an incomplete last record) and the scratch folder it came from."""

    path: Path
    counts: dict[str, int] = field(default_factory=dict)
    dropped_bytes: int = 0
    source: Path | None = None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


# --------------------------------------------------------------------------- MCAP
def _str(b, i: int) -> tuple[str, int]:
    n = int.from_bytes(b[i:i + 4], "little")
    return bytes(b[i + 4:i + 4 + n]).decode(), i + 4 + n


def _records(b, pos: int):
    """``(opcode, body, end)`` of each complete record from ``pos``; stops at the first record
    that runs past the end (where the writer was killed)."""
    n = len(b)
    while pos + 9 <= n:
        length = int.from_bytes(b[pos + 1:pos + 9], "little")
        end = pos + 9 + length
        if end > n:
            return
        yield b[pos], b[pos + 9:end], end
        pos = end


def _chunk_records(body):
    from rosbags.rosbag2.storage_mcap import DECOMPRESSORS

    usize = int.from_bytes(body[16:24], "little")
    compression, i = _str(body, 28)
    size = int.from_bytes(body[i:i + 8], "little")
    data = bytes(body[i + 8:i + 8 + size])
    if compression not in DECOMPRESSORS:
        raise BagError(f"unsupported chunk compression {compression!r}")
    inner = DECOMPRESSORS[compression](data, usize)
    yield from ((op, rec) for op, rec, _ in _records(inner, 0))


def _mcap_items(path: Path):
    """Yield ``("schema", id, name, encoding, data)``, ``("channel", id, schema_id, topic,
    metadata)``, ``("message", channel_id, log_time, data)`` and finally ``("end", used, size)``.
    The file is memory-mapped (slices are copies), so a long recording is not read into RAM.
    """
    if path.stat().st_size < 8:
        raise BagError(f"{path}: empty or cut before the MCAP header: nothing to recover")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as b:
        if b[:8] != _MAGIC:
            raise BagError(f"{path}: not an MCAP file")
        used = 8
        for op, body, end in _records(b, 8):
            recs = _chunk_records(body) if op == _CHUNK else [(op, body)]
            for rop, rec in recs:
                yield from _mcap_record(rop, rec)
            used = end
        yield ("end", used, len(b))


def _mcap_record(op: int, rec):
    if op == _SCHEMA:
        sid = int.from_bytes(rec[:2], "little")
        name, i = _str(rec, 2)
        enc, i = _str(rec, i)
        n = int.from_bytes(rec[i:i + 4], "little")
        yield ("schema", sid, name, enc, bytes(rec[i + 4:i + 4 + n]).decode())
    elif op == _CHANNEL:
        cid, sid = int.from_bytes(rec[:2], "little"), int.from_bytes(rec[2:4], "little")
        topic, i = _str(rec, 4)
        _, i = _str(rec, i)  # message encoding (cdr)
        n = int.from_bytes(rec[i:i + 4], "little")
        yield ("channel", cid, sid, topic, bytes(rec[i + 4:i + 4 + n]))
    elif op == _MESSAGE:
        yield ("message", int.from_bytes(rec[:2], "little"),
               int.from_bytes(rec[6:14], "little"), bytes(rec[22:]))


def _recover_mcap(src: Path, writer, out: Recovered) -> None:
    from rosbags.rosbag2.storage_mcap import get_qos

    from .definitions import register_msgdef

    schemas, topics = {}, {}
    for item in _mcap_items(src):
        if item[0] == "schema":
            schemas[item[1]] = item[2]
            register_msgdef(writer.store, item[2], item[4])
        elif item[0] == "channel":
            _, cid, sid, topic, meta = item
            topics[cid] = topic
            writer.add_topic(topic, schemas.get(sid, ""), get_qos(meta) or None)
        elif item[0] == "message" and item[1] in topics:
            writer.write(topics[item[1]], item[2], raw=item[3])
        elif item[0] == "end":
            out.dropped_bytes = item[2] - item[1]


# --------------------------------------------------------------------------- sqlite3
def _recover_db3(src: Path, writer, out: Recovered) -> None:
    from rosbags.rosbag2.metadata import parse_qos

    from .definitions import register_msgdef

    try:
        con = sqlite3.connect(f"file:{src}", uri=True)  # rolls back an unfinished transaction
        defs = dict(con.execute("SELECT topic_type, encoded_message_definition FROM "
                                "message_definitions").fetchall())
        topics = {}
        for tid, name, typ, qos in con.execute(
                "SELECT id, name, type, offered_qos_profiles FROM topics"):
            if typ in defs:
                register_msgdef(writer.store, typ, defs[typ])
            writer.add_topic(name, typ, parse_qos(qos) if qos else None)
            topics[tid] = name
        for tid, t, data in con.execute("SELECT topic_id, timestamp, data FROM messages "
                                        "ORDER BY timestamp, id"):
            if tid in topics:
                writer.write(topics[tid], t, raw=bytes(data))
        con.close()
    except sqlite3.Error as e:
        raise BagError(f"{src}: unreadable sqlite3 file ({e})") from None


# --------------------------------------------------------------------------- the command
def _storage_file(path: Path) -> Path:
    """The storage file inside a scratch folder (or ``path`` itself)."""
    if path.is_file():
        return path
    files = sorted(f for f in path.rglob("*") if f.suffix in STORAGE_SUFFIX and f.is_file())
    if not files:
        raise BagError(f"{path}: no .mcap or .db3 file inside: nothing to recover")
    return files[0]


def find_source(path) -> Path:
    """The scratch folder (or storage file) to recover for ``path``: the folder itself, a
    storage file, or the bag name an interrupted recorder was writing."""
    p = Path(path)
    if p.exists() and (partial_target(p) is not None or p.is_file()):
        return p
    found = stale_partials(p)
    if not found:
        raise BagError(f"{p}: no interrupted recording found (expected a .{p.name}.partial-PID "
                       "folder beside it, or give that folder)")
    if len(found) > 1:
        raise BagError(f"{p}: {len(found)} interrupted recordings ({', '.join(map(str, found))}"
                       "); give the folder to recover")
    return found[0]


def recover(path, out=None, *, overwrite: bool = False, keep: bool = False) -> Recovered:
    """Write a complete bag from an interrupted recording (see the module docstring).

    Args:
        path: the scratch folder, its storage file, or the name of the bag it was writing.
        out: the bag to write (default: the name it was going to have; ``.mcap``/``.db3`` or a
            directory, as for ``bag record --out``).
        overwrite: replace an existing ``out``.
        keep: keep the scratch folder (default: deleted once the bag is written).
    Raises:
        BagError: nothing to recover, an unreadable file, an existing ``out``.
    """
    from .io import BagWriter

    src = find_source(path)
    folder = src if src.is_dir() else None
    out = Path(out) if out is not None else partial_target(folder or src.parent.parent)
    if out is None:
        raise BagError(f"{src}: give --out (the bag name cannot be derived from the path)")
    storage_file = _storage_file(src)
    res = Recovered(out, source=folder)
    storage = "mcap" if storage_file.suffix == ".mcap" else "sqlite3"
    with BagWriter(out, None if out.suffix in STORAGE_SUFFIX else storage,
                   overwrite=overwrite) as writer:
        (_recover_mcap if storage == "mcap" else _recover_db3)(storage_file, writer, res)
        res.counts = {t: n for t, n in writer.counts.items()}
    if folder is not None and not keep:
        shutil.rmtree(folder, ignore_errors=True)
    return res
