"""Letterbox geometry between a source image and the model's fixed-size canvases.

Pixel coordinates are (x = column, y = row), origin top-left, y down, and a pixel's *centre* sits
at
integer coordinates (pixel (r, c) covers [c - 0.5, c + 0.5] x [r - 0.5, r + 0.5]); this is OpenCV's
``resize`` convention, so an image warped with :meth:`Letterbox.warp_image` and points mapped with
:meth:`Letterbox.to_dst` agree exactly.

A source image of any size is scaled *uniformly* (aspect ratio kept) to fit a destination canvas
and
centred; the rest is padding. Because the scale is uniform, angles are unchanged by the mapping and
lengths (grasp widths) scale by ``scale``. The model's output maps (default 480x640) are such a
canvas. The backbone input (e.g. 448x588) is the *same* canvas resized to the backbone's size
(:meth:`Letterbox.input_affine`); only the network sees that one, so its tiny aspect change matters
to nothing that is decoded.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .conventions import axis_affine_matrix


def warp_axis_affine(image: np.ndarray, sx: float, sy: float, px: float, py: float,
                     dst_size: tuple[int, int], pad_value=0) -> np.ndarray:
    """Warp ``image`` with ``x_dst = (x + 0.5) * sx - 0.5 + px`` (same for y) onto ``dst_size``.

    Shrinking by 2x or more first goes through an integer-factor ``cv2.INTER_AREA`` reduction
    (anti-aliased, and ~10x cheaper than INTER_AREA at a fractional ratio); the remaining factor
    (> 0.5) is bilinear. When the content lands on whole pixels (the usual 1280x720 and 640x480
    cases) the final step is a resize pasted into a padded canvas, else a sub-pixel exact affine.
    """
    import cv2

    h, w = image.shape[:2]
    dh, dw = int(dst_size[0]), int(dst_size[1])
    k = int(1.0 / max(sx, sy) + 1e-9)
    if k >= 2:
        nw, nh = max(1, int(round(w / k))), max(1, int(round(h / k)))
        image = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_AREA)
        # small u = (x + 0.5) * nw / w - 0.5  =>  x_dst = (u + 0.5) * sx * w / nw - 0.5 + px
        sx, sy, h, w = sx * w / nw, sy * h / nh, nh, nw
    cw, ch = w * sx, h * sy

    def whole(v):
        return abs(v - round(v)) < 1e-6

    x0, y0, cw_i, ch_i = int(round(px)), int(round(py)), int(round(cw)), int(round(ch))
    if (whole(cw) and whole(ch) and whole(px) and whole(py) and cw_i > 0 and ch_i > 0
            and 0 <= x0 and x0 + cw_i <= dw and 0 <= y0 and y0 + ch_i <= dh):
        small = image if (cw_i, ch_i) == (w, h) else cv2.resize(
            image, (cw_i, ch_i), interpolation=cv2.INTER_LINEAR)
        out = np.empty((dh, dw) + image.shape[2:], dtype=image.dtype)
        out[...] = (pad_value if np.isscalar(pad_value)
                    else np.asarray(pad_value, dtype=image.dtype))
        out[y0:y0 + ch_i, x0:x0 + cw_i] = small
        return out
    m = axis_affine_matrix(sx, sy, px, py)
    border = pad_value if np.isscalar(pad_value) else tuple(float(v) for v in pad_value)
    return cv2.warpAffine(image, m, (dw, dh), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=border)


@dataclass(frozen=True)
class Letterbox:
    """Uniform scale + offset from a source image (h, w) to a destination canvas (h, w).

    ``x_dst = (x_src + 0.5) * scale - 0.5 + pad_x`` (same for y). Units: pixels.
    """

    src_size: tuple[int, int]
    dst_size: tuple[int, int]
    scale: float
    pad_x: float
    pad_y: float

    @classmethod
    def fit(cls, src_size, dst_size) -> "Letterbox":
        """Largest uniform scale that fits ``src_size`` inside ``dst_size``, centred."""
        sh, sw = (int(v) for v in src_size)
        dh, dw = (int(v) for v in dst_size)
        if min(sh, sw, dh, dw) <= 0:
            raise ValueError(f"letterbox sizes must be positive, got src={src_size} "
                             f"dst={dst_size}")
        scale = min(dh / sh, dw / sw)
        return cls((sh, sw), (dh, dw), float(scale), (dw - sw * scale) / 2.0,
                   (dh - sh * scale) / 2.0)

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        """Integer (x0, y0, x1, y1) of the canvas region holding image content (x1, y1
        exclusive)."""
        return (int(round(self.pad_x)), int(round(self.pad_y)),
                int(round(self.pad_x + self.src_size[1] * self.scale)),
                int(round(self.pad_y + self.src_size[0] * self.scale)))

    def cv_matrix(self) -> np.ndarray:
        """2x3 OpenCV matrix of :meth:`to_dst` (for ``cv2.warpAffine``)."""
        return axis_affine_matrix(self.scale, self.scale, self.pad_x, self.pad_y)

    def to_dst(self, xy) -> np.ndarray:
        """Map (..., 2) source pixel coordinates (x, y) to canvas coordinates."""
        xy = np.asarray(xy, dtype=np.float64)
        return (xy + 0.5) * self.scale - 0.5 + np.array([self.pad_x, self.pad_y])

    def to_src(self, xy) -> np.ndarray:
        """Inverse of :meth:`to_dst`: (..., 2) canvas coordinates to source pixel coordinates."""
        xy = np.asarray(xy, dtype=np.float64) - np.array([self.pad_x, self.pad_y])
        return (xy + 0.5) / self.scale - 0.5

    def length_to_dst(self, length):
        """Lengths (grasp widths, heights) in source px to canvas px."""
        return np.asarray(length, dtype=np.float64) * self.scale

    def length_to_src(self, length):
        """Lengths in canvas px to source px."""
        return np.asarray(length, dtype=np.float64) / self.scale

    def warp_image(self, image: np.ndarray, pad_value=0) -> np.ndarray:
        """Place ``image`` (HxW or HxWxC) on the canvas with exactly this mapping."""
        if tuple(image.shape[:2]) != tuple(self.src_size):
            raise ValueError(f"image is {image.shape[:2]}, letterbox expects {self.src_size}")
        return warp_axis_affine(image, self.scale, self.scale, self.pad_x, self.pad_y,
                                self.dst_size, pad_value)

    def input_affine(self, input_size) -> tuple[float, float, float, float]:
        """(sx, sy, px, py) from source pixels to a backbone input canvas of ``input_size``.

        The input canvas is this canvas resized to ``input_size`` (pixel-centre aligned).
        """
        fy = input_size[0] / self.dst_size[0]
        fx = input_size[1] / self.dst_size[1]
        return self.scale * fx, self.scale * fy, self.pad_x * fx, self.pad_y * fy

    def warp_to_input(self, image: np.ndarray, input_size, pad_value=0) -> np.ndarray:
        """The backbone's view of ``image``: this letterbox, resized to ``input_size``."""
        sx, sy, px, py = self.input_affine(input_size)
        return warp_axis_affine(image, sx, sy, px, py, tuple(input_size), pad_value)
