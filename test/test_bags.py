"""Bag tools without a ROS graph: type hashes and CDR against rosidl/rclpy, ``bag make`` contents
(.mcap, .db3, directory, compressed), ``bag eval`` on known answers, corrupt bags and checkpoints
that cannot be loaded -> exit 2, no traceback."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures import CLI_TIMEOUT

from vita_grasp_ros.bag import io as bags
from vita_grasp_ros.bag import messages as bmsg
from vita_grasp_ros.bag import types as bt
from vita_grasp_ros.bag.cli import main as bag_main

pytest.importorskip("rclpy")  # bag make builds messages with the node's rclpy builders
pytest.importorskip("vita_grasp.msg")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from vita_grasp_core.data.synth import synthesize

    root = tmp_path_factory.mktemp("bags_data")
    synthesize(root, scenes=1, frames=4, seed=0)
    return root


@pytest.fixture(scope="module")
def mcap_bag(dataset, tmp_path_factory):
    from vita_grasp_ros.bag.make import make_bag

    out = tmp_path_factory.mktemp("bags_out") / "eval.mcap"
    make_bag(dataset, out, progress=False)
    return out


# --------------------------------------------------------------------------- types and CDR
def test_type_hashes_match_rosidl():
    share = Path(sys.prefix) / "share"
    checked = 0
    for t in (bt.IMAGE_TYPE, bt.COMPRESSED_TYPE, bt.INFO_TYPE, bt.GRASP_TYPE,
              bt.GRASP_ARRAY_TYPE, bt.CLOCK_TYPE):
        pkg, _, name = t.split("/")
        f = share / pkg / "msg" / f"{name}.json"
        if not f.is_file():
            continue
        want = json.loads(f.read_text())["type_hashes"][0]["hash_string"]
        assert bt.typestore().hash_rihs01(t) == want, t
        checked += 1
    if checked == 0:
        pytest.skip("no rosidl type descriptions installed (run make setup)")


def test_rclpy_builders_read_back_with_rosbags():
    """What the bag writer stores (rclpy's CDR of the node's builders) is what rosbags reads,
    field for field, and rosbags' re-encoding equals rclpy's bytes (same definitions)."""
    from rclpy.serialization import serialize_message

    from vita_grasp_ros.image_conversions import numpy_to_image_msg

    st = bt.typestore()
    rows = np.random.default_rng(0).random((37, 7)).astype(np.float32)
    header = bmsg.make_header(1_700_000_000_123_456_789, "cam")
    raw = serialize_message(bmsg.grasp_array_msg(rows, header, (720, 1280)))
    back = st.deserialize_cdr(raw, bt.GRASP_ARRAY_TYPE)
    assert bmsg.stamp_to_ns(back.header.stamp) == 1_700_000_000_123_456_789
    assert (back.header.frame_id, back.image_width, back.image_height) == ("cam", 1280, 720)
    np.testing.assert_array_equal(bmsg.grasp_array_rows(back), rows)
    assert all(not g.has_pose and g.pose.orientation.w == 1.0 for g in back.grasps)
    assert _same_cdr(raw, bt.GRASP_ARRAY_TYPE)

    rgb = np.random.default_rng(1).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    raw = serialize_message(numpy_to_image_msg(rgb, "rgb8", header))
    np.testing.assert_array_equal(bmsg.image_from_msg(st.deserialize_cdr(raw, bt.IMAGE_TYPE)),
                                  rgb)
    assert _same_cdr(raw, bt.IMAGE_TYPE)
    K = np.array([[600.0, 0, 320.5], [0, 601.0, 240.5], [0, 0, 1]])
    raw = serialize_message(bmsg.camera_info_msg(K, 640, 480, header))
    info = st.deserialize_cdr(raw, bt.INFO_TYPE)
    np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), K)
    np.testing.assert_array_equal(np.asarray(info.p).reshape(3, 4)[:, :3], K)
    assert (info.width, info.height, info.distortion_model) == (640, 480, "plumb_bob")
    assert _same_cdr(raw, bt.INFO_TYPE)


def _same_cdr(theirs: bytes, msgtype: str) -> bool:
    """rosbags re-encodes what it decoded from rclpy's bytes to the same length, and the bytes
    differ at most in alignment padding (Fast CDR leaves it uninitialised, rosbags writes zeros):
    every differing byte of rclpy's is a byte rosbags wrote as zero."""
    st = bt.typestore()
    ours = bytes(st.serialize_cdr(st.deserialize_cdr(theirs, msgtype), msgtype))
    return len(theirs) == len(ours) and all(b == 0 for a, b in zip(theirs, ours) if a != b)


