"""Image validation and the one pre-processing path shared by training, prediction and the node.

``image`` everywhere means an ``HxWx3`` ``uint8`` RGB numpy array (C-contiguous), any size.
"""
from __future__ import annotations

import numpy as np
import torch

from .geometry import Letterbox


def validate_image(image) -> np.ndarray:
    """Check that ``image`` is an HxWx3 uint8 RGB C-contiguous array; ``ValueError`` if not."""
    if not isinstance(image, np.ndarray):
        raise ValueError("image must be a numpy array (HxWx3 uint8 RGB), got "
                         f"{type(image).__name__}")
    if image.ndim != 3:
        raise ValueError(f"image must be HxWx3 (RGB), got shape {image.shape}"
                         + (" (grayscale? stack it to 3 channels)" if image.ndim == 2 else ""))
    if image.shape[2] != 3:
        raise ValueError(f"image must have 3 channels (RGB), got {image.shape[2]}"
                         + (" (drop alpha: image[..., :3])" if image.shape[2] == 4 else ""))
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"image is empty: shape {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 (0-255 RGB), got dtype {image.dtype}")
    if not image.flags["C_CONTIGUOUS"]:
        raise ValueError("image is not C-contiguous (a strided view such as image[..., ::-1]); "
                         "pass np.ascontiguousarray(image)")
    return image


def input_canvas(image: np.ndarray, input_size, output_size, mean):
    """One image -> (``input_size`` HxWx3 uint8 RGB canvas, Letterbox).

    The letterbox maps source pixels to the ``output_size`` maps; the input canvas is the same
    layout at ``input_size``. Padding takes the mean colour, i.e. zero after normalisation.
    """
    validate_image(image)
    lb = Letterbox.fit(image.shape[:2], output_size)
    pad = tuple(int(round(float(m) * 255.0)) for m in mean)
    return lb.warp_to_input(image, input_size, pad_value=pad), lb


def normalize_canvas(canvas: np.ndarray, mean, std) -> torch.Tensor:
    """``HxWx3 uint8`` RGB -> ``3xHxW`` float32 tensor ``(x / 255 - mean) / std``."""
    # one multiply-add per channel on the contiguous HxWx3 float copy
    x = torch.from_numpy(np.ascontiguousarray(canvas).astype(np.float32))
    x.mul_(torch.tensor([1.0 / (255.0 * s) for s in std])).add_(
        torch.tensor([-m / s for m, s in zip(mean, std)]))
    return x.permute(2, 0, 1)


def image_to_input(image: np.ndarray, input_size, output_size, mean, std):
    """One image -> (``3 x input_size`` float32 tensor normalised with mean/std, Letterbox):
    :func:`input_canvas` then :func:`normalize_canvas`."""
    canvas, lb = input_canvas(image, input_size, output_size, mean)
    return normalize_canvas(canvas, mean, std), lb
