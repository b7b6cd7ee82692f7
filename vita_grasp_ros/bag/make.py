"""``vita-grasp bag make``: a data set (GraspNet-1Billion, Cornell or Jacquard layout) -> a
rosbag2 to replay and evaluate.

Per frame, all with the same header (stamp = ``start_time + i / rate``, frame_id
``rgb_camera_link``) and written at that time:

=========================================  =================================================
topic                                      message
=========================================  =================================================
``/rgb/image_raw``                         sensor_msgs/Image rgb8 (or ``<topic>/compressed``
                                           sensor_msgs/CompressedImage JPEG with --compressed)
``/rgb/camera_info``                       sensor_msgs/CameraInfo (GraspNet: K from
                                           camK.npy, else the CONVENTIONS intrinsics scaled to
                                           the image size; Cornell, Jacquard: K = 0, the ROS
                                           way of saying "uncalibrated")
``/depth_to_rgb/image_raw``                sensor_msgs/Image 16UC1 [mm], GraspNet frames with a
                                           depth png
``/ground_truth/grasps``                   vita_grasp/GraspArray: *every* GT rectangle the data
                                           loader keeps (quality = the data set's score,
                                           object_score = 1, has_pose false)
=========================================  =================================================

The format comes from ``format`` (``auto``: detected from the layout, as everywhere else in the
project: :func:`vita_grasp_core.data.scan_dataset`). ``scenes``, ``split`` and ``camera`` select
GraspNet frames; Cornell and Jacquard frames are taken all, in key order.

The messages are built with the node's own builders (rclpy messages, :mod:`.messages`), so this
command needs the ROS 2 Python packages (``make setup``). Unreadable frames are skipped with a
count (as the data loader does).
"""
from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np

from vita_grasp_core.bounds import Range, check_bounds, count
from vita_grasp_core.choices import CAMERAS, DEFAULT_CAMERA
from vita_grasp_core.data.common import FrameRecord

from . import messages
from .io import BagWriter, storage_for
from .types import (
    COMPRESSED_TYPE,
    DEPTH_TOPIC,
    FRAME_ID,
    GRASP_ARRAY_TYPE,
    GT_TOPIC,
    IMAGE_TOPIC,
    IMAGE_TYPE,
    INFO_TOPIC,
    INFO_TYPE,
)

#: Default first header stamp [s since epoch] (fixed, so the same inputs give the same bag).
DEFAULT_START_TIME = 1_700_000_000.0


def _camera_K(rec: FrameRecord, camera: str, width: int, height: int) -> np.ndarray:
    """The intrinsics of a frame from its format (GraspNet: ``camK.npy`` or the CONVENTIONS
    camera); zeros where the layout carries none (an uncalibrated camera in ROS terms)."""
    from vita_grasp_core.data import get_format

    intrinsics = get_format(rec.format).intrinsics
    if intrinsics is None:
        return np.zeros((3, 3), np.float64)
    return intrinsics(rec, camera, (height, width))


@dataclass(frozen=True)
class FrameSelection:
    """Which frames of a data set go into the bag.

    Attributes:
        format: ``auto`` or a registered format (``vita_grasp_core.data.format_names()``).
        scenes, split, camera: for layouts with scenes (GraspNet: scene ids, split name, camera
            folder).
        max_frames: stop after this many frames (in scene, frame order).
    """

    format: str = "auto"
    scenes: object = None
    split: str | None = None
    camera: str = DEFAULT_CAMERA
    max_frames: int | None = None

    def __post_init__(self):
        check_bounds(self, {"max_frames": count(1, 10**9, none=True)}, "")


#: Ranges of the numbers of a :class:`BagLayout` (stamps are int64 nanoseconds: a start time
#: past 2096 or a rate over 1 kHz is a typo, not a recording).
LAYOUT_BOUNDS = {"rate": Range(0, 1000, lo_open=True), "jpeg_quality": count(0, 100),
                 "start_time": Range(0, 4e9)}