def test_grasp_array_roundtrip_large(tmp_path):
    rows = np.random.default_rng(2).random((5000, 7)).astype(np.float32)
    out = tmp_path / "g.mcap"
    with bags.BagWriter(out) as w:
        w.add_topic("/g", bt.GRASP_ARRAY_TYPE)
        w.write("/g", 5, bmsg.grasp_array_msg(rows, bmsg.make_header(5), (10, 20)))
        w.write("/g", 6, bmsg.grasp_array_msg(rows[:0], bmsg.make_header(6), (10, 20)))
    with bags.open_bag(out) as r:
        (_, t, back), (_, _, empty) = list(r.read())
    assert t == 5 and len(empty.grasps) == 0
    np.testing.assert_array_equal(bmsg.grasp_array_rows(back), rows)


# --------------------------------------------------------------------------- bag make
@pytest.mark.parametrize("name,storage", [("a.mcap", "mcap"), ("a.db3", "sqlite3"),
                                          ("adir", "sqlite3")])
def test_make_bag_contents(dataset, tmp_path, name, storage):
    from vita_grasp_core.data import load_frame, scan_dataset

    out = tmp_path / name
    rc = bag_main(["make", "--dataset_root", str(dataset), "--scenes", "0", "--out", str(out),
                   "--storage", storage, "--rate", "4", "--quiet"])
    assert rc == 0
    assert out.is_dir() == (name == "adir")
    if out.is_dir():
        assert (out / "metadata.yaml").is_file() and list(out.glob("*.db3"))
    frames, _, _ = scan_dataset(dataset)
    with bags.open_bag(out) as r:
        assert r.storage == storage
        topics = r.topics()
        assert {t: i.count for t, i in topics.items()} == {
            bt.IMAGE_TOPIC: 4, bt.INFO_TOPIC: 4, bt.DEPTH_TOPIC: 4, bt.GT_TOPIC: 4}
        assert topics[bt.GT_TOPIC].msgtype == bt.GRASP_ARRAY_TYPE
        by_time: dict[int, dict] = {}
        for topic, t, msg in r.read():
            assert bmsg.stamp_to_ns(msg.header.stamp) == t  # bag time == header stamp
            assert msg.header.frame_id == bt.FRAME_ID
            by_time.setdefault(t, {})[topic] = msg
    times = sorted(by_time)
    assert np.allclose(np.diff(times), 0.25e9)  # 4 Hz
    for rec, t in zip(frames, times, strict=True):
        m = by_time[t]
        assert set(m) == set(topics)  # every topic of a frame carries the same stamp
        rgb, _, gt = load_frame(rec)
        np.testing.assert_array_equal(bmsg.image_from_msg(m[bt.IMAGE_TOPIC]), rgb)
        rows = bmsg.grasp_array_rows(m[bt.GT_TOPIC])
        assert len(rows) == len(gt) > 100  # every GT rectangle
        np.testing.assert_array_equal(rows[:, :6], gt[:, :6].astype(np.float32))
        assert (rows[:, 6] == 1).all()
        assert (m[bt.GT_TOPIC].image_height, m[bt.GT_TOPIC].image_width) == rgb.shape[:2]
        info = m[bt.INFO_TOPIC]
        K = np.load(Path(rec.rgb).parent.parent / "camK.npy")
        np.testing.assert_allclose(np.asarray(info.k).reshape(3, 3), K)
        assert (info.height, info.width) == rgb.shape[:2]
        d = m[bt.DEPTH_TOPIC]
        assert d.encoding == "16UC1" and (d.height, d.width) == rgb.shape[:2]


def test_make_bag_compressed_and_limits(dataset, tmp_path):
    from vita_grasp_ros.bag.make import BagLayout, FrameSelection, make_bag

    out = tmp_path / "c.mcap"
    s = make_bag(dataset, out, FrameSelection(max_frames=2),
                 BagLayout(compressed=True, depth_topic=None), progress=False)
    assert s["frames"] == 2 and s["topics"] == {f"{bt.IMAGE_TOPIC}/compressed": 2,
                                                bt.INFO_TOPIC: 2, bt.GT_TOPIC: 2}
    with bags.open_bag(out) as r:
        (_, _, msg), = list(r.read([f"{bt.IMAGE_TOPIC}/compressed"]))[:1]
        rgb = bmsg.image_from_msg(msg)
        assert rgb.shape == (720, 1280, 3) and rgb.dtype == np.uint8
    with pytest.raises(bt.BagError, match="exists already"):
        make_bag(dataset, out, progress=False)
    make_bag(dataset, out, FrameSelection(max_frames=1), overwrite=True, progress=False)
    with bags.open_bag(out) as r:
        assert r.topics()[bt.GT_TOPIC].count == 1
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary
    with pytest.raises(ValueError, match="no frames"):
        make_bag(dataset, tmp_path / "none.mcap", FrameSelection(scenes=[42]), progress=False)
    assert not (tmp_path / "none.mcap").exists()


