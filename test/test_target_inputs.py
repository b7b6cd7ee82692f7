"""The node's target inputs without a running node: vision_msgs detections (4.x and 3.x layouts),
masks, points and example pictures -> core targets, stamp matching, GetGrasps request targets
and their one-line errors."""
from __future__ import annotations

from types import SimpleNamespace as NS

import numpy as np
import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from vita_grasp_core import target_select as T  # noqa: E402
from vita_grasp_ros import target_inputs as TI  # noqa: E402


def _stamp(ns):
    return NS(sec=ns // 10**9, nanosec=ns % 10**9)


def det4(cx, cy, w, h, hyps, id=""):
    """A vision_msgs 4.x Detection2D look-alike."""
    return NS(bbox=NS(center=NS(position=NS(x=cx, y=cy), theta=0.0), size_x=w, size_y=h),
              results=[NS(hypothesis=NS(class_id=c, score=s)) for c, s in hyps], id=id)


def det3(cx, cy, w, h, hyps):
    """vision_msgs 3.x (Foxy): center is a Pose2D, hypotheses have id/score."""
    return NS(bbox=NS(center=NS(x=cx, y=cy, theta=0.0), size_x=w, size_y=h),
              results=[NS(id=c, score=s) for c, s in hyps])


def darray(dets, ns=0):
    return NS(header=NS(stamp=_stamp(ns)), detections=dets)


def settings(**kw):
    base = dict(target="none", target_class="", target_min_score=0.0, target_max_age=0.5)
    base.update(kw)
    return NS(**base)


def test_detections_both_layouts_pick_the_target_class_hypothesis():
    msg = darray([det4(100, 50, 40, 20, [("bottle", 0.9), ("cup", 0.4)], id="7"),
                  det4(300, 60, 10, 10, []), det3(200, 100, 30, 30, [("cup", 0.8)])])
    dets = TI.detections_from_msg(msg, "cup")
    assert dets[0] == T.Detection(100, 50, 40, 20, "cup", 0.4, "7")
    assert dets[1].class_id == "" and dets[1].score == 0.0
    assert dets[2] == T.Detection(200, 100, 30, 30, "cup", 0.8, "")
    assert TI.detections_from_msg(msg)[0].class_id == "bottle"  # no class: the best hypothesis


def test_masks_points_examples_and_their_errors():
    from sensor_msgs.msg import Image

    from vita_grasp_ros.image_conversions import numpy_to_image_msg

    m = np.zeros((6, 8), np.uint16)
    m[2:4, 3:5] = 513
    assert TI.mask_from_msg(numpy_to_image_msg(m, "16UC1")).sum() == 4
    with pytest.raises(T.TargetError, match="encoding 'rgb8'"):
        TI.mask_from_msg(numpy_to_image_msg(np.zeros((4, 4, 3), np.uint8), "rgb8"))
    bad = Image(height=4, width=4, encoding="mono8", step=4, data=[0] * 7)
    with pytest.raises(T.TargetError, match="bad target mask: truncated"):
        TI.mask_from_msg(bad)
    assert TI.point_from_msg(NS(x=3.0, y=4.5)) == (3.0, 4.5)
    assert TI.point_from_msg(NS(x=-1.0, y=4.0)) is None
    assert TI.point_from_msg(NS(x=float("nan"), y=4.0)) is None
    rgb = TI.example_from_msg(numpy_to_image_msg(np.full((5, 6, 3), 9, np.uint8), "bgr8"))
    assert rgb.shape == (5, 6, 3) and rgb.flags.writeable
    with pytest.raises(T.TargetError, match="bad example picture"):
        TI.example_from_msg(Image(height=0, width=4, encoding="rgb8"))
    with pytest.raises(T.TargetError, match="not a readable image"):
        TI.read_example_file("/nonexistent/cup.png")


def test_nearest_by_stamp_and_zero_stamps_hold_for_every_frame():
    items = [(1_000_000_000, "a"), (1_300_000_000, "b")]
    assert TI.nearest(items, 1_250_000_000, 0.5) == ("b", "")
    v, why = TI.nearest(items, 3_000_000_000, 0.5)
    assert v is None and "1.70 s from the frame's stamp" in why
    assert TI.nearest([(0, "fixed")], 9 * 10**18, 0.1) == ("fixed", "")
    assert TI.nearest([], 5, 1.0) == (None, "nothing received yet")


def test_target_inputs_per_frame():
    from vita_grasp_ros.image_conversions import numpy_to_image_msg

    ti = TI.TargetInputs()
    assert ti.target(settings(), 0, None) == (None, "")
    t, note = ti.target(settings(target="detections", target_class="cup"), 10**9, None)
    assert t is None and "no target detections: nothing received" in note
    ti.on_detections(darray([det4(100, 50, 40, 20, [("cup", 0.9)])], 10**9))
    t, note = ti.target(settings(target="detections", target_class="cup"), 10**9 + 10, None)
    assert note == "" and t.ids == ("cup/0",) and t.boxes == ((80, 40, 120, 60),)
    t, _ = ti.target(settings(target="detections", target_class="plate"), 10**9, None)
    assert t.boxes == () and "no detection of class 'plate'" in t.note
    mask = numpy_to_image_msg(np.ones((4, 4), np.uint8), "mono8")  # zero stamp: always valid
    ti.on_mask(mask)
    t, _ = ti.target(settings(target="mask"), 5 * 10**9, None)
    assert isinstance(t, T.MaskTarget) and t.mask.all()
    assert ti.target(settings(target="point"), 0, None)[1] == "no target point received yet"
    ti.on_point(NS(x=10.0, y=20.0, z=0.0))
    assert ti.target(settings(target="point"), 0, None)[0] == T.PointTarget(10.0, 20.0)
    with pytest.raises(T.TargetError, match="no example picture yet"):
        ti.target(settings(target="example"), 0, None)
    ti.clear()
    assert ti.target(settings(target="mask"), 0, None)[0] is None


def test_example_matcher_is_built_once_per_example():
    calls = []

    class Pred:
        def example_target(self, rgb):
            calls.append(rgb.shape)
            return object()

    ti = TI.TargetInputs()
    ti.set_example(np.zeros((4, 4, 3), np.uint8), "a")
    m = ti.matcher(Pred())
    assert ti.matcher(Pred()) is m and len(calls) == 1
    ti.set_example(np.zeros((5, 5, 3), np.uint8), "b")
    assert ti.matcher(Pred()) is not m and len(calls) == 2


def test_request_targets_and_bad_requests():
    from vita_grasp.msg import GraspTarget

    ti = TI.TargetInputs()
    s = settings()
    req = GraspTarget()
    assert TI.request_target(req, ti, s, 0, None) == (None, "", True)  # NODE, none configured
    req.kind = GraspTarget.SCENE
    assert TI.request_target(req, ti, s, 0, None)[2]
    req.kind = GraspTarget.BOX
    req.box.x_offset, req.box.y_offset, req.box.width, req.box.height = 10, 20, 30, 40
    t, _, scene = TI.request_target(req, ti, s, 0, None)
    assert not scene and t.boxes == ((9.5, 19.5, 39.5, 59.5),) and t.ids == ("box/0",)
    req.box.width = 0
    with pytest.raises(T.TargetError, match="target.box is empty"):
        TI.request_target(req, ti, s, 0, None)
    req.kind = GraspTarget.POINT
    req.point.x = -3.0
    with pytest.raises(T.TargetError, match="negative or not finite"):
        TI.request_target(req, ti, s, 0, None)
    req.kind = GraspTarget.MASK
    with pytest.raises(T.TargetError, match="target mask encoding ''"):
        TI.request_target(req, ti, s, 0, None)
    req.kind = GraspTarget.DETECTIONS
    t, note, _ = TI.request_target(req, ti, s, 0, None)
    assert t is None and "no target detections" in note
    req.kind = 42
    with pytest.raises(T.TargetError, match="unknown target.kind 42"):
        TI.request_target(req, ti, s, 0, None)
