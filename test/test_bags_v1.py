"""Bags recorded with version 1 of the ``vita_grasp`` messages (before ``Grasp.target_id`` and
``GraspArray.depth_stamp``) stay readable by the bag tools: read, info, eval, and ``bag play``
converts them for subscribers of the installed (version 2) types.

``test/data/grasps_v1.mcap`` was recorded by the project's own bag writer with the version-1
messages installed (main at e9b0964, before the field was added): 3 GraspArrays on ``/grasps``
(2, 0 and 1 grasps). The sqlite3 variant is written here by rosbags from the version-1 text.
"""
from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from vita_grasp_ros.bag import io as bags
from vita_grasp_ros.bag import messages as bmsg
from vita_grasp_ros.bag import types as bt

V1_BAG = Path(__file__).parent / "data" / "grasps_v1.mcap"
V1_ROWS = [np.array([[100.5, 80.25, 0.3, 40.0, 20.0, 0.9, 0.8],
                     [200.0, 120.0, -0.5, 30.0, 15.0, 0.7, 0.6]], np.float32),
           np.zeros((0, 7), np.float32),
           np.array([[10.0, 20.0, 1.0, 12.0, 6.0, 0.5, 0.4]], np.float32)]
T0 = 1_700_000_000_000_000_000
#: msg/Grasp.msg of version 1, as installed before target_id (comments shortened).
GRASP_V1 = """float32 x
float32 y
float32 angle
float32 width
float32 height
float32 quality
float32 object_score
bool has_pose
geometry_msgs/Pose pose
float32 width_m
"""
GRASP_ARRAY = """std_msgs/Header header
uint32 image_width
uint32 image_height
Grasp[] grasps
"""


def _read_rows(path):
    with bags.open_bag(path) as r:
        out = [(t, bmsg.grasp_array_rows(m)) for _, t, m in r.read(["/grasps"])]
        return out, set(r.outdated)