@pytest.mark.parametrize("fmt", ["cornell", "jacquard"])
def test_make_bag_other_formats(tmp_path, fmt, capsys):
    """Cornell and Jacquard folders (tiny generated files) become bags like GraspNet ones: every
    GT rectangle the loader keeps, in key order; camera info marked uncalibrated (K = 0)."""
    from vita_grasp_core.data import load_frame, scan_dataset
    from vita_grasp_core.data.toy import write_toy_dataset

    root = tmp_path / fmt
    truth = write_toy_dataset(root, fmt, frames=3, negatives=fmt == "cornell", depth=True,
                              nested=fmt == "cornell")
    out = tmp_path / f"{fmt}.mcap"
    assert bag_main(["make", "--dataset_root", str(root), "--out", str(out), "--quiet"]) == 0
    assert f"a {fmt} data set" in capsys.readouterr().out
    frames = scan_dataset(root).frames
    assert sorted(truth) == [rec.key for rec in frames]
    with bags.open_bag(out) as r:
        assert {t: i.count for t, i in r.topics().items()} == {
            bt.IMAGE_TOPIC: len(frames), bt.INFO_TOPIC: len(frames), bt.GT_TOPIC: len(frames)}
        gts = [m for _, _, m in r.read([bt.GT_TOPIC])]
        infos = [m for _, _, m in r.read([bt.INFO_TOPIC])]
        images = [m for _, _, m in r.read([bt.IMAGE_TOPIC])]
    for rec, gt, info, img in zip(frames, gts, infos, images, strict=True):
        frame = load_frame(rec)
        np.testing.assert_array_equal(bmsg.image_from_msg(img), frame.rgb)
        rows = bmsg.grasp_array_rows(gt)
        np.testing.assert_allclose(rows[:, :5], truth[rec.key][:, :5], atol=1e-3)
        np.testing.assert_array_equal(rows[:, :6], frame.grasps[:, :6])
        assert (gt.image_height, gt.image_width) == frame.size == (info.height, info.width)
        assert not np.asarray(info.k).any()  # no intrinsics in these layouts
    # GraspNet-only selections are refused for them, with one line
    assert bag_main(["make", "--dataset_root", str(root), "--out", str(tmp_path / "x.mcap"),
                     "--scenes", "0", "--quiet"]) == 2
    assert "scenes" in capsys.readouterr().err
    assert bag_main(["make", "--dataset_root", str(root), "--format", "graspnet", "--out",
                     str(tmp_path / "x.mcap"), "--quiet"]) == 2
    assert not (tmp_path / "x.mcap").exists()


def test_make_bag_unknown_layout(tmp_path, capsys):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.png").write_bytes(b"not really")
    for root in (tmp_path / "photos", tmp_path / "missing"):
        rc = bag_main(["make", "--dataset_root", str(root), "--out", str(tmp_path / "o.mcap"),
                       "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2 and str(root) in err and "Traceback" not in err, err
        assert err.strip().count("\n") == 0


# --------------------------------------------------------------------------- bag eval
def _predictions_bag(mcap_bag, out, *, drop=(), delay_ns=10_000_000, perturb=None):
    """A 'recording' whose /grasps are the GT sorted best first (received ``delay_ns`` after the
    stamp), with frames ``drop`` left out."""
    from vita_grasp_core.metrics import sort_by_quality

    with bags.open_bag(mcap_bag) as r, bags.BagWriter(out) as w:
        w.add_topic(bt.PRED_TOPIC, bt.GRASP_ARRAY_TYPE)
        for i, (_, t, msg) in enumerate(r.read([bt.GT_TOPIC])):
            if i in drop:
                continue
            rows = sort_by_quality(bmsg.grasp_array_rows(msg))[:10]
            if perturb is not None:
                rows = perturb(rows)
            header = bmsg.make_header(bmsg.stamp_to_ns(msg.header.stamp), msg.header.frame_id)
            w.write(bt.PRED_TOPIC, t + delay_ns,
                    bmsg.grasp_array_msg(rows, header, (msg.image_height, msg.image_width)))
    return out


def test_eval_known_answers(mcap_bag, tmp_path):
    from vita_grasp_ros.bag.evaluate import evaluate_bag, write_outputs

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
        rows[:, 2] = np.mod(rows[:, 2] + np.pi, np.pi) - np.pi / 2
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
                       cwd=REPO, timeout=CLI_TIMEOUT)
    # a missing checkpoint is reported before the bag is read
    assert p.returncode == 2 and "unused.pt" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli", "bag", "eval", "--bag",
                        str(bad), "--predictions", str(mcap_bag)], capture_output=True,
                       text=True, cwd=REPO, timeout=CLI_TIMEOUT)
    assert p.returncode == 2, p.stderr
    assert str(bad) in p.stderr and "Traceback" not in p.stderr
    assert p.stderr.strip().count("\n") == 0  # one line


