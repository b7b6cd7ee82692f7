"""``vita-grasp doctor`` on bags: every deliberately broken camera is named with its fix, a good
one passes (exit 0), bad arguments exit 2 with one line.

Bags come from two sources: ray-cast scenes written with test/fixtures/camera_bags.py (faults
put in on purpose) and the project's own ``vita-grasp synth`` + ``bag make`` output, rewritten
with a fault where a test needs one.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from fixtures.camera_bags import FRAME, Faults, panning, shifted, write_camera_bag, zoomed
from fixtures.camera_scenes import kinect_like_K, render

pytest.importorskip("rclpy")  # bags are written with the node's rclpy message builders
pytest.importorskip("vita_grasp.msg")

from vita_grasp_ros.doctor.cli import main  # noqa: E402
from vita_grasp_ros.doctor.sources import choose_topics, info_sibling  # noqa: E402


@pytest.fixture(scope="module")
def scenes():
    from vita_grasp_core.conventions import camera_matrix

    K = camera_matrix("kinect", (240, 320))
    wide = K.copy()
    wide[0, 0] *= 0.75  # a depth camera with a wider field of view, resized to colour's size
    wide[1, 1] *= 0.75
    return {"good": render((240, 320), K=K, seed=5, distance=0.65),
            "tilt": render((240, 320), K=K, seed=5, tilt_deg=38, distance=0.6),
            "side": render((240, 320), K=K, seed=5, distance=0.65, offset=(0.04, 0, 0)),
            "wide": render((240, 320), K=wide, seed=5, distance=0.65)}


def _frames(scene, depth=None, n=10):
    return [(scene.rgb, scene.depth_m if depth is None else depth, scene.K)] * n


def doctor(capsys, *args):
    rc = main([str(a) for a in args] + ["--quiet"])
    out, err = capsys.readouterr()
    return rc, out, err


def _row(out: str, check: str) -> str:
    """The table row of ``check`` plus its fix line."""
    lines = out.splitlines()
    for i, line in enumerate(lines):
        if line[8:].startswith(check):
            fix = lines[i + 1] if i + 1 < len(lines) and "fix:" in lines[i + 1] else ""
            return line + "\n" + fix
    raise AssertionError(f"no {check!r} row in:\n{out}")


# --------------------------------------------------------------------------- topic choice
def test_choose_topics_defaults_and_discovery():
    Im, C, N = "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", \
        "sensor_msgs/msg/CameraInfo"
    kinect = {"/rgb/image_raw": Im, "/depth_to_rgb/image_raw": Im, "/depth/image_raw": Im,
              "/rgb/camera_info": N, "/depth/camera_info": N}
    assert choose_topics(kinect) == {"colour": "/rgb/image_raw",
                                     "depth": "/depth_to_rgb/image_raw",
                                     "camera_info": "/rgb/camera_info"}
    realsense = {"/camera/color/image_raw": Im, "/camera/depth/image_rect_raw": Im,
                 "/camera/aligned_depth_to_color/image_raw": Im,
                 "/camera/color/camera_info": N, "/camera/depth/camera_info": N,
                 "/camera/infra1/image_rect_raw": Im}
    assert choose_topics(realsense) == {
        "colour": "/camera/color/image_raw", "depth": "/camera/aligned_depth_to_color/image_raw",
        "camera_info": "/camera/color/camera_info"}
    got = choose_topics({"/cam/image_raw/compressed": C, "/cam/camera_info": N}, depth="")
    assert got == {"colour": "/cam/image_raw/compressed", "depth": None,
                   "camera_info": "/cam/camera_info"}
    assert info_sibling("/a/b/image_rect_color") == "/a/b/camera_info"


# --------------------------------------------------------------------------- good cameras
def test_good_bag_passes_and_writes_overlay_and_json(scenes, tmp_path, capsys):
    bag = write_camera_bag(tmp_path / "good.mcap", _frames(scenes["good"]))
    png, js = tmp_path / "o" / "overlay.png", tmp_path / "r.json"
    rc, out, _ = doctor(capsys, bag, "--overlay", png, "--json", js)
    assert rc == 0, out
    assert "WARN" not in out and "FAIL" not in out
    for check in ("topics", "encodings", "rates", "sync", "frame ids", "intrinsics", "exposure",
                  "depth", "registration", "table plane"):
        assert _row(out, check).startswith("pass"), out
    import cv2

    img = cv2.imread(str(png))
    assert img is not None and img.shape[1] == 1280
    res = json.loads(js.read_text())
    assert res["exit_status"] == 0 and len(res["checks"]) == 10
    assert res["topics"]["depth"] == "/depth_to_rgb/image_raw"


@pytest.mark.slow
@pytest.mark.parametrize("size, encoding", [((480, 640), "32FC1"), ((720, 1280), "16UC1")])
def test_good_bag_variants_pass(tmp_path, capsys, size, encoding):
    """Other resolutions, 32FC1 metres, noisy depth with holes, bgr8 colour, 30 Hz; at 1280x720
    the depth has half the colour's resolution (registered: the node scales grasp pixels)."""
    import cv2

    from vita_grasp_core.conventions import camera_matrix, scale_intrinsics

    half = (size[0] // 2, size[1] // 2) if size[1] > 640 else size
    sc = render(half, K=camera_matrix("kinect", half), seed=11, distance=0.7, noise_m=0.006,
                holes=0.03)
    rgb = cv2.resize(sc.rgb, (size[1], size[0]), interpolation=cv2.INTER_LINEAR)
    frames = [(rgb, sc.depth_m, scale_intrinsics(sc.K, half, size))] * 8
    bag = write_camera_bag(tmp_path / "v.db3", frames,
                           Faults(depth_encoding=encoding, color_encoding="bgr8"), rate=30.0)
    rc, out, _ = doctor(capsys, bag, "--overlay", "")
    assert rc == 0, out


@pytest.fixture(scope="module")
def synth_bag(tmp_path_factory):
    """The project's own pipeline: vita-grasp synth + bag make (GraspNet layout, 16UC1)."""
    from vita_grasp_core.data.synth import synthesize
    from vita_grasp_ros.bag.make import make_bag

    root = tmp_path_factory.mktemp("doctor_synth")
    synthesize(root / "data", scenes=2, frames=3, seed=1)
    return make_bag(root / "data", root / "synth.mcap", progress=False)["path"]


@pytest.mark.slow
def test_bag_make_output_passes(synth_bag, capsys):
    rc, out, _ = doctor(capsys, synth_bag, "--overlay", "")
    assert rc == 0, out


def _rewrite(src, dst, fn):
    """Copy a bag, passing every deserialised message through ``fn(topic, msg, t)`` ->
    ``(msg, t)``."""
    from vita_grasp_ros.bag.io import BagWriter, open_bag

    with open_bag(src) as r, BagWriter(dst, overwrite=True) as w:
        for t_name, s in r.topics().items():
            w.add_topic(t_name, s.msgtype)
        for topic, t, msg in r.read():
            msg, t = fn(topic, msg, t)
            w.write(topic, t, msg)
    return dst


@pytest.mark.slow
def test_bag_make_output_with_faults(synth_bag, tmp_path, capsys):
    """Faults put into bag make's bag afterwards: depth stamps one frame late (and recorded
    so: only the content tells), and the depth in another frame."""
    def late(topic, msg, t):
        if topic == "/depth_to_rgb/image_raw":
            ns = msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec + 200_000_000
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(ns, 10**9)
            t = ns
        return msg, t

    rc, out, _ = doctor(capsys, _rewrite(synth_bag, tmp_path / "late.mcap", late),
                        "--overlay", "")
    row = _row(out, "sync")
    assert rc == 1 and row.startswith("FAIL") and "stamped +200 ms" in row, out
    assert _row(out, "registration").startswith("pass"), out  # not blamed on registration

    def other_frame(topic, msg, t):
        if topic == "/depth_to_rgb/image_raw":
            msg.header.frame_id = "depth_camera_link"
        return msg, t

    rc, out, _ = doctor(capsys, _rewrite(synth_bag, tmp_path / "fid.mcap", other_frame),
                        "--overlay", "")
    assert rc == 1 and "'depth_camera_link'" in _row(out, "frame ids"), out


# --------------------------------------------------------------------------- fault bags
FAULTS = {
    # name: (scene, depth transform, Faults, check, status, words in row + fix)
    "mm_as_m": ("good", None, Faults(depth_encoding="32FC1", depth_scale=1000.0),
                "depth", "FAIL", ("look like mm", "metres")),
    "shifted_depth": ("good", lambda sc, s: shifted(sc.depth_m, 20), Faults(),
                      "registration", "FAIL", ("not registered", "depth_to_rgb")),
    "scaled_depth": ("good", lambda sc, s: zoomed(sc.depth_m, 0.85), Faults(),
                     "registration", "FAIL", ("not registered", "field of view")),
    "other_viewpoint": ("good", lambda sc, s: s["side"].depth_m, Faults(),
                        "registration", "FAIL", ("not registered",)),
    "other_fov": ("good", lambda sc, s: s["wide"].depth_m, Faults(),
                  "registration", "FAIL", ("not registered", "field of view")),
    "nan_K": ("good", None, Faults(K=np.diag([np.nan, 300.0, 1.0])),
              "intrinsics", "FAIL", ("fx is NaN", "calibrate")),
    "zero_K": ("good", None, Faults(K=np.zeros((3, 3))),
               "intrinsics", "FAIL", ("all zeros", "calibrate")),
    "depth_stamps_late": ("good", None, Faults(depth_offset_s=0.2),
                          "sync", "FAIL", ("depth stamps are +198 ms off", "synchronise")),
    "depth_stamps_far": ("good", None, Faults(depth_offset_s=0.1, latency_s=(0.0, 0.1, 0.0),
                                              extra={"rate": 5.0}),  # captured 0.1 s apart
                         "sync", "FAIL", ("within 50 ms of 0 % of", "depth_tolerance to 0.105")),
    "zero_stamps": ("good", None, Faults(zero_stamps=True),
                    "rates", "FAIL", ("zero header stamp",)),
    "depth_frame_id": ("good", None, Faults(frame_ids=(FRAME, "depth_camera_link", FRAME)),
                       "frame ids", "FAIL", ("'depth_camera_link'", "registered")),
    "info_frame_id": ("good", None, Faults(frame_ids=(FRAME, FRAME, "ir_optical_frame")),
                      "frame ids", "FAIL", ("camera_info frame_id", "camera_info")),
    "tilted_view": ("tilt", None, Faults(), "table plane", "WARN", ("tilted 38", "30 deg")),
    "colour_8UC3": ("good", None, Faults(color_encoding="8UC3"),
                    "encodings", "FAIL", ("'8UC3' is not accepted", "rgb8")),
    "colour_yuv422": ("good", None, Faults(color_encoding="yuv422"),
                      "encodings", "FAIL", ("'yuv422' is not accepted",)),
    "depth_8UC1": ("good", None, Faults(depth_encoding="8UC1"),
                   "encodings", "FAIL", ("depth encoding '8UC1'", "16UC1")),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_fault_bag_is_named_with_its_fix(scenes, tmp_path, capsys, name):
    scene, depth_fn, faults, check, status, words = FAULTS[name]
    sc = scenes[scene]
    depth = depth_fn(sc, scenes) if depth_fn else None
    bag = write_camera_bag(tmp_path / f"{name}.mcap", _frames(sc, depth), faults,
                           rate=faults.extra.get("rate", 15.0))
    rc, out, _ = doctor(capsys, bag, "--overlay", tmp_path / "o.png", "--frames", "3")
    row = _row(out, check)
    assert rc == 1 and row.startswith(status), out
    assert "fix:" in row
    for w in words:
        assert w in row, (w, row)
    n_bad = sum(line[:4] in ("WARN", "FAIL") for line in out.splitlines())
    assert n_bad == 1, f"{name}: the fault is reported once, not as a cascade:\n{out}"
    assert (tmp_path / "o.png").is_file() or check == "encodings"


def test_moving_camera_with_depth_one_frame_late(scenes, tmp_path, capsys):
    """Stamps that look fine (recorded with their stamps) but depth belongs to the next frame."""
    frames = panning(render((240, 320), seed=8, distance=0.6), 12, step=6)
    bag = write_camera_bag(tmp_path / "late.mcap", frames,
                           Faults(depth_offset_s=1 / 15, depth_time_follows_stamp=True))
    rc, out, _ = doctor(capsys, bag, "--overlay", "")
    assert rc == 1 and "stamped +67 ms" in _row(out, "sync"), out
    bag = write_camera_bag(tmp_path / "ok.mcap", frames)
    rc, out, _ = doctor(capsys, bag, "--overlay", "")
    assert rc == 0, out


def test_compressed_colour_passes(scenes, tmp_path, capsys):
    bag = write_camera_bag(tmp_path / "c.mcap", _frames(scenes["good"], n=6),
                           Faults(color_encoding="jpeg"))
    rc, out, _ = doctor(capsys, bag, "--overlay", "", "--image", "/rgb/image_raw")
    assert rc == 0 and "colour jpeg" in _row(out, "encodings"), out


def test_large_frames_are_checked_at_a_bounded_size(scenes, tmp_path, capsys):
    """2560x1920 JPEG colour (decoded frames kept at 2048 px at most) with 320x240 depth."""
    import cv2

    from vita_grasp_core.conventions import scale_intrinsics
    from vita_grasp_ros.doctor.collect import MAX_SAMPLE_SIDE, bounded

    sc = scenes["good"]
    big = cv2.resize(sc.rgb, (2560, 1920), interpolation=cv2.INTER_LINEAR)
    assert bounded(big).shape == (1536, MAX_SAMPLE_SIDE, 3)
    K = scale_intrinsics(sc.K, (240, 320), (1920, 2560))
    bag = write_camera_bag(tmp_path / "big.mcap", [(big, sc.depth_m, K)] * 4,
                           Faults(color_encoding="jpeg"))
    rc, out, _ = doctor(capsys, bag, "--overlay", "", "--frames", "2")
    assert rc == 0, out
    assert "for 2560x1920" in _row(out, "intrinsics")


def test_fail_on_and_missing_depth(scenes, tmp_path, capsys):
    tilt = write_camera_bag(tmp_path / "tilt.mcap", _frames(scenes["tilt"]))
    assert doctor(capsys, tilt, "--overlay", "", "--fail-on", "fail")[0] == 0
    nodepth = write_camera_bag(tmp_path / "nd.mcap", _frames(scenes["good"]), depth_topic="")
    rc, out, _ = doctor(capsys, nodepth, "--overlay", "")
    assert rc == 1 and "no depth topic" in _row(out, "topics")
    assert "skip" in _row(out, "registration")


@pytest.mark.slow
def test_checkpoint_adds_grasps(scenes, tmp_path, capsys):
    from vita_grasp_ros.testing import write_tiny_checkpoint

    ck = write_tiny_checkpoint(tmp_path / "tiny.pt")
    bag = write_camera_bag(tmp_path / "g.mcap", _frames(scenes["good"], n=4))
    rc, out, _ = doctor(capsys, bag, "--overlay", tmp_path / "g.png", "--checkpoint", ck,
                        "--device", "cpu")
    assert "grasps" in out and rc in (0, 1)
    assert _row(out, "grasps")[:4] in ("pass", "WARN")


# --------------------------------------------------------------------------- bad arguments
def test_bad_arguments_exit_2(tmp_path, capsys, scenes):
    bag = write_camera_bag(tmp_path / "b.mcap", _frames(scenes["good"], n=2))
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not a bag at all" * 10)
    notck = tmp_path / "x.pt"
    notck.write_bytes(b"nope")
    for args in ([tmp_path / "missing.mcap"], [junk], [bag, "--frames", "0"],
                 [bag, "--duration", "nan"], [bag, "--depth-tolerance", "1e308"],
                 [bag, "--image", "/nope"],
                 [bag, "--depth", "/rgb/camera_info"], [bag, "--overlay", "x.gif"],
                 [bag, "--checkpoint", notck]):
        rc, out, err = doctor(capsys, *args)
        assert rc == 2, (args, out, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert err.startswith("vita-grasp doctor: error:"), err


def test_truncated_image_data_is_reported(scenes, tmp_path, capsys):
    from vita_grasp_ros.bag.io import open_bag

    bag = write_camera_bag(tmp_path / "t.mcap", _frames(scenes["good"], n=4))

    def cut(topic, msg, t):
        if topic == "/rgb/image_raw":
            msg.data = msg.data[: len(msg.data) // 2]
        return msg, t

    with open_bag(bag):
        pass
    rc, out, _ = doctor(capsys, _rewrite(bag, tmp_path / "cut.mcap", cut), "--overlay", "")
    row = _row(out, "encodings")
    assert rc == 1 and row.startswith("FAIL") and "truncated" in row, out


def test_intrinsics_of_another_size(scenes, tmp_path, capsys):
    """A CameraInfo for another camera mode (4:3 info for a 16:9 image) is refused."""
    bag = write_camera_bag(tmp_path / "m.mcap", _frames(scenes["good"], n=4),
                           Faults(info_size=(480, 480), K=kinect_like_K((480, 480))))
    rc, out, _ = doctor(capsys, bag, "--overlay", "")
    assert rc == 1 and "aspect ratio" in _row(out, "intrinsics"), out


def test_help(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "Exit status" in out and "--checkpoint" in out
