"""``vita-grasp doctor``'s checks: is this camera set up the way the grasp node needs it?

Pure numpy / OpenCV, no ROS: a :class:`Recording` (message headers of the colour, depth and
CameraInfo streams plus a few decoded frames, filled by the ROS adapter from a bag or live
topics) goes in, a list of :class:`Verdict` (pass / warn / fail, each with a one-line fix) and an
overlay picture come out. See docs/ros.md, "Camera check".

Modules: :mod:`.streams` (topics, encodings, rates, stamps, frame ids, intrinsics),
:mod:`.frames` (exposure, depth unit, registration, table plane, grasps), :mod:`.registration`
(depth outlines against colour edges), :mod:`.depth` (unit guesses, plane fit),
:mod:`.overlay` (the picture), :mod:`.run` (all checks in order).
"""
from .recording import (
    COLOR,
    DEPTH,
    INFO,
    CameraInfoMessage,
    FrameSample,
    Recording,
    StreamMessage,
)
from .run import Report, run_checks
from .verdict import FAIL, PASS, SKIP, WARN, Verdict, exit_status, format_table, worst

__all__ = ["COLOR", "DEPTH", "INFO", "CameraInfoMessage", "FrameSample", "Recording",
           "StreamMessage", "Report", "run_checks", "FAIL", "PASS", "SKIP", "WARN", "Verdict",
           "exit_status", "format_table", "worst"]
