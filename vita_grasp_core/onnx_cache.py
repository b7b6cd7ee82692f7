"""The on-the-fly ONNX export cache of ``GraspPredictor.from_checkpoint(engine="onnxruntime")``
and ``vita-grasp export`` without ``--out``: ``<checkpoint>.<precision>.<key>.onnx`` next to the
checkpoint, exported and checked on first use, reused while neither the checkpoint's content nor
the export settings change; and the ``onnxruntime`` engine factory that uses it."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from .choices import DEFAULT_ONNX_PRECISION, DTYPES, FLOAT32, ONNX_PRECISIONS
from .onnx_meta import DEFAULT_OPSET, ONNX_FORMAT

log = logging.getLogger(__name__)


def _pretrained_fingerprint(pretrained_model: str | None) -> list:
    """Name, size and mtime of a local encoder directory's files (a hub id: the id only)."""
    if not pretrained_model:
        return []
    d = Path(os.path.expanduser(pretrained_model))
    if not d.is_dir():
        return [pretrained_model]
    return [str(d.resolve())] + sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns)
                                       for p in d.iterdir() if p.is_file())


def cache_key(checkpoint_sha256: str, *, pretrained_model: str | None, precision: str,
              opset: int) -> str:
    """12 hex digits identifying an export of this checkpoint content with these settings."""
    blob = json.dumps({"checkpoint": checkpoint_sha256, "format": ONNX_FORMAT,
                       "pretrained": _pretrained_fingerprint(pretrained_model),
                       "precision": precision, "opset": int(opset)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def cache_dir_fallback() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "vita_grasp" / "onnx"


def cache_path(checkpoint, checkpoint_sha256: str, *, pretrained_model: str | None = None,
               precision: str = DEFAULT_ONNX_PRECISION, opset: int = DEFAULT_OPSET) -> Path:
    """Where :func:`onnx_for_checkpoint` keeps the export of ``checkpoint`` with these settings:
    ``<checkpoint>.<precision>.<key>.onnx`` next to it, or in ``~/.cache/vita_grasp/onnx/`` when
    the checkpoint's directory is not writable or the checkpoint is a shipped model
    (:mod:`vita_grasp_core.zoo`)."""
    from .zoo import is_shipped_file, resolve_checkpoint

    checkpoint = resolve_checkpoint(checkpoint)
    key = cache_key(checkpoint_sha256, pretrained_model=pretrained_model, precision=precision,
                    opset=opset)
    # shipped weights live inside the installed package: their exports go to the user's cache
    writable = os.access(checkpoint.parent, os.W_OK) and not is_shipped_file(checkpoint)
    folder = checkpoint.parent if writable else cache_dir_fallback()
    return folder / f"{checkpoint.name}.{precision}.{key}.onnx"


def onnx_for_checkpoint(checkpoint, *, onnx_path=None, pretrained_model: str | None = None,
                        precision: str = DEFAULT_ONNX_PRECISION, opset: int = DEFAULT_OPSET,
                        check_frames: int = 2, providers=None) -> Path:
    """The ONNX file for ``checkpoint``, exported (and checked) on first use.

    Without ``onnx_path`` the file is ``<checkpoint>.<precision>.<key>.onnx`` next to the
    checkpoint (``key`` = :func:`cache_key` of the checkpoint's content and the export settings;
    falls back to ``~/.cache/vita_grasp/onnx/`` when that directory is not writable), reused
    while neither changes. With ``onnx_path`` that file is used when it exists (it must have been
    exported from this checkpoint's content) and written otherwise.
    """
    from .export import export_checkpoint, file_sha256
    from .fileio import atomic_write

    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"unknown ONNX precision {precision!r}; use one of {ONNX_PRECISIONS}")
    from .zoo import resolve_checkpoint

    checkpoint = resolve_checkpoint(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"checkpoint not found: {checkpoint}")
    digest = file_sha256(checkpoint)
    if onnx_path is not None:
        path = Path(onnx_path)
        if path.is_file():
            why = _unusable_export(path, digest, checkpoint)
            if why:
                raise ValueError(f"{path} {why}; delete it (it is exported again on the next "
                                 "start) or give another onnx_path")
            return path
    else:
        path = cache_path(checkpoint, digest, pretrained_model=pretrained_model,
                          precision=precision, opset=opset)
        if path.is_file():
            why = _unusable_export(path, digest, checkpoint)
            if not why:
                return path
            log.warning("cached ONNX export %s %s: exporting it again", path, why)
    log.info("exporting %s to %s (%s, first use; cached for later runs)", checkpoint, path,
             precision)
    export_checkpoint(checkpoint, path, pretrained_model=pretrained_model,
                      precision=precision, opset=opset,
                      check=check_frames, providers=providers)
    atomic_write(_digest_path(path), lambda p: p.write_text(file_sha256(path) + "\n"))
    return path


def _digest_path(path: Path) -> Path:
    """Sidecar with the SHA-256 of an export written by :func:`onnx_for_checkpoint`."""
    return path.with_name(path.name + ".sha256")


def _unusable_export(path: Path, source_digest: str, checkpoint) -> str | None:
    """Why an existing export cannot be used (damaged: its recorded SHA-256 differs or it does
    not parse; or exported from another checkpoint), or ``None``."""
    from .export import file_sha256
    from .onnx_meta import read_onnx_metadata

    try:
        sidecar = _digest_path(path)
        if sidecar.is_file() and sidecar.read_text().strip() != file_sha256(path):
            return "is damaged (its SHA-256 differs from the one recorded when it was written)"
        info = read_onnx_metadata(path)
    except ValueError as e:
        return f"is damaged ({str(e).replace(str(path), '').strip()})"
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if info.source_sha256 and info.source_sha256 != source_digest:
        return (f"was exported from another checkpoint (sha256 {info.source_sha256[:12]}..., "
                f"{checkpoint} is {source_digest[:12]}...)")
    return None


def onnxruntime_from_checkpoint(checkpoint, *, device="auto", dtype="auto",
                                pretrained_model: str | None = None, providers=None,
                                onnx_path=None, onnx_precision: str = DEFAULT_ONNX_PRECISION,
                                intra_op_threads: int | None = None, **_):
    """Engine factory of ``onnxruntime``: the checkpoint's export (:func:`onnx_for_checkpoint`)
    in an :class:`~vita_grasp_core.engines.OnnxRuntimeEngine`, and the decoding settings stored
    in it. Its device comes from ``providers`` and its precision from the file."""
    from .engines import OnnxRuntimeEngine

    fp32 = dtype in (None, "auto", torch.float32) or DTYPES.get(str(dtype)) == FLOAT32
    if str(device) not in ("auto", "cpu") or not fp32:
        raise ValueError("the onnxruntime engine takes its device from `providers` and its "
                         "precision from the exported file; leave device/dtype auto")
    path = onnx_for_checkpoint(checkpoint, onnx_path=onnx_path,
                               pretrained_model=pretrained_model, precision=onnx_precision,
                               providers=providers)
    engine = OnnxRuntimeEngine(path, providers, intra_op_threads=intra_op_threads)
    return engine, engine.info.decode
