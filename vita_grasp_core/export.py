"""ONNX export of the whole predictor network, its self-description and its check against PyTorch.

The exported graph is ``GraspModel.forward``: normalised ``pixel_values (B, 3, H_in, W_in)``
float32 at the model's ``input_size`` -> the five ACTIVATED maps ``maps (B, 5, H_out, W_out)``
float32 (CONVENTIONS §3). Pre-processing (letterbox, normalisation) and decoding stay in Python
(:class:`~vita_grasp_core.predictor.GraspPredictor`), so both engines share them exactly.

Everything needed to use the file without the checkpoint travels in its ``metadata_props``
(``vita_grasp.*`` keys, see :data:`META_KEYS`): the model config (``ModelConfig.to_dict()`` JSON),
the checkpoint's decoding settings, the input mean/std, precision, batch mode and source hash.

Exporter: PyTorch's TorchScript-based exporter (``dynamo=False``): the torch.export-based
exporter (needs ``onnxscript``) fails on Qwen2-VL's packed-patch attention (``tolist()`` of the
sequence lengths) and is slower on the others (docs/benchmarks.md, "Measurements behind design
choices"). Qwen2-VL's per-image attention split is
traced for one batch size, so its graphs have a fixed batch (1 by default) and the engine feeds
frames one at a time; InternViT and DINOv2 graphs take any batch.

Large encoders: above :data:`EXTERNAL_DATA_THRESHOLD` bytes of weights (or always, with
``external_data=True``) the weights go to ``<name>.onnx.data`` beside the graph (ONNX external
data; a protobuf file cannot exceed 2 GB). Keep both files together.
"""
from __future__ import annotations

import copy
import hashlib
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .choices import FP16, FP32, INT8, ONNX_PRECISIONS
from .onnx_meta import (
    DEFAULT_OPSET,
    INPUT_NAME,
    OUTPUT_NAME,
    build_metadata,
    read_onnx_metadata,
)

log = logging.getLogger(__name__)

#: Weights above this many bytes are written as external data (InternViT-300M fp32: 1.2 GB).
EXTERNAL_DATA_THRESHOLD = 1 << 30
#: Default check tolerance (max abs difference of any map value) per precision. int8 changes the
#: maps measurably (docs/benchmarks.md); its check only catches a broken quantisation, its
#: accuracy is measured on data (bench/bench_engines.py --cornell-checkpoint).
DEFAULT_TOLERANCE = {FP32: 1e-3, FP16: 2e-2, INT8: 0.25}
#: Backbones whose traced graph only works at the traced batch size.
FIXED_BATCH_BACKBONES = {"qwen2vl"}


class ExportError(RuntimeError):
    """The export or its check failed (the message says which and by how much)."""


class _ExportWrapper(nn.Module):
    """fp32 in, fp32 out; the model itself may run in fp16 inside the graph."""

    def __init__(self, model: nn.Module, compute_dtype: torch.dtype):
        super().__init__()
        self.model = model
        self.compute_dtype = compute_dtype

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values.to(self.compute_dtype)).float()


@dataclass
class ExportResult:
    """What :func:`export_onnx` wrote.

    Attributes:
        path: the ``.onnx`` file; ``data_path`` the external weights file or ``None``.
        size_bytes: graph + external data on disk. ``seconds``: wall time of the export.
        batch: ``"dynamic"`` or the fixed batch size. ``metadata``: the ``vita_grasp.*`` props.
    """

    path: Path
    data_path: Path | None
    size_bytes: int
    seconds: float
    precision: str
    batch: str | int
    metadata: dict[str, str] = field(default_factory=dict)


@dataclass
class CheckResult:
    """Exported maps vs PyTorch fp32 on ``frames`` generated frames.

    ``max_abs_diff``: per output channel (position, cos2a, sin2a, width, mask), over all frames
    and pixels; ``passed`` = every value <= ``tolerance``.
    """

    max_abs_diff: list[float]
    tolerance: float
    frames: int
    batched: bool
    seconds: float

    @property
    def worst(self) -> float:
        return max(self.max_abs_diff)

    @property
    def passed(self) -> bool:
        return self.worst <= self.tolerance

    def summary(self) -> str:
        from .conventions import CHANNELS

        per = ", ".join(f"{n} {d:.2e}" for n, d in zip(CHANNELS, self.max_abs_diff))
        return (f"max |onnx - torch| per channel over {self.frames} frame(s)"
                f"{' (+ one batch of all)' if self.batched else ''}: {per}; worst "
                f"{self.worst:.2e} {'<=' if self.passed else '>'} tolerance {self.tolerance:g}")


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------
def file_sha256(path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _cpu_fp32(model: nn.Module) -> nn.Module:
    """``model`` itself when it is on the CPU in float32 and in eval mode, else an eval-mode CPU
    float32 copy (the caller's model is never moved, cast or switched to eval)."""
    p = next(model.parameters(), None)
    if p is None or (p.device.type == "cpu" and p.dtype == torch.float32 and not model.training):
        return model
    return copy.deepcopy(model).to("cpu", torch.float32).eval()


def _weight_bytes(model: nn.Module, dtype_bytes: int) -> int:
    n = sum(p.numel() for p in model.parameters()) + sum(b.numel() for b in model.buffers())
    return n * dtype_bytes


def _save_onnx(proto, out: Path, external: bool) -> Path | None:
    """Write ``proto`` to ``out`` atomically (and ``out.data`` for external weights)."""
    import onnx

    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        tmp = tmpdir / out.name
        data_name = out.name + ".data"
        if external:
            onnx.save_model(proto, str(tmp), save_as_external_data=True,
                            all_tensors_to_one_file=True, location=data_name, size_threshold=1024)
            os.replace(tmpdir / data_name, out.parent / data_name)
        else:
            onnx.save_model(proto, str(tmp))
            (out.parent / data_name).unlink(missing_ok=True)  # a stale one from an older export
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return out.parent / data_name if external else None


def export_onnx(model, out, *, fp16: bool = False, opset: int = DEFAULT_OPSET,
                batch: int | None = None, external_data: bool | None = None,
                decode: dict | None = None, source: str | None = None,
                source_sha256: str | None = None) -> ExportResult:
    """Export ``model`` (a :class:`~vita_grasp_core.model.GraspModel`) to ``out`` (``.onnx``).

    Args:
        fp16: compute in float16 inside the graph (inputs and outputs stay float32). Meant for
            GPUs / TensorRT; ONNX Runtime's CPU provider runs it, slowly.
        opset: ONNX opset (17 default: has LayerNormalization; TensorRT >= 8.6 reads it).
        batch: ``None`` = dynamic batch where the backbone allows it (fixed 1 for Qwen2-VL), else
            a fixed batch size.
        external_data: ``None`` = only when the weights exceed :data:`EXTERNAL_DATA_THRESHOLD`.
        decode: the checkpoint's decoding settings (``meta["decode"]``) to embed.
        source, source_sha256: where the weights came from (checkpoint name and content hash).
    """
    import onnx

    out = Path(out)
    precision = FP16 if fp16 else FP32
    backbone = model.config.backbone
    if batch is not None and int(batch) < 1:
        raise ValueError(f"batch must be >= 1 or None (dynamic), got {batch}")
    fixed = batch is not None or backbone in FIXED_BATCH_BACKBONES
    trace_batch = int(batch) if batch is not None else 1
    model = _cpu_fp32(model)
    compute = copy.deepcopy(model).half() if fp16 else model
    wrapper = _ExportWrapper(compute, torch.float16 if fp16 else torch.float32).eval()
    h, w = model.config.input_size
    dummy = torch.zeros(trace_batch, 3, h, w)
    axes = None if fixed else {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}}
    size_estimate = _weight_bytes(compute, 2 if fp16 else 4)
    external = bool(external_data) if external_data is not None else (
        size_estimate > EXTERNAL_DATA_THRESHOLD)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vita_onnx_") as tmp:
        raw_path = Path(tmp) / "model.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=r".*legacy TorchScript-based ONNX export")
            torch.onnx.export(wrapper, (dummy,), str(raw_path), dynamo=False,
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes=axes, opset_version=int(opset),
                              do_constant_folding=True)
        proto = onnx.load(str(raw_path), load_external_data=True)
    meta = build_metadata(model, precision=precision,
                          batch="dynamic" if not fixed else trace_batch, decode=decode,
                          source=source, source_sha256=source_sha256, opset=opset)
    set_metadata(proto, meta)
    data_path = _save_onnx(proto, out, external)
    del proto
    if compute is not model:
        del compute
    size = out.stat().st_size + (data_path.stat().st_size if data_path else 0)
    return ExportResult(out, data_path, size, time.perf_counter() - t0, precision,
                        "dynamic" if not fixed else trace_batch, meta)


def set_metadata(proto, meta: dict[str, str]) -> None:
    """Replace the ``vita_grasp.*`` metadata props of an in-memory ONNX ``proto``."""
    keep = [(p.key, p.value) for p in proto.metadata_props if p.key not in meta]
    del proto.metadata_props[:]
    for k, v in keep + sorted(meta.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = k, v


def quantize_int8(src, dst, *, encoder_only: bool = True) -> ExportResult:
    """Dynamic int8 quantisation of the encoder's linear layers of an exported fp32 file.

    ONNX Runtime's ``quantize_dynamic``: int8 weights, per output channel, for ``MatMul``/``Gemm``
    nodes with a constant weight (activations are quantised on the fly per call; attention's
    activation x activation products stay fp32); with ``encoder_only`` only nodes under
    ``/model/backbone/`` (the frozen ViT) are touched, so the decoder stays fp32. Per-channel
    weights halved the map error of per-tensor ones on real DINOv2-S weights (max 0.09 vs 0.13).
    The metadata is carried over with ``precision = int8``.
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    src, dst = Path(src), Path(dst)
    info = read_onnx_metadata(src)
    if info.precision != FP32:
        raise ValueError(f"{src} is {info.precision}; int8 quantisation starts from an fp32 "
                         "export")
    t0 = time.perf_counter()
    graph = onnx.load(str(src), load_external_data=False)
    # Excluded by name (the quantiser renames a Gemm it rewrites to "<name>_MatMul").
    exclude = [n.name + suffix for n in graph.graph.node if n.op_type in ("MatMul", "Gemm")
               and encoder_only and "/backbone/" not in n.name for suffix in ("", "_MatMul")]
    external = any(t.data_location == onnx.TensorProto.EXTERNAL for t in graph.graph.initializer)
    del graph
    with tempfile.TemporaryDirectory(prefix="vita_q_") as tmp:
        qpath = Path(tmp) / "q.onnx"
        root = logging.getLogger()
        was_disabled = root.disabled
        root.disabled = True  # quantize_dynamic logs a pre-processing hint on the root logger
        try:
            quantize_dynamic(str(src), str(qpath), weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul", "Gemm"], nodes_to_exclude=exclude,
                             per_channel=True,
                             use_external_data_format=external)
        finally:
            root.disabled = was_disabled
        proto = onnx.load(str(qpath), load_external_data=True)
    meta = dict(info.raw)
    meta["vita_grasp.precision"] = INT8
    set_metadata(proto, meta)
    data_path = _save_onnx(proto, dst, external)
    size = dst.stat().st_size + (data_path.stat().st_size if data_path else 0)
    return ExportResult(dst, data_path, size, time.perf_counter() - t0, INT8, info.batch, meta)


# --------------------------------------------------------------------------------------------
# Check
# --------------------------------------------------------------------------------------------
def check_frames(n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` generated ``HxWx3 uint8 RGB`` frames of varied sizes and aspect ratios (smooth colour
    ramps, blobs and noise), so that the letterbox padding is exercised too."""
    rng = np.random.default_rng(seed)
    sizes = [(480, 640), (720, 1280), (300, 220), (224, 224), (600, 500)]
    frames = []
    for i in range(n):
        h, w = sizes[i % len(sizes)]
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        img = np.empty((h, w, 3), np.float32)
        for c in range(3):
            a, b, ph = rng.uniform(0.005, 0.05, 2).tolist() + [rng.uniform(0, 6.28)]
            img[..., c] = 127 + 90 * np.sin(a * xx + b * yy + ph)
        for _ in range(4):
            cy, cx, r = rng.uniform(0, h), rng.uniform(0, w), rng.uniform(10, min(h, w) / 3)
            img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] = rng.uniform(0, 255, 3)
        img += rng.normal(0, 8, img.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def check_export(model, engine, *, frames: int = 3, tolerance: float | None = None,
                 seed: int = 0) -> CheckResult:
    """Compare ``engine`` (an :class:`~vita_grasp_core.engines.OnnxRuntimeEngine`) with
    ``model`` in PyTorch fp32 on ``frames`` generated frames, one at a time and (for a dynamic
    batch) once as a batch of all of them. Never raises on a mismatch: see ``passed``."""
    from .preprocess import image_to_input

    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if tolerance is None:
        tolerance = DEFAULT_TOLERANCE.get(engine.precision, DEFAULT_TOLERANCE[FP32])
    t0 = time.perf_counter()
    cfg = model.config
    xs = torch.stack([image_to_input(im, cfg.input_size, cfg.output_size, model.mean, model.std)[0]
                      for im in check_frames(frames, seed)])
    model = _cpu_fp32(model)
    worst = np.zeros(5)
    with torch.inference_mode():
        ref = torch.cat([model(x[None]) for x in xs]).numpy()
    for i in range(len(xs)):
        got = engine.run(xs[i:i + 1]).numpy()
        worst = np.maximum(worst, np.abs(got - ref[i:i + 1]).max(axis=(0, 2, 3)))
    batched = engine.dynamic_batch and len(xs) > 1
    if batched:
        got = engine.run(xs).numpy()
        worst = np.maximum(worst, np.abs(got - ref).max(axis=(0, 2, 3)))
    return CheckResult([float(v) for v in worst], float(tolerance), len(xs), batched,
                       time.perf_counter() - t0)


def export_checkpoint(checkpoint, out, *, pretrained_model: str | None = None,
                      precision: str = FP32, opset: int = DEFAULT_OPSET,
                      batch: int | None = None, external_data: bool | None = None,
                      check: int = 3, tolerance: float | None = None,
                      providers=None) -> tuple[ExportResult, CheckResult | None]:
    """Export a training checkpoint to ``out`` and check it (the ``vita-grasp export`` path).

    ``precision``: one of :data:`~vita_grasp_core.choices.ONNX_PRECISIONS`; ``int8`` exports fp32,
    then quantises (:func:`quantize_int8`) into ``out``. ``check``: number
    of generated frames compared with PyTorch (0 = no check). A failed check raises
    :class:`ExportError` after deleting ``out`` (an export that disagrees is never left behind).
    """
    from .checkpoint import load_model
    from .engines import OnnxRuntimeEngine

    if precision not in ONNX_PRECISIONS:
        raise ValueError(f"unknown ONNX precision {precision!r}; use one of {ONNX_PRECISIONS}")
    checkpoint = Path(checkpoint)
    model, blob = load_model(checkpoint, pretrained_model=pretrained_model)
    decode = (blob.get("meta") or {}).get("decode")
    if decode is not None:  # refused here as by every other tool, not embedded in the export
        from .checkpoint import CheckpointError
        from .decoding_settings import DecodeConfig

        try:
            decode = DecodeConfig.from_dict(decode).to_dict()
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"checkpoint {checkpoint} has invalid stored decoding "
                                  f"settings: {e}") from None
    digest = file_sha256(checkpoint)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if precision == INT8:
        with tempfile.TemporaryDirectory(prefix="vita_fp32_", dir=out.parent) as tmp:
            fp32 = export_onnx(model, Path(tmp) / "fp32.onnx", opset=opset, batch=batch,
                               external_data=external_data, decode=decode,
                               source=checkpoint.name, source_sha256=digest)
            seconds = fp32.seconds
            res = quantize_int8(fp32.path, out)
            res.seconds += seconds
    else:
        res = export_onnx(model, out, fp16=precision == FP16, opset=opset, batch=batch,
                          external_data=external_data, decode=decode, source=checkpoint.name,
                          source_sha256=digest)
    if not check:
        return res, None
    engine = OnnxRuntimeEngine(out, providers=providers)
    result = check_export(model, engine, frames=check, tolerance=tolerance)
    if not result.passed:
        del engine
        remove_export(out)
        raise ExportError(f"exported maps differ from PyTorch: {result.summary()}; {out} was "
                          "removed (raise --tolerance to keep a lower-precision export)")
    return res, result


def remove_export(path) -> None:
    """Delete an exported file and its external data file, if any."""
    path = Path(path)
    path.unlink(missing_ok=True)
    Path(str(path) + ".data").unlink(missing_ok=True)
