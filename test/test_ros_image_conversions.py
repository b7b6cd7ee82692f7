"""sensor_msgs Image / CompressedImage <-> numpy round trips for every encoding (with row padding
and big-endian data), and clear errors for every kind of malformed message."""
from __future__ import annotations

from array import array

import numpy as np
import pytest

pytest.importorskip("sensor_msgs.msg")

from fixtures.bad_images import jpeg_declaring, png_declaring  # noqa: E402
from sensor_msgs.msg import CompressedImage, Image  # noqa: E402

from vita_grasp_ros.image_conversions import (  # noqa: E402
    ENCODINGS,
    ImageConversionError,
    compressed_msg_to_rgb,
    depth_msg_to_meters,
    image_msg_to_numpy,
    image_msg_to_rgb,
    numpy_to_image_msg,
    rgb_to_compressed_msg,
    rgb_to_image_msg,
)

RNG = np.random.default_rng(0)
_png_declaring = png_declaring  # (imported from here by test_ros_node_depth)


def _array_for(encoding, h=7, w=5):
    kind, ch = ENCODINGS[encoding]
    shape = (h, w) if ch == 1 else (h, w, ch)
    if kind == "f4":
        return RNG.normal(size=shape).astype(np.float32)
    info = np.iinfo(np.dtype(kind))
    return RNG.integers(info.min, info.max, shape, dtype=np.dtype(kind), endpoint=True)


@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
@pytest.mark.parametrize("pad", [0, 3, 64])
@pytest.mark.parametrize("bigendian", [False, True])
def test_numpy_msg_numpy_round_trip(encoding, pad, bigendian):
    a = _array_for(encoding)
    kind, ch = ENCODINGS[encoding]
    row = a.shape[1] * ch * np.dtype(kind).itemsize
    msg = numpy_to_image_msg(a, encoding, step=row + pad, is_bigendian=bigendian)
    assert isinstance(msg, Image) and isinstance(msg.data, array)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (7, 5, row + pad, encoding)
    assert len(msg.data) == msg.step * msg.height
    back = image_msg_to_numpy(msg)
    assert back.dtype == a.dtype.newbyteorder("=") and back.dtype.isnative
    assert back.shape == a.shape
    np.testing.assert_array_equal(back, a)
    # padding bytes are not image content
    if pad:
        raw = np.frombuffer(msg.data, np.uint8).reshape(msg.height, msg.step)
        assert not raw[:, row:].any()


def test_big_endian_bytes_are_really_big_endian():
    msg = numpy_to_image_msg(np.array([[1, 256]], np.uint16), "16UC1", is_bigendian=True)
    assert bytes(msg.data) == b"\x00\x01\x01\x00"
    assert msg.is_bigendian


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("pad", [0, 5])
def test_colour_encodings_to_rgb(encoding, pad):
    rgb = RNG.integers(0, 256, (6, 9, 3), dtype=np.uint8)
    src = {"rgb8": rgb, "bgr8": rgb[..., ::-1],
           "rgba8": np.dstack([rgb, np.full(rgb.shape[:2], 7, np.uint8)]),
           "bgra8": np.dstack([rgb[..., ::-1], np.full(rgb.shape[:2], 7, np.uint8)])}[encoding]
    ch = src.shape[2]
    msg = numpy_to_image_msg(np.ascontiguousarray(src), encoding, step=9 * ch + pad)
    out = image_msg_to_rgb(msg)
    assert out.dtype == np.uint8 and out.shape == (6, 9, 3) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, rgb)
    # and the writer agrees with the reader
    np.testing.assert_array_equal(image_msg_to_rgb(rgb_to_image_msg(rgb, encoding)), rgb)


def test_mono_encodings_to_rgb():
    g = RNG.integers(0, 256, (4, 6), dtype=np.uint8)
    out = image_msg_to_rgb(numpy_to_image_msg(g, "mono8", step=8))
    assert out.shape == (4, 6, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], g)
    g16 = g.astype(np.uint16) * 256 + 200
    out = image_msg_to_rgb(numpy_to_image_msg(g16, "mono16", is_bigendian=True))
    np.testing.assert_array_equal(out[..., 0], g)


