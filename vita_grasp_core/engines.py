"""Inference engines behind :class:`~vita_grasp_core.predictor.GraspPredictor`, and their
registry.

The predictor always holds an engine: an object with ``name``, ``config`` (the
:class:`~vita_grasp_core.model_config.ModelConfig`), ``mean``/``std``, ``device``/``dtype`` of its
input and ``run(pixel_values) -> maps``: normalised ``(B, 3, H_in, W_in)`` in, the five activated
maps ``(B, 5, H_out, W_out)`` float32 out, so pre-processing and decoding are shared unchanged.
An engine is registered by name (:data:`vita_grasp_core.choices.ENGINES`, or
:func:`register_engine`) with a factory ``fn(checkpoint, *, device, dtype, pretrained_model,
**options) -> (engine, stored decoding settings)`` that ``GraspPredictor.from_checkpoint``
calls. Built in:

- ``torch`` (default): :class:`TorchEngine`, the :class:`~vita_grasp_core.model.GraspModel` in
  PyTorch eager;
- ``onnxruntime``: :class:`OnnxRuntimeEngine`, the exported network (:mod:`.export`) in an ONNX
  Runtime session (factory in :mod:`.onnx_cache`, which exports on first use).

ONNX Runtime execution providers: ``CPUExecutionProvider`` (default; the only one measured here),
``CUDAExecutionProvider`` and ``TensorrtExecutionProvider`` where the installed onnxruntime build
has them (``onnxruntime-gpu``); untested on this machine (no GPU). The CPU provider is always
appended as the fallback for nodes another provider does not take.
"""
from __future__ import annotations

import importlib
import logging
from pathlib import Path

import numpy as np
import torch

from . import choices
from .onnx_meta import INPUT_NAME, ONNX_FORMAT, OUTPUT_NAME, OnnxModelInfo, parse_metadata

log = logging.getLogger(__name__)

CPU_PROVIDER = "CPUExecutionProvider"


def require_onnxruntime():
    """Import onnxruntime or raise a ``RuntimeError`` that says how to get it."""
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError(f"engine '{choices.ONNXRUNTIME_ENGINE}' needs the onnxruntime package "
                           "(`pip install onnxruntime==1.32.0`, installed by `make setup`; "
                           "onnxruntime-gpu for the CUDA / TensorRT providers)") from None
    return onnxruntime


def register_engine(name: str, factory) -> None:
    """Register an engine factory (a callable or its ``"module:attribute"``) under ``name``."""
    if name in choices.ENGINES:
        raise ValueError(f"engine {name!r} registered twice")
    choices.ENGINES[name] = factory


def unregister_engine(name: str) -> None:
    """Remove a run-time registration (tests)."""
    choices.ENGINES.pop(name, None)


