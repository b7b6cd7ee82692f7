"""scripts/inference.py / vita-grasp infer on png files, folders and globs; bad images skipped."""
from __future__ import annotations

import json
import sys

import cv2
import numpy as np
from test_train_utils import REPO, run


def _image(path, h=360, w=480, seed=0):
    rng = np.random.default_rng(seed)
    img = np.full((h, w, 3), 90, np.uint8)
    for _ in range(4):
        x, y = rng.integers(40, w - 40), rng.integers(40, h - 40)
        cv2.rectangle(img, (int(x) - 20, int(y) - 8), (int(x) + 20, int(y) + 8),
                      tuple(int(c) for c in rng.integers(0, 255, 3)), -1)
    cv2.imwrite(str(path), img)


def test_inference_on_folder_with_a_bad_file(tmp_path, tiny_checkpoint):
    src = tmp_path / "imgs"
    src.mkdir()
    _image(src / "a.png")
    _image(src / "b.jpg", 300, 500, seed=1)
    (src / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    (src / "notes.txt").write_text("ignored: not an image extension")
    out = tmp_path / "out"
    res = run([sys.executable, REPO / "scripts" / "inference.py", "--checkpoint", tiny_checkpoint,
               "--image_path", src, "--output_dir", out, "--device", "cpu",
               "--score_threshold", "0.0", "--max_grasps", "7", "--top_k_draw", "3"], timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "SKIP" in res.stdout and "broken.png" in res.stdout
    assert "done: 2 image(s)" in res.stdout
    for stem, (h, w) in (("a", (360, 480)), ("b", (300, 500))):
        r = json.loads((out / f"{stem}_grasps.json").read_text())
        assert (r["image_height"], r["image_width"]) == (h, w)
        assert 1 <= len(r["grasps"]) <= 7
        g = r["grasps"][0]
        assert set(g) == {"x", "y", "angle", "width", "height", "quality", "object_score"}
        assert 0 <= g["x"] < w and 0 <= g["y"] < h and -np.pi / 2 <= g["angle"] < np.pi / 2
        q = [x["quality"] for x in r["grasps"]]
        assert q == sorted(q, reverse=True)
        vis = cv2.imread(str(out / f"{stem}_vis.png"))
        assert vis.shape == (h, 2 * w, 3)
    assert not (out / "broken_grasps.json").exists()


def test_inference_glob_file_and_failures(tmp_path, tiny_checkpoint):
    _image(tmp_path / "x1.png")
    _image(tmp_path / "x2.png", seed=2)
    out = tmp_path / "o"
    res = run([sys.executable, "-m", "vita_grasp_core.cli", "infer", "--checkpoint",
               tiny_checkpoint, "--image_path", str(tmp_path / "x*.png"), "--output_dir", out,
               "--device", "cpu", "--no_vis"], timeout=180)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (out / "x1_grasps.json").is_file() and (out / "x2_grasps.json").is_file()
    assert not list(out.glob("*_vis.png"))
    # only unreadable images -> non-zero exit
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"")
    res = run([sys.executable, REPO / "scripts" / "inference.py", "--checkpoint", tiny_checkpoint,
               "--image_path", bad, "--output_dir", out], timeout=180)
    assert res.returncode != 0 and "SKIP" in res.stdout
    # nothing matches
    res = run([sys.executable, REPO / "scripts" / "inference.py", "--checkpoint", tiny_checkpoint,
               "--image_path", str(tmp_path / "nope*.png"), "--output_dir", out], timeout=180)
    assert res.returncode == 2 and "no image found" in res.stderr


def test_inference_in_process(tmp_path, tiny_checkpoint):
    from vita_grasp_core.cli.infer import collect_images, main

    _image(tmp_path / "one.png")
    assert collect_images(str(tmp_path)) == [tmp_path / "one.png"]
    assert main(["--checkpoint", str(tiny_checkpoint), "--image_path", str(tmp_path / "one.png"),
                 "--output_dir", str(tmp_path / "out"), "--device", "cpu"]) == 0
    assert (tmp_path / "out" / "one_vis.png").is_file()


def test_summary_says_which_threshold_and_where_from(tmp_path, tiny_model_factory, capsys):
    """The decoding settings come from the checkpoint, the defaults or the command line; the
    printed summary and the JSON say which (issue 10 item 6: one threshold, stored with it)."""
    from vita_grasp_core import GraspPredictor
    from vita_grasp_core.checkpoint import save_checkpoint
    from vita_grasp_core.cli.infer import main

    knots = [[0.0, 0.0], [0.5, 0.4], [1.0, 1.0]]
    ckpt = save_checkpoint(tmp_path / "best_model.pt", tiny_model_factory(),
                           meta={"decode": {"score_threshold": 0.05, "quality_knots": knots}})
    _image(tmp_path / "one.png")
    args = ["--checkpoint", str(ckpt), "--image_path", str(tmp_path / "one.png"), "--device",
            "cpu", "--no_vis"]
    assert main(args + ["--output_dir", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "score_threshold 0.05 (checkpoint)" in out and "max_grasps 10 (default)" in out
    assert "quality calibration 3 knots (checkpoint)" in out
    assert main(args + ["--output_dir", str(tmp_path / "b"), "--score_threshold", "0.3"]) == 0
    out = capsys.readouterr().out
    assert "score_threshold 0.3 (command line)" in out
    rec = json.loads((tmp_path / "b" / "one_grasps.json").read_text())
    assert rec["decoding"]["score_threshold"] == 0.3
    assert rec["decoding"]["sources"]["score_threshold"] == "command line"
    assert rec["decoding"]["sources"]["quality_knots"] == "checkpoint"
    assert all(g["quality"] >= 0.3 for g in rec["grasps"])
    pred = GraspPredictor.from_checkpoint(ckpt, device="cpu", max_grasps=3)
    assert pred.decode_sources == {"score_threshold": "checkpoint", "max_grasps": "override",
                                   "min_distance": "default", "smooth_sigma": "default",
                                   "alternatives": "default", "tta": "default",
                                   "input_scale": "default",
                                   "quality_knots": "checkpoint"}
    pred.set_decoding(min_distance=4)
    assert pred.decode_sources["min_distance"] == "override"
    plain = save_checkpoint(tmp_path / "plain.pt", tiny_model_factory())
    assert set(GraspPredictor.from_checkpoint(plain, device="cpu").decode_sources.values()) == {
        "default"}
