"""The node with ``use_compressed`` and ``use_depth``: jpeg input (corrupt jpeg refused), 3-D poses
from a registered depth image + CameraInfo (CONVENTIONS §1: median depth, back-projection with K,
rotation about +z by the angle, ``width_m = width * z / fx``), RViz markers, depth pairing by
stamp."""
from __future__ import annotations

import time
from array import array

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from ros_depth_frames import CX, CY, FX, FY, Z_MM, camera_info, check_poses, depth_msg, jpeg_msg  # noqa: E402
from test_ros_image_conversions import _png_declaring  # noqa: E402

from vita_grasp_ros.testing import (  # noqa: E402
    START_TIMEOUT,
    WAIT_TIMEOUT,
    NodeProcess,
    RosHarness,
    allocate_domain_id,
    make_stamp,
    ros_env,
    stamp_ns,
    until_answered,
    wait_for,
    write_tiny_checkpoint,
)

pytestmark = [pytest.mark.ros, pytest.mark.slow]

NS = "/d"
DEPTH_WAIT = 2.0


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import CameraInfo, CompressedImage, Image
    from visualization_msgs.msg import MarkerArray
    from vita_grasp.msg import GraspArray

    tmp = tmp_path_factory.mktemp("ros_depth")
    ckpt = write_tiny_checkpoint(tmp / "best_model.pt")
    domain = allocate_domain_id()
    node = NodeProcess(["-p", f"checkpoint:={ckpt}", "-p", "use_compressed:=true",
                        "-p", "use_depth:=true", "-p", "score_threshold:=0.0",
                        "-p", "depth_window:=5", "-p", "diagnostics_period:=0.2",
                        # the node waits up to depth_wait for the depth frame of the image's stamp
                        # (generous here, where a loaded CI machine may deliver 600 kB late); a
                        # wide tolerance: older depth frames within it must still lose
                        "-p", f"depth_wait:={DEPTH_WAIT}", "-p", "depth_tolerance:=0.5",
                        "-r", f"__ns:={NS}", "--log-level", "d.vita_grasp_node:=debug"],
                       ros_env(tmp, domain), tmp / "node.log")
    h = RosHarness(domain)
    try:
        s = type("S", (), {})()
        s.node, s.h = node, h
        s.img = h.publisher(CompressedImage, f"{NS}/image/compressed")
        s.depth = h.publisher(Image, f"{NS}/depth")
        s.info = h.publisher(CameraInfo, f"{NS}/camera_info")
        s.grasps = h.subscribe(GraspArray, f"{NS}/grasps")
        s.markers = h.subscribe(MarkerArray, f"{NS}/markers")
        s.diag = h.subscribe(DiagnosticArray, "/diagnostics")
        wait_for(lambda: not node.alive() or all(p.get_subscription_count() > 0
                                                 for p in (s.img, s.depth, s.info)),
                 START_TIMEOUT, what="the node")
        assert node.alive(), node.output()
        _warm_up(s)
        yield s
    finally:
        rc = node.stop()
        h.close()
    assert rc == 0, node.output()


def _warm_up(s, timeout=START_TIMEOUT):
    """Until one frame comes back with poses: the publisher seeing a subscription does not mean
    the node's readers have matched our writers yet, and messages sent before that are lost.

    CameraInfo goes after the images, as image_transport's CameraPublisher sends it: Fast DDS
    was measured here to hold a small message published just before a large one for up to its
    3 s heartbeat."""
    def send():
        stamp = make_stamp()
        s.depth.publish(depth_msg(stamp))
        s.img.publish(jpeg_msg(stamp, seed=99))
        s.info.publish(camera_info(stamp))
        return stamp

    def with_poses(stamp):
        want = stamp_ns(stamp)
        out = next((m for m in s.grasps.msgs if stamp_ns(m.header.stamp) == want), None)
        return out is not None and out.grasps and all(g.has_pose for g in out.grasps)
    until_answered(send, with_poses, timeout, what="a result with poses (warm-up)")


def _result(s, stamp, timeout=WAIT_TIMEOUT):
    want = stamp_ns(stamp)
    return wait_for(lambda: next((m for m in s.grasps.msgs if stamp_ns(m.header.stamp) == want),
                                 None), timeout, what=f"the result for {want}")


def _send_depth(setup, d, seed):
    """One frame with the 16UC1 depth ``d`` [mm]: depth, jpeg and CameraInfo with one stamp;
    ``(its result, the depth message)``."""
    from vita_grasp_ros.image_conversions import numpy_to_image_msg

    stamp = make_stamp()
    m = numpy_to_image_msg(d, "16UC1")
    m.header.stamp, m.header.frame_id = stamp, "rgb_camera_link"
    setup.depth.publish(m)
    setup.img.publish(jpeg_msg(stamp, seed=seed))
    setup.info.publish(camera_info(stamp))
    return _result(setup, stamp), m


