"""The camera check's pure functions (vita_grasp_core.camera_check, no ROS): depth unit guesses,
the table plane, depth-to-colour registration, stream checks on headers, exposure, verdicts.

Scenes are ray-cast by test/fixtures/camera_scenes.py (colour and metric depth from the same
rays: registered by construction) or drawn by the project's synthetic data generator.
"""
from __future__ import annotations

import numpy as np
import pytest
from fixtures.camera_bags import shifted, zoomed
from fixtures.camera_scenes import kinect_like_K, render

from vita_grasp_core.camera_check import (
    COLOR,
    DEPTH,
    FAIL,
    INFO,
    PASS,
    SKIP,
    WARN,
    CameraInfoMessage,
    FrameSample,
    Recording,
    StreamMessage,
    exit_status,
    format_table,
    frames,
    run_checks,
    streams,
)
from vita_grasp_core.camera_check import depth as D
from vita_grasp_core.camera_check.verdict import verdict

T0 = 1_700_000_000_000_000_000


@pytest.fixture(scope="module")
def scenes():
    """Rendered once per module: (name -> Scene)."""
    return {"flat": render((240, 320), seed=3),
            "flat_vga": render((480, 640), seed=5, distance=0.65),
            "tilt40": render((240, 320), seed=3, tilt_deg=40, distance=0.6),
            "empty": render((240, 320), seed=3, n_objects=0),
            "side": render((240, 320), seed=3, offset=(0.04, 0.0, 0.0)),
            "wide": render((240, 320), seed=3, K=kinect_like_K((240, 320), 115.0))}


def _sample(scene, depth=None, K=None, **kw):
    K = scene.K if K is None else K
    h, w = scene.rgb.shape[:2]
    info = CameraInfoMessage(T0, T0, "cam", w, h, tuple(np.asarray(K).reshape(-1)))
    return FrameSample(T0, scene.rgb, scene.depth_m if depth is None else depth, "32FC1", T0,
                       info, **kw)


# --------------------------------------------------------------------------- verdicts
def test_exit_status_and_table():
    vs = [verdict("a", PASS, "ok"), verdict("b", WARN, "meh", "do x"),
          verdict("c", SKIP, "no input")]
    assert exit_status(vs) == 1 and exit_status(vs, "fail") == 0
    assert exit_status(vs + [verdict("d", FAIL, "bad", "do y")], "fail") == 1
    assert exit_status([verdict("a", PASS, "ok"), verdict("c", SKIP, "x")]) == 0
    table = format_table(vs)
    assert "WARN" in table and "fix: do x" in table and "fix:" not in table.splitlines()[1]
    with pytest.raises(ValueError):
        verdict("a", "great", "x")


# --------------------------------------------------------------------------- depth unit
@pytest.mark.parametrize("median_m, encoding, status, words", [
    (0.7, "32FC1", None, ()),
    (0.7, "16UC1", None, ()),
    (700.0, "32FC1", FAIL, ("look like mm", "multiply the values by 0.001")),   # mm read as m
    (1250.0, "32FC1", FAIL, ("look like mm",)),
    (0.0009, "16UC1", FAIL, ("look like m", "multiply the values by 1000")),  # m as integers
    (6.5, "16UC1", FAIL, ("look like 0.1 mm",)),
    (45.0, "32FC1", FAIL, ("look like cm",)),
    (5.0, "32FC1", WARN, ("far for a tabletop",)),
    (0.01, "32FC1", FAIL, ("implausible",)),
])
def test_depth_unit_guesses(median_m, encoding, status, words):
    got = D.depth_unit_problem(median_m, encoding)
    if status is None:
        assert got is None
        return
    assert got[0] == status
    for w in words:
        assert w in " ".join(got[1:]), got


def test_depth_check_on_frames(scenes):
    sc = scenes["flat"]
    v = frames.check_depth([_sample(sc)])
    assert v.status == PASS and "median 0.70 m" in v.finding
    v = frames.check_depth([_sample(sc, depth=sc.depth_m * 1000.0)])  # 32FC1 holding mm
    assert v.status == FAIL and "look like mm" in v.finding
    holes = sc.depth_m.copy()
    holes[:, : int(0.7 * holes.shape[1])] = np.nan
    assert frames.check_depth([_sample(sc, depth=holes)]).status == WARN
    assert frames.check_depth([_sample(sc, depth=np.full_like(holes, np.nan))]).status == FAIL


