"""Image decoding with a pixel cap: every compressed image the project decodes goes through here.

A compressed image declares its size in its header and the decoder allocates that much before it
reads a single pixel: a 631-byte JPEG declaring 16000 x 16000, or a 0.8 MB PNG of 16384 x 16384,
costs seconds and gigabytes. :func:`image_header` reads the size from the header without decoding
(PNG, JPEG, TIFF, BMP, WebP, PNM/PFM; any other format is refused), :func:`check_image` refuses an
image over ``max_pixels`` and data too short for its declared size, and :func:`decode_image` /
:func:`read_image` decode what passed. Users: the data readers (Cornell, Jacquard, GraspNet),
``vita-grasp infer`` and the ROS node's compressed frames
(:mod:`vita_grasp_ros.image_conversions`).

"Too short" is decided from bounds every valid file meets, so no valid image is refused:

- JPEG: the entropy-coded data must follow the frame header and end with an EOI marker; a
  Huffman-coded scan needs at least one bit per 8 x 8 block of the full-resolution component
  (OpenCV otherwise fills what is missing with grey and returns it silently); arithmetic-coded
  JPEGs (which can go below that) are refused;
- PNG: it must end with its ``IEND`` chunk, and deflate compresses at most 1032:1;
- PNM: binary (``P4``-``P6``, ``PF``) data must hold every sample, ASCII data one byte per sample.

All errors are :class:`ImageDecodeError` (a ``ValueError``) with a one-line message and a
``kind``: ``format`` (not a supported image), ``corrupt``, ``truncated``, ``size`` (a zero side)
or ``too_large`` (over ``max_pixels``).
"""
from __future__ import annotations