@pytest.mark.parametrize("encoding", ["16UC1", "32FC1"])
def test_depth_gives_poses_and_markers(setup, encoding):
    stamp = make_stamp()
    setup.depth.publish(depth_msg(stamp, encoding=encoding))
    setup.img.publish(jpeg_msg(stamp))
    setup.info.publish(camera_info(stamp))
    out = _result(setup, stamp)
    assert out.header.frame_id == "rgb_camera_link"
    assert (out.image_height, out.image_width) == (480, 640)
    check_poses(out)
    ma = wait_for(lambda: next((m for m in setup.markers.msgs
                                if m.markers and m.markers[0].header.stamp == stamp), None),
                  WAIT_TIMEOUT, what="markers")
    from visualization_msgs.msg import Marker

    assert ma.markers[0].action == Marker.DELETEALL
    lines = ma.markers[1:]
    assert len(lines) == len(out.grasps)
    for mk, g in zip(lines, out.grasps):
        assert mk.type == Marker.LINE_LIST and len(mk.points) % 2 == 0
        assert mk.pose.position.z == pytest.approx(g.pose.position.z)
        xs = sorted({round(p.x, 6) for p in mk.points})
        assert xs[-1] - xs[0] == pytest.approx(max(g.width_m, 0.005), rel=1e-3)


def test_depth_and_camera_info_at_other_resolutions(setup):
    """Half-resolution depth and a CameraInfo for 2x the image size still give exact poses."""
    stamp = make_stamp()
    setup.depth.publish(depth_msg(stamp, 240, 320))
    setup.img.publish(jpeg_msg(stamp, seed=1))
    setup.info.publish(camera_info(stamp, scale=2.0))
    check_poses(_result(setup, stamp))


def test_no_matching_depth_means_no_pose(setup):
    stamp = make_stamp()
    stamp.sec += 3  # seconds away from every depth frame sent so far
    old = make_stamp()
    old.sec -= 5  # 8 s away from the image: outside depth_tolerance
    setup.depth.publish(depth_msg(old))
    setup.img.publish(jpeg_msg(stamp, seed=2))
    out = _result(setup, stamp)
    assert out.grasps and not any(g.has_pose for g in out.grasps)
    assert all(g.width_m == 0.0 for g in out.grasps)
    assert (out.depth_stamp.sec, out.depth_stamp.nanosec) == (0, 0)  # no depth frame used


@pytest.mark.parametrize("info,cause", [
    (dict(k=[1e-30, 0.0, CX, 0.0, 1e-30, CY, 0.0, 0.0, 1.0]), "fx = 1e-30 px is implausible"),
    (dict(k=[FX, 5.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]), "K has skew K[0][1] = 5"),
    (dict(k=[FX, 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 2.0]), "K's bottom row is (0, 0, 2)"),
    (dict(d=[float("nan"), 0.0, 0.0, 0.0, 0.0]), "distortion coefficient D[0] is NaN"),
    (dict(frame_id="other_camera_link"), "the CameraInfo is in frame 'other_camera_link'"),
    (dict(h=4_000_000_000, w=4_000_000_000), "CameraInfo size 4000000000x4000000000 is"),
    (dict(h=720, w=1280), "CameraInfo aspect ratio 1.778 (1280x720) differs"),
    (dict(k=[float("nan"), 0.0, CX, 0.0, FY, CY, 0.0, 0.0, 1.0]), "fx is NaN"),
])
def test_bad_intrinsics_never_give_a_pose(setup, info, cause):
    """Issue 12's hostile CameraInfos: grasps come without poses and a warning names the cause;
    a good CameraInfo afterwards gives poses again."""
    def send(stamp):
        setup.depth.publish(depth_msg(stamp))
        setup.img.publish(jpeg_msg(stamp, seed=5))
        setup.info.publish(camera_info(stamp, **info))
    _wait_for_warning(setup, cause, send)
    # from now on the node holds the bad CameraInfo: no pose, whatever the depth says
    stamp = make_stamp()
    setup.depth.publish(depth_msg(stamp))
    setup.img.publish(jpeg_msg(stamp, seed=6))
    out = _result(setup, stamp)
    assert out.grasps and not any(g.has_pose for g in out.grasps)
    assert all(g.width_m == 0.0 for g in out.grasps)
    _warm_up(setup)  # a good CameraInfo: poses again