def _write_v1_db3(path):
    """A version-1 bag written by rosbags alone (the definition stored is version 1's)."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types = get_types_from_msg(GRASP_V1, "vita_grasp/msg/Grasp")
    types.update(get_types_from_msg(GRASP_ARRAY, "vita_grasp/msg/GraspArray"))
    store.register(types)
    G, A = store.types["vita_grasp/msg/Grasp"], store.types["vita_grasp/msg/GraspArray"]
    Pose, Point, Quat = (store.types[f"geometry_msgs/msg/{n}"] for n in ("Pose", "Point",
                                                                         "Quaternion"))
    Header, Time = store.types["std_msgs/msg/Header"], store.types["builtin_interfaces/msg/Time"]
    with Writer(path, version=9, storage_plugin=StoragePlugin.SQLITE3) as w:
        conn = w.add_connection("/grasps", "vita_grasp/msg/GraspArray", typestore=store)
        for i, rows in enumerate(V1_ROWS):
            t = T0 + i * 100_000_000
            gs = [G(*[float(v) for v in r], False,
                    Pose(Point(0.0, 0.0, 0.0), Quat(0.0, 0.0, 0.0, 1.0)), 0.0) for r in rows]
            msg = A(Header(Time(t // 10**9, t % 10**9), "rgb_camera_link"), 640, 480, gs)
            w.write(conn, t, store.serialize_cdr(msg, "vita_grasp/msg/GraspArray"))
    return path


@pytest.mark.parametrize("which", ["recorded_mcap", "rosbags_db3"])
def test_version1_bags_read_with_their_own_definition(which, tmp_path):
    path = V1_BAG if which == "recorded_mcap" else _write_v1_db3(tmp_path / "v1")
    frames, outdated = _read_rows(path)
    assert outdated == {bt.GRASP_ARRAY_TYPE}
    assert [t for t, _ in frames] == [T0, T0 + 100_000_000, T0 + 200_000_000]
    for (_, rows), want in zip(frames, V1_ROWS):
        np.testing.assert_allclose(rows, want, rtol=1e-6)
    # the shared (installed, version 2) definitions are untouched by reading an old bag
    assert "target_id" in [f[0] for f in bt.typestore().fielddefs["vita_grasp/msg/Grasp"][1]]


def test_current_bags_keep_target_id_and_are_not_outdated(tmp_path):
    pytest.importorskip("vita_grasp.msg")
    from vita_grasp_core.grasp import Grasp
    from vita_grasp_ros.grasp_msgs import grasps_to_msg

    out = tmp_path / "v2.mcap"
    msg = grasps_to_msg([Grasp(1.0, 2.0, 0.1, 10.0, 5.0, 0.9, 0.5, target="cup/0")],
                        bmsg.make_header(T0), (480, 640))
    with bags.BagWriter(out) as w:
        w.add_topic("/grasps", bt.GRASP_ARRAY_TYPE)
        w.write("/grasps", T0, msg)
    with bags.open_bag(out) as r:
        (_, _, m), = list(r.read(["/grasps"]))
        assert r.outdated == set()
    assert m.grasps[0].target_id == "cup/0"


def test_version1_bag_info_and_eval_cli(tmp_path, capsys):
    from vita_grasp_ros.bag.cli import main as bag_main

    assert bag_main(["info", str(V1_BAG)]) == 0
    assert "vita_grasp/msg/GraspArray" in capsys.readouterr().out
    rc = bag_main(["eval", "--bag", str(V1_BAG), "--predictions", str(V1_BAG),
                   "--gt-topic", "/grasps", "--pred-topic", "/grasps", "--out",
                   str(tmp_path / "ev"), "--quiet"])
    out = capsys.readouterr()
    assert rc == 0, out.err
    assert "top-1" in out.out


def test_upgrade_converts_to_the_installed_definition():
    pytest.importorskip("vita_grasp.msg")
    from rclpy.serialization import deserialize_message
    from vita_grasp.msg import GraspArray

    with bags.open_bag(V1_BAG) as r:
        raws = [(mt, raw) for _, mt, _, raw in r.messages(["/grasps"])]
        msgs = [deserialize_message(r.upgrade(raw, mt), GraspArray) for mt, raw in raws]
    assert [len(m.grasps) for m in msgs] == [2, 0, 1]
    np.testing.assert_allclose(bmsg.grasp_array_rows(msgs[0]), V1_ROWS[0], rtol=1e-6)
    assert msgs[0].grasps[1].target_id == "" and msgs[0].grasps[1].pose.orientation.w == 1.0
    assert msgs[0].header.frame_id == "rgb_camera_link" and msgs[0].image_width == 640
    assert (msgs[0].depth_stamp.sec, msgs[0].depth_stamp.nanosec) == (0, 0)


@pytest.mark.ros
def test_play_version1_bag_to_a_version2_subscriber(tmp_path, monkeypatch):
    pytest.importorskip("rclpy")
    pytest.importorskip("vita_grasp.msg")
    from vita_grasp.msg import GraspArray

    from vita_grasp_ros.bag.play import PlayOptions, PlayStats, play
    from vita_grasp_ros.testing import RosHarness, allocate_domain_id, ros_env, wait_for

    domain = allocate_domain_id()
    for k, v in ros_env(tmp_path, domain).items():
        monkeypatch.setenv(k, v)
    h = RosHarness(domain)
    stats, errors = PlayStats(), []

    def run():
        try:
            play(V1_BAG, h.node, PlayOptions(rate=5.0, wait_for_subscribers=1, progress=False),
                 stats=stats, log=lambda m: None)
        except Exception as e:  # noqa: BLE001 - reported by the test thread
            errors.append(e)

    got = h.subscribe(GraspArray, "/grasps", 10)
    t = threading.Thread(target=run, daemon=True)
    try:
        t.start()
        wait_for(lambda: len(got) >= 3 or errors, 60, what="3 played GraspArrays")
        t.join(30)
    finally:
        h.close()
    assert not errors, errors
    assert [len(m.grasps) for m in got.msgs] == [2, 0, 1]
    np.testing.assert_allclose(bmsg.grasp_array_rows(got.msgs[2]), V1_ROWS[2], rtol=1e-6)