# --------------------------------------------------------------------------- table plane
@pytest.mark.parametrize("tilt", [0.0, 18.0, 29.0, 31.0, 45.0])
def test_plane_tilt_and_distance(tilt):
    sc = render((240, 320), seed=int(tilt), tilt_deg=tilt, yaw_deg=2 * tilt, distance=0.7,
                noise_m=0.004, holes=0.03)
    p = D.fit_plane(sc.depth_m, sc.K)
    assert abs(p.tilt_deg - tilt) < 1.0
    assert abs(p.distance - sc.table_distance) < 0.01
    assert p.inlier_fraction > 0.5


def test_table_check_warns_on_a_tilted_view_only(scenes):
    v, plane = frames.check_table([_sample(scenes["flat"])])
    assert v.status == PASS and plane.tilt_deg < 1
    assert "approach:=table" not in v.finding
    v, _ = frames.check_table([_sample(scenes["tilt40"])])
    assert v.status == WARN and "tilted 40" in v.finding and "30 deg" in v.finding
    assert "approach:=table" in v.fix
    v, _ = frames.check_table([_sample(render((240, 320), seed=3, tilt_deg=15, distance=0.6))])
    assert v.status == PASS and "approach:=table" in v.finding  # the hint for a tilted camera
    bad_K = np.zeros((3, 3))
    v, _ = frames.check_table([_sample(scenes["flat"], K=bad_K)])
    assert v.status == SKIP and "intrinsics" in v.finding
    v, _ = frames.check_table([_sample(scenes["flat"])], depth_ok=False)
    assert v.status == SKIP


# --------------------------------------------------------------------------- registration
def _reg(sample_list):
    return frames.check_registration(sample_list)


def test_registered_depth_passes(scenes):
    for name in ("flat", "flat_vga", "tilt40"):
        v, a = _reg([_sample(scenes[name])])
        assert v.status == PASS, (name, v.finding)
        assert a.displacement <= 0.01 * scenes[name].rgb.shape[1] + 1e-6


def test_registered_depth_variants_pass(scenes):
    sc = scenes["flat_vga"]
    mm = np.round(sc.depth_m * 1000.0) / 1000.0                       # 16UC1 quantisation
    low = sc.depth_m[::2, ::2]                                        # half-resolution depth
    rng = np.random.default_rng(0)
    noisy = sc.depth_m + rng.normal(0, 0.004, sc.depth_m.shape).astype(np.float32)
    noisy[rng.random(noisy.shape) < 0.08] = np.nan                   # 8 % dropouts
    border = sc.depth_m.copy()
    border[:60], border[:, :80] = np.nan, np.nan                      # depth FOV smaller
    for name, d in (("mm", mm), ("half", low), ("noisy", noisy), ("border", border)):
        v, _ = _reg([_sample(sc, depth=d)])
        assert v.status == PASS, (name, v.finding)


@pytest.mark.parametrize("fault", ["shift", "shift_down", "zoom", "side", "wide"])
def test_unregistered_depth_fails(scenes, fault):
    sc = scenes["flat"]
    depth = {"shift": lambda: shifted(sc.depth_m, 16), "shift_down": lambda: shifted(
        sc.depth_m, 0, -12), "zoom": lambda: zoomed(sc.depth_m, 0.85),
        "side": lambda: scenes["side"].depth_m, "wide": lambda: scenes["wide"].depth_m}[fault]()
    v, a = _reg([_sample(sc, depth=depth)])
    assert v.status == FAIL, v.finding
    assert "not registered" in v.finding and "register" in v.fix
    if fault in ("zoom", "wide"):
        assert "field of view" in v.finding and a.scale > 1.1
    if fault == "shift":
        assert abs(a.shift[0] + 16) <= 2


def test_other_aspect_ratio_fails(scenes):
    sc = scenes["flat"]
    v, _ = _reg([_sample(sc, depth=sc.depth_m[:, :240])])  # 240x240 depth, 320x240 colour
    assert v.status == FAIL and "aspect ratio" in v.finding


def test_scene_without_outlines_cannot_be_judged(scenes):
    sc = scenes["empty"]
    for d in (sc.depth_m, shifted(sc.depth_m, 20)):
        v, _ = _reg([_sample(sc, depth=d)])
        assert v.status != FAIL, v.finding  # never blames the camera without evidence
    flat = np.full_like(sc.depth_m, 0.7)
    v, _ = _reg([_sample(sc, depth=flat)])
    assert v.status == WARN and "cannot tell" in v.finding


def test_synthetic_dataset_frames_register():
    """The project's own synthetic frames (bag make's source) are registered; shifted depth is
    not."""
    from vita_grasp_core.data.synth import INTRINSICS, make_scene, render_frame

    rgb, depth, _, _ = render_frame(make_scene(1, 0), 0, 0, INTRINSICS["kinect"])
    dm = np.where(depth > 0, depth * 1e-3, np.nan).astype(np.float32)
    s = FrameSample(T0, rgb, dm, "16UC1", T0, None)
    assert frames.check_registration([s])[0].status == PASS
    s = FrameSample(T0, rgb, shifted(dm, 40), "16UC1", T0, None)
    assert frames.check_registration([s])[0].status == FAIL


