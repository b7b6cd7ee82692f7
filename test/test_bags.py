"""Bag tools without a ROS graph: type hashes and CDR against rosidl/rclpy, ``bag make`` contents
(.mcap, .db3, directory, compressed), ``bag eval`` on known answers, corrupt bags -> exit 2."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vita_grasp_ros import bags
from vita_grasp_ros.bag_cli import main as bag_main

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from vita_grasp_core.data.synth import synthesize

    root = tmp_path_factory.mktemp("bags_data")
    synthesize(root, scenes=1, frames=4, seed=0)
    return root


@pytest.fixture(scope="module")
def mcap_bag(dataset, tmp_path_factory):
    from vita_grasp_ros.bag_make import make_bag

    out = tmp_path_factory.mktemp("bags_out") / "eval.mcap"
    make_bag(dataset, out, progress=False)
    return out


# --------------------------------------------------------------------------- types and CDR
def test_type_hashes_match_rosidl():
    share = Path(sys.prefix) / "share"
    checked = 0
    for t in (bags.IMAGE_TYPE, bags.COMPRESSED_TYPE, bags.INFO_TYPE, bags.GRASP_TYPE,
              bags.GRASP_ARRAY_TYPE):
        pkg, _, name = t.split("/")
        f = share / pkg / "msg" / f"{name}.json"
        if not f.is_file():
            continue
        want = json.loads(f.read_text())["type_hashes"][0]["hash_string"]
        assert bags.typestore().hash_rihs01(t) == want, t
        checked += 1
    if checked == 0:
        pytest.skip("no rosidl type descriptions installed (run make setup)")


def test_cdr_identical_to_rclpy():
    pytest.importorskip("rclpy")
    pytest.importorskip("vita_grasp.msg")
    from rclpy.serialization import deserialize_message, serialize_message
    from sensor_msgs.msg import Image

    from vita_grasp.msg import GraspArray

    rows = np.random.default_rng(0).random((37, 7)).astype(np.float32)
    header = bags.make_header(1_700_000_000_123_456_789, "cam")
    ours = bytes(bags.typestore().serialize_cdr(bags.grasp_array_msg(rows, header, (720, 1280)),
                                                bags.GRASP_ARRAY_TYPE))
    msg = deserialize_message(ours, GraspArray)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec) == (1_700_000_000, 123_456_789)
    assert (msg.image_width, msg.image_height, len(msg.grasps)) == (1280, 720, 37)
    np.testing.assert_array_equal(bags.grasp_array_rows(msg), rows)
    assert _same_cdr(serialize_message(msg), ours, bags.GRASP_ARRAY_TYPE)

    rgb = np.random.default_rng(1).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    ours = bytes(bags.typestore().serialize_cdr(bags.image_msg(rgb, "rgb8", header),
                                                bags.IMAGE_TYPE))
    assert _same_cdr(serialize_message(deserialize_message(ours, Image)), ours, bags.IMAGE_TYPE)


def _same_cdr(theirs: bytes, ours: bytes, msgtype: str) -> bool:
    """Same encoding: same length, and byte-identical once rosbags re-serialises rclpy's bytes
    (Fast CDR leaves alignment padding uninitialised, rosbags writes zeros)."""
    st = bags.typestore()
    return len(theirs) == len(ours) and \
        bytes(st.serialize_cdr(st.deserialize_cdr(theirs, msgtype), msgtype)) == ours


def test_grasp_array_roundtrip_large():
    rows = np.random.default_rng(2).random((5000, 7)).astype(np.float32)
    st = bags.typestore()
    raw = st.serialize_cdr(bags.grasp_array_msg(rows, bags.make_header(5), (10, 20)),
                           bags.GRASP_ARRAY_TYPE)
    back = st.deserialize_cdr(raw, bags.GRASP_ARRAY_TYPE)
    np.testing.assert_array_equal(bags.grasp_array_rows(back), rows)
    assert all(not g.has_pose and g.pose.orientation.w == 1.0 for g in back.grasps[:3])


# --------------------------------------------------------------------------- bag make
@pytest.mark.parametrize("name,storage", [("a.mcap", "mcap"), ("a.db3", "sqlite3"),
                                          ("adir", "sqlite3")])
def test_make_bag_contents(dataset, tmp_path, name, storage):
    from vita_grasp_core.data.graspnet import load_frame, scan

    out = tmp_path / name
    rc = bag_main(["make", "--dataset_root", str(dataset), "--scenes", "0", "--out", str(out),
                   "--storage", storage, "--rate", "4", "--quiet"])
    assert rc == 0
    assert out.is_dir() == (name == "adir")
    if out.is_dir():
        assert (out / "metadata.yaml").is_file() and list(out.glob("*.db3"))
    frames, _, _ = scan(dataset, require_label=False)
    with bags.open_bag(out) as r:
        assert r.storage == storage
        topics = r.topics()
        assert {t: i.count for t, i in topics.items()} == {
            bags.IMAGE_TOPIC: 4, bags.INFO_TOPIC: 4, bags.DEPTH_TOPIC: 4, bags.GT_TOPIC: 4}
        assert topics[bags.GT_TOPIC].msgtype == bags.GRASP_ARRAY_TYPE
        by_time: dict[int, dict] = {}
        for topic, t, msg in r.read():
            assert bags.stamp_to_ns(msg.header.stamp) == t  # bag time == header stamp
            assert msg.header.frame_id == bags.FRAME_ID
            by_time.setdefault(t, {})[topic] = msg
    times = sorted(by_time)
    assert np.allclose(np.diff(times), 0.25e9)  # 4 Hz
    for rec, t in zip(frames, times, strict=True):
        m = by_time[t]
        assert set(m) == set(topics)  # every topic of a frame carries the same stamp
        rgb, _, gt = load_frame(rec, require_label=False)
        np.testing.assert_array_equal(bags.image_from_msg(m[bags.IMAGE_TOPIC]), rgb)
        rows = bags.grasp_array_rows(m[bags.GT_TOPIC])
        assert len(rows) == len(gt) > 100  # every GT rectangle
        np.testing.assert_array_equal(rows[:, :6], gt[:, :6].astype(np.float32))
        assert (rows[:, 6] == 1).all()
        assert (m[bags.GT_TOPIC].image_height, m[bags.GT_TOPIC].image_width) == rgb.shape[:2]
        info = m[bags.INFO_TOPIC]
        K = np.load(Path(rec.rgb).parent.parent / "camK.npy")
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), K)
        assert (info.height, info.width) == rgb.shape[:2]
        d = m[bags.DEPTH_TOPIC]
        assert d.encoding == "16UC1" and (d.height, d.width) == rgb.shape[:2]


def test_make_bag_compressed_and_limits(dataset, tmp_path):
    from vita_grasp_ros.bag_make import make_bag

    out = tmp_path / "c.mcap"
    s = make_bag(dataset, out, compressed=True, max_frames=2, depth_topic=None, progress=False)
    assert s["frames"] == 2 and s["topics"] == {f"{bags.IMAGE_TOPIC}/compressed": 2,
                                                bags.INFO_TOPIC: 2, bags.GT_TOPIC: 2}
    with bags.open_bag(out) as r:
        (_, _, msg), = list(r.read([f"{bags.IMAGE_TOPIC}/compressed"]))[:1]
        rgb = bags.image_from_msg(msg)
        assert rgb.shape == (720, 1280, 3) and rgb.dtype == np.uint8
    with pytest.raises(bags.BagError, match="exists already"):
        make_bag(dataset, out, progress=False)
    make_bag(dataset, out, max_frames=1, overwrite=True, progress=False)
    with bags.open_bag(out) as r:
        assert r.topics()[bags.GT_TOPIC].count == 1
    assert not list(tmp_path.glob(".*partial*"))  # no temporary left behind
    with pytest.raises(ValueError, match="no frames"):
        make_bag(dataset, tmp_path / "none.mcap", scenes=[42], progress=False)
    assert not (tmp_path / "none.mcap").exists()


# --------------------------------------------------------------------------- bag eval
def _predictions_bag(mcap_bag, out, *, drop=(), delay_ns=10_000_000, perturb=None):
    """A 'recording' whose /grasps are the GT sorted best first (received ``delay_ns`` after the
    stamp), with frames ``drop`` left out."""
    from vita_grasp_core.metrics import sort_by_quality

    with bags.open_bag(mcap_bag) as r, bags.BagWriter(out) as w:
        w.add_topic(bags.PRED_TOPIC, bags.GRASP_ARRAY_TYPE)
        for i, (_, t, msg) in enumerate(r.read([bags.GT_TOPIC])):
            if i in drop:
                continue
            rows = sort_by_quality(bags.grasp_array_rows(msg))[:10]
            if perturb is not None:
                rows = perturb(rows)
            w.write(bags.PRED_TOPIC, t + delay_ns,
                    bags.grasp_array_msg(rows, msg.header, (msg.image_height, msg.image_width)))
    return out


def test_eval_known_answers(mcap_bag, tmp_path):
    from vita_grasp_ros.bag_eval import evaluate_bag, write_outputs

    perfect = _predictions_bag(mcap_bag, tmp_path / "perfect.mcap")
    res = evaluate_bag(mcap_bag, predictions=perfect, progress=False)
    assert res["mode"] == "online" and res["frames"] == 4 and res["dropped_frames"] == 0
    assert res["metrics"]["top1_accuracy"] == 1.0 and res["metrics"]["precision@10"] == 1.0
    assert res["latency"]["reference"] == "stamp"  # no input topic recorded
    assert res["latency"]["p50_ms"] == pytest.approx(10.0)

    dropped = _predictions_bag(mcap_bag, tmp_path / "drop.mcap", drop={1})
    res = evaluate_bag(mcap_bag, predictions=dropped, progress=False)
    assert res["dropped_frames"] == 1 and res["predicted_frames"] == 3
    assert res["metrics"]["top1_accuracy"] == 0.75  # the dropped frame counts as a miss
    assert res["processed_frames"]["top1_accuracy"] == 1.0
    assert [f["dropped"] for f in res["per_frame"]] == [False, True, False, False]

    def rotate(rows):  # 90 degrees off: never a match
        rows = rows.copy()
        rows[:, 2] = bags.np.mod(rows[:, 2] + np.pi, np.pi) - np.pi / 2
        return rows

    wrong = _predictions_bag(mcap_bag, tmp_path / "wrong.mcap", perturb=rotate)
    res = evaluate_bag(mcap_bag, predictions=wrong, progress=False)
    assert res["metrics"]["top1_accuracy"] == 0.0
    files = write_outputs(res, tmp_path / "report")
    assert json.loads(Path(files["json"]).read_text())["metrics"]["top1_accuracy"] == 0.0
    assert Path(files["latency_hist"]).stat().st_size > 1000
    assert Path(files["accuracy_over_time"]).stat().st_size > 1000


def test_eval_cli_offline(mcap_bag, tmp_path, tiny_checkpoint, capsys):
    rc = bag_main(["eval", "--bag", str(mcap_bag), "--checkpoint", str(tiny_checkpoint),
                   "--out", str(tmp_path / "off"), "--quiet", "--max_grasps", "5"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "bag eval (offline)" in out and "P@5" in out
    res = json.loads((tmp_path / "off" / "eval.json").read_text())
    assert res["mode"] == "offline" and res["predicted_frames"] == 4
    assert res["decode"]["max_grasps"] == 5 and res["metrics"]["mean_predictions"] <= 5
    assert (tmp_path / "off" / "accuracy_over_time.png").is_file()


# --------------------------------------------------------------------------- corrupt bags
def _corrupt_variants(src: Path, d: Path) -> list[Path]:
    data = src.read_bytes()
    out = []
    p = d / "truncated.mcap"
    p.write_bytes(data[: len(data) // 3])
    out.append(p)
    p = d / "garbage.mcap"
    p.write_bytes(b"not a bag at all" * 100)
    out.append(p)
    p = d / "empty.db3"
    p.write_bytes(b"")
    out.append(p)
    p = d / "tail_cut.mcap"  # a recorder killed before writing the summary and footer
    p.write_bytes(data[:-200])
    out.append(p)
    p = d / "bad_header.db3"
    p.write_bytes(b"SQLite format 3\x00" + bytes(200) + data[216:4096])
    out.append(p)
    p = d / "missing.mcap"
    out.append(p)
    p = d / "notabag.txt"
    p.write_text("hello")
    out.append(p)
    return out


def test_corrupt_bags_exit_2(mcap_bag, tmp_path, capsys):
    preds = _predictions_bag(mcap_bag, tmp_path / "preds.mcap")
    for bad in _corrupt_variants(mcap_bag, tmp_path):
        for argv in (["info", str(bad)],
                     ["eval", "--bag", str(bad), "--predictions", str(preds), "--quiet"],
                     ["eval", "--bag", str(mcap_bag), "--predictions", str(bad), "--quiet"]):
            rc = bag_main(argv)
            err = capsys.readouterr().err
            assert rc == 2, (bad.name, argv, err)
            assert str(bad) in err and "Traceback" not in err, err


def test_corrupt_bag_cli_subprocess(mcap_bag, tmp_path):
    bad = tmp_path / "trunc.mcap"
    bad.write_bytes(mcap_bag.read_bytes()[:50_000])
    p = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli", "bag", "eval", "--bag",
                        str(bad), "--checkpoint", "unused.pt"], capture_output=True, text=True,
                       cwd=REPO, timeout=120)
    # a missing checkpoint is reported before the bag is read
    assert p.returncode == 2 and "unused.pt" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli", "bag", "eval", "--bag",
                        str(bad), "--predictions", str(mcap_bag)], capture_output=True,
                       text=True, cwd=REPO, timeout=120)
    assert p.returncode == 2, p.stderr
    assert str(bad) in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0  # one line


def test_writer_abort_leaves_nothing(tmp_path):
    out = tmp_path / "x.mcap"
    with pytest.raises(RuntimeError):
        with bags.BagWriter(out) as w:
            w.add_topic("/a", bags.GRASP_ARRAY_TYPE)
            raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []
