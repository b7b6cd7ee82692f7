"""`synth`, `data check` and `data show`: layout, determinism, exit codes, pictures."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from fixtures import CLI_TIMEOUT

from vita_grasp_core.cli.data import data_main, synth_main
from vita_grasp_core.data.synth import INTRINSICS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def synth2(tmp_path_factory):
    root = tmp_path_factory.mktemp("s2")
    assert synth_main(["--out", str(root), "--scenes", "2", "--frames", "2", "--seed", "4",
                       "--quiet"]) == 0
    return root


def test_synth_layout_and_content(synth2):
    import cv2

    for sid in (0, 1):
        cam = synth2 / f"scenes/scene_{sid:04d}/kinect"
        np.testing.assert_allclose(np.load(cam / "camK.npy"), INTRINSICS["kinect"])
        for f in ("0000", "0001"):
            rgb = cv2.imread(str(cam / f"rgb/{f}.png"), cv2.IMREAD_UNCHANGED)
            depth = cv2.imread(str(cam / f"depth/{f}.png"), cv2.IMREAD_UNCHANGED)
            label = cv2.imread(str(cam / f"label/{f}.png"), cv2.IMREAD_UNCHANGED)
            rect = np.load(cam / f"rect/{f}.npy")
            assert rgb.shape == (720, 1280, 3) and rgb.dtype == np.uint8 and rgb.std() > 5
            assert depth.shape == (720, 1280) and depth.dtype == np.uint16
            assert label.shape == (720, 1280) and label.dtype == np.uint8
            assert rect.dtype == np.float32 and rect.ndim == 2 and rect.shape[1] == 7
            assert len(rect) > 200
            objs = set(np.unique(label)) - {0}
            assert 3 <= len(objs) <= 8
            assert set(np.unique(rect[:, 6]).astype(int) + 1) <= objs
            table = np.median(depth[label == 0])
            assert 590 <= table <= 760
            assert np.median(depth[label > 0]) < table  # objects are closer than the table
            assert rect[:, 5].min() >= 0.1 - 1e-6 and rect[:, 5].max() <= 1.0 + 1e-6
            assert len(np.unique(np.round(rect[:, 5], 2))) >= 3
            # the grasp centre lies on its object (label = obj_id + 1), nearly always
            cx, cy = np.rint(rect[:, 0]).astype(int), np.rint(rect[:, 1]).astype(int)
            assert (label[cy, cx] == rect[:, 6] + 1).mean() > 0.95
            # the opening spans more than the object's top: both fingertips are farther away
            # (side face or table) than the grasp centre on the top face
            dc = depth[cy, cx].astype(float)
            for s in (1, -1):
                ox = np.rint(rect[:, 0] + s * (rect[:, 2] - rect[:, 0])).astype(int).clip(0, 1279)
                oy = np.rint(rect[:, 1] + s * (rect[:, 3] - rect[:, 1])).astype(int).clip(0, 719)
                assert (depth[oy, ox].astype(float) > dc + 4).mean() > 0.95


def test_synth_is_deterministic(tmp_path, synth2):
    a = tmp_path / "a"
    assert synth_main(["--out", str(a), "--scene-ids", "1", "--frames", "1", "--seed", "4",
                       "--quiet"]) == 0
    for sub in ("rgb/0000.png", "rect/0000.npy", "label/0000.png", "depth/0000.png"):
        p = f"scenes/scene_0001/kinect/{sub}"
        assert (a / p).read_bytes() == (synth2 / p).read_bytes()
    b = tmp_path / "b"
    assert synth_main(["--out", str(b), "--scene-ids", "1", "--frames", "1", "--seed", "5",
                       "--quiet"]) == 0
    p = "scenes/scene_0001/kinect/rect/0000.npy"
    assert (a / p).read_bytes() != (b / p).read_bytes()


def test_check_passes_on_synth(synth2, capsys, tmp_path):
    assert data_main(["check", str(synth2), "--quiet", "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "frames: 4 usable of 4 found" in out and "problems: none" in out
    r = json.loads((tmp_path / "r.json").read_text())
    assert r["scenes"] == [0, 1] and r["frames_usable"] == 4 and r["rects_total"] > 800
    assert data_main(["check", str(synth2), "--quiet", "--full"]) == 0
    assert data_main(["check", str(synth2), "--camera", "realsense", "--quiet"]) == 1


def test_check_reports_problems(tmp_path, capsys):
    root = tmp_path / "d"
    assert synth_main(["--out", str(root), "--scenes", "1", "--frames", "3", "--quiet"]) == 0
    cam = root / "scenes/scene_0000/kinect"
    data = (cam / "rgb/0000.png").read_bytes()
    (cam / "rgb/0000.png").write_bytes(data[:1000])
    (cam / "rect/0001.npy").write_bytes(b"")
    capsys.readouterr()
    assert data_main(["check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "frames: 1 usable of 3 found" in out
    assert "corrupt_rgb: 1" in out and "empty_rect: 1" in out and "rgb/0000.png" in out
    assert data_main(["check", str(root), "--quiet", "--strict"]) == 1


def test_check_fails_on_garbage(tmp_path, capsys):
    cam = tmp_path / "g/scenes/scene_0000/kinect"
    for sub, ext in (("rgb", "png"), ("label", "png"), ("rect", "npy")):
        (cam / sub).mkdir(parents=True)
        (cam / sub / f"0000.{ext}").write_bytes(b"not a real file at all")
    assert data_main(["check", str(tmp_path / "g"), "--quiet"]) == 1
    assert "corrupt_" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert data_main(["check", str(tmp_path / "empty"), "--quiet"]) == 1


def test_show_writes_a_picture(synth2, tmp_path):
    out = tmp_path / "show.png"
    assert data_main(["show", str(synth2), "--scene", "1", "--frame", "1", "--out", str(out)]) == 0
    assert out.stat().st_size > 20_000 and out.read_bytes()[:4] == b"\x89PNG"
    assert data_main(["show", str(synth2), "--scene", "1", "--frame", "1", "--augment-seed", "2",
                      "--out", str(tmp_path / "aug.png")]) == 0
    assert data_main(["show", str(synth2), "--scene", "7", "--frame", "0",
                      "--out", str(tmp_path / "x.png")]) == 1


def test_module_entry_point(tmp_path):
    root = tmp_path / "m"
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    r = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli.data", "synth", "--out",
                        str(root), "--scenes", "1", "--frames", "1", "--quiet"],
                       capture_output=True, text=True, env=env, timeout=CLI_TIMEOUT)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "-m", "vita_grasp_core.cli.data", "data", "check",
                        str(root), "--quiet"], capture_output=True, text=True, env=env,
                       timeout=CLI_TIMEOUT)
    assert r.returncode == 0 and "frames: 1 usable" in r.stdout, r.stderr


def test_project_cli_dispatches_here(synth2, capsys):
    from vita_grasp_core.cli import main

    assert main(["data", "check", str(synth2), "--quiet"]) == 0
    assert "frames: 4 usable" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    assert "--first-scene" in capsys.readouterr().out


# --------------------------------------------------------------------------- Cornell / Jacquard
def test_check_and_show_cornell_and_jacquard(tmp_path, capsys):
    from vita_grasp_core.data.toy import write_toy_dataset

    c, j = tmp_path / "c", tmp_path / "j"
    write_toy_dataset(c, "cornell", frames=4, nested=True, negatives=True)
    write_toy_dataset(j, "jacquard", frames=2, views=2)
    (c / "02/pcd0101cpos.txt").write_text("1 2\n3 4\n")                  # corrupt
    with open(c / "01/pcd0100cpos.txt", "a") as f:
        f.write("nan nan\nnan nan\nnan nan\nnan nan\n")                  # one NaN rectangle
    capsys.readouterr()
    js = tmp_path / "c.json"
    assert data_main(["check", str(c), "--quiet", "--json", str(js)]) == 0
    out = capsys.readouterr().out
    assert "format cornell" in out and "frames: 3 usable of 4 found" in out
    assert "corrupt_grasps: 1" in out and "nonfinite_rect: 1 rows in 1 files" in out
    assert "negative rectangles: 3" in out and "image sizes: 96x128 (3)" in out
    r = json.loads(js.read_text())
    assert r["format"] == "cornell" and r["rows_skipped"] == {"nonfinite_rect": 1}
    assert r["summary"]["rects_per_frame"]["min"] == 2
    assert data_main(["check", str(c), "--quiet", "--strict"]) == 1
    assert data_main(["check", str(j), "--quiet", "--format", "jacquard"]) == 0
    assert "format jacquard" in capsys.readouterr().out
    # a directory with no known layout: exit 1 with what was looked for; bad format: 2
    (tmp_path / "none").mkdir()
    assert data_main(["check", str(tmp_path / "none"), "--quiet"]) == 1
    assert "pcdNNNNcpos.txt" in capsys.readouterr().err
    assert data_main(["check", str(c), "--quiet", "--format", "jacquard"]) == 1
    assert data_main(["check", str(c), "--quiet", "--split", "train"]) == 2
    assert data_main(["check", str(tmp_path / "missing"), "--quiet"]) == 2
    # show: by key and by index; the Cornell title says channel 4 is the rectangle union
    out_png = tmp_path / "c.png"
    assert data_main(["show", str(c), "--key", "pcd0102", "--out", str(out_png),
                      "--output-size", "96x128"]) == 0
    assert out_png.read_bytes()[:4] == b"\x89PNG"
    assert data_main(["show", str(j), "--index", "3", "--augment-seed", "1", "--out",
                      str(tmp_path / "j.png"), "--output-size", "96x128"]) == 0
    assert data_main(["show", str(c), "--key", "pcd0101", "--out", str(out_png)]) == 1
    assert data_main(["show", str(c), "--index", "9", "--out", str(out_png)]) == 1
    assert data_main(["show", str(c), "--out", str(out_png)]) == 1
    assert "--key KEY, --index N" in capsys.readouterr().err