def test_depth_of_another_view_or_rotated_is_not_passed():
    """Depth of another view of the same scene (the synthetic camera moved and turned a little)
    or rotated: the whole image may fit after a shift, the objects' outlines do not."""
    import cv2

    from vita_grasp_core.data.synth import INTRINSICS, make_scene, render_frame

    scene = make_scene(0, 0)
    views = {f: render_frame(scene, f, 0, INTRINSICS["kinect"]) for f in (0, 8, 16)}
    depth = {f: np.where(v[1] > 0, v[1] * 1e-3, np.nan).astype(np.float32)
             for f, v in views.items()}
    rgb = views[0][0]
    got = {f: frames.check_registration([FrameSample(T0, rgb, depth[f])])[0] for f in views}
    assert got[0].status == PASS
    assert got[8].status == WARN and "px from the colour edges" in got[8].finding
    assert got[16].status == FAIL
    h, w = depth[0].shape
    M = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), 8.0, 1.0)
    turned = cv2.warpAffine(depth[0], M, (w, h), flags=cv2.INTER_NEAREST,
                            borderValue=float("nan"))
    assert frames.check_registration([FrameSample(T0, rgb, turned)])[0].status != PASS


# --------------------------------------------------------------------------- exposure
def test_exposure(scenes):
    rgb = scenes["flat"].rgb
    assert frames.check_exposure([rgb]).status == PASS
    dark = (rgb * 0.12).astype(np.uint8)
    v = frames.check_exposure([dark])
    assert v.status == WARN and "under-exposed" in v.finding
    bright = np.clip(rgb.astype(np.int32) * 3, 0, 255).astype(np.uint8)
    v = frames.check_exposure([bright])
    assert v.status == WARN and "over-exposed" in v.finding
    v = frames.check_exposure([np.full_like(rgb, 128)])
    assert v.status == FAIL and "blank" in v.finding


# --------------------------------------------------------------------------- streams
def _rec(n=20, rate=15.0, depth_dt=0.0, ids=("cam", "cam", "cam"), K=None, lag=(0.004, 0.006),
         encodings=("rgb8", "16UC1"), size=(480, 640)):
    rec = Recording("test", {COLOR: "/rgb/image_raw", DEPTH: "/depth", INFO: "/rgb/camera_info"})
    h, w = size
    K = kinect_like_K(size) if K is None else np.asarray(K)
    for i in range(n):
        t = T0 + int(i * 1e9 / rate)
        rec.streams[COLOR].append(StreamMessage(t, t + int(lag[0] * 1e9), ids[0], encodings[0],
                                                w, h))
        d = t + int(depth_dt * 1e9)
        rec.streams[DEPTH].append(StreamMessage(d, t + int(lag[1] * 1e9), ids[1], encodings[1],
                                                w, h))
        rec.streams[INFO].append(CameraInfoMessage(t, t, ids[2], w, h,
                                                   tuple(K.reshape(-1)), "plumb_bob", (0.0,) * 5))
    rec.duration_s = n / rate
    return rec


def test_stream_checks_pass_on_a_good_camera():
    rec = _rec()
    for check in (streams.check_topics, streams.check_rates, streams.check_sync,
                  streams.check_frame_ids, streams.check_camera_info):
        assert check(rec).status == PASS, check(rec)
    v = streams.check_encodings(rec, ("rgb8", "bgr8"), ("16UC1", "32FC1"))
    assert v.status == PASS


def test_sync_offsets():
    # 2 Hz, depth captured (and stamped) a quarter second after colour: nothing to pair with
    v = streams.check_sync(_rec(rate=2.0, depth_dt=0.25, lag=(0.004, 0.254)))
    assert v.status == FAIL and "raise the node's depth_tolerance to 0.255" in v.fix
    # depth stamped 200 ms late, captured and arriving with colour: stamps mean other instants
    v = streams.check_sync(_rec(depth_dt=0.2, lag=(0.004, 0.004)))
    assert v.status == FAIL and "+200 ms off" in v.finding
    v = streams.check_sync(_rec(depth_dt=-0.15, lag=(0.004, 0.004)))  # stamped 150 ms early
    assert v.status == FAIL and "-150 ms off" in v.finding
    v = streams.check_sync(_rec(lag=(0.004, 0.074)))  # a slow depth driver, stamps correct
    assert v.status == WARN and "slow depth processing" in v.finding
    # content evidence: the matching depth frame is two periods away in 4 of 5 frames
    content = [(0.133, 0.3), (0.133, 0.25), (0.133, 0.2), (0.133, 0.3), (0.0, 0.0)]
    v = streams.check_sync(_rec(), content=content)
    assert v.status == FAIL and "+133 ms" in v.finding
    assert streams.check_sync(_rec(), content=[(0.0, 0.0)] * 5).status == PASS
    assert streams.check_sync(_rec(), content=[(0.07, 0.01)] * 5).status == PASS  # static


