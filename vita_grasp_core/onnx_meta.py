"""The self-description of an exported VITA-Grasp ONNX file: ``vita_grasp.*`` metadata (model
config, decoding settings, mean/std, precision, batch mode, source checkpoint), written by
:mod:`.export` and read by :mod:`.engines` without loading the weights."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .choices import DEFAULT_ONNX_PRECISION

#: Names of the graph's one input (normalised ``pixel_values``) and one output (the 5 ``maps``).
INPUT_NAME, OUTPUT_NAME = "pixel_values", "maps"
#: Format tag in ``metadata_props["vita_grasp.format"]``; files without it are not ours.
ONNX_FORMAT = "vita_grasp.onnx/1"
DEFAULT_OPSET = 17
#: The metadata keys written into every exported file.
META_KEYS = ("format", "model_config", "decode", "mean", "std", "input_size", "output_size",
             "precision", "batch", "source", "source_sha256", "exporter")


def build_metadata(model, *, precision: str, batch, decode: dict | None = None,
                   source: str | None = None, source_sha256: str | None = None,
                   opset: int = DEFAULT_OPSET) -> dict[str, str]:
    """The ``vita_grasp.*`` metadata of an exported ``model`` (all values are strings)."""
    cfg = model.config
    meta = {
        "format": ONNX_FORMAT,
        "model_config": json.dumps(cfg.to_dict()),
        "decode": json.dumps(decode),
        "mean": json.dumps([float(v) for v in model.mean]),
        "std": json.dumps([float(v) for v in model.std]),
        "input_size": json.dumps(list(cfg.input_size)),
        "output_size": json.dumps(list(cfg.output_size)),
        "precision": precision,
        "batch": str(batch),
        "source": source or "",
        "source_sha256": source_sha256 or "",
        "exporter": f"torch {torch.__version__} TorchScript exporter, opset {opset}",
    }
    return {f"vita_grasp.{k}": v for k, v in meta.items()}


@dataclass
class OnnxModelInfo:
    """The self-description of an exported file (parsed ``vita_grasp.*`` metadata)."""

    model_config: dict[str, Any]
    decode: dict | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    precision: str
    batch: str | int
    source: str
    source_sha256: str
    raw: dict[str, str]

    @property
    def dynamic_batch(self) -> bool:
        return self.batch == "dynamic"


def parse_metadata(props: dict[str, str], where: str = "ONNX file") -> OnnxModelInfo:
    """``{key: value}`` metadata props -> :class:`OnnxModelInfo`; ``ValueError`` if not ours."""
    fmt = props.get("vita_grasp.format")
    if fmt is None:
        raise ValueError(f"{where} is not a VITA-Grasp ONNX model (no 'vita_grasp.format' "
                         "metadata); export one with `vita-grasp export --checkpoint CKPT --out "
                         "model.onnx`")
    if fmt != ONNX_FORMAT:
        raise ValueError(f"{where} has VITA-Grasp format {fmt!r}; this version reads "
                         f"{ONNX_FORMAT!r} (re-export it with this version)")
    try:
        batch = props.get("vita_grasp.batch", "dynamic")
        return OnnxModelInfo(
            model_config=json.loads(props["vita_grasp.model_config"]),
            decode=json.loads(props.get("vita_grasp.decode", "null")),
            mean=tuple(float(v) for v in json.loads(props["vita_grasp.mean"])),
            std=tuple(float(v) for v in json.loads(props["vita_grasp.std"])),
            precision=props.get("vita_grasp.precision", DEFAULT_ONNX_PRECISION),
            batch=batch if batch == "dynamic" else int(batch),
            source=props.get("vita_grasp.source", ""),
            source_sha256=props.get("vita_grasp.source_sha256", ""),
            raw=dict(props))
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"{where} has damaged VITA-Grasp metadata ({type(e).__name__}: {e})"
                         ) from None


def read_onnx_metadata(path) -> OnnxModelInfo:
    """Read the metadata of an exported file without loading its external weights."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ONNX model not found: {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # DecodeError, OSError ...
        raise ValueError(f"{path} is not a readable ONNX file ({type(e).__name__}: "
                         f"{str(e).strip()[:200]})") from None
    return parse_metadata({p.key: p.value for p in proto.metadata_props}, str(path))