def test_depth_to_meters():
    mm = np.array([[0, 1000, 65535]], np.uint16)
    out = depth_msg_to_meters(numpy_to_image_msg(mm, "16UC1"))
    assert out.dtype == np.float32
    assert np.isnan(out[0, 0]) and out[0, 1] == pytest.approx(1.0)
    assert out[0, 2] == pytest.approx(65.535)
    m = np.array([[np.nan, -1.0, 0.0, np.inf, 0.75]], np.float32)
    out = depth_msg_to_meters(numpy_to_image_msg(m, "32FC1"))
    assert np.isnan(out[0, :4]).all() and out[0, 4] == pytest.approx(0.75)
    with pytest.raises(ImageConversionError, match="unsupported depth encoding 'rgb8'"):
        depth_msg_to_meters(rgb_to_image_msg(np.zeros((2, 2, 3), np.uint8)))


def _good(h=4, w=6):
    return rgb_to_image_msg(RNG.integers(0, 256, (h, w, 3), dtype=np.uint8))


@pytest.mark.parametrize("mutate, kind, text", [
    (lambda m: setattr(m, "encoding", "yuv422_yuy2"), "encoding", "'yuv422_yuy2'"),
    (lambda m: setattr(m, "encoding", "32FC1"), "encoding", "for a colour image"),
    (lambda m: setattr(m, "data", m.data[:-1]), "truncated", "truncated data"),
    (lambda m: setattr(m, "data", m.data + array("B", [0] * 10)), "oversized", "oversized"),
    (lambda m: setattr(m, "step", m.width * 3 - 1), "step", "step 17 is smaller"),
    (lambda m: setattr(m, "step", m.width * 3 + 4), "truncated", "truncated"),
    (lambda m: (setattr(m, "width", 0), setattr(m, "data", array("B"))), "size", "zero-size"),
    (lambda m: setattr(m, "height", 0), "size", "zero-size"),
    (lambda m: setattr(m, "height", 100000), "size", "exceeds"),
])
def test_malformed_images_raise_clear_errors(mutate, kind, text):
    m = _good()
    mutate(m)
    with pytest.raises(ImageConversionError, match=text) as e:
        image_msg_to_rgb(m)
    assert e.value.kind == kind
    assert isinstance(e.value, ValueError)


def test_empty_default_message_is_refused():
    with pytest.raises(ImageConversionError, match="unsupported encoding ''"):
        image_msg_to_rgb(Image())
    m = Image(encoding="rgb8")
    with pytest.raises(ImageConversionError, match="zero-size"):
        image_msg_to_rgb(m)


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_compressed_round_trip(fmt):
    rgb = np.zeros((48, 64, 3), np.uint8)
    rgb[:, :32] = (200, 30, 10)  # big flat areas: jpeg keeps them within a few levels
    rgb[:, 32:] = (10, 60, 220)
    msg = rgb_to_compressed_msg(rgb, fmt, quality=95)
    assert isinstance(msg, CompressedImage) and fmt in msg.format
    out = compressed_msg_to_rgb(msg)
    assert out.shape == rgb.shape and out.dtype == np.uint8
    tol = 0 if fmt == "png" else 12
    assert np.abs(out[:, 4:28].astype(int) - rgb[:, 4:28]).max() <= tol  # RGB order kept
    assert np.abs(out[:, 36:60].astype(int) - rgb[:, 36:60]).max() <= tol


def test_corrupt_compressed_images_raise_clear_errors():
    good = rgb_to_compressed_msg(np.zeros((8, 8, 3), np.uint8))
    cases = [
        (CompressedImage(format="jpeg"), "size", "empty compressed"),
        (CompressedImage(format="jpeg", data=array("B", bytes(range(256)) * 4)), "corrupt",
         "corrupt or undecodable"),
        (CompressedImage(format="jpeg", data=array("B", b"\0" * 32 + bytes(good.data)[32:])),
         "corrupt", "corrupt or undecodable"),
        (CompressedImage(format="16UC1; compressedDepth", data=good.data), "encoding",
         "compressedDepth"),
    ]
    for msg, kind, text in cases:
        with pytest.raises(ImageConversionError, match=text) as e:
            compressed_msg_to_rgb(msg)
        assert e.value.kind == kind


