"""Generated bad messages per input topic of the grasp node (``image``, ``image/compressed``,
``depth``, ``camera_info``). Each generator returns ``[(name, build)]`` where ``build(stamp)``
makes the message with that header stamp (the frame id is ``cam``), so a case can be sent at
any time. The node engineer's checks of depth and CameraInfo add cases here."""
from __future__ import annotations

from array import array

import numpy as np
from fixtures.bad_images import jpeg, jpeg_declaring, png_declaring, png_grey

FRAME_ID = "cam"
H, W = 120, 160  # the good frames' size (small: the node's tiny model answers fast)


def _rgb(seed: int = 0, h: int = H, w: int = W) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _stamped(msg, stamp):
    msg.header.stamp = stamp
    msg.header.frame_id = FRAME_ID
    return msg


def good_image(stamp, seed: int = 0):
    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    return _stamped(rgb_to_image_msg(_rgb(seed), "rgb8"), stamp)


def good_compressed(stamp, seed: int = 0):
    from vita_grasp_ros.image_conversions import rgb_to_compressed_msg

    return _stamped(rgb_to_compressed_msg(_rgb(seed), "jpeg"), stamp)


def _raw(encoding="rgb8", h=H, w=W, step=None, data=None, bigendian=0):
    def build(stamp):
        from sensor_msgs.msg import Image

        from vita_grasp_ros.image_conversions import ENCODINGS

        kind, ch = ENCODINGS.get(encoding, ("u1", 3))
        row = w * ch * np.dtype(kind).itemsize
        m = Image(height=h, width=w, encoding=encoding, is_bigendian=bigendian,
                  step=row if step is None else step)
        m.data = array("B", data if data is not None else bytes(min(row * h, 1 << 24)))
        return _stamped(m, stamp)
    return build


