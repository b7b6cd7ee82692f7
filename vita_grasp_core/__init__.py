"""VITA-Grasp core: planar grasp prediction from RGB with a frozen ViT and an FPN decoder.

No ROS imports here (see vita_grasp_ros for the node).
"""
from .config import ModelConfig
from .decoding import decode_maps
from .geometry import Letterbox
from .grasp import Grasp
from .model import GraspModel, build_model
from .predictor import GraspPredictor, Prediction

__version__ = "0.1.0"

__all__ = ["Grasp", "GraspModel", "GraspPredictor", "Letterbox", "ModelConfig", "Prediction",
           "build_model", "decode_maps", "__version__"]