def test_all_invalid_depth_warns(setup):
    def send(stamp):
        setup.depth.publish(depth_msg(stamp, encoding="32FC1", fill=np.nan))
        setup.img.publish(jpeg_msg(stamp, seed=8))
        setup.info.publish(camera_info(stamp))
    out, _ = _wait_for_warning(setup, "has no valid pixel", send)
    assert out.grasps and not any(g.has_pose for g in out.grasps)
    _warm_up(setup)


def test_corrupt_compressed_frames_are_refused(setup):
    from sensor_msgs.msg import CompressedImage

    from vita_grasp_ros.diagnostics import diagnostic_values

    def n_bad():
        vals = [diagnostic_values(d) for d in setup.diag.msgs]
        vals = [v for v in vals if "frames_bad" in v]
        return int(vals[-1]["frames_bad"]) if vals else None

    good = jpeg_msg(make_stamp(), seed=3)
    corrupt = []
    m = CompressedImage(format="jpeg")
    m.data = array("B", np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    corrupt.append(m)
    m = CompressedImage(format="jpeg")  # jpeg with its header destroyed
    m.data = array("B", b"\x00" * 64 + bytes(good.data)[64:])
    corrupt.append(m)
    # a few kB declaring 17000 x 17000: refused unread (before the empty frame: both are kind
    # "size", whose warnings are throttled together)
    m = CompressedImage(format="png")
    m.data = array("B", _png_declaring(17000, 17000))
    corrupt.append(m)
    corrupt.append(CompressedImage(format="jpeg"))  # empty
    corrupt.append(CompressedImage(format="16UC1; compressedDepth", data=good.data))
    for k, c in enumerate(corrupt):
        before = wait_for(lambda: n_bad() is not None and [n_bad()], WAIT_TIMEOUT,
                          what="diagnostics")[0]
        c.header.stamp = make_stamp()
        setup.img.publish(c)
        wait_for(lambda: n_bad() > before, WAIT_TIMEOUT,
                 what=f"corrupt frame {k} counted as bad")
        stamp = make_stamp()
        setup.img.publish(jpeg_msg(stamp, seed=10 + k))
        assert _result(setup, stamp).image_width == 640
    assert setup.node.alive()
    log = setup.node.output()
    assert "corrupt or undecodable compressed image" in log
    assert "compressedDepth" in log
    assert "png header declares 17000x17000, more than 16384 px per side" in log


def _set_param(setup, name: str, value) -> None:
    (res,) = setup.h.set_params(f"{NS}/vita_grasp_node", START_TIMEOUT, **{name: value})
    assert res.successful, res.reason


def test_the_depth_check_is_the_cores_and_can_be_turned_off(setup, request):
    """Bars 4 cm wide, 4 cm high on the table: with depth_check off the node publishes the
    model's grasps; on (the default), exactly what vita_grasp_core.grasp_depth.check_grasps
    makes of those grasps on the same depth frame (refined, re-ordered), with the contract
    (width_m = width * z / fx) intact."""
    from vita_grasp_core.grasp import Grasp
    from vita_grasp_core.grasp_depth import check_grasps
    from vita_grasp_ros.image_conversions import depth_msg_to_meters

    d = np.full((480, 640), Z_MM, np.uint16)
    x = (np.arange(640) - CX) * (Z_MM - 40) / FX  # [mm] on top of the bars
    d[:, (np.abs(x) % 100) < 20] = Z_MM - 40  # a 40 mm bar every 100 mm

    _set_param(setup, "depth_check", False)
    request.addfinalizer(lambda: _set_param(setup, "depth_check", True))
    raw, m = _send_depth(setup, d, seed=5)
    _set_param(setup, "depth_check", True)
    out, _ = _send_depth(setup, d, seed=5)
    K = np.array(camera_info(make_stamp()).k).reshape(3, 3)
    grasps = [Grasp(g.x, g.y, g.angle, g.width, g.height, g.quality, g.object_score)
              for g in raw.grasps]
    want = check_grasps(grasps, depth_msg_to_meters(m), K, (480, 640))
    got = np.array([(g.x, g.y, g.angle, g.width, g.width_m) for g in out.grasps])
    expected = np.array([(c.grasp.x, c.grasp.y, c.grasp.angle, c.grasp.width, c.pose.width_m)
                         for c in want.kept])
    assert got.shape == expected.shape and len(got)
    np.testing.assert_allclose(got, expected, atol=1e-3)
    assert any(c.note for c in want.kept)  # the check changed something here
    for g in out.grasps:
        assert g.width_m == pytest.approx(g.width * g.pose.position.z / FX, rel=1e-4)


@pytest.mark.parametrize("older_ms,older_mm,late_s", [
    (33, 900, 0.8),  # the frame before (within the tolerance) is there; the exact one is late
    (400, 1200, 1.0),  # the previous scene's depth (within 0.5 s) is there
    (None, None, 0.8),  # a camera publishing one frame on request: quiet for 3 s before
])
def test_the_depth_frame_of_the_image_stamp_is_waited_for(setup, older_ms, older_mm, late_s,
                                                           request):
    """Constant-depth frames of different values make a wrong pairing visible: the depth frame
    with the image's stamp arrives after the image (a driver publishing back to back on a
    loaded machine) while an older one within depth_tolerance is already there; the pose must
    come from the exact one, and the result says which depth frame it used. depth_wait 10 s:
    the node waits for the exact one however long the transport holds it (a loaded machine's
    DDS was seen to deliver a depth frame seconds late); it comes sooner and ends the wait."""
    _warm_up(setup)  # from a known state: frames sent without depth before make it 'silent'
    _set_param(setup, "depth_wait", 10.0)
    request.addfinalizer(lambda: _set_param(setup, "depth_wait", float(DEPTH_WAIT)))
    if older_ms is None:
        time.sleep(3.0)  # nothing published for a while, on purpose
    stamp = make_stamp()
    if older_ms is not None:
        older = make_stamp()
        older.sec, older.nanosec = divmod(stamp_ns(stamp) - older_ms * 1_000_000,
                                          1_000_000_000)
        setup.depth.publish(depth_msg(older, z_mm=older_mm))
    setup.img.publish(jpeg_msg(stamp, seed=20))
    setup.info.publish(camera_info(stamp))
    time.sleep(late_s)  # the exact depth frame comes late (longer than a prediction), on purpose
    setup.depth.publish(depth_msg(stamp, z_mm=650))
    out = _result(setup, stamp)
    check_poses(out, z=0.65)
    assert out.depth_stamp == stamp  # which depth frame the poses came from


def test_camera_info_is_matched_by_stamp_not_latest_wins(setup):
    """A newer CameraInfo (another calibration) arrives before the frame is processed: the
    frame's own CameraInfo (same stamp) is used."""
    s1, s2 = make_stamp(), make_stamp()
    setup.depth.publish(depth_msg(s1))
    setup.img.publish(jpeg_msg(s1, seed=21))
    setup.info.publish(camera_info(s1))
    k2 = [700.0, 0.0, 300.0, 0.0, FY, CY, 0.0, 0.0, 1.0]
    setup.info.publish(camera_info(s2, k=k2))
    check_poses(_result(setup, s1))
    # and the frame of the new calibration uses the new one
    setup.depth.publish(depth_msg(s2))
    setup.img.publish(jpeg_msg(s2, seed=22))
    check_poses(_result(setup, s2), fx=700.0, cx=300.0)
    _warm_up(setup)


def _wait_for_warning(setup, text, send, timeout=60):
    """Send frames (``send(stamp)``) until the node logs ``text``; the last frame's result."""
    log0 = len(setup.node.output())

    def attempt():
        stamp = make_stamp()
        send(stamp)
        out = _result(setup, stamp)
        return _warnings(setup, text, log0) and out
    out = wait_for(attempt, timeout, interval=0.0, what=f"the warning {text!r}")
    line = _warnings(setup, text, log0)[0]
    assert "publishing grasps without poses" in line
    return out, line


def _warnings(setup, text, log0=0):
    return [ln for ln in setup.node.output()[log0:].splitlines()
            if text in ln and ln.startswith("[WARN]")]


@pytest.mark.parametrize("depth,cause", [
    (dict(h=1, w=1), "depth image size 1x1 is implausible for a 640x480 image"),
    (dict(h=100, w=100), "depth image aspect ratio 1 (100x100) differs"),
    (dict(h=10, w=10000), "depth image size 10000x10 is implausible"),
    (dict(h=360, w=640), "depth image aspect ratio 1.778 (640x360) differs"),
    (dict(frame_id="depth_camera_link"), "the depth image is in frame 'depth_camera_link'"),
])
def test_depth_of_another_shape_or_frame_never_gives_a_pose(setup, depth, cause):
    def send(stamp):
        setup.img.publish(jpeg_msg(stamp, seed=23))
        setup.info.publish(camera_info(stamp))
        setup.depth.publish(depth_msg(stamp, **depth))
    out, _ = _wait_for_warning(setup, cause, send)
    assert out.grasps and not any(g.has_pose for g in out.grasps)
    assert all(g.width_m == 0.0 for g in out.grasps)
    _warm_up(setup)


def test_a_late_depth_frame_is_reported_without_blaming_the_stamps(setup):
    """depth_wait 0.05 s, only an older depth frame there and the image's own one not arriving
    in time: no pose, and the warning says it is late, not that the streams are out of
    step."""
    _set_param(setup, "depth_wait", 0.05)
    try:
        def send(stamp):
            old = make_stamp()
            old.sec -= 2
            setup.depth.publish(depth_msg(old))
            setup.img.publish(jpeg_msg(stamp, seed=24))
            setup.info.publish(camera_info(stamp))
        out, line = _wait_for_warning(setup, "no depth frame with the image's stamp arrived "
                                      "within depth_wait", send)
        assert "not in step" not in line
        assert out.grasps and not any(g.has_pose for g in out.grasps)
    finally:
        _set_param(setup, "depth_wait", float(DEPTH_WAIT))
    _warm_up(setup)


def test_diagnostics_say_how_frames_were_paired_with_depth(setup):
    from vita_grasp_ros.diagnostics import diagnostic_values

    _warm_up(setup)  # a frame with its exact depth frame

    def latest():
        vals = [diagnostic_values(d) for d in setup.diag.msgs]
        vals = [v for v in vals if "depth_paired_exact" in v]
        return vals[-1] if vals and int(vals[-1]["depth_paired_exact"]) > 0 else None
    vals = wait_for(latest, WAIT_TIMEOUT, what="diagnostics with the depth pairing")
    for key in ("depth_paired_nearest", "depth_unpaired", "depth_wait_ms"):
        assert key in vals
    wait_for(lambda: latest()["depth_offset_ms"] == "0.00", WAIT_TIMEOUT,
             what="the exact pairing of the last frame")


def test_approach_table_turns_the_poses_onto_the_table_normal(setup, request):
    """A table tilted 15 degrees to the camera: approach:=table publishes poses along its normal
    (position and width_m as the convention gives them); camera, the default, the optical axis."""
    n = np.array([0.0, np.sin(np.radians(15)), np.cos(np.radians(15))])
    v, u = np.mgrid[0:480, 0:640]
    rays = np.stack([(u - CX) / FX, (v - CY) / FY, np.ones((480, 640))], -1)
    d = np.round(Z_MM * n[2] / (rays @ n)).astype(np.uint16)  # Z_MM on the optical axis

    def approaches():
        out = [g for g in _send_depth(setup, d, seed=7)[0].grasps if g.has_pose]
        assert out
        for g in out:
            assert g.width_m == pytest.approx(g.width * g.pose.position.z / FX, rel=1e-4)
        q = [g.pose.orientation for g in out]  # the pose's +z axis (third rotation column)
        return [np.array([2 * (o.x * o.z + o.y * o.w), 2 * (o.y * o.z - o.x * o.w),
                          1 - 2 * (o.x * o.x + o.y * o.y)]) for o in q]

    request.addfinalizer(lambda: _set_param(setup, "approach", "camera"))
    _set_param(setup, "approach", "table")
    assert all(np.degrees(np.arccos(min(1.0, z @ n))) < 1.0 for z in approaches())
    _set_param(setup, "approach", "camera")
    assert all(z[2] > 1 - 1e-9 for z in approaches())


def test_depth_fallback_publishes_a_grasp_where_the_model_has_none(setup, request):
    """score_threshold 1: the model has no grasp; with depth_fallback:=true the node publishes
    one from depth alone on the box standing on the table (quality 0, posed on its top)."""
    d = np.full((480, 640), Z_MM, np.uint16)
    d[200:240, 330:390] = Z_MM - 25  # a box 6 x 4 cm (at 0.8 m), 2.5 cm high

    request.addfinalizer(lambda: setup.h.set_params(
        f"{NS}/vita_grasp_node", START_TIMEOUT, score_threshold=0.0, depth_fallback=False))
    _set_param(setup, "score_threshold", 1.0)
    assert _send_depth(setup, d, seed=3)[0].grasps == []  # off by default
    _set_param(setup, "depth_fallback", True)
    (g,) = _send_depth(setup, d, seed=3)[0].grasps
    assert g.quality == 0.0 and g.has_pose and 330 <= g.x <= 390 and 200 <= g.y <= 240
    assert abs(abs(g.angle) - np.pi / 2) < 0.2  # across the 4 cm side
    assert g.pose.position.z == pytest.approx((Z_MM - 25) / 1000.0, abs=0.003)
