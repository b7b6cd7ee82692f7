"""sensor_msgs Image / CompressedImage <-> numpy, without cv_bridge.

Supported raw encodings (``sensor_msgs/image_encodings``): ``rgb8``, ``bgr8``, ``rgba8``,
``bgra8``, ``mono8``, ``mono16`` (colour/grey frames) and ``16UC1`` (depth, mm), ``32FC1``
(depth, m). ``step`` padding and ``is_bigendian`` are honoured. Anything malformed raises
:class:`ImageConversionError` (a ``ValueError``) with a message that names the problem, so the node
can count the frame as bad and carry on.

Reading is zero-copy where possible (``np.frombuffer`` on the message's ``array('B')``); writing
copies once (``array('B', bytes)``, a memcpy), never element by element.
"""
from __future__ import annotations

from array import array

import numpy as np

from vita_grasp_core.image_decode import DEFAULT_MAX_PIXELS

#: encoding -> (numpy dtype, channels)
ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3), "bgr8": ("u1", 3), "rgba8": ("u1", 4), "bgra8": ("u1", 4),
    "mono8": ("u1", 1), "8UC1": ("u1", 1), "8UC3": ("u1", 3),
    "mono16": ("u2", 1), "16UC1": ("u2", 1), "32FC1": ("f4", 1),
}
#: Encodings accepted as the colour input of the grasp node.
COLOR_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16")
#: Encodings accepted as depth.
DEPTH_ENCODINGS = ("16UC1", "32FC1", "mono16")

#: Largest accepted frame side (guards against garbage headers asking for huge allocations).
MAX_SIDE = 16384


class ImageConversionError(ValueError):
    """A message that cannot be turned into an image (bad encoding, size, step, data).

    ``kind`` names the problem for counting and log throttling: ``encoding``, ``size``, ``step``,
    ``truncated``, ``oversized``, ``corrupt`` or ``shape``.
    """

    def __init__(self, message: str, kind: str = "invalid"):
        super().__init__(message)
        self.kind = kind


def _dims(msg, max_pixels: int | None = None) -> tuple[int, int]:
    h, w = int(msg.height), int(msg.width)
    if h <= 0 or w <= 0:
        raise ImageConversionError(f"zero-size image ({w}x{h})", "size")
    if h > MAX_SIDE or w > MAX_SIDE:
        raise ImageConversionError(f"image size {w}x{h} exceeds {MAX_SIDE} px per side", "size")
    if max_pixels is not None and h * w > max_pixels:
        raise ImageConversionError(f"image size {w}x{h} = {h * w / 1e6:.1f} MP exceeds "
                                   f"max_pixels = {max_pixels}", "size")
    return h, w


