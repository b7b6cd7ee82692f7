"""The decoded-pixel cap (issue 21 item 1): image headers are read without decoding, images over
``max_pixels`` and data too short for its declared size are refused before OpenCV decodes them,
and valid images of every supported format (also large, flat ones) still decode."""
from __future__ import annotations

import os
from array import array

import numpy as np
import pytest
from fixtures.bad_images import jpeg, jpeg_declaring, png_declaring, png_grey

from vita_grasp_core.image_decode import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    check_image,
    decode_image,
    image_header,
    read_image,
)

ENCODED = [(".png", "png", []), (".jpg", "jpeg", []), (".tif", "tiff", []),
           (".bmp", "bmp", []), (".webp", "webp", []), (".ppm", "pnm", []),
           (".pgm", "pnm", []), (".pbm", "pnm", []), (".pfm", "pnm", []),
           (".webp", "webp", ["IMWRITE_WEBP_QUALITY", 101]),  # lossless: VP8L
           (".jpg", "jpeg", ["IMWRITE_JPEG_PROGRESSIVE", 1])]


def _encode(ext, params=()):
    import cv2

    img = np.random.default_rng(1).integers(0, 255, (37, 53, 3), np.uint8)
    if ext in (".pgm", ".pbm"):
        img = img[..., 0]
    if ext == ".pfm":
        img = img.astype(np.float32) / 255
    flags = [getattr(cv2, params[0]), params[1]] if params else []
    return cv2.imencode(ext, img, flags)[1]


@pytest.fixture
def no_decoding(monkeypatch):
    import cv2

    def never(*a, **k):
        raise AssertionError("cv2.imdecode must not run for a refused image")
    monkeypatch.setattr(cv2, "imdecode", never)


@pytest.mark.parametrize("ext,fmt,params", ENCODED)
def test_every_format_header_and_decode(ext, fmt, params):
    data = _encode(ext, params)
    for form in (data, data.tobytes(), array("B", data.tobytes())):
        hdr = image_header(form)
        assert (hdr.format, hdr.width, hdr.height) == (fmt, 53, 37)
    rgb = decode_image(data)
    assert rgb.shape == (37, 53, 3) and rgb.dtype == np.uint8 and rgb.flags.c_contiguous
    with pytest.raises(ImageDecodeError) as e:
        image_header(data.tobytes()[:12])
    assert e.value.kind in ("truncated", "corrupt")


@pytest.mark.parametrize("data,kind", [
    (b"", "truncated"), (b"\0" * 100, "format"), (b"GIF89a" + b"\0" * 40, "format"),
    (b"\x89PNG\r\n\x1a\n", "truncated"), (b"\xff\xd8\xff\xd9", "truncated"),
    (b"\xff\xd8\xff\xda\x00\x02" + b"\0" * 10, "corrupt"),  # a scan before the frame header
    (b"\xff\xd8" + b"\xff\xfe\x00\x02" * 2000, "corrupt"),  # endless comment segments
    (b"II*\x00\x08\x00\x00\x00\x00\x00", "corrupt"),  # TIFF without width / length
])
def test_junk_is_refused_with_a_kind(data, kind, no_decoding):
    with pytest.raises(ImageDecodeError) as e:
        decode_image(data)
    assert e.value.kind == kind
    assert "\n" not in str(e.value)


def test_issue_21_jpeg_bomb_is_refused_before_decoding(no_decoding):
    bomb = jpeg_declaring(16000, 16000)
    assert len(bomb) < 1000
    with pytest.raises(ImageDecodeError, match="16000x16000.*max_pixels") as e:
        decode_image(bomb)
    assert e.value.kind == "too_large"
    # the same trick under the cap: the scan holds 16x16 pixels, the header 4000x3000
    with pytest.raises(ImageDecodeError, match="scan ends early") as e:
        decode_image(jpeg_declaring(4000, 3000))
    assert e.value.kind == "truncated"
    with pytest.raises(ImageDecodeError, match="scan ends early"):  # also with a huge cap
        check_image(bomb, max_pixels=10**9)


