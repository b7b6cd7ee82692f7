"""The named choices users pick from, each list written once (torch-free, cheap to import).

Command lines (argparse ``choices``), config validation and the ROS node's parameter
descriptors read them from here, so adding a camera, format, engine or precision never means
editing a copy of a list:

- cameras: the GraspNet-1Billion cameras, i.e. the keys of the intrinsics table
  :data:`~vita_grasp_core.conventions.CAMERA_INTRINSICS_1280x720` (the first is the default);
- data formats: the layouts :mod:`vita_grasp_core.data.formats` reads (its registry:
  name -> the ``DataFormat`` of the layout's module, loaded on first use);
- inference engines: what runs the network behind ``GraspPredictor`` (:mod:`.engines`; name ->
  the engine class, loaded on first use);
- ONNX precisions: of an exported network (:mod:`.export`, :mod:`.onnx_cache`);
- dtypes: of the PyTorch engine (names; the predictor maps them to torch dtypes);
- fold kinds: how Cornell / Jacquard frames are split (:func:`.data.splits.kfold`).
"""
from __future__ import annotations

from .conventions import CAMERA_INTRINSICS_1280x720

#: GraspNet-1Billion cameras (``scenes/scene_XXXX/<camera>/``); the first is the default.
CAMERAS: tuple[str, ...] = tuple(CAMERA_INTRINSICS_1280x720)
DEFAULT_CAMERA = CAMERAS[0]

#: Data set layouts (name -> "module:attribute" of its ``DataFormat``), in detection order.
#: A new layout is one module plus one entry here (or ``data.formats.register_format``).
FORMATS: dict[str, object] = {
    "graspnet": "vita_grasp_core.data.graspnet:FORMAT",
    "cornell": "vita_grasp_core.data.cornell:FORMAT",
    "jacquard": "vita_grasp_core.data.jacquard:FORMAT",
    "ocid": "vita_grasp_core.data.ocid:FORMAT",
}


def format_choices() -> tuple[str, ...]:
    """``--format`` values: ``auto`` (detected from the files) or a registered format."""
    return ("auto", *FORMATS)


#: Inference engines (name -> "module:attribute" of its factory, see :mod:`.engines`); the
#: first is the default.
#: A new engine is one class plus one entry here (or ``engines.register_engine``).
TORCH_ENGINE, ONNXRUNTIME_ENGINE = "torch", "onnxruntime"
ENGINES: dict[str, object] = {
    TORCH_ENGINE: "vita_grasp_core.engines:torch_from_checkpoint",
    ONNXRUNTIME_ENGINE: "vita_grasp_core.onnx_cache:onnxruntime_from_checkpoint",
}
DEFAULT_ENGINE = next(iter(ENGINES))

#: Precisions of an exported ONNX network; the first is the default (and what int8 starts from).
ONNX_PRECISIONS: tuple[str, ...] = ("fp32", "fp16", "int8")
FP32, FP16, INT8 = ONNX_PRECISIONS
DEFAULT_ONNX_PRECISION = FP32

#: dtype names of the PyTorch engine -> the torch dtype attribute they mean.
FLOAT32, BFLOAT16, FLOAT16 = "float32", "bfloat16", "float16"
BF16 = "bf16"
DTYPES: dict[str, str] = {FLOAT32: FLOAT32, FP32: FLOAT32, BFLOAT16: BFLOAT16, BF16: BFLOAT16,
                          FLOAT16: FLOAT16, FP16: FLOAT16}
#: ``dtype`` values: ``auto`` (bf16 on CUDA, fp32 on CPU) or a dtype name.
DTYPE_CHOICES: tuple[str, ...] = ("auto", *DTYPES)

#: Cornell / Jacquard fold kinds: image-wise (Cornell convention), object-wise (known object
#: ids: Jacquard) or block (Cornell object-wise: blocks of consecutive frame numbers).
SPLIT_BY: tuple[str, ...] = ("image", "object", "block")
