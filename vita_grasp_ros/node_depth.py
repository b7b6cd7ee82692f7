"""3-D poses in the grasp node: the ``depth`` and ``camera_info`` inputs, paired with each colour
frame by stamp (:mod:`.node_sync`), checked, and turned into poses with the core's
:func:`vita_grasp_core.grasp3d.grasp_poses` (CONVENTIONS §1).

A frame gets no pose (grasps are still published, ``has_pose`` false) - with a warning naming the
cause, throttled per cause - when: no depth frame or CameraInfo pairs with its stamp (see
:mod:`.node_sync`); the CameraInfo fails :func:`~vita_grasp_core.grasp3d.check_intrinsics` or has
a non-finite distortion coefficient; the depth image or CameraInfo is in another frame than the
image (``header.frame_id``, when both are set); the depth image is not of the image's size or
aspect ratio (:func:`~vita_grasp_core.grasp3d.check_size`); the depth frame cannot be read or has
no valid pixel. Poses assume a rectified image: a CameraInfo with non-zero distortion is used as is
and logged once.

CameraInfo is paired by stamp like depth. Calibrations rarely change, and a CameraInfo may come
late (DDS can hold a small message published just before a large one for seconds) or only once:
when none pairs by stamp, the newest one is used if its calibration (size, K, D, distortion
model, frame_id) equals the one received before it (or it is the only one); right after a change
only a CameraInfo paired by stamp is used.

No rclpy import: the node passes a ``subscribe(msg_type, topic, callback)`` callable.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vita_grasp_core.depth_fallback import FallbackSettings
from vita_grasp_core.depth_poses import depth_poses
from vita_grasp_core.grasp3d import (
    check_distortion,
    check_size,
    has_distortion,
    intrinsics_for_image,
)
from vita_grasp_core.grasp_depth import DepthCheckSettings

from .image_conversions import ImageConversionError, depth_msg_to_meters
from .node_support import stamp_ns
from .node_sync import Match, StampedInput
from .node_worker import FrameWorker


@dataclass(frozen=True)
class DepthUse:
    """Which depth frame and CameraInfo one colour frame's poses came from.

    Attributes:
        depth: the depth pairing (``depth.msg.header.stamp`` is the depth frame's stamp,
            ``depth.offset_s`` its offset from the image's stamp, 0.0 = exact).
        info: the CameraInfo pairing.
        info_unchanged: no CameraInfo paired by stamp, so the newest one was used: its
            calibration is the same as the one before it (see :class:`DepthInputs`).
    """

    depth: Match
    info: Match
    info_unchanged: bool = False

    @property
    def depth_stamp(self):
        """``builtin_interfaces/Time`` of the depth frame used, or None."""
        return self.depth.msg.header.stamp if self.depth.msg is not None else None


def depth_check_settings(settings) -> DepthCheckSettings:
    """The depth check's settings from the node's run-time parameters."""
    return DepthCheckSettings(
        max_opening=float(settings.gripper_max_opening),
        finger_width=float(settings.gripper_finger_width),
        finger_thickness=float(settings.gripper_finger_thickness),
        finger_length=float(settings.gripper_finger_length),
        palm_length=float(settings.gripper_palm_length),
        palm_width=float(settings.gripper_palm_width),
        margin=float(settings.grasp_margin), approach_depth=float(settings.approach_depth),
        failing=str(settings.depth_check_failing), window=int(settings.depth_window))


def _describe(m: Match) -> str:
    if m.msg is None:
        return f"none ({m.reason})"
    return (f"{'exact' if m.exact else f'{m.offset_s * 1e3:+.1f} ms'} (waited "
            f"{m.waited_s * 1e3:.0f} ms)")


class DepthInputs:
    """The node's ``depth`` + ``camera_info`` subscriptions and the poses they give.

    Args:
        warn: ``warn(key, message)``: a throttled warning (the key throttles per cause).
        info, debug: ``info(message)``, ``debug(message)``: log lines.
    """

    def __init__(self, warn, info, debug):
        self._warn = warn
        self._info = info
        self._debug = debug
        self.depth = StampedInput("depth frame")
        self.camera_info = StampedInput("CameraInfo")
        self._calibration = None  # of the newest CameraInfo
        self._calibration_changed = False
        self._told_distortion = False
        self.depth_topic = self.info_topic = ""
        self.last_use: DepthUse | None = None
        self.last_check = None  # the newest DepthCheck (depth_check)
        self._counts = {"exact": 0, "nearest": 0, "none": 0}

    def frame_worker(self, keep: int, process, on_error, settings, count_dropped) -> FrameWorker:
        """The node's worker with ``use_depth``: it holds the ``keep`` newest colour frames (and
        this input the ``keep`` newest depth frames and CameraInfos) and takes the newest frame
        that is :meth:`ready`, waiting for one at most :meth:`patience` (``settings()``: the
        node's current Settings); a frame whose depth frame was lost is passed over (its
        pairings closed, ``count_dropped(n)``)."""
        def drop(frames):
            for f in frames:
                self.close(f.pairings)
            count_dropped(len(frames))

        worker = FrameWorker(process, on_error, capacity=keep,
                             ready=lambda f: self.ready(f.pairings, settings()),
                             patience=lambda: self.patience(settings()), on_drop=drop)
        for side in (self.depth, self.camera_info):
            side.set_keep(keep)
            side.on_add = worker.wake  # a depth frame or CameraInfo arrived: look again
        return worker

    def ready(self, pairings, settings) -> bool:
        """Whether a colour frame has what its poses need now, without waiting: its depth frame
        (the exact stamp, or for unsynchronised streams the nearest within ``depth_tolerance``
        once a newer one arrived) and its CameraInfo (or a newest one whose calibration is
        unchanged)."""
        tol = float(settings.depth_tolerance)
        depth, info = pairings
        return depth.final(tol) and (info.final(tol) or (
            not self._calibration_changed and self.camera_info.newest() is not None))

    def patience(self, settings) -> float:
        """How long the worker waits for a frame that is :meth:`ready` [s]: ``depth_wait``, or
        0 while the depth stream is silent or out of step (see :class:`.StampedInput`)."""
        quiet = self.depth.silent or self.depth.out_of_step
        return 0.0 if quiet else float(settings.depth_wait)

    def subscribe(self, subscribe, image_msg_type, info_msg_type) -> None:
        """Create the two subscriptions with the node's ``subscribe(type, topic, callback)``."""
        d = subscribe(image_msg_type, "depth", self.depth.add)
        c = subscribe(info_msg_type, "camera_info", self._on_camera_info)
        self.depth_topic, self.info_topic = d.topic_name, c.topic_name

    def _on_camera_info(self, msg) -> None:
        key = (int(msg.height), int(msg.width), tuple(msg.k), tuple(msg.d),
               msg.distortion_model, msg.header.frame_id)
        self._calibration_changed = self._calibration is not None and key != self._calibration
        self._calibration = key
        self.camera_info.add(msg)

    def reset(self) -> None:
        """Forget buffered messages (the node destroyed the subscriptions)."""
        self.depth.clear()
        self.camera_info.clear()
        self._calibration, self._calibration_changed = None, False

    def _pair_info(self, pairing, tol, deadline, stop) -> tuple[Match, bool]:
        """The CameraInfo of a frame: paired by stamp, else the newest one while the
        calibration is unchanged."""
        m = self.camera_info.resolve(pairing, tol, deadline, stop)
        newest = self.camera_info.newest()
        if m.msg is not None or newest is None:
            return m, False
        if self._calibration_changed:
            return Match(None, None, m.waited_s, m.reason + "; the calibration just changed, "
                         "so only a CameraInfo with the image's stamp is used"), False
        dt = stamp_ns(newest.header.stamp) - pairing.stamp
        return Match(newest, dt / 1e9, m.waited_s), True

    def diagnostics(self) -> dict:
        """/diagnostics values: how frames were paired with depth, the last pairing."""
        use = self.last_use
        last = use.depth if use is not None else None
        return {"depth_paired_exact": self._counts["exact"],
                "depth_paired_nearest": self._counts["nearest"],
                "depth_unpaired": self._counts["none"],
                "depth_offset_ms": (last.offset_s * 1e3 if last is not None
                                    and last.offset_s is not None else float("nan")),
                "depth_wait_ms": last.waited_s * 1e3 if last is not None else float("nan")}

    def open(self, stamp: int):
        """Pairings for a colour frame stamped ``stamp`` [ns] (call when it arrives)."""
        return self.depth.open(stamp), self.camera_info.open(stamp)

    def close(self, pairings) -> None:
        if pairings is not None:
            self.depth.close(pairings[0])
            self.camera_info.close(pairings[1])

    def _no_pose(self, key: str, reason: str) -> None:
        self._warn(f"depth:{key}", f"use_depth: {reason}; publishing grasps without poses")

    def poses(self, grasps, header, image_size, settings, pairings, deadline, stop=None):
        """``(grasps, poses or None, DepthUse)`` for the grasps of one frame (its ``header``,
        ``image_size`` (h, w)); waits for the paired messages until ``deadline``. With
        ``depth_check`` the grasps come back refined and re-ordered (:meth:`poses_from`)."""
        tol = float(settings.depth_tolerance)
        depth = self.depth.resolve(pairings[0], tol, deadline, stop)
        use = DepthUse(depth, *self._pair_info(pairings[1], tol, deadline, stop))
        self.last_use = use
        self._debug(f"frame {header.stamp.sec}.{header.stamp.nanosec:09d}: "
                    f"depth {_describe(use.depth)}; CameraInfo {_describe(use.info)}"
                    + (" (newest, calibration unchanged)" if use.info_unchanged else ""))
        self._counts["none" if use.depth.msg is None else
                     "exact" if use.depth.exact else "nearest"] += 1
        return (*self.poses_from(use, grasps, header, image_size, settings), use)

    def poses_from(self, use: DepthUse, grasps, header, image_size, settings):
        """``(grasps, poses or None)``: the 3-D poses of ``grasps`` from the depth frame and
        CameraInfo a frame was paired with (``use``), or None (warned): the frame's own grasps,
        or others decoded later from its maps (the get_grasps service). With ``depth_check``
        the grasps are first checked against the depth image
        (:func:`vita_grasp_core.grasp_depth.check_grasps`: openings fitted to the object,
        fingers on free space, failing grasps demoted, too-wide ones dropped): the grasps
        returned are the refined ones, best first."""
        if use.info.msg is None:
            self._no_pose("info", f"{use.info.reason} (on {self.info_topic})")
            return grasps, None
        K = self._intrinsics(use.info.msg, header, image_size)
        if K is None:
            return grasps, None
        if use.depth.msg is None:
            self._no_pose("sync", f"{use.depth.reason} (on {self.depth_topic})")
            return grasps, None
        depth = self._depth(use.depth.msg, header, image_size)
        if depth is None:
            return grasps, None
        fallback = settings.depth_fallback and settings.target == "none"
        out = depth_poses(grasps, depth, K, image_size,
                          check=depth_check_settings(settings) if settings.depth_check else None,
                          approach=settings.approach,
                          fallback=FallbackSettings() if fallback else None,
                          window=int(settings.depth_window))
        if out.fallback_note:
            self._debug(out.fallback_note)
        if out.check is not None:
            self.last_check = out.check
            self._debug(f"depth check: {out.check.summary()}" + "".join(
                f"; grasp {c.rank}: {c.status} {c.note}"
                for c in out.check.kept + out.check.dropped if c.note))
        grasps, poses = out.grasps, out.poses
        if out.approach_note.startswith("camera axis:") and poses:  # no table plane here
            self._warn("depth:approach", f"approach {settings.approach}: "
                       f"{out.approach_note.split(': ', 1)[1]}; poses approach along the "
                       "camera axis")
        if poses and all(p is None for p in poses):
            self._no_pose("holes", f"no valid depth within depth_window {settings.depth_window} "
                                   f"of any of the {len(poses)} grasps")
        return grasps, poses

    def _frame_mismatch(self, what: str, frame_id: str, header) -> str | None:
        if frame_id and header.frame_id and frame_id != header.frame_id:
            return (f"the {what} is in frame '{frame_id}', the image in '{header.frame_id}' "
                    "(a depth image must be registered to the colour image)")
        return None

    def _intrinsics(self, info, header, image_size):
        """K at the image size, or None (warned)."""
        reason = self._frame_mismatch("CameraInfo", info.header.frame_id, header)
        if reason:
            self._no_pose("info_frame", reason)
            return None
        K, reason = intrinsics_for_image(info.k, (int(info.height), int(info.width)),
                                         image_size)
        reason = reason or check_distortion(info.d)
        if reason:  # throttled per cause: a constant bad CameraInfo warns every 5 s
            self._no_pose(f"k:{reason}", f"CameraInfo rejected: {reason}")
            return None
        if has_distortion(info.d) and not self._told_distortion:
            self._told_distortion = True
            self._info(f"the CameraInfo on {self.info_topic} has non-zero distortion "
                       f"({info.distortion_model or 'unnamed model'}): poses assume a "
                       "rectified image (subscribe image_rect / depth_rect for exact poses)")
        return K

    def _depth(self, msg, header, image_size):
        """The depth frame in metres, or None (warned)."""
        reason = self._frame_mismatch("depth image", msg.header.frame_id, header)
        if reason:
            self._no_pose("depth_frame", reason)
            return None
        reason = check_size("depth image", (int(msg.height), int(msg.width)), image_size)
        if reason:
            self._no_pose(f"depth_size:{reason}", f"depth frame refused: {reason}")
            return None
        try:
            depth = depth_msg_to_meters(msg)
        except ImageConversionError as e:
            self._no_pose("bad", f"bad depth frame refused: {e}")
            return None
        if not np.isfinite(depth).any():
            self._no_pose("empty", f"the depth frame on {self.depth_topic} has no valid "
                                   "pixel (all 0, NaN or inf)")
            return None
        return depth