def test_writer_rejects_wrong_arrays():
    with pytest.raises(ImageConversionError, match="needs shape HxWx3"):
        numpy_to_image_msg(np.zeros((4, 4), np.uint8), "rgb8")
    with pytest.raises(ImageConversionError, match="needs dtype uint16"):
        numpy_to_image_msg(np.zeros((4, 4), np.uint8), "16UC1")
    with pytest.raises(ImageConversionError, match="step 3"):
        numpy_to_image_msg(np.zeros((4, 4), np.uint8), "mono8", step=3)
    with pytest.raises(ImageConversionError, match="unsupported encoding"):
        numpy_to_image_msg(np.zeros((4, 4), np.uint8), "bayer_rggb8")


def test_reading_is_zero_copy_for_unpadded_rgb8():
    msg = _good(5, 5)
    out = image_msg_to_rgb(msg)
    assert np.shares_memory(out, np.frombuffer(msg.data, np.uint8))


def test_header_is_kept():
    from std_msgs.msg import Header

    h = Header(frame_id="cam")
    h.stamp.sec, h.stamp.nanosec = 12, 34
    msg = rgb_to_image_msg(np.zeros((2, 2, 3), np.uint8), "bgr8", header=h)
    assert msg.header.frame_id == "cam" and msg.header.stamp.nanosec == 34


@pytest.mark.parametrize("w,h", [(17000, 17000), (640, 17000), (0, 480)])
def test_oversized_compressed_frames_are_refused_before_decoding(w, h, monkeypatch):
    import cv2
    from sensor_msgs.msg import CompressedImage

    from vita_grasp_ros.image_conversions import MAX_SIDE, compressed_msg_to_rgb

    def never(*a, **k):
        raise AssertionError("cv2.imdecode must not run for a refused header")
    monkeypatch.setattr(cv2, "imdecode", never)
    msg = CompressedImage(format="png")
    msg.data = array("B", png_declaring(w, h))
    with pytest.raises(ImageConversionError) as e:
        compressed_msg_to_rgb(msg)
    assert e.value.kind == "size"
    assert f"{w}x{h}" in str(e.value)
    if w > MAX_SIDE or h > MAX_SIDE:
        assert f"more than {MAX_SIDE} px per side" in str(e.value)


def test_issue_21_jpeg_bomb_under_the_side_limit_is_refused(monkeypatch):
    """631 bytes declaring 16000 x 16000 passed the 16384-per-side check and cost the node
    seconds and 1.5 GB; 4000 x 3000 with a 16x16 scan decoded as a grey frame."""
    import cv2

    def never(*a, **k):
        raise AssertionError("cv2.imdecode must not run for a refused header")
    monkeypatch.setattr(cv2, "imdecode", never)
    for (w, h), kind, text in (((16000, 16000), "size", "max_pixels"),
                               ((4000, 3000), "truncated", "scan ends early")):
        msg = CompressedImage(format="jpeg", data=array("B", jpeg_declaring(w, h)))
        with pytest.raises(ImageConversionError, match=text) as e:
            compressed_msg_to_rgb(msg)
        assert e.value.kind == kind


def test_max_pixels_caps_compressed_and_raw_frames():
    rgb = np.zeros((48, 64, 3), np.uint8)
    for to_msg, from_msg in ((rgb_to_compressed_msg, compressed_msg_to_rgb),
                             (rgb_to_image_msg, image_msg_to_rgb)):
        msg = to_msg(rgb)
        assert from_msg(msg, max_pixels=48 * 64).shape == (48, 64, 3)
        with pytest.raises(ImageConversionError, match="max_pixels") as e:
            from_msg(msg, max_pixels=48 * 64 - 1)
        assert e.value.kind == "size"