def test_truncated_jpeg_and_png_are_refused(no_decoding):
    data = jpeg(64, 48)
    with pytest.raises(ImageDecodeError, match="no end-of-image marker") as e:
        decode_image(data[: len(data) * 2 // 3])
    assert e.value.kind == "truncated"
    png = _encode(".png").tobytes()
    with pytest.raises(ImageDecodeError, match="no IEND") as e:
        decode_image(png[:-20])
    assert e.value.kind == "truncated"
    with pytest.raises(ImageDecodeError, match="cannot be stored in"):
        decode_image(png_declaring(3000, 3000))


def test_png_bomb_is_refused_and_valid_flat_images_under_the_cap_decode(no_decoding):
    bomb = png_grey(16384, 16384)  # ~0.8 MB, 805 MB decoded
    with pytest.raises(ImageDecodeError, match="16384x16384") as e:
        check_image(bomb)
    assert e.value.kind == "too_large"


def test_large_flat_images_under_the_cap_are_not_mistaken_for_bombs():
    """The 'ends early' bounds hold for the most compressible valid images: flat grey PNG and
    JPEG (with optimised Huffman tables) of 2000 x 1500."""
    import cv2

    grey = np.full((1500, 2000), 128, np.uint8)
    for data in (png_grey(2000, 1500), cv2.imencode(".png", grey)[1],
                 cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_OPTIMIZE, 1])[1],
                 cv2.imencode(".jpg", np.zeros((1500, 2000, 3), np.uint8))[1],
                 cv2.imencode(".jpg", grey, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1]):
        assert decode_image(data).shape == (1500, 2000, 3)


def test_max_pixels_applies_and_is_validated():
    data = _encode(".png")
    assert decode_image(data, max_pixels=37 * 53).shape[:2] == (37, 53)
    with pytest.raises(ImageDecodeError, match="max_pixels = 1960") as e:
        decode_image(data, max_pixels=37 * 53 - 1)
    assert e.value.kind == "too_large"
    for bad in (0, -5, 1.5, True, "10", None):
        with pytest.raises(ValueError, match="max_pixels must be a positive integer"):
            decode_image(data, max_pixels=bad)
    assert DEFAULT_MAX_PIXELS >= 3840 * 2160  # 4K frames pass by default


def test_tiff_with_huge_tiles_is_refused(no_decoding):
    import struct

    entries = [(256, 3, 1, 16), (257, 3, 1, 16), (322, 4, 1, 65536), (323, 4, 1, 65536)]
    ifd = struct.pack("<H", len(entries)) + b"".join(
        struct.pack("<HHII", t, typ, n, v) for t, typ, n, v in entries) + b"\0" * 4
    with pytest.raises(ImageDecodeError, match="tiles") as e:
        decode_image(b"II*\x00\x08\x00\x00\x00" + ifd + b"\0" * 64)
    assert e.value.kind == "corrupt"


def test_read_image_refuses_what_is_not_a_regular_file(tmp_path):
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    with pytest.raises(ImageDecodeError, match="not a regular file"):  # does not block
        read_image(fifo)
    with pytest.raises(IsADirectoryError):
        read_image(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_image(tmp_path / "missing.png")
    (tmp_path / "ok.png").write_bytes(_encode(".png").tobytes())
    assert read_image(tmp_path / "ok.png", color=False).shape == (37, 53, 3)


def test_real_cornell_photographs_pass_the_checks():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "shared" / "data" / "cornell"
    files = sorted(root.rglob("*r.png"))
    if not files:
        pytest.skip("../shared/data/cornell is absent")
    for f in files:
        check_image(f.read_bytes())


def test_opencv_decoder_warnings_do_not_add_stderr_lines(capfd):
    """A 32-bit float TIFF: OpenCV printed '[ WARN:0] ... can not handle images with 32-bit
    samples' on stderr beside the one line that refuses the file (found from outside)."""
    import cv2

    ok, buf = cv2.imencode(".tiff", np.ones((8, 8, 3), np.float32))
    assert ok
    capfd.readouterr()
    with pytest.raises(ImageDecodeError):
        decode_image(buf.tobytes())
    assert "WARN" not in capfd.readouterr().err