def image_msg_to_numpy(msg, max_pixels: int | None = None) -> np.ndarray:
    """``sensor_msgs/Image`` -> numpy array in the message's own encoding.

    Returns ``HxW`` (1 channel) or ``HxWxC``, dtype from :data:`ENCODINGS`, native byte order. The
    array is a view of the message data when rows are unpadded and the byte order is native (do
    not modify it), else a copy. ``max_pixels``: refuse frames with more pixels (``size``).
    """
    enc = str(msg.encoding)
    if enc not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {enc!r} (supported: "
                                   f"{', '.join(ENCODINGS)})", "encoding")
    h, w = _dims(msg, max_pixels)
    kind, ch = ENCODINGS[enc]
    dtype = np.dtype(kind).newbyteorder(">" if msg.is_bigendian else "<")
    row = w * ch * dtype.itemsize
    step = int(msg.step)
    if step < row:
        raise ImageConversionError(f"step {step} is smaller than width * bytes per pixel = {row} "
                                   f"({w} px of {enc})", "step")
    data = msg.data
    n = len(data)
    if n != step * h:
        what = "truncated" if n < step * h else "oversized"
        raise ImageConversionError(f"{what} data: {n} bytes, expected step * height = "
                                   f"{step} * {h} = {step * h}", what)
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else \
        data.view(np.uint8).reshape(-1)
    rows = buf.reshape(h, step)
    if step != row:
        rows = rows[:, :row]
    arr = np.ascontiguousarray(rows).view(dtype) if step != row else rows.view(dtype)
    arr = arr.reshape((h, w) if ch == 1 else (h, w, ch))
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def image_msg_to_rgb(msg, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """A colour/grey ``sensor_msgs/Image`` -> ``HxWx3 uint8 RGB`` C-contiguous (predictor input).

    ``mono16`` is scaled to 8 bits by ``>> 8`` (the full 16-bit range maps to 0-255). Frames of
    more than ``max_pixels`` pixels are refused (``size``; ``None``: only :data:`MAX_SIDE`).
    """
    import cv2

    enc = str(msg.encoding)
    if enc not in COLOR_ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {enc!r} for a colour image (supported: "
                                   f"{', '.join(COLOR_ENCODINGS)})", "encoding")
    a = image_msg_to_numpy(msg, max_pixels)
    if enc == "rgb8":
        return np.ascontiguousarray(a)  # a view of the message data when rows are unpadded
    if enc == "bgr8":
        return cv2.cvtColor(a, cv2.COLOR_BGR2RGB)
    if enc == "rgba8":
        return cv2.cvtColor(a, cv2.COLOR_RGBA2RGB)
    if enc == "bgra8":
        return cv2.cvtColor(a, cv2.COLOR_BGRA2RGB)
    if enc == "mono16":
        a = (a >> 8).astype(np.uint8)
    return cv2.cvtColor(np.ascontiguousarray(a), cv2.COLOR_GRAY2RGB)


def depth_msg_to_meters(msg) -> np.ndarray:
    """A depth ``sensor_msgs/Image`` -> ``HxW float32`` metres, NaN where invalid.

    ``16UC1``/``mono16``: millimetres, 0 = invalid. ``32FC1``: metres; NaN, inf and <= 0 invalid.
    """
    enc = str(msg.encoding)
    if enc not in DEPTH_ENCODINGS:
        raise ImageConversionError(f"unsupported depth encoding {enc!r} (supported: "
                                   f"{', '.join(DEPTH_ENCODINGS)})", "encoding")
    a = image_msg_to_numpy(msg)
    if a.dtype.kind == "u":
        out = a.astype(np.float32) * np.float32(1e-3)
        out[a == 0] = np.nan
        return out
    out = np.array(a, dtype=np.float32)
    out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def numpy_to_image_msg(arr: np.ndarray, encoding: str, header=None, *, step: int | None = None,
                       is_bigendian: bool = False):
    """numpy -> ``sensor_msgs/Image`` with ``encoding``.

    Args:
        arr: ``HxW`` or ``HxWxC`` with the dtype and channel count of ``encoding``.
        header: copied into the message when given (stamp, frame_id).
        step: row length in bytes; larger than ``width * bytes_per_pixel`` pads each row (tests).
        is_bigendian: write multi-byte pixels big-endian.
    """
    from sensor_msgs.msg import Image

    if encoding not in ENCODINGS:
        raise ImageConversionError(f"unsupported encoding {encoding!r}")
    kind, ch = ENCODINGS[encoding]
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] == 1 and ch == 1:
        arr = arr[..., 0]
    want_ndim = 2 if ch == 1 else 3
    if arr.ndim != want_ndim or (ch > 1 and arr.shape[2] != ch):
        raise ImageConversionError(f"{encoding} needs shape {'HxW' if ch == 1 else f'HxWx{ch}'}, "
                                   f"got {arr.shape}")
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    if arr.dtype.kind != dtype.kind or arr.dtype.itemsize != dtype.itemsize:
        raise ImageConversionError(f"{encoding} needs dtype {np.dtype(kind).name}, "
                                   f"got {arr.dtype}")
    h, w = arr.shape[:2]
    row = w * ch * dtype.itemsize
    step = row if step is None else int(step)
    if step < row:
        raise ImageConversionError(f"step {step} < width * bytes per pixel = {row}")
    raw = np.ascontiguousarray(arr, dtype=dtype).view(np.uint8).reshape(h, row)
    if step != row:
        padded = np.zeros((h, step), np.uint8)
        padded[:, :row] = raw
        raw = padded
    msg = Image()
    if header is not None:
        msg.header = header
    msg.height, msg.width = int(h), int(w)
    msg.encoding = encoding
    msg.is_bigendian = int(bool(is_bigendian))
    msg.step = int(step)
    msg.data = array("B", raw.tobytes())
    return msg