@dataclass(frozen=True)
class BagLayout:
    """What the bag holds and how it is timed.

    Attributes:
        storage: ``mcap`` / ``sqlite3`` (default: from the file suffix, see :mod:`.io`).
        rate: frames per second of the header stamps and bag timestamps.
        compressed: JPEG ``CompressedImage`` on ``<image_topic>/compressed`` instead of rgb8.
        jpeg_quality: of the compressed images.
        image_topic, info_topic, depth_topic, gt_topic: topic names (``depth_topic`` ``None``
            leaves depth out).
        frame_id: of every header. start_time: the first header stamp [s since epoch].
    """

    storage: str | None = None
    rate: float = 5.0
    compressed: bool = False
    jpeg_quality: int = 90
    image_topic: str = IMAGE_TOPIC
    info_topic: str = INFO_TOPIC
    depth_topic: str | None = DEPTH_TOPIC
    gt_topic: str = GT_TOPIC
    frame_id: str = FRAME_ID
    start_time: float = DEFAULT_START_TIME

    def __post_init__(self):
        check_bounds(self, LAYOUT_BOUNDS, "")

    @property
    def published_image_topic(self) -> str:
        base = self.image_topic.rstrip("/")
        return f"{base}/compressed" if self.compressed else self.image_topic


def _select_frames(dataset_root, sel: FrameSelection):
    """``(scan result, frames)``; ``ValueError`` when there is none."""
    from vita_grasp_core.data import get_format, scan_dataset

    if sel.camera not in CAMERAS:
        raise ValueError(f"camera must be one of {list(CAMERAS)}, got {sel.camera!r}")
    scan = scan_dataset(dataset_root, sel.format, camera=sel.camera, scenes=sel.scenes,
                        split=sel.split)
    if not scan.frames:
        chosen = f", scenes {list(sel.scenes)}" if sel.scenes is not None else ""
        chosen += f", split {sel.split}" if sel.split else ""
        where = (f" for camera {sel.camera!r}{chosen}" if get_format(scan.format).scenes
                 else "")
        raise ValueError(f"no frames found under {dataset_root} ({scan.format} layout){where}"
                         + (f"; {scan.faults.summary()}" if len(scan.faults) else ""))
    frames = scan.frames
    return scan, frames if sel.max_frames is None else frames[: int(sel.max_frames)]


