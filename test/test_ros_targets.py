"""Target selection and grasps on request through a real node process.

A cluttered synthetic frame (several objects, instance labels) goes to the node:

- with ``target:=detections target_class:=cup`` and a detector's Detection2DArray (published by
  another process: the cup, a better-scored bottle, a low-scored cup) every grasp lies on the cup
  (its box and the object region the node computes) and the grasps - best first - are the
  on-object decoding of the same checkpoint offline;
- ``get_grasps`` answers NEWEST (scene, box, the labelled mask, a point) and NEXT requests, with
  ``stream`` on and off; bad requests get ``success: false`` and one line, and the node goes on.

vision_msgs comes from the venv (``make rostools``) or is built from its definitions (cached,
test/fixtures/vision_msgs_pkg.py); the detector is a separate process, as on a robot.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.srv")

from vita_grasp_ros.testing import (  # noqa: E402
    START_TIMEOUT,
    WAIT_TIMEOUT,
    NodeProcess,
    RosHarness,
    allocate_domain_id,
    make_stamp,
    ros_env,
    stamp_ns,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/tg"
MAX_GRASPS = 5
# the node process and this one run the same float32 model; the sub-pixel peak refinement turns
# their last-bit differences into a few thousandths of a pixel
PX_TOL = 0.05

#: A detector stand-in: publishes one Detection2DArray (JSON argv) at 10 Hz until killed.
DETECTOR = r"""
import json, sys, time, rclpy
from vision_msgs.msg import Detection2D, Detection2DArray, ObjectHypothesisWithPose
spec = json.loads(sys.argv[2])
rclpy.init()
node = rclpy.create_node("fake_detector")
pub = node.create_publisher(Detection2DArray, sys.argv[1], 10)
msg = Detection2DArray()
msg.header.stamp.sec, msg.header.stamp.nanosec = spec["stamp"]
msg.header.frame_id = "rgb_camera_link"
for d in spec["dets"]:
    det = Detection2D()
    det.bbox.center.position.x, det.bbox.center.position.y = d["cx"], d["cy"]
    det.bbox.size_x, det.bbox.size_y = d["w"], d["h"]
    hyp = ObjectHypothesisWithPose()
    hyp.hypothesis.class_id, hyp.hypothesis.score = d["cls"], d["score"]
    det.results = [hyp]
    msg.detections.append(det)
print("READY", flush=True)
while rclpy.ok():
    pub.publish(msg)
    rclpy.spin_once(node, timeout_sec=0.1)