def get_engine_factory(name: str):
    """The factory registered as ``name`` (its module imported on first use)."""
    target = choices.ENGINES.get(name)
    if target is None:
        raise ValueError(f"unknown engine {name!r}; use one of {list(choices.ENGINES)}")
    if isinstance(target, str):
        module, attr = target.split(":")
        target = getattr(importlib.import_module(module), attr)
    return target


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` -> cuda when available, else cpu. Anything but ``auto``, ``cpu``, ``cuda`` and
    ``cuda:N`` of an existing GPU is a ``ValueError`` naming the choices."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {str(device)!r}; use auto, cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available; use 'cpu' or "
                         "'auto'")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: there are {torch.cuda.device_count()} GPU(s)")
    return dev


def resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    """``None``/``auto`` -> bfloat16 on CUDA, float32 on CPU (bf16 is slower on these CPUs)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    try:
        return getattr(torch, choices.DTYPES[str(dtype)])
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(choices.DTYPES)} or "
                         "'auto'") from None


def resolve_providers(providers=None) -> list:
    """``None`` -> ``["CPUExecutionProvider"]``; a list or a comma-separated string of provider
    names, each of which must be available in the installed onnxruntime (``ValueError`` naming
    the missing ones and the available ones). A list entry may also be ONNX Runtime's
    ``(name, {option: value})`` pair, e.g. ``("TensorrtExecutionProvider",
    {"trt_fp16_enable": True, "trt_engine_cache_enable": True, "trt_engine_cache_path": DIR})``.
    The CPU provider is appended as the fallback."""
    ort = require_onnxruntime()
    if providers is None or (isinstance(providers, (list, tuple)) and not providers):
        return [CPU_PROVIDER]
    if isinstance(providers, str):
        providers = [p.strip() for p in providers.split(",") if p.strip()]
    entries = []
    for p in providers:
        if isinstance(p, (tuple, list)) and len(p) == 2 and isinstance(p[1], dict):
            entries.append((str(p[0]), dict(p[1])))
        elif isinstance(p, str):
            entries.append(p)
        else:
            raise ValueError(f"a provider is a name or a (name, options dict) pair, got {p!r}")
    names = [e if isinstance(e, str) else e[0] for e in entries]
    available = ort.get_available_providers()
    missing = [p for p in names if p not in available]
    if missing:
        raise ValueError(f"ONNX Runtime provider(s) {missing} not available in this onnxruntime "
                         f"build; available: {available}")
    return entries if CPU_PROVIDER in names else entries + [CPU_PROVIDER]


class TorchEngine:
    """PyTorch eager: the model on ``device`` in ``dtype``; maps come back as float32."""

    name = choices.TORCH_ENGINE

    def __init__(self, model, device: str | torch.device = "auto",
                 dtype: str | torch.dtype | None = "auto"):
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.model = model.to(self.device, self.dtype).eval()
        self.config = model.config
        self.mean, self.std = model.mean, model.std

    @torch.inference_mode()
    def run(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values.to(self.device, self.dtype)).float()


def torch_from_checkpoint(checkpoint, *, device="auto", dtype="auto",
                          pretrained_model: str | None = None, **_onnx_options):
    """Engine factory of ``torch``: ``(TorchEngine, the checkpoint's stored decoding)``. The
    ONNX Runtime options (providers, onnx_precision ...) do not apply and are ignored."""
    from .checkpoint import load_model

    model, blob = load_model(checkpoint, pretrained_model=pretrained_model)
    return TorchEngine(model, device, dtype), (blob.get("meta") or {}).get("decode")


class OnnxRuntimeEngine:
    """An exported VITA-Grasp ONNX file in an ONNX Runtime session (graph optimisation ALL).

    Args:
        path: ``.onnx`` written by ``vita-grasp export`` (its ``.data`` file beside it if any).
        providers: see :func:`resolve_providers`.
        intra_op_threads, inter_op_threads: ONNX Runtime thread pools (``None`` = its default,
            one intra-op thread per physical core).
        allow_spinning: let idle intra-op threads busy-wait for the next call (ONNX Runtime's
            default). Off here: no latency gain, and the spinning threads slow everything else in
            the process and on the machine (docs/benchmarks.md, "Measurements behind design
            choices").

    Attributes: ``config`` (:class:`~vita_grasp_core.model_config.ModelConfig` from the metadata),
    ``info`` (:class:`~vita_grasp_core.onnx_meta.OnnxModelInfo`), ``mean``/``std``, ``precision``,
    ``dynamic_batch``, ``providers`` (the session's, in priority order), ``path``.
    Raises ``FileNotFoundError`` / ``ValueError`` (unreadable or not a VITA-Grasp file) /
    ``RuntimeError`` (onnxruntime missing).
    """

    name = choices.ONNXRUNTIME_ENGINE
    device, dtype = torch.device("cpu"), torch.float32  # its input; providers choose where

    def __init__(self, path, providers=None, *, intra_op_threads: int | None = None,
                 inter_op_threads: int | None = None, allow_spinning: bool = False):
        from .model_config import ModelConfig

        ort = require_onnxruntime()
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {self.path}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3  # errors only (constant-folding notes are not actionable)
        for name, value in (("intra_op_threads", intra_op_threads),
                            ("inter_op_threads", inter_op_threads)):
            if value is not None and int(value) < 0:
                raise ValueError(f"{name} must be >= 0 (0 = ONNX Runtime's default), got {value}")
        if intra_op_threads:
            opts.intra_op_num_threads = int(intra_op_threads)
        if inter_op_threads:
            opts.inter_op_num_threads = int(inter_op_threads)
        opts.add_session_config_entry("session.intra_op.allow_spinning",
                                      "1" if allow_spinning else "0")
        provs = resolve_providers(providers)
        try:
            self.session = ort.InferenceSession(str(self.path), opts, providers=provs)
        except Exception as e:  # InvalidProtobuf, Fail, NoSuchFile ...
            first = (str(e).strip().splitlines() or [""])[0]
            raise ValueError(f"{self.path} is not a loadable ONNX model ({type(e).__name__}: "
                             f"{first[:200]})") from None
        self.info: OnnxModelInfo = parse_metadata(
            self.session.get_modelmeta().custom_metadata_map, str(self.path))
        try:
            self.config = ModelConfig.from_dict(self.info.model_config)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{self.path} has an invalid model config: {e}") from None
        inputs = {i.name: i for i in self.session.get_inputs()}
        if INPUT_NAME not in inputs or OUTPUT_NAME not in {o.name for o in
                                                           self.session.get_outputs()}:
            raise ValueError(f"{self.path} lacks the {INPUT_NAME!r} input or {OUTPUT_NAME!r} "
                             f"output of a {ONNX_FORMAT} file")
        self.providers = self.session.get_providers()
        self._batch = None if self.info.dynamic_batch else int(self.info.batch)

    @property
    def mean(self):
        return self.info.mean

    @property
    def std(self):
        return self.info.std

    @property
    def precision(self) -> str:
        return self.info.precision

    @property
    def dynamic_batch(self) -> bool:
        return self._batch is None

    def run(self, pixel_values) -> torch.Tensor:
        """``(B, 3, H_in, W_in)`` float (torch or numpy) -> ``(B, 5, H_out, W_out)`` float32 CPU
        tensor. A fixed-batch graph is fed in chunks of its batch size (zero-padded)."""
        if isinstance(pixel_values, torch.Tensor):
            x = pixel_values.detach().to("cpu", torch.float32).numpy()
        else:
            x = np.asarray(pixel_values, dtype=np.float32)
        h, w = self.config.input_size
        if x.ndim != 4 or x.shape[1:] != (3, h, w):
            raise ValueError(f"pixel_values must be (B, 3, {h}, {w}) for {self.path.name}, got "
                             f"{tuple(x.shape)}")
        x = np.ascontiguousarray(x)
        if self._batch is None or len(x) == self._batch:
            out = self.session.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        else:
            k, n, parts = self._batch, len(x), []
            for i in range(0, n, k):
                chunk = x[i:i + k]
                if len(chunk) < k:
                    chunk = np.concatenate([chunk, np.zeros((k - len(chunk),) + x.shape[1:],
                                                            np.float32)])
                parts.append(self.session.run([OUTPUT_NAME], {INPUT_NAME: chunk})[0])
            out = np.concatenate(parts)[:n]
        return torch.from_numpy(out)