def test_frame_id_and_topic_faults():
    v = streams.check_frame_ids(_rec(ids=("rgb", "depth_link", "rgb")))
    assert v.status == FAIL and "'depth_link'" in v.finding and "registered" in v.fix
    v = streams.check_frame_ids(_rec(ids=("rgb", "rgb", "ir")))
    assert v.status == FAIL and "camera_info frame_id 'ir'" in v.finding
    assert streams.check_frame_ids(_rec(ids=("", "", ""))).status == WARN
    rec = _rec()
    rec.streams[DEPTH].clear()
    assert streams.check_topics(rec).status == WARN
    rec.streams[COLOR].clear()
    assert streams.check_topics(rec).status == FAIL


def test_intrinsics_and_distortion():
    K = kinect_like_K((480, 640))
    bad = K.copy()
    bad[0, 0] = np.nan
    v = streams.check_camera_info(_rec(K=bad))
    assert v.status == FAIL and "fx is NaN" in v.finding
    v = streams.check_camera_info(_rec(K=np.zeros((3, 3))))
    assert v.status == FAIL and "all zeros" in v.finding
    rec = _rec()
    i = rec.streams[INFO][-1]
    rec.streams[INFO][-1] = CameraInfoMessage(i.stamp_ns, i.time_ns, i.frame_id, i.width,
                                              i.height, i.K, "plumb_bob",
                                              (0.12, -0.05, 0.0, 0.0, 0.0))
    v = streams.check_camera_info(rec, "/rgb/image_raw")
    assert v.status == WARN and "distortion" in v.finding
    assert streams.check_camera_info(rec, "/rgb/image_rect_color").status == PASS
    rec.streams[INFO][-1] = CameraInfoMessage(i.stamp_ns, i.time_ns, i.frame_id, i.width,
                                              i.height, i.K, "plumb_bob", (float("nan"),) * 5)
    v = streams.check_camera_info(rec, "/rgb/image_rect_color")
    assert v.status == FAIL and "D[0] is NaN" in v.finding


def test_encodings_and_rates():
    v = streams.check_encodings(_rec(encodings=("yuv422", "16UC1")), ("rgb8",), ("16UC1",))
    assert v.status == FAIL and "'yuv422'" in v.finding
    v = streams.check_encodings(_rec(encodings=("rgb8", "8UC1")), ("rgb8",), ("16UC1",))
    assert v.status == FAIL and "depth encoding '8UC1'" in v.finding
    rec = _rec()
    rec.add_error(COLOR, "step 10 is smaller than width * bytes per pixel")
    v = streams.check_encodings(rec, ("rgb8",), ("16UC1",))
    assert v.status == FAIL and "cannot be read" in v.finding
    rec = _rec()
    del rec.streams[COLOR][3:12:2]  # frames lost on the way
    v = streams.check_rates(rec)
    assert v.status == WARN and "gaps" in v.finding
    rec = _rec()
    rec.streams[COLOR][:] = [StreamMessage(0, m.time_ns, m.frame_id, m.encoding, m.width,
                                           m.height) for m in rec.streams[COLOR]]
    assert streams.check_rates(rec).status == FAIL


# --------------------------------------------------------------------------- all together
def test_run_checks_and_overlay(scenes):
    from vita_grasp_core.camera_check.overlay import render_overlay
    from vita_grasp_core.grasp import Grasp

    sc = scenes["flat_vga"]
    rec = _rec(ids=("cam", "cam", "cam"), K=sc.K)
    rec.samples = [_sample(sc, depth=np.round(sc.depth_m * 1000) / 1000)]
    g = [Grasp(320.0, 240.0, 0.3, 40.0, 20.0, 0.9, 1.0)]
    rep = run_checks(rec, color_encodings=("rgb8",), depth_encodings=("16UC1", "32FC1"),
                     predict=lambda rgb: g)
    got = {v.check: v.status for v in rep.verdicts}
    assert set(got.values()) == {PASS}, format_table(rep.verdicts)
    assert "1 grasps, 1 with a 3-D pose" in rep.verdicts[-1].finding
    img = render_overlay(rep)
    assert img.dtype == np.uint8 and img.shape[1] == 1280 and img.shape[0] > 480
    assert (img[:480, :640] == (255, 0, 255)).all(axis=-1).sum() > 500  # depth outlines drawn
