"""Damaged files are found on load, not used: checksums of checkpoints (issue 21 item 3).

- ``.pt`` (a zip archive written by ``torch.save``): every member carries a CRC-32 that torch's
  own reader never checks; :func:`verify_zip` checks them all (``ZipFile.testzip``).
- ``.safetensors`` has no checksum of its own: :func:`save_safetensors` stores the SHA-256 of the
  tensor data in the header's metadata (``data_sha256``) and :func:`verify_safetensors` checks
  it. Files written before this (no ``data_sha256``) load unchecked.

Both raise :class:`IntegrityError` (a ``ValueError``) with one line naming the file and the damage.
The cost is one extra read of the file (about 1 s per GB here), next to loading it.
"""
from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path

#: The safetensors metadata key that holds the tensor data's SHA-256 (hex).
DIGEST_KEY = "data_sha256"
_CHUNK = 1 << 22


class IntegrityError(ValueError):
    """A file whose stored checksum does not match its content (damaged after writing)."""


def verify_zip(path) -> None:
    """Check the CRC-32 of every member of a zip archive (a torch ``.pt``).

    Raises:
        IntegrityError: a member's CRC does not match, or the archive's directory is unreadable.
    """
    try:
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, OSError) as e:
        raise IntegrityError(f"{path} is truncated or corrupt (a zip archive that cannot be "
                             f"read: {type(e).__name__}: {str(e)[:120]})") from None
    if bad is not None:
        raise IntegrityError(f"{path} is damaged: the CRC of {bad!r} does not match its data "
                             "(the file changed after it was written)")


def _sha256_from(f, offset: int) -> str:
    f.seek(offset)
    h = hashlib.sha256()
    for block in iter(lambda: f.read(_CHUNK), b""):
        h.update(block)
    return h.hexdigest()


def _header(f) -> tuple[int, dict]:
    n = int.from_bytes(f.read(8), "little")
    if not 2 <= n <= 100 << 20:
        raise ValueError(f"header length {n}")
    return n, json.loads(f.read(n))


def save_safetensors(state: dict, path, metadata: dict[str, str]) -> None:
    """Write ``state`` (name -> tensor) as safetensors with ``metadata`` plus the SHA-256 of the
    tensor data (:data:`DIGEST_KEY`). The data bytes are exactly those ``safetensors`` writes;
    only the header gains the digest."""
    from safetensors.torch import save

    blob = memoryview(save(state, metadata=dict(metadata)))
    n = int.from_bytes(blob[:8], "little")
    header = json.loads(bytes(blob[8:8 + n]))
    data = blob[8 + n:]
    header.setdefault("__metadata__", {})[DIGEST_KEY] = hashlib.sha256(data).hexdigest()
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # safetensors pads the header to 8 bytes
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        f.write(data)


def verify_safetensors(path) -> bool:
    """Check a safetensors file against its stored :data:`DIGEST_KEY`; ``False`` when it has
    none (written before digests were stored), ``True`` when it matches.

    Raises:
        IntegrityError: the digest does not match, or the header is unreadable.
    """
    try:
        with open(path, "rb") as f:
            n, header = _header(f)
            want = (header.get("__metadata__") or {}).get(DIGEST_KEY)
            if want is None:
                return False
            end = max((int(v["data_offsets"][1]) for k, v in header.items()
                       if k != "__metadata__"), default=0)
            size = f.seek(0, 2) - 8 - n
            if size < end:
                raise IntegrityError(f"{path} is truncated or corrupt (its tensor data ends "
                                     f"after {size} of {end} bytes)")
            got = _sha256_from(f, 8 + n)
    except IntegrityError:
        raise
    except (ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError,
            IndexError) as e:
        raise IntegrityError(f"{Path(path)} is truncated or corrupt (unreadable safetensors "
                             f"header: {e})") from None
    if got != want:
        raise IntegrityError(f"{path} is damaged: the SHA-256 of its tensor data does not "
                             "match the one stored when it was written")
    return True