def rgb_to_image_msg(rgb: np.ndarray, encoding: str = "rgb8", header=None):
    """``HxWx3 uint8 RGB`` -> ``sensor_msgs/Image`` in ``encoding`` (rgb8, bgr8, rgba8, bgra8,
    mono8)."""
    import cv2

    conv = {"rgb8": None, "bgr8": cv2.COLOR_RGB2BGR, "rgba8": cv2.COLOR_RGB2RGBA,
            "bgra8": cv2.COLOR_RGB2BGRA, "mono8": cv2.COLOR_RGB2GRAY}
    if encoding not in conv:
        raise ImageConversionError(f"cannot write RGB as {encoding!r}")
    out = rgb if conv[encoding] is None else cv2.cvtColor(rgb, conv[encoding])
    return numpy_to_image_msg(out, encoding, header)


#: :class:`~vita_grasp_core.image_decode.ImageDecodeError` kind -> :class:`ImageConversionError`
#: kind (the node counts and throttles by the latter).
_DECODE_KINDS = {"format": "corrupt", "corrupt": "corrupt", "truncated": "truncated",
                 "size": "size", "too_large": "size"}


def compressed_image_size(data) -> tuple[str, int, int] | None:
    """``(format, width, height)`` read from the image header without decoding (the formats of
    :mod:`vita_grasp_core.image_decode`); ``None`` when ``data`` is no such image or its header
    is cut short or corrupt."""
    from vita_grasp_core.image_decode import ImageDecodeError, image_header

    try:
        hdr = image_header(data)
    except ImageDecodeError:
        return None
    return hdr.format, hdr.width, hdr.height


def compressed_msg_to_rgb(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``sensor_msgs/CompressedImage`` (image_transport ``compressed``: jpeg/png, also the other
    formats of :mod:`vita_grasp_core.image_decode`) -> ``HxWx3 uint8 RGB``.

    The size in the image header is read first (:func:`vita_grasp_core.image_decode.check_image`):
    data that is no known image, declares a zero side, more than ``max_pixels`` pixels or a side
    over :data:`MAX_SIDE` (the raw path's limit), or is too short for the size it declares (a
    JPEG whose scan ends early, which OpenCV would fill with grey) is refused before decoding (a
    631-byte JPEG declaring 16000 x 16000 would otherwise take GBs and seconds). The
    ``compressedDepth`` transport is refused. Colour data is decoded as BGR (what
    compressed_image_transport writes for bgr8 and rgb8 sources) and converted to RGB.
    """
    from vita_grasp_core.image_decode import ImageDecodeError, decode_image, image_header

    fmt = str(msg.format).lower()
    if "compresseddepth" in fmt:
        raise ImageConversionError(f"compressedDepth images are not colour frames (format "
                                   f"{msg.format!r})", "encoding")
    data = msg.data
    if len(data) == 0:
        raise ImageConversionError("empty compressed image (0 bytes)", "size")
    try:
        hdr = image_header(data)
        if hdr.width > MAX_SIDE or hdr.height > MAX_SIDE:
            raise ImageConversionError(f"{hdr.format} header declares {hdr.width}x{hdr.height}, "
                                       f"more than {MAX_SIDE} px per side ({len(data)} bytes); "
                                       "refused before decoding", "size")
        return decode_image(data, color=True, max_pixels=max_pixels)
    except ImageDecodeError as e:
        kind = _DECODE_KINDS.get(e.kind, "corrupt")
        what = "corrupt or undecodable compressed image" if kind == "corrupt" else \
            "compressed image"
        raise ImageConversionError(f"{what} ({len(data)} bytes, format {msg.format!r}): {e}",
                                   kind) from None


def rgb_to_compressed_msg(rgb: np.ndarray, fmt: str = "jpeg", quality: int = 90, header=None):
    """``HxWx3 uint8 RGB`` -> ``sensor_msgs/CompressedImage`` (as compressed_image_transport
    writes it: format ``"rgb8; jpeg compressed bgr8"``)."""
    import cv2
    from sensor_msgs.msg import CompressedImage

    if fmt not in ("jpeg", "png"):
        raise ImageConversionError(f"unsupported compressed format {fmt!r}")
    params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)] if fmt == "jpeg" else []
    ok, enc = cv2.imencode(".jpg" if fmt == "jpeg" else ".png",
                           cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ImageConversionError("OpenCV could not encode the image")
    msg = CompressedImage()
    if header is not None:
        msg.header = header
    msg.format = f"rgb8; {fmt} compressed bgr8"
    msg.data = array("B", enc.tobytes())
    return msg
