"""VITA-Grasp core: planar grasp prediction from RGB with a frozen ViT and an FPN decoder.

No ROS imports here (see vita_grasp_ros for the node). Public names are imported lazily, so
light tools (``vita-grasp synth``, ``data check``) do not pay for importing torch/transformers.
"""
from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "Grasp": ".grasp", "GraspModel": ".model", "GraspPredictor": ".predictor",
    "Letterbox": ".geometry", "ModelConfig": ".model_config", "Prediction": ".predictor",
    "build_model": ".model", "decode_maps": ".decoding", "load_predictor": ".predictor",
}
__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return __all__