class _FrameWriter:
    """Writes one data set frame per call into an open :class:`BagWriter`."""

    def __init__(self, writer: BagWriter, layout: BagLayout, camera: str):
        self.w, self.layout, self.camera = writer, layout, camera
        self.period_ns = int(round(1e9 / layout.rate))
        self.t_start = int(round(layout.start_time * 1e9))
        self.written, self.gt_total, self.keys = 0, 0, []
        self.skipped: dict[str, int] = {}
        self.depth_declared = False
        writer.add_topic(layout.published_image_topic,
                         COMPRESSED_TYPE if layout.compressed else IMAGE_TYPE)
        writer.add_topic(layout.info_topic, INFO_TYPE)
        writer.add_topic(layout.gt_topic, GRASP_ARRAY_TYPE)

    def skip(self, kind: str, n: int = 1) -> None:
        self.skipped[kind] = self.skipped.get(kind, 0) + n

    def __call__(self, rec: FrameRecord) -> None:
        from vita_grasp_core.data import FrameFault, get_format, load_frame

        lay = self.layout
        try:
            frame = load_frame(rec, depth=bool(lay.depth_topic)
                               and get_format(rec.format).metric_depth)
        except FrameFault as e:
            self.skip(e.kind)
            return
        for kind, _, rows in frame.faults:  # GT rows or optional files left out
            self.skip(kind, rows or 1)
        t = self.t_start + self.written * self.period_ns
        header = messages.make_header(t, lay.frame_id)
        h, wd = frame.rgb.shape[:2]
        self._image(frame.rgb, t, header)
        K = _camera_K(rec, self.camera, wd, h)
        self.w.write(lay.info_topic, t, messages.camera_info_msg(K, wd, h, header))
        self._depth(frame.depth, t, header)
        rows = np.asarray(frame.grasps, np.float64)[:, :7].copy()
        rows[:, 6] = 1.0  # object_score: GT rectangles lie on objects by construction
        self.w.write(lay.gt_topic, t, messages.grasp_array_msg(rows, header, (h, wd)))
        self.gt_total += len(rows)
        self.keys.append(rec.key)
        self.written += 1

    def _image(self, rgb, t: int, header) -> None:
        from ..image_conversions import numpy_to_image_msg, rgb_to_compressed_msg

        lay = self.layout
        msg = (rgb_to_compressed_msg(rgb, "jpeg", lay.jpeg_quality, header) if lay.compressed
               else numpy_to_image_msg(rgb, "rgb8", header))
        self.w.write(lay.published_image_topic, t, msg)

    def _depth(self, depth, t: int, header) -> None:
        from ..image_conversions import numpy_to_image_msg

        if depth is None:
            return
        if depth.dtype != np.uint16 or depth.ndim != 2:
            self.skip("bad_depth")  # not millimetres
            return
        if not self.depth_declared:
            self.w.add_topic(self.layout.depth_topic, IMAGE_TYPE)
            self.depth_declared = True
        self.w.write(self.layout.depth_topic, t, numpy_to_image_msg(depth, "16UC1", header))


def make_bag(dataset_root, out, selection: FrameSelection | None = None,
             layout: BagLayout | None = None, *, overwrite: bool = False,
             progress: bool = True) -> dict:
    """Write the frames of ``dataset_root`` chosen by ``selection`` into ``out``.

    Args:
        dataset_root: data set root (any registered layout).
        out: ``x.mcap`` / ``x.db3`` (single file) or a directory name (rosbag2 directory).
        selection: :class:`FrameSelection` (default: every frame, format detected).
        layout: :class:`BagLayout` (topics, rate, compression, storage).
    Returns:
        summary dict (``path``, ``format``, ``frames``, ``skipped``, ``topics`` with counts,
        ``gt_rects``, ``seconds``, ``scenes`` (scene ids of layouts with scenes, else ``[]``),
        ``frame_keys`` (the data set's frame key per written frame, in order)).
    Raises:
        :class:`~.types.BagError` for output problems, ``ValueError`` for bad arguments or when
        no frame can be written, ``ImportError`` without the ROS 2 message packages.
    """
    sel, lay = selection or FrameSelection(), layout or BagLayout()
    t0 = time.perf_counter()
    scan, frames = _select_frames(dataset_root, sel)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(frames), desc="bag make", unit="frame")
    with BagWriter(out, lay.storage, overwrite=overwrite) as w:
        fw = _FrameWriter(w, lay, sel.camera)
        for rec in frames:
            if bar is not None:
                bar.update(1)
            fw(rec)
        if fw.written == 0:
            raise ValueError(f"none of the {len(frames)} frames under {dataset_root} could be "
                             f"read ({fw.skipped})")
        counts = dict(w.counts)
    if bar is not None:
        bar.close()
    for kind, n in scan.faults.counts().items():
        fw.skip(kind, n)
    if fw.skipped:
        warnings.warn(f"bag make: skipped {sum(fw.skipped.values())} frame problem(s): "
                      f"{fw.skipped}", stacklevel=2)
    return {"path": str(out), "format": scan.format, "storage": storage_for(out, lay.storage)[0],
            "frames": fw.written, "skipped": fw.skipped, "topics": counts,
            "gt_rects": fw.gt_total, "scenes": scan.scene_ids, "frame_keys": fw.keys,
            "rate": lay.rate, "seconds": round(time.perf_counter() - t0, 2)}