def test_writer_abort_leaves_nothing(tmp_path):
    out = tmp_path / "x.mcap"
    with pytest.raises(RuntimeError):
        with bags.BagWriter(out) as w:
            w.add_topic("/a", bt.GRASP_ARRAY_TYPE)
            raise RuntimeError("boom")
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_writer_replaces_only_bags(tmp_path):
    rows = np.zeros((1, 7), np.float32)
    for name in ("b.mcap", "bdir"):
        out = tmp_path / name
        for _ in range(2):  # the second write replaces the first (file and directory outputs)
            with bags.BagWriter(out, overwrite=True) as w:
                w.add_topic("/g", bt.GRASP_ARRAY_TYPE)
                w.write("/g", 1, bmsg.grasp_array_msg(rows, bmsg.make_header(1), (2, 2)))
        with bags.open_bag(out) as r:
            assert r.message_count == 1
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(bt.BagError, match="not a rosbag2 bag"):
        bags.BagWriter(other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.mcap", "bdir", "notes"]


# --------------------------------------------------------------------------- bad checkpoints
def _hub_checkpoint(tmp_path, tiny_model_factory) -> tuple[Path, Path]:
    """A checkpoint whose frozen encoder is referenced by a hub id (not stored), and a local
    directory with that encoder's weights (what --pretrained_model would point at)."""
    import torch
    from conftest import tiny_config

    from vita_grasp_core import build_model
    from vita_grasp_core.checkpoint import save_checkpoint

    enc = tmp_path / "encoder"
    tiny_model_factory().backbone.vit.save_pretrained(enc)
    torch.manual_seed(0)
    model = build_model(tiny_config(pretrained_model=str(enc), freeze_vit=True))
    ckpt = save_checkpoint(tmp_path / "hub.pt", model, meta={"epoch": 0})
    blob = torch.load(ckpt, weights_only=True)
    assert not any(k.startswith("backbone.") for k in blob["state_dict"])  # referenced only
    blob["model_config"]["pretrained_model"] = "no-such-org/no-such-encoder"
    torch.save(blob, ckpt)
    return ckpt, enc


def test_eval_bad_checkpoints_one_line(mcap_bag, tmp_path, tiny_model_factory, capsys):
    """A directory, random bytes, a missing file: exit 2 and one line naming the file; a hub
    encoder that is not available offline: the same, and --pretrained_model DIR fixes it."""
    folder = tmp_path / "run"
    folder.mkdir()
    noise = tmp_path / "noise.pt"
    noise.write_bytes(np.random.default_rng(0).bytes(4096))
    for bad in (folder, noise, tmp_path / "missing.pt"):
        rc = bag_main(["eval", "--bag", str(mcap_bag), "--checkpoint", str(bad), "--quiet"])
        err = capsys.readouterr().err
        assert rc == 2, err
        assert str(bad) in err and "Traceback" not in err and err.strip().count("\n") == 0, err
    rc = bag_main(["eval", "--bag", str(mcap_bag), "--checkpoint", str(noise),
                   "--score_threshold", "2", "--quiet"])
    assert rc == 2 and "score_threshold" in capsys.readouterr().err

    ckpt, enc = _hub_checkpoint(tmp_path, tiny_model_factory)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    p = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli", "bag", "eval", "--bag",
                        str(mcap_bag), "--checkpoint", str(ckpt), "--quiet"],
                       capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert p.returncode == 2, p.stderr
    assert "Traceback" not in p.stderr and p.stderr.strip().count("\n") == 0, p.stderr
    assert "no-such-org/no-such-encoder" in p.stderr and "pretrained_model" in p.stderr
    rc = bag_main(["eval", "--bag", str(mcap_bag), "--checkpoint", str(ckpt),
                   "--pretrained_model", str(enc), "--json", "--quiet"])
    assert rc == 0, capsys.readouterr().err
    assert json.loads(capsys.readouterr().out)["predicted_frames"] == 4