def image_cases() -> list:
    """Malformed raw frames: every way the header and the data can disagree."""
    row = W * 3
    cases = [("truncated", _raw(data=bytes(row * H // 2))),
             ("one_byte_short", _raw(data=bytes(row * H - 1))),
             ("one_byte_long", _raw(data=bytes(row * H + 1))),
             ("step_smaller_than_row", _raw(step=row - 3)),
             ("step_larger_than_data", _raw(step=row + 64)),
             ("step_zero", _raw(step=0)),
             ("zero_width", _raw(w=0, data=b"")), ("zero_height", _raw(h=0, data=b"")),
             ("empty_data", _raw(data=b"")),
             ("declares_16000x16000_tiny_data", _raw(h=16000, w=16000, data=bytes(64))),
             ("side_over_16384", _raw(h=1, w=16385, data=bytes(16385 * 3))),
             ("huge_step", _raw(step=2**31 - 1, data=bytes(64))),
             ("unknown_encoding", _raw(encoding="yuv422_yuy2")),
             ("empty_encoding", _raw(encoding="")),
             ("long_encoding", _raw(encoding="x" * 10000)),
             ("depth_encoding_on_image", _raw(encoding="16UC1")),
             ("float_encoding_on_image", _raw(encoding="32FC1")),
             ("bigendian_flag_255", _raw(bigendian=255)),
             ("max_u32_size", _raw(h=2**32 - 1, w=2**32 - 1, data=bytes(16)))]
    for enc in ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "mono16"):
        cases.append((f"{enc}_truncated", _raw(encoding=enc, data=bytes(100))))
    return cases


def _compressed(data: bytes, fmt: str = "jpeg"):
    def build(stamp):
        from sensor_msgs.msg import CompressedImage

        return _stamped(CompressedImage(format=fmt, data=array("B", data)), stamp)
    return build


def compressed_cases() -> list:
    """Decompression bombs, truncated and foreign data on ``image/compressed``."""
    good = jpeg(W, H)
    png = png_declaring(W, H)
    return [("jpeg_declaring_16000x16000", _compressed(jpeg_declaring(16000, 16000))),
            ("jpeg_declaring_4000x3000", _compressed(jpeg_declaring(4000, 3000))),
            ("png_bomb_20000x20000", _compressed(png_grey(20000, 20000), "png")),
            ("png_declaring_17000", _compressed(png_declaring(17000, 17000), "png")),
            ("png_declaring_zero", _compressed(png_declaring(0, 480), "png")),
            ("png_short_idat", _compressed(png, "png")),
            ("jpeg_truncated", _compressed(good[: len(good) // 2])),
            ("jpeg_header_only", _compressed(good[:200])),
            ("empty", _compressed(b"")),
            ("random_bytes", _compressed(np.random.default_rng(1).bytes(5000))),
            ("gif", _compressed(b"GIF89a" + bytes(200), "gif")),
            ("compressed_depth_format", _compressed(good, "16UC1; compressedDepth")),
            ("format_garbage", _compressed(good, "\x00" * 1000)),
            ("jpeg_many_segments", _compressed(b"\xff\xd8" + b"\xff\xfe\x00\x02" * 50000)),
            ("tiff_huge_tiles", _compressed(b"II*\x00\x08\x00\x00\x00\x04\x00"
                                            + b"\x00\x01\x03\x00\x01\x00\x00\x00\x10\x00\x00\x00"
                                            + b"\x01\x01\x03\x00\x01\x00\x00\x00\x10\x00\x00\x00"
                                            + b"\x42\x01\x04\x00\x01\x00\x00\x00\x00\x00\x01\x00"
                                            + b"\x43\x01\x04\x00\x01\x00\x00\x00\x00\x00\x01\x00"
                                            + bytes(64), "tiff"))]


def _depth(encoding="16UC1", h=H, w=W, fill=1000.0, data=None):
    def build(stamp):
        from vita_grasp_ros.image_conversions import ENCODINGS, numpy_to_image_msg

        kind, ch = ENCODINGS.get(encoding, ("u2", 1))
        shape = (max(h, 1), max(w, 1)) + ((ch,) if ch > 1 else ())
        with np.errstate(invalid="ignore", over="ignore"):
            arr = np.full(shape, fill).astype(np.dtype(kind))
        m = numpy_to_image_msg(arr, encoding)
        if data is not None:
            m.data = array("B", data)
        return _stamped(m, stamp)
    return build


def good_depth(stamp):
    return _depth()(stamp)


def depth_cases() -> list:
    """Depth frames of the wrong shape, units and values (issue 21 item 2)."""
    return [("depth_1x1", _depth(h=1, w=1)), ("depth_10x10000", _depth(h=10, w=10000)),
            ("depth_4_by_3_for_16_by_9", _depth(h=120, w=160 * 4 // 3)),
            ("depth_nan", _depth("32FC1", fill=np.nan)),
            ("depth_inf", _depth("32FC1", fill=np.inf)),
            ("depth_negative", _depth("32FC1", fill=-1.0)),
            ("depth_zero", _depth(fill=0)), ("depth_huge", _depth("32FC1", fill=1e30)),
            ("depth_truncated", _depth(data=bytes(100))),
            ("depth_rgb_encoding", _depth("rgb8"))]


def _info(k=None, d=None, h=H, w=W):
    def build(stamp):
        from sensor_msgs.msg import CameraInfo

        m = CameraInfo(height=h, width=w, distortion_model="plumb_bob")
        m.k = list(k if k is not None else [100.0, 0, W / 2, 0, 100.0, H / 2, 0, 0, 1])
        m.d = list(d if d is not None else [0.0] * 5)
        return _stamped(m, stamp)
    return build


def good_info(stamp):
    return _info()(stamp)


def camera_info_cases() -> list:
    """Intrinsics that no camera has (issue 21 item 2)."""
    nan = float("nan")
    return [("info_nan_k", _info(k=[nan] * 9)), ("info_zero_k", _info(k=[0.0] * 9)),
            ("info_skew", _info(k=[100.0, 5, 80, 0, 100.0, 60, 0, 0, 1])),
            ("info_bottom_row", _info(k=[100.0, 0, 80, 0, 100.0, 60, 1, 1, 1])),
            ("info_nan_distortion", _info(d=[nan] * 5)),
            ("info_huge_distortion_array", _info(d=[0.0] * 200000)),
            ("info_size_mismatch", _info(h=480, w=640)),
            ("info_inf_focal", _info(k=[float("inf"), 0, 80, 0, 100.0, 60, 0, 0, 1]))]