"""


def _vision_msgs_env(env: dict) -> dict:
    """``env`` for processes that import vision_msgs (the venv's, else a cached build)."""
    try:
        import vision_msgs.msg  # noqa: F401

        return env
    except ImportError:
        pass
    from fixtures.vision_msgs_pkg import BuildUnavailable, build_vision_msgs

    try:
        prefix = build_vision_msgs()
    except BuildUnavailable as e:
        pytest.skip(str(e))
    return prefix.env(env)


def _scene(tmp):
    """A cluttered 1280x720 synthetic frame: (rgb, instance labels, the cup's id, the bottle's)."""
    import cv2

    from vita_grasp_core.data.synth import synthesize

    synthesize(tmp / "data", scenes=1, frames=1, seed=11)
    d = tmp / "data" / "scenes" / "scene_0000" / "kinect"
    rgb = cv2.cvtColor(cv2.imread(str(d / "rgb" / "0000.png")), cv2.COLOR_BGR2RGB)
    label = cv2.imread(str(d / "label" / "0000.png"), cv2.IMREAD_UNCHANGED)
    ids, counts = np.unique(label[label > 0], return_counts=True)
    assert len(ids) >= 3, "the synthetic frame should hold several objects"
    order = ids[np.argsort(-counts)]
    return rgb, label, int(order[0]), int(order[1])


def _box(label, k):
    """Detection box of object ``k``: centre and size in source pixels (pixel edges)."""
    ys, xs = np.nonzero(label == k)
    x0, x1, y0, y1 = xs.min() - 0.5, xs.max() + 0.5, ys.min() - 0.5, ys.max() + 0.5
    return {"cx": (x0 + x1) / 2, "cy": (y0 + y1) / 2, "w": x1 - x0, "h": y1 - y0}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The scene, the node (target:=detections) and a detector process, all started once."""
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image
    from vita_grasp.msg import GraspArray
    from vita_grasp.srv import GetGrasps

    tmp = tmp_path_factory.mktemp("ros_targets")
    rgb, label, cup, bottle = _scene(tmp)
    others = [k for k in np.unique(label) if k not in (0, cup, bottle)]
    ckpt = write_tiny_checkpoint(tmp / "best_model.pt")
    domain = allocate_domain_id()
    env = _vision_msgs_env(ros_env(tmp, domain))
    stamp = make_stamp(0)
    dets = [dict(_box(label, cup), cls="cup", score=0.9),
            dict(_box(label, bottle), cls="bottle", score=0.95),
            dict(_box(label, others[0]), cls="cup", score=0.3)]
    detector = subprocess.Popen(
        [sys.executable, "-c", DETECTOR, f"{NS}/target/detections",
         json.dumps({"stamp": [stamp.sec, stamp.nanosec], "dets": dets})],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", "score_threshold:=0.0",
                        "-p", f"max_grasps:={MAX_GRASPS}", "-p", "target:=detections",
                        "-p", "target_class:=cup", "-p", "target_min_score:=0.5",
                        "-p", "target_max_age:=3600.0", "-r", f"__ns:={NS}"],
                       env, tmp / "node.log")
    h = RosHarness(domain)
    try:
        w = type("World", (), {})()
        w.rgb, w.label, w.cup, w.bottle, w.stamp, w.dets = rgb, label, cup, bottle, stamp, dets
        w.ckpt, w.node, w.h = ckpt, node, h
        w.pub = h.publisher(Image, f"{NS}/image")
        w.grasps = h.subscribe(GraspArray, f"{NS}/grasps")
        w.diag = h.subscribe(DiagnosticArray, "/diagnostics")
        w.client = h.node.create_client(GetGrasps, f"{NS}/vita_grasp_node/get_grasps")
        try:
            wait_for(lambda: not node.alive() or detector.poll() is not None or (
                w.client.service_is_ready() and w.pub.get_subscription_count() > 0
                and h.node.count_publishers(f"{NS}/target/detections") > 0),
                START_TIMEOUT, what="the node, its service and the detector")
        except AssertionError as e:
            raise AssertionError(f"{e}\n--- node:\n{node.output()}") from None
        assert node.alive(), node.output()
        assert detector.poll() is None, detector.stdout.read()
        yield w
    finally:
        os.killpg(detector.pid, 9)
        detector.wait(10)
        rc = node.stop()
        h.close()
    assert rc == 0, f"node exit status {rc}\n{node.output()}"


def _image(rgb, stamp):
    from vita_grasp_ros.image_conversions import rgb_to_image_msg

    m = rgb_to_image_msg(rgb, "rgb8")
    m.header.stamp = stamp
    m.header.frame_id = "rgb_camera_link"
    return m


def _send(w, stamp, timeout=60.0, accept=lambda msg: True):
    """Publish the frame with ``stamp`` until its GraspArray comes back (with stream on) and
    ``accept`` takes it."""
    want = stamp_ns(stamp)

    def once():
        w.pub.publish(_image(w.rgb, stamp))
        try:
            return wait_for(lambda: next((m for m in w.grasps.msgs
                                          if stamp_ns(m.header.stamp) == want and accept(m)),
                                         None), 5.0)
        except AssertionError:
            return None
    return wait_for(once, timeout, interval=0.0, what=f"the result of stamp {want}")


def _offline(w, target=None):
    from vita_grasp_core import GraspPredictor

    p = GraspPredictor.from_checkpoint(w.ckpt, device="cpu", score_threshold=0.0,
                                       max_grasps=MAX_GRASPS)
    return p, p.predict(w.rgb, target)


def _map_px(pred, g):
    c, r = np.round(pred.letterbox.to_dst((g.x, g.y))).astype(int)
    return r, c


def test_detections_target_grasps_lie_on_the_cup_best_first(world):
    from vita_grasp_core.target_select import Detection, detections_target

    w = world
    # the node may take the first frame before the detector's messages reach it ("nothing
    # received yet": no grasps, as documented); the frame is sent again until they have
    out = _send(w, w.stamp, accept=lambda m: len(m.grasps) > 0)
    assert out.grasps, w.node.output()
    cup = w.dets[0]
    x0, y0 = cup["cx"] - cup["w"] / 2, cup["cy"] - cup["h"] / 2
    x1, y1 = x0 + cup["w"], y0 + cup["h"]
    target = detections_target([Detection(d["cx"], d["cy"], d["w"], d["h"], d["cls"], d["score"])
                                for d in w.dets], "cup", 0.5)
    _, ref = _offline(w, target)
    region = target.select(ref.frame()).regions[0].mask
    for g in out.grasps:
        assert g.target_id == "cup/0"
        assert x0 - 1 <= g.x <= x1 + 1 and y0 - 1 <= g.y <= y1 + 1, (g.x, g.y, (x0, y0, x1, y1))
        assert region[_map_px(ref, g)], "a grasp outside the cup's object region"
    q = [g.quality for g in out.grasps]
    assert q == sorted(q, reverse=True)
    # exactly the on-object decoding of the same checkpoint: the best on-object grasp first
    assert len(out.grasps) == len(ref.grasps)
    for g, r in zip(out.grasps, ref.grasps):
        assert (g.x, g.y) == pytest.approx((r.x, r.y), abs=PX_TOL)
        assert g.quality == pytest.approx(r.quality, abs=2e-3)


def _call(w, req, timeout=60.0):
    fut = w.client.call_async(req)
    wait_for(fut.done, timeout, what="a get_grasps answer")
    return fut.result()


def _request(kind=None, frame=0, max_grasps=0, timeout=0.0, **target):
    from vita_grasp.srv import GetGrasps

    req = GetGrasps.Request(frame=frame, max_grasps=max_grasps, timeout=timeout)
    if kind is not None:
        req.target.kind = kind
    for k, v in target.items():
        setattr(req.target, k, v)
    return req


def test_get_grasps_newest_with_targets(world):
    from vita_grasp.msg import GraspTarget

    from vita_grasp_ros.image_conversions import numpy_to_image_msg

    w = world
    _send(w, w.stamp)  # a processed newest frame: requests are decoded from its maps
    _, scene = _offline(w)
    r = _call(w, _request(GraspTarget.SCENE, max_grasps=3))
    assert r.success, r.message
    assert stamp_ns(r.grasps.header.stamp) == stamp_ns(w.stamp)
    np.testing.assert_allclose([(g.x, g.y) for g in r.grasps.grasps],
                               [(g.x, g.y) for g in scene.grasps[:3]], atol=PX_TOL)
    assert all(g.target_id == "" for g in r.grasps.grasps)

    ys, xs = np.nonzero(w.label == w.bottle)
    box = dict(x_offset=int(xs.min()), y_offset=int(ys.min()),
               width=int(xs.max() - xs.min() + 1), height=int(ys.max() - ys.min() + 1))
    req = _request(GraspTarget.BOX)
    for k, v in box.items():
        setattr(req.target.box, k, v)
    r = _call(w, req)
    assert r.success and r.grasps.grasps, r.message
    for g in r.grasps.grasps:
        assert g.target_id == "box/0"
        assert xs.min() - 1 <= g.x <= xs.max() + 1 and ys.min() - 1 <= g.y <= ys.max() + 1

    mask = ((w.label == w.cup) * 255).astype(np.uint8)
    r = _call(w, _request(GraspTarget.MASK, mask=numpy_to_image_msg(mask, "mono8")))
    assert r.success and r.grasps.grasps, r.message
    for g in r.grasps.grasps:
        assert g.target_id == "mask"
        assert w.label[int(round(g.y)), int(round(g.x))] == w.cup, "a grasp off the mask"

    r = _call(w, _request())  # NODE: the node's own target (the cup's detection)
    assert r.success and all(g.target_id == "cup/0" for g in r.grasps.grasps), r.message

    cy, cx = np.argwhere(w.label == w.cup).mean(axis=0)
    from geometry_msgs.msg import Point

    r = _call(w, _request(GraspTarget.POINT, point=Point(x=float(cx), y=float(cy), z=0.0)))
    assert r.success, r.message
    assert all(g.target_id == "point" for g in r.grasps.grasps)
    assert r.grasps.grasps or "no object under" in r.message


def _diag_count(w, key: str) -> int:
    """``key`` of the node's newest /diagnostics status (0 before the first one)."""
    from vita_grasp_ros.diagnostics import diagnostic_values

    msgs = [m for m in w.diag.msgs if m.status]
    return int(float(diagnostic_values(msgs[-1]).get(key, 0))) if msgs else 0


def test_get_grasps_bad_requests_never_stop_the_node(world):
    from geometry_msgs.msg import Point
    from vita_grasp.msg import GraspTarget

    from vita_grasp_ros.image_conversions import numpy_to_image_msg

    w = world
    _send(w, w.stamp)
    bad = [(_request(frame=7), "frame must be 0 (NEWEST) or 1 (NEXT)"),
           (_request(max_grasps=5000), "max_grasps 5000 is above 1000"),
           (_request(timeout=math.nan), "timeout must be in [0, 60]"),
           (_request(kind=42), "unknown target.kind 42"),
           (_request(GraspTarget.MASK, mask=numpy_to_image_msg(np.zeros((4, 4, 3), np.uint8),
                                                               "rgb8")),
            "target mask encoding 'rgb8'"),
           (_request(GraspTarget.MASK, mask=numpy_to_image_msg(np.ones((50, 50), np.uint8),
                                                               "mono8")),
            "not the same aspect ratio"),
           (_request(GraspTarget.POINT, point=Point(x=-1.0, y=5.0, z=0.0)),
            "negative or not finite"),
           (_request(GraspTarget.BOX), "target.box is empty"),
           (_request(GraspTarget.EXAMPLE), "bad example picture")]
    failed_before = _diag_count(w, "requests_failed")
    for req, why in bad:
        r = _call(w, req)
        assert not r.success and why in r.message and "\n" not in r.message, (why, r.message)
        assert r.grasps.grasps == []
    # /diagnostics counts them (docs/ros.md "Diagnostics")
    wait_for(lambda: _diag_count(w, "requests_failed") >= failed_before + len(bad),
             WAIT_TIMEOUT,
             what="the failed requests in /diagnostics")
    assert w.node.alive(), w.node.output()
    r = _call(w, _request(GraspTarget.SCENE))
    assert r.success and r.grasps.grasps
    assert "Traceback" not in w.node.output()


def test_get_grasps_next_frame_and_stream_off(world):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters
    from vita_grasp.msg import GraspTarget

    w = world
    setp = w.h.node.create_client(SetParameters, f"{NS}/vita_grasp_node/set_parameters")
    wait_for(setp.service_is_ready, WAIT_TIMEOUT, what="the parameter service")

    def stream(on: bool):
        req = SetParameters.Request(parameters=[Parameter(name="stream", value=ParameterValue(
            type=ParameterType.PARAMETER_BOOL, bool_value=on))])
        fut = setp.call_async(req)
        wait_for(fut.done, WAIT_TIMEOUT, what="set_parameters")
        assert fut.result().results[0].successful

    sent = []

    def newest_is_sent():  # NEWEST (with stream off the frame is only kept: predicted on request)
        # a new stamp each time: an answer on the frame just sent means every frame sent before
        # it has arrived too (one publisher, reliable, in order): none is still in flight to
        # answer a NEXT request
        sent.append(make_stamp(1))
        w.pub.publish(_image(w.rgb, sent[-1]))
        r = _call(w, _request(GraspTarget.SCENE, timeout=30.0))
        assert r.success, r.message
        return r if stamp_ns(r.grasps.header.stamp) == stamp_ns(sent[-1]) else None

    stream(False)
    try:
        r = wait_for(newest_is_sent, 60, interval=0.2, what="an answer on the kept frame")
        assert r.grasps.grasps
        fut = w.client.call_async(_request(GraspTarget.SCENE, frame=1, timeout=30.0))  # NEXT
        s2 = make_stamp(2)

        def answered():
            w.pub.publish(_image(w.rgb, s2))
            try:
                return wait_for(fut.done, 1.0)
            except AssertionError:
                return False
        wait_for(answered, 60, interval=0.0, what="the NEXT answer")
        r = fut.result()
        assert r.success and stamp_ns(r.grasps.header.stamp) == stamp_ns(s2), r.message
        # stream off: neither frame is published on grasps (results of frames sent before,
        # still in flight, may come)
        mine = {stamp_ns(s) for s in (*sent, s2)}
        assert not any(stamp_ns(m.header.stamp) in mine for m in w.grasps.msgs)
    finally:
        stream(True)
    wait_for(newest_is_sent, 60, interval=0.2, what="an answer on the last frame sent")
    r = _call(w, _request(GraspTarget.SCENE, frame=1, timeout=0.5))  # no frame comes
    assert not r.success and "no new frame arrived" in r.message
