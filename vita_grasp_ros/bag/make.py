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

import numpy as np

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


def make_bag(dataset_root, out, *, format: str = "auto", scenes=None, split=None,
             camera: str = DEFAULT_CAMERA,
             storage: str | None = None, rate: float = 5.0, compressed: bool = False,
             jpeg_quality: int = 90, max_frames: int | None = None,
             image_topic: str = IMAGE_TOPIC, info_topic: str = INFO_TOPIC,
             depth_topic: str | None = DEPTH_TOPIC, gt_topic: str = GT_TOPIC,
             frame_id: str = FRAME_ID, start_time: float = DEFAULT_START_TIME,
             overwrite: bool = False, progress: bool = True) -> dict:
    """Write the frames of ``dataset_root`` (selected by ``scenes`` and/or ``split``) into ``out``.

    Args:
        dataset_root: data set root (GraspNet ``ROOT/scenes/scene_XXXX/<camera>/...``, a Cornell
            or a Jacquard folder).
        format: ``auto`` or a registered format (``vita_grasp_core.data.format_names()``).
        scenes, split, camera: GraspNet frame selection (scene ids, split name, camera folder).
        out: ``x.mcap`` / ``x.db3`` (single file) or a directory name (rosbag2 directory).
        rate: frames per second of the header stamps and bag timestamps.
        compressed: JPEG ``CompressedImage`` on ``<image_topic>/compressed`` instead of rgb8.
        depth_topic: ``None`` leaves depth out.
        max_frames: stop after this many frames (in scene, frame order).
    Returns:
        summary dict (``path``, ``format``, ``frames``, ``skipped``, ``topics`` with counts,
        ``gt_rects``, ``seconds``, ``scenes`` (GraspNet scene ids, else ``[]``), ``frame_keys``
        (the data set's frame key per written frame, in order)).
    Raises:
        :class:`~.types.BagError` for output problems, ``ValueError`` for bad arguments or when
        no frame can be written, ``ImportError`` without the ROS 2 message packages.
    """
    from vita_grasp_core.data import FrameFault, get_format, load_frame, scan_dataset

    from ..image_conversions import numpy_to_image_msg, rgb_to_compressed_msg

    if rate <= 0:
        raise ValueError(f"rate must be > 0, got {rate}")
    if camera not in CAMERAS:
        raise ValueError(f"camera must be one of {list(CAMERAS)}, got {camera!r}")
    t0 = time.perf_counter()
    scan = scan_dataset(dataset_root, format, camera=camera, scenes=scenes, split=split)
    frames, faults, ids = scan
    if not frames:
        sel = f", scenes {list(scenes)}" if scenes is not None else ""
        where = (f" for camera {camera!r}{sel}{f', split {split}' if split else ''}"
                 if get_format(scan.format).scenes else "")
        raise ValueError(f"no frames found under {dataset_root} ({scan.format} layout){where}"
                         + (f"; {faults.summary()}" if len(faults) else ""))
    if max_frames is not None:
        frames = frames[: int(max_frames)]
    img_topic = f"{image_topic.rstrip('/')}/compressed" if compressed else image_topic
    period_ns = int(round(1e9 / rate))
    t_start = int(round(start_time * 1e9))
    skipped: dict[str, int] = {}
    written, gt_total, frame_keys = 0, 0, []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(frames), desc="bag make", unit="frame")
    with BagWriter(out, storage, overwrite=overwrite) as w:
        w.add_topic(img_topic, COMPRESSED_TYPE if compressed else IMAGE_TYPE)
        w.add_topic(info_topic, INFO_TYPE)
        w.add_topic(gt_topic, GRASP_ARRAY_TYPE)
        depth_declared = False
        for rec in frames:
            if bar is not None:
                bar.update(1)
            try:
                frame = load_frame(rec, depth=bool(depth_topic)
                                   and get_format(rec.format).metric_depth)
            except FrameFault as e:
                skipped[e.kind] = skipped.get(e.kind, 0) + 1
                continue
            rgb, gt = frame.rgb, frame.grasps
            for kind, _, rows in frame.faults:  # GT rows or optional files left out
                skipped[kind] = skipped.get(kind, 0) + (rows or 1)
            h, wd = rgb.shape[:2]
            t = t_start + written * period_ns
            header = messages.make_header(t, frame_id)
            if compressed:
                w.write(img_topic, t, rgb_to_compressed_msg(rgb, "jpeg", jpeg_quality, header))
            else:
                w.write(img_topic, t, numpy_to_image_msg(rgb, "rgb8", header))
            K = _camera_K(rec, camera, wd, h)
            w.write(info_topic, t, messages.camera_info_msg(K, wd, h, header))
            depth = frame.depth
            if depth is not None and (depth.dtype != np.uint16 or depth.ndim != 2):
                skipped["bad_depth"] = skipped.get("bad_depth", 0) + 1  # not millimetres
                depth = None
            if depth is not None:
                if not depth_declared:
                    w.add_topic(depth_topic, IMAGE_TYPE)
                    depth_declared = True
                w.write(depth_topic, t, numpy_to_image_msg(depth, "16UC1", header))
            rows = np.asarray(gt, np.float64)[:, :7].copy()
            rows[:, 6] = 1.0  # object_score: GT rectangles lie on objects by construction
            w.write(gt_topic, t, messages.grasp_array_msg(rows, header, (h, wd)))
            gt_total += len(rows)
            frame_keys.append(rec.key)
            written += 1
        if written == 0:
            raise ValueError(f"none of the {len(frames)} frames under {dataset_root} could be "
                             f"read ({skipped})")
        counts = dict(w.counts)
    if bar is not None:
        bar.close()
    for kind, n in faults.counts().items():
        skipped[kind] = skipped.get(kind, 0) + n
    if skipped:
        warnings.warn(f"bag make: skipped {sum(skipped.values())} frame problem(s): {skipped}",
                      stacklevel=2)
    return {"path": str(out), "format": scan.format, "storage": storage_for(out, storage)[0],
            "frames": written, "skipped": skipped, "topics": counts, "gt_rects": gt_total,
            "scenes": ids, "frame_keys": frame_keys, "rate": rate,
            "seconds": round(time.perf_counter() - t0, 2)}