import functools
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Default decoded-pixel cap: 4096 x 3072 = 12.6 MP, the largest colour mode of common RGB-D
#: cameras (Azure Kinect); 4K UHD (8.3 MP) and 12 MP phone photos (4032 x 3024) fit. About 38 MB
#: as 8-bit RGB.
DEFAULT_MAX_PIXELS = 4096 * 3072
#: Formats :func:`image_header` understands (anything else is refused before decoding).
FORMATS = ("png", "jpeg", "tiff", "bmp", "webp", "pnm")
#: Segments a JPEG may have before its frame header / first scan (real files have < 30).
MAX_JPEG_SEGMENTS = 1000
#: Largest ratio of decoded to compressed bytes deflate (PNG) can reach.
DEFLATE_MAX_RATIO = 1032

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_IEND = b"IEND\xaeB`\x82"
#: JPEG start-of-frame markers: Huffman (C0-C3, C5-C7) and arithmetic (C9-CB, CD-CF) coding.
_JPEG_SOF_HUFFMAN = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7})
_JPEG_SOF_ARITH = frozenset({0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


class ImageDecodeError(ValueError):
    """An image that is not decoded: ``kind`` is ``format``, ``corrupt``, ``truncated``,
    ``size`` or ``too_large``; the message is one line naming the problem."""

    def __init__(self, message: str, kind: str = "corrupt"):
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header declares: ``format`` (one of :data:`FORMATS`), ``width``,
    ``height`` (pixels) and ``data_start`` (JPEG: offset of the first scan; else 0)."""

    format: str
    width: int
    height: int
    data_start: int = 0

    @property
    def pixels(self) -> int:
        return self.width * self.height


def _bytes_view(data) -> memoryview:
    if isinstance(data, np.ndarray):
        return memoryview(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1))
    return memoryview(data).cast("B")


# --------------------------------------------------------------------------- header parsers
def _u(b, i: int, n: int, big: bool) -> int:
    return int.from_bytes(b[i:i + n], "big" if big else "little")


def _png(b) -> ImageHeader | None:
    if len(b) < 24 or bytes(b[12:16]) != b"IHDR":
        return None
    return ImageHeader("png", _u(b, 16, 4, True), _u(b, 20, 4, True))


def _jpeg_sof(b, i: int, marker: int):
    if marker in _JPEG_SOF_ARITH:
        raise ImageDecodeError(f"arithmetic-coded JPEG (SOF marker 0x{marker:02X}) is not "
                               "supported", "format")
    if i + 9 > len(b):
        return None
    return _u(b, i + 7, 2, True), _u(b, i + 5, 2, True)  # width, height


def _jpeg(b) -> ImageHeader | None:
    """Walk the segments up to the first scan; ``None`` when the data is cut short."""
    n, i, size = len(b), 2, None
    for _ in range(MAX_JPEG_SEGMENTS):
        while i < n and b[i] == 0xFF and i + 1 < n and b[i + 1] == 0xFF:
            i += 1  # fill bytes
        if i + 4 > n:
            return None
        if b[i] != 0xFF:
            raise ImageDecodeError(f"corrupt JPEG: no marker at byte {i}", "corrupt")
        marker = b[i + 1]
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # stand-alone markers
            i += 2
            continue
        if marker in (0xD8, 0xD9):
            raise ImageDecodeError(f"corrupt JPEG: marker 0x{marker:02X} before the first scan",
                                   "corrupt")
        length = _u(b, i + 2, 2, True)
        if length < 2:
            raise ImageDecodeError(f"corrupt JPEG: segment length {length} at byte {i}",
                                   "corrupt")
        if marker in _JPEG_SOF_HUFFMAN or marker in _JPEG_SOF_ARITH:
            size = _jpeg_sof(b, i, marker)
            if size is None:
                return None
        elif marker == 0xDA:  # start of scan: the entropy-coded data follows this segment
            if size is None:
                raise ImageDecodeError("corrupt JPEG: a scan before the frame header", "corrupt")
            return ImageHeader("jpeg", size[0], size[1], data_start=i + 2 + length)
        i += 2 + length
    raise ImageDecodeError(f"corrupt JPEG: more than {MAX_JPEG_SEGMENTS} segments before the "
                           "first scan", "corrupt")


def _tiff(b) -> ImageHeader | None:
    big = bytes(b[:2]) == b"MM"
    version = _u(b, 2, 2, big)
    if version == 42:  # classic: 4-byte offsets, 12-byte entries
        off, cnt_n, ent, val_at = _u(b, 4, 4, big), 2, 12, 8
    elif version == 43:  # BigTIFF: 8-byte offsets, 20-byte entries
        off, cnt_n, ent, val_at = _u(b, 8, 8, big), 8, 20, 12
    else:
        raise ImageDecodeError(f"corrupt TIFF: version {version}", "corrupt")
    if off + cnt_n > len(b):
        return None
    count = _u(b, off, cnt_n, big)
    if off + cnt_n + count * ent > len(b):
        return None
    tags = {}
    for k in range(count):
        e = off + cnt_n + k * ent
        tag, typ = _u(b, e, 2, big), _u(b, e + 2, 2, big)
        if tag in (256, 257, 322, 323) and typ in (3, 4, 16):  # SHORT, LONG, LONG8
            tags[tag] = _u(b, e + val_at, 2 if typ == 3 else 4 if typ == 4 else 8, big)
    if 256 not in tags or 257 not in tags:
        raise ImageDecodeError("corrupt TIFF: no image width / length in its first IFD",
                               "corrupt")
    tile = tags.get(322, 0) * tags.get(323, 0)
    if tile > max(1, tags[256] * tags[257]) * 4:  # tiles far larger than the image
        raise ImageDecodeError(f"corrupt TIFF: {tags.get(322)}x{tags.get(323)} tiles for a "
                               f"{tags[256]}x{tags[257]} image", "corrupt")
    return ImageHeader("tiff", tags[256], tags[257])


def _bmp(b) -> ImageHeader | None:
    if len(b) < 26:
        return None
    dib = _u(b, 14, 4, False)
    if dib == 12:
        return ImageHeader("bmp", _u(b, 18, 2, False), _u(b, 20, 2, False))
    w = int.from_bytes(b[18:22], "little", signed=True)
    h = int.from_bytes(b[22:26], "little", signed=True)
    return ImageHeader("bmp", abs(w), abs(h))


def _webp(b) -> ImageHeader | None:
    if len(b) < 30:
        return None
    chunk = bytes(b[12:16])
    if chunk == b"VP8 ":
        return ImageHeader("webp", _u(b, 26, 2, False) & 0x3FFF, _u(b, 28, 2, False) & 0x3FFF)
    if chunk == b"VP8L":
        v = _u(b, 21, 4, False)
        return ImageHeader("webp", (v & 0x3FFF) + 1, ((v >> 14) & 0x3FFF) + 1)
    if chunk == b"VP8X":
        return ImageHeader("webp", _u(b, 24, 3, False) + 1, _u(b, 27, 3, False) + 1)
    raise ImageDecodeError(f"corrupt WebP: unknown first chunk {chunk!r}", "corrupt")


def _pnm_tokens(b, count: int) -> tuple[list[int], int] | None:
    """The first ``count`` integer header fields after the 2-byte magic (comments skipped) and
    the offset just past the single whitespace byte that ends the header."""
    out, i, n = [], 2, min(len(b), 4096)
    while len(out) < count:
        while i < n and (b[i] in b" \t\r\n" or b[i] == ord("#")):
            if b[i] == ord("#"):
                while i < n and b[i] not in b"\r\n":
                    i += 1
            else:
                i += 1
        j = i
        while j < n and chr(b[j]) in "+-.0123456789eE":
            j += 1
        if j == i or j >= n:
            return None
        try:
            out.append(int(float(bytes(b[i:j]).decode())))
        except ValueError:
            return None
        i = j
    return out, i + 1


def _pnm(b) -> ImageHeader | None:
    magic = bytes(b[:2])
    maxval = magic not in (b"P1", b"P4", b"PF", b"Pf")
    fields = _pnm_tokens(b, 3 if maxval or magic in (b"PF", b"Pf") else 2)
    if fields is None:
        return None
    (w, h, *_), start = fields
    hdr = ImageHeader("pnm", max(w, 0), max(h, 0))
    channels = 3 if magic in (b"P3", b"P6", b"PF") else 1
    samples = hdr.pixels * channels
    need = {b"P4": math.ceil(hdr.width / 8) * hdr.height,
            b"P5": samples * (2 if maxval and fields[0][2] > 255 else 1),
            b"P6": samples * (2 if maxval and fields[0][2] > 255 else 1),
            b"PF": samples * 4, b"Pf": samples * 4}.get(magic, samples)
    if len(b) - start < need:
        raise ImageDecodeError(f"truncated PNM: {hdr.width}x{hdr.height} needs {need} bytes of "
                               f"pixel data, {max(0, len(b) - start)} present", "truncated")
    return hdr


def _sniff(b):
    """The header parser for the data's signature, or ``None``."""
    head = bytes(b[:16])
    if head.startswith(PNG_SIGNATURE):
        return _png
    if head.startswith(b"\xff\xd8"):
        return _jpeg
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return _tiff
    if head.startswith(b"BM"):
        return _bmp
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return _webp
    if len(head) > 2 and head[:1] == b"P" and head[1:2] in b"123456Ff" and head[2] in b" \t\r\n":
        return _pnm
    return None


def image_header(data) -> ImageHeader:
    """What the header of encoded image bytes declares, without decoding any pixel.

    Args:
        data: the encoded file (``bytes``, ``array('B')``, a uint8 numpy array ...).
    Raises:
        ImageDecodeError: ``format`` (not one of :data:`FORMATS`), ``truncated`` (the header is
            cut short) or ``corrupt``.
    """
    b = _bytes_view(data)
    if len(b) == 0:
        raise ImageDecodeError("empty image data (0 bytes)", "truncated")
    parser = _sniff(b)
    if parser is None:
        raise ImageDecodeError(f"not a supported image ({len(b)} bytes; supported: "
                               f"{', '.join(FORMATS)})", "format")
    hdr = parser(b)
    if hdr is None:
        raise ImageDecodeError(f"truncated {parser.__name__[1:].upper()} header "
                               f"({len(b)} bytes)", "truncated")
    return hdr


def _check_complete(b, hdr: ImageHeader) -> None:
    """Refuse data too short for what its header declares (see the module docstring)."""
    n = len(b)
    if hdr.format == "jpeg":
        if bytes(b[hdr.data_start:]).rfind(b"\xff\xd9") < 0:
            raise ImageDecodeError(f"truncated JPEG: no end-of-image marker after the scan "
                                   f"({n} bytes)", "truncated")
        blocks = math.ceil(hdr.width / 8) * math.ceil(hdr.height / 8)
        if (n - hdr.data_start) * 8 < blocks:
            raise ImageDecodeError(
                f"JPEG scan ends early: {hdr.width}x{hdr.height} needs at least "
                f"{math.ceil(blocks / 8)} bytes of scan data, {n - hdr.data_start} present",
                "truncated")
    elif hdr.format == "png":
        if bytes(b[-8:]) != PNG_IEND:
            raise ImageDecodeError(f"truncated PNG: no IEND chunk at the end ({n} bytes)",
                                   "truncated")
        channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(b[25], 1)
        raw = hdr.height * (1 + math.ceil(hdr.width * channels * max(1, b[24]) / 8))
        if n * DEFLATE_MAX_RATIO < raw:
            raise ImageDecodeError(
                f"PNG data ends early: {hdr.width}x{hdr.height} cannot be stored in {n} bytes "
                f"(deflate compresses at most {DEFLATE_MAX_RATIO}:1)", "truncated")


def check_max_pixels(max_pixels) -> int:
    """``max_pixels`` as a positive ``int`` (``ValueError`` otherwise)."""
    if isinstance(max_pixels, bool) or not isinstance(max_pixels, (int, np.integer)) \
            or max_pixels < 1:
        raise ValueError(f"max_pixels must be a positive integer, got {max_pixels!r}")
    return int(max_pixels)


def check_image(data, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageHeader:
    """:func:`image_header` plus the checks done before decoding: a zero side, more than
    ``max_pixels`` pixels, data too short for the declared size. Raises
    :class:`ImageDecodeError`."""
    max_pixels = check_max_pixels(max_pixels)
    b = _bytes_view(data)
    hdr = image_header(b)
    if hdr.width <= 0 or hdr.height <= 0:
        raise ImageDecodeError(f"{hdr.format} header declares a zero-size image "
                               f"({hdr.width}x{hdr.height})", "size")
    if hdr.pixels > max_pixels:
        raise ImageDecodeError(
            f"{hdr.format} header declares {hdr.width}x{hdr.height} = {hdr.pixels / 1e6:.1f} "
            f"MP, more than max_pixels = {max_pixels} ({max_pixels / 1e6:.1f} MP; {len(b)} "
            "bytes); refused before decoding", "too_large")
    _check_complete(b, hdr)
    return hdr


@functools.cache
def _quiet_opencv() -> None:
    """OpenCV's own decoder warnings (``[ WARN:0] ... TIFF: can not handle images with 32-bit
    samples``) go to stderr beside the one line that refuses the file: keep only its errors."""
    import cv2

    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)


def decode_image(data, *, color: bool = True,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode encoded image bytes after :func:`check_image`.

    Args:
        data: the encoded file (``bytes``, ``array('B')``, uint8 numpy ...).
        color: ``True``: ``HxWx3 uint8 RGB`` (grey and 16-bit images converted, alpha dropped,
            EXIF orientation applied); ``False``: the stored array as it is (depth, masks;
            ``HxW`` or ``HxWxC``, its own dtype).
        max_pixels: the decoded-pixel cap.
    Raises:
        ImageDecodeError: see :func:`check_image`; ``corrupt`` when OpenCV cannot decode it.
    """
    import cv2

    hdr = check_image(data, max_pixels)
    _quiet_opencv()
    buf = np.frombuffer(_bytes_view(data), dtype=np.uint8)
    img = cv2.imdecode(buf, cv2.IMREAD_COLOR if color else cv2.IMREAD_UNCHANGED)
    if img is None or img.size == 0:
        raise ImageDecodeError(f"corrupt {hdr.format}: OpenCV cannot decode it ({buf.size} "
                               "bytes)", "corrupt")
    if img.shape[0] * img.shape[1] > max_pixels:  # a decoder that disagrees with the header
        raise ImageDecodeError(f"decoded {img.shape[1]}x{img.shape[0]} exceeds max_pixels = "
                               f"{max_pixels}", "too_large")
    if color:
        return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    return img


def read_image(path, *, color: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read and :func:`decode_image` a file. Only regular files are read (not a FIFO or a
    device: ``/dev/zero`` never ends).

    Raises:
        FileNotFoundError, IsADirectoryError, OSError: the file cannot be read.
        ImageDecodeError: the content (see :func:`decode_image`).
    """
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO must not block
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(f"{path} is a directory")
        if not stat.S_ISREG(mode):
            raise ImageDecodeError(f"{path} is not a regular file", "format")
        data = f.read()
    return decode_image(data, color=color, max_pixels=max_pixels)


def write_image(path, img: np.ndarray, params=(), *, rgb: bool = False) -> Path:
    """Encode ``img`` in the format of ``path``'s suffix (``.png``, ``.jpg``, ``.tiff`` ...) and
    write it atomically (complete or absent).

    Args:
        img: in OpenCV's channel order (BGR, grey, 16-bit, float32 for TIFF), or RGB with
            ``rgb=True``.
        params: OpenCV ``IMWRITE_*`` flags and values.
    Raises:
        OSError: the file cannot be written, with the reason (``cv2.imwrite`` only returns
            ``False``, and libpng prints "Write Error" on stderr).
        ValueError: OpenCV cannot encode this array in that format.
    """
    import cv2

    from .fileio import write_bytes

    path = Path(path)
    if rgb and img.ndim == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(path.suffix or ".png", img, list(params))
    if not ok:
        raise ValueError(f"OpenCV cannot encode a {img.dtype} {img.shape} image as "
                         f"{path.suffix or '.png'}")
    return write_bytes(path, buf.tobytes())
