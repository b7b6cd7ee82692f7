"""Data augmentation in SOURCE pixel space, applied before target rendering.

Geometric augmentations move the image, the label mask and the grasps together through one 2x3
affine matrix ``M`` (``[x', y'] = M @ [x, y, 1]`` with pixel centres at integer coordinates,
y down, OpenCV's ``warpAffine`` convention), so the image is resampled once:

- horizontal flip: ``x -> W - 1 - x``, ``angle -> -angle`` (wrapped);
- vertical flip: ``y -> H - 1 - y``, ``angle -> -angle``;
- rotation by ``phi`` about the image centre: content turns by ``+phi`` in the y-down frame
  (clockwise on screen), centres go through the rotation and ``angle -> angle + phi`` (wrapped).
  Any angle in ``[-rotate_deg, rotate_deg]`` (``rotate="any"``, same canvas, uncovered corners are
  padded with ``pad_rgb`` and label 0) or quarter turns (``rotate="90"``: exact, and the image
  size swaps for odd turns);
- scale by ``s`` about the image centre + a random shift (``translate`` x the image size): widths
  and heights are multiplied by ``s``. ``s > 1`` zooms in (the view is a crop), ``s < 1`` zooms
  out.

For a general ``M`` each grasp's opening direction ``d = (cos a, sin a)`` is mapped by the linear
part ``A``: ``angle' = atan2(A d)`` (wrapped), ``width' = width * |A d|``,
``height' = height * |A n|`` (``n`` the jaw direction); this is exact for flips, rotations and
uniform scales. Grasps whose centre leaves the image are dropped.

Colour jitter acts on ``HxWx3 uint8 RGB``: brightness, contrast, saturation (blend with grey) and a
hue shift, in random order. Everything is deterministic given a ``numpy.random.Generator``; the
dataset seeds it from ``(seed, epoch, index)``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..bounds import Range, check_bounds, count
from ..conventions import IMAGENET_MEAN, mean_rgb_255, wrap_angle

IMAGENET_MEAN_RGB = mean_rgb_255(IMAGENET_MEAN)


# --------------------------------------------------------------------------- matrices (2x3, px)
def identity_matrix() -> np.ndarray:
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def compose(*ms: np.ndarray) -> np.ndarray:
    """``compose(A, B)`` applies ``B`` first, then ``A`` (like matrix products)."""
    out = np.eye(3)
    for m in ms:
        out = out @ np.vstack([m, [0.0, 0.0, 1.0]])
    return out[:2]


def hflip_matrix(w: int) -> np.ndarray:
    """``x -> w - 1 - x``."""
    return np.array([[-1.0, 0.0, w - 1.0], [0.0, 1.0, 0.0]])


def vflip_matrix(h: int) -> np.ndarray:
    """``y -> h - 1 - y``."""
    return np.array([[1.0, 0.0, 0.0], [0.0, -1.0, h - 1.0]])


def rotation_matrix(phi: float, center) -> np.ndarray:
    """Rotate by ``phi`` radians about ``center`` (x, y); +phi is clockwise on screen (y down)."""
    c, s = math.cos(phi), math.sin(phi)
    cx, cy = center
    return np.array([[c, -s, cx - c * cx + s * cy], [s, c, cy - s * cx - c * cy]])


def scale_matrix(s: float, center, shift=(0.0, 0.0)) -> np.ndarray:
    """Scale by ``s`` about ``center``, then translate by ``shift`` (px)."""
    cx, cy = center
    return np.array([[s, 0.0, cx - s * cx + shift[0]], [0.0, s, cy - s * cy + shift[1]]])


# --------------------------------------------------------------------------- applying a matrix
def transform_grasps(grasps: np.ndarray, m: np.ndarray, dst_size=None) -> np.ndarray:
    """Map ``(N, >=5)`` grasp rows (x, y, angle, width, height, ...) through the affine ``m``.

    Extra columns (score, object id) are copied. With ``dst_size`` = (h, w), rows whose new centre
    lies outside ``[-0.5, w - 0.5) x [-0.5, h - 0.5)`` are dropped. Returns float32.
    """
    g = np.asarray(grasps, dtype=np.float64)
    out = g.copy()
    if len(g) == 0:
        return out.astype(np.float32)
    a_lin = np.asarray(m, dtype=np.float64)[:, :2]
    out[:, :2] = g[:, :2] @ a_lin.T + m[:, 2]
    d = np.stack([np.cos(g[:, 2]), np.sin(g[:, 2])], axis=1) @ a_lin.T
    n = np.stack([-np.sin(g[:, 2]), np.cos(g[:, 2])], axis=1) @ a_lin.T
    out[:, 2] = wrap_angle(np.arctan2(d[:, 1], d[:, 0]))
    out[:, 3] = g[:, 3] * np.hypot(d[:, 0], d[:, 1])
    out[:, 4] = g[:, 4] * np.hypot(n[:, 0], n[:, 1])
    if dst_size is not None:
        h, w = dst_size
        x, y = out[:, 0], out[:, 1]
        out = out[(x >= -0.5) & (x < w - 0.5) & (y >= -0.5) & (y < h - 0.5)]
    return out.astype(np.float32)


def warp_rgb(rgb: np.ndarray, m: np.ndarray, dst_size, pad_rgb=IMAGENET_MEAN_RGB) -> np.ndarray:
    """Warp ``HxWx3 uint8`` with ``m`` (bilinear) onto ``dst_size`` (h, w)."""
    import cv2

    h, w = dst_size
    return cv2.warpAffine(rgb, np.asarray(m, np.float64), (int(w), int(h)), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT,
                          borderValue=tuple(float(v) for v in pad_rgb))


def warp_label(label: np.ndarray, m: np.ndarray, dst_size) -> np.ndarray:
    """Warp an integer ``HxW`` mask with ``m`` (nearest neighbour, 0 outside)."""
    import cv2

    h, w = dst_size
    return cv2.warpAffine(label, np.asarray(m, np.float64), (int(w), int(h)),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def apply_affine(rgb, label, grasps, m, dst_size=None, pad_rgb=IMAGENET_MEAN_RGB):
    """Apply ``m`` to image, label (may be ``None``) and grasps; returns the three, same order."""
    dst_size = tuple(rgb.shape[:2]) if dst_size is None else tuple(dst_size)
    if np.allclose(m, identity_matrix()) and dst_size == tuple(rgb.shape[:2]):
        return rgb, label, transform_grasps(grasps, m, dst_size)
    rgb2 = warp_rgb(rgb, m, dst_size, pad_rgb)
    lab2 = None if label is None else warp_label(label, m, dst_size)
    return rgb2, lab2, transform_grasps(grasps, m, dst_size)


def rot90_matrix(k: int, src_size) -> tuple[np.ndarray, tuple[int, int]]:
    """Quarter turns (``k * 90`` degrees, clockwise on screen) and the new (h, w)."""
    h, w = src_size
    k %= 4
    if k == 0:
        return identity_matrix(), (h, w)
    if k == 1:  # (x, y) -> (h - 1 - y, x)
        return np.array([[0.0, -1.0, h - 1.0], [1.0, 0.0, 0.0]]), (w, h)
    if k == 2:
        return np.array([[-1.0, 0.0, w - 1.0], [0.0, -1.0, h - 1.0]]), (h, w)
    return np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, w - 1.0]]), (w, h)


def border_colour(rgb: np.ndarray, ring: int = 2) -> tuple[float, float, float]:
    """Median RGB of the outermost ``ring`` pixels of ``HxWx3`` ``rgb`` (the background an
    object stands on in a crop: the fill of ``pad="border"``)."""
    r = max(1, min(int(ring), min(rgb.shape[:2]) // 2))
    edge = np.concatenate([rgb[:r].reshape(-1, 3), rgb[-r:].reshape(-1, 3),
                           rgb[:, :r].reshape(-1, 3), rgb[:, -r:].reshape(-1, 3)])
    return tuple(float(v) for v in np.median(edge, axis=0))


# --------------------------------------------------------------------------- colour
def color_jitter(rgb: np.ndarray, rng: np.random.Generator, brightness=0.2, contrast=0.2,
                 saturation=0.2, hue=0.02) -> np.ndarray:
    """Random brightness/contrast/saturation factors in ``[1 - v, 1 + v]`` and a hue shift in
    ``[-hue, hue]`` turns, applied in random order to ``HxWx3 uint8 RGB``; returns uint8."""
    import cv2

    ops = []
    if brightness > 0:
        ops.append(("b", rng.uniform(1 - brightness, 1 + brightness)))
    if contrast > 0:
        ops.append(("c", rng.uniform(1 - contrast, 1 + contrast)))
    if saturation > 0:
        ops.append(("s", rng.uniform(1 - saturation, 1 + saturation)))
    if hue > 0:
        ops.append(("h", rng.uniform(-hue, hue)))
    if not ops:
        return rgb
    order = rng.permutation(len(ops))
    img = rgb.astype(np.float32)
    for i in order:
        kind, v = ops[i]
        if kind == "b":
            img *= v
        elif kind == "c":
            grey = (img @ np.array([0.299, 0.587, 0.114], np.float32)).mean()
            img = (img - grey) * v + grey
        elif kind == "s":
            grey = (img @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
            img = (img - grey) * v + grey
        else:
            hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_RGB2HSV)
            shifted = (hsv[..., 0].astype(np.int32) + int(round(v * 180))) % 180
            hsv[..., 0] = shifted.astype(np.uint8)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB).astype(np.float32)
    return np.clip(img + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- the augmenter
_P = Range(0, 1)
#: Ranges of the numbers of :class:`Augment` (colour factors are drawn in [1 - v, 1 + v]).
AUGMENT_BOUNDS = {"hflip": _P, "vflip": _P, "rotate_p": _P, "color_p": _P,
                  "rotate_deg": Range(0, 180),
                  "scale": Range(0.01, 100, lo_open=True, many=True), "translate": Range(0, 1),
                  "brightness": Range(0, 1), "contrast": Range(0, 1), "saturation": Range(0, 1),
                  "hue": Range(0, 0.5), "pad_rgb": Range(0, 255, many=True),
                  "min_grasps": count(0, 10**6), "retries": count(0, 1000)}


@dataclass
class Augment:
    """Random augmentation configuration (probabilities and ranges); call it on one sample.

    Attributes:
        hflip, vflip: probabilities of a horizontal / vertical flip.
        rotate: ``"any"`` (uniform angle in ``[-rotate_deg, rotate_deg]``, same canvas),
            ``"90"`` (uniform quarter turns, exact, size swaps) or ``"none"``.
        rotate_deg: range of ``rotate="any"`` in degrees.
        rotate_p: probability of rotating at all.
        scale: (min, max) zoom factor, drawn log-uniformly; (1, 1) = off.
        translate: max shift as a fraction of the image size (each axis).
        brightness, contrast, saturation, hue: colour jitter ranges (see :func:`color_jitter`).
        color_p: probability of applying the colour jitter.
        pad_rgb: fill colour of uncovered areas (RGB 0-255; default ImageNet mean = 0 after
            normalisation).
        pad: ``constant`` (``pad_rgb``) or ``border``: the median colour of the image's border,
            so that a zoomed-out view of a crop looks like the table continuing around it (the
            camera's scale: :mod:`vita_grasp_core.data.fullframe`).
        min_grasps: a geometric draw that leaves fewer grasps than this (and fewer than the input
            had) is redrawn up to ``retries`` times, then the geometry is left unchanged.
    """

    hflip: float = 0.5
    vflip: float = 0.5
    rotate: str = "any"
    rotate_deg: float = 180.0
    rotate_p: float = 0.5
    scale: tuple[float, float] = (0.85, 1.2)
    translate: float = 0.05
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    hue: float = 0.02
    color_p: float = 0.8
    pad_rgb: tuple[float, float, float] = IMAGENET_MEAN_RGB
    pad: str = "constant"
    min_grasps: int = 1
    retries: int = 5

    def __post_init__(self):
        if self.pad not in ("constant", "border"):
            raise ValueError(f"pad must be 'constant' or 'border', got {self.pad!r}")
        if self.rotate not in ("any", "90", "none"):
            raise ValueError(f"rotate must be 'any', '90' or 'none', got {self.rotate!r}")
        check_bounds(self, AUGMENT_BOUNDS, "")
        if len(self.scale) != 2 or len(self.pad_rgb) != 3:
            raise ValueError(f"scale must be (min, max) and pad_rgb (r, g, b), got "
                             f"{self.scale!r}, {self.pad_rgb!r}")
        self.scale = (float(self.scale[0]), float(self.scale[1]))
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"scale must be (min, max) with 0 < min <= max, got {self.scale}")

    def sample_matrix(self, src_size, rng: np.random.Generator):
        """Draw one geometric transform: ``(M 2x3, dst_size (h, w))``."""
        h, w = src_size
        ms, dst = [], (h, w)
        if rng.random() < self.hflip:
            ms.append(hflip_matrix(w))
        if rng.random() < self.vflip:
            ms.append(vflip_matrix(h))
        if self.rotate != "none" and rng.random() < self.rotate_p:
            if self.rotate == "90":
                m90, dst = rot90_matrix(int(rng.integers(1, 4)), (h, w))
                ms.append(m90)
            else:
                phi = math.radians(rng.uniform(-self.rotate_deg, self.rotate_deg))
                ms.append(rotation_matrix(phi, ((w - 1) / 2, (h - 1) / 2)))
        lo, hi = self.scale
        if hi > lo or lo != 1.0 or self.translate > 0:
            s = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            dh, dw = dst
            t = rng.uniform(-self.translate, self.translate, 2) * np.array([dw, dh])
            ms.append(scale_matrix(s, ((dw - 1) / 2, (dh - 1) / 2), t))
        return compose(*reversed(ms)) if ms else identity_matrix(), dst

    def __call__(self, rgb: np.ndarray, label, grasps: np.ndarray, rng: np.random.Generator):
        """Augment one sample in source pixels.

        Args:
            rgb: ``HxWx3 uint8 RGB``; label: ``HxW`` integer mask or ``None``;
            grasps: ``(N, 7)`` (x, y, angle, width, height, score, obj_id), source px.
        Returns:
            ``(rgb, label, grasps)`` of the augmented frame (the size may change with
            ``rotate="90"``); grasps whose centre left the image are dropped.
        """
        n_in = len(grasps)
        need = min(self.min_grasps, n_in)
        out = None
        for _ in range(max(1, self.retries)):
            m, dst = self.sample_matrix(rgb.shape[:2], rng)
            g2 = transform_grasps(grasps, m, dst)
            if len(g2) >= need:
                pad = border_colour(rgb) if self.pad == "border" else self.pad_rgb
                out = apply_affine(rgb, label, grasps, m, dst, pad)
                break
        if out is None:
            out = rgb, label, np.asarray(grasps, np.float32)
        rgb2, lab2, g2 = out
        if self.color_p > 0 and rng.random() < self.color_p:
            rgb2 = color_jitter(rgb2, rng, self.brightness, self.contrast, self.saturation,
                                self.hue)
        return np.ascontiguousarray(rgb2), lab2, g2
