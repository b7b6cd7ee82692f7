"""Augmented-view feature cache, score calibration and k-fold cross-validation (issue #10)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train_utils import TINY, TOY_CV_SETS

from vita_grasp_core.data.toy import write_toy_dataset
from vita_grasp_core.training.config_files import load_raw
from vita_grasp_core.training.train_config import build_config

SHARED_CORNELL = Path(__file__).resolve().parents[2] / "shared" / "data" / "cornell"


def _cfg(root, *extra):
    """The tiny config on a toy Cornell set: frozen encoder, augmented-view cache."""
    return build_config(load_raw(TINY), [
        f"data.root={root}", "data.format=cornell", "data.val_fraction=0.25", "data.folds=2",
        "data.train_scenes=null", "data.val_scenes=null",
        "data.augment={rotate_p: 1.0, color_p: 1.0}", "data.memory_cache=false",
        "model.freeze_vit=true", "model.input_size=[56,70]", "model.output_size=[48,64]",
        "model.width_scale=0.5", "model.decoder_channels=16", "train.feature_cache=true",
        "train.cache_views=3", "train.epochs=1", "train.batch_size=2", *extra])


@pytest.fixture(scope="module")
def toy_cornell(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy_cornell")
    truth = write_toy_dataset(root, "cornell", frames=8, size=(96, 128), seed=3)
    return root, truth


def test_views_are_cached_once_and_move_the_grasps(toy_cornell, tmp_path):
    from vita_grasp_core.preprocess import image_to_input
    from vita_grasp_core.training.feature_cache import frame_views
    from vita_grasp_core.training.train import Trainer

    root, truth = toy_cornell
    shared = f"train.feature_cache_dir={tmp_path / 'cache'}"
    tr = Trainer(_cfg(root, shared), tmp_path / "run", device="cpu", progress=False)
    try:
        cds, base = tr.train_ds, tr.train_ds.dataset
        n_train, n_val = len(cds), len(tr.val_ds)
        assert n_train + n_val == 8 and n_val == 2
        files = sorted(tr.cache.dir.glob("*.safetensors"))
        assert len(files) == 3 * n_train + n_val  # views of training frames, val: its own view
        key = base.frames[0].key
        views = frame_views(base, 0, 3)
        np.testing.assert_allclose(views[0][2], truth[key], atol=2e-3)  # view 0 = the frame
        assert not np.array_equal(views[1][0], views[0][0])  # augmented image
        assert not np.allclose(views[1][2][:, :3], views[2][2][:, :3])  # grasps moved along
        for v, (rgb, _, g) in enumerate(views):
            item = cds.load(0, v)
            np.testing.assert_allclose(item["rects"].numpy(), g, atol=1e-5)
            x, _ = image_to_input(rgb, base.input_size, base.output_size, base.mean, base.std)
            feats = tr.model.backbone_features(x[None])
            for f, c in zip(feats, item["features"]):
                torch.testing.assert_close(c.float(), f[0], atol=2e-2, rtol=1e-2)
        # the drawn view changes with the epoch, deterministically
        drawn = [[cds.view_of(i) for i in range(n_train)] for _ in range(2)]
        cds.set_epoch(1)
        drawn.append([cds.view_of(i) for i in range(n_train)])
        assert drawn[0] == drawn[1] and set(sum(drawn, [])) <= {0, 1, 2}
        summary = tr.run()
    finally:
        tr.close()
    assert summary["epochs"] == 1 and summary["calibration"] is not None
    blob = torch.load(tmp_path / "run" / "best_model.pt", map_location="cpu", weights_only=True)
    dec, rep = blob["meta"]["decode"], blob["meta"]["calibration"]
    assert rep["frames"] == n_val and 0.0 <= dec["score_threshold"] <= 0.5
    if rep.get("note"):  # one epoch of a random tiny encoder found nothing right on validation
        assert dec["score_threshold"] == 0.0 and dec["quality_knots"] is None
    else:
        assert dec["quality_knots"][0][0] == 0.0
    # a second run with more views reuses the first three views of every frame
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    tr2 = Trainer(_cfg(root, shared, "train.cache_views=4"), tmp_path / "run2", device="cpu",
                  progress=False)
    tr2.close()
    assert tr2.cache.dir == tr.cache.dir
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes
    assert len(list(tr.cache.dir.glob("*.safetensors"))) == 4 * n_train + n_val


def test_predictor_uses_the_calibrated_threshold(toy_cornell, tmp_path):
    from vita_grasp_core.predictor import GraspPredictor
    from vita_grasp_core.training.train import train

    root, _ = toy_cornell
    train(_cfg(root), tmp_path, device="cpu", progress=False)
    blob = torch.load(tmp_path / "best_model.pt", map_location="cpu", weights_only=True)
    p = GraspPredictor.from_checkpoint(tmp_path / "best_model.pt", device="cpu")
    assert p.score_threshold == pytest.approx(blob["meta"]["decode"]["score_threshold"])
    stored = blob["meta"]["decode"]
    assert p.decode_config.to_dict() == stored  # threshold and calibration as stored
    assert GraspPredictor.from_checkpoint(tmp_path / "best_model.pt", device="cpu",
                                          score_threshold=0.9).score_threshold == 0.9


def test_choose_threshold_and_calibrate():
    from vita_grasp_core.decoding_settings import DecodeConfig
    from vita_grasp_core.training.fit_decoding import calibrate, choose_threshold

    q = np.array([0.9, 0.8, 0.3, 0.05, 0.6])
    ok = np.array([True, True, True, False, False])
    assert choose_threshold(q, ok, margin=1.0) == 0.3  # keeps every correct best grasp
    assert choose_threshold(q, ok) == 0.15  # with the default safety margin (1/2)
    assert choose_threshold(q, ok, max_top1_loss=0.34, margin=1.0) == 0.5  # drops 1 of 3: cap
    assert choose_threshold(q, np.zeros(5, bool)) == 0.0
    # predictions whose raw quality tells right from wrong: high raw = on a GT rectangle
    gt = np.array([[50.0, 50.0, 0.0, 30.0, 15.0]])
    preds = []
    for i in range(40):
        good = i % 4 != 0
        top = [50.0, 50.0, 0.0, 30.0, 15.0, 0.6 + 0.01 * i % 0.3] if good else \
            [10.0, 90.0, 1.2, 30.0, 15.0, 0.2]
        preds.append((f"f{i}", np.array([top, [90.0, 10.0, 0.5, 20.0, 10.0, 0.05]]), gt))
    cfg, rep = calibrate(preds, DecodeConfig(score_threshold=0.0))
    assert rep["frames"] == 40 and rep["top1_accuracy_threshold0"] == pytest.approx(0.75)
    assert rep["top1_accuracy_at_threshold"] == pytest.approx(0.75)  # no correct top-1 lost
    assert 0.0 < cfg.score_threshold <= 0.5
    assert rep["frames_without_grasp_at_threshold"] == 10


def _check_cv(out: Path, n_frames: int, folds: int):
    rep = json.loads((out / "cv.json").read_text())
    assert rep["folds"] == folds and len(rep["per_fold"]) == folds
    assert sum(f["test_frames"] for f in rep["per_fold"]) == n_frames
    rows = json.loads((out / "cv_images.json").read_text())
    assert sorted(r["key"] for r in rows) == sorted(set(r["key"] for r in rows))  # once each
    assert len(rows) == n_frames
    for f in range(folds):
        cfg = (out / f"fold_{f}" / "config.yaml").read_text()
        assert f"test_fold: {f}" in cfg
        test_keys = {r["key"] for r in rows if r["fold"] == f}
        log = (out / f"fold_{f}" / "train.log").read_text()
        assert "left out" in log and test_keys
        assert (out / f"fold_{f}" / "best_model.pt").is_file()
    assert 0 <= rep["top1_accuracy_mean"] <= 1 and "precision@5_std" in rep
    return rep


def test_cv_command_scores_every_frame_once(toy_cornell, tmp_path, capsys):
    from vita_grasp_core.cli.cv import main
    from vita_grasp_core.data import scan_dataset
    from vita_grasp_core.training.data import split_frames

    root, _ = toy_cornell
    argv = ["--config", str(TINY), "--dataset_root", str(root), "--output_dir",
            str(tmp_path / "cv"), "--folds", "2", "--no_progress", "--device", "cpu"]
    assert main(argv + sum((["--set", s] for s in TOY_CV_SETS), [])) == 0
    cap = capsys.readouterr()
    out = cap.out
    assert "2-fold cross-validation (image-wise) on 8 frames" in out and "mean +- std" in out
    assert "fold 2/2: test top-1" in cap.err  # after fold 1's run closed its log
    _check_cv(tmp_path / "cv", 8, 2)
    # training and validation frames of a fold never include its test frames
    cfg = _cfg(root, "data.test_fold=1")
    frames = scan_dataset(root, "cornell").frames
    tr, va, te = split_frames(cfg, frames)
    assert not (set(tr) | set(va)) & set(te) and len(tr) + len(va) + len(te) == 8
    assert main(argv + ["--only", "5"]) == 2  # no such fold: one line, exit 2
    # test-time views change the maps: each fold is calibrated again on its validation frames
    assert main(["--rescore", str(tmp_path / "cv"), "--tta", "2", "--device", "cpu"]) == 0
    s = json.loads((tmp_path / "cv" / "rescore_tta-2.json").read_text())
    assert [r["recalibrated"] for r in s["per_fold"]] == [True, True]
    # further grasps per object: decoding only, so no calibration again
    assert main(["--rescore", str(tmp_path / "cv"), "--alternatives", "3", "--device",
                 "cpu"]) == 0
    s = json.loads((tmp_path / "cv" / "rescore_alternatives-3.json").read_text())
    assert s["settings"] == {"alternatives": 3}
    assert [r["recalibrated"] for r in s["per_fold"]] == [False, False]
    rep = json.loads((tmp_path / "cv" / "cv.json").read_text())
    assert "width" in rep["per_fold"][0] and "full_frame" in rep["per_fold"][0]
    # the same folds and checkpoints, scored again through ONNX Runtime (issue #13)
    pytest.importorskip("onnxruntime")
    assert main(["--rescore", str(tmp_path / "cv"), "--engine", "onnxruntime"]) == 0
    s = json.loads((tmp_path / "cv" / "rescore_engine-onnxruntime.json").read_text())
    assert len(s["per_fold"]) == 2
    for r in s["per_fold"]:
        assert abs(r["top1_accuracy"] - r["reference_top1"]) <= 0.25  # 1 of 4 frames at most
    assert main(["--rescore", str(tmp_path / "nothing")]) == 2


@pytest.mark.skipif(not SHARED_CORNELL.is_dir(), reason="../shared/data/cornell not present")
def test_short_cv_on_shared_cornell_frames(tmp_path):
    from vita_grasp_core.training.cv import run_cv

    root = tmp_path / "cornell"
    root.mkdir()
    for f in sorted(SHARED_CORNELL.glob("pcd*cpos.txt"))[:6]:
        stem = f.name[:7]
        shutil.copy(f, root / f.name)
        shutil.copy(SHARED_CORNELL / f"{stem}r.png", root / f"{stem}r.png")
    cfg = _cfg(root, "model.input_size=[56,56]", "model.output_size=[56,56]",
               "train.cache_views=2", "data.val_fraction=0.34")
    rep = run_cv(cfg, tmp_path / "cv", device="cpu", progress=False)
    assert rep["frames"] == 6
    _check_cv(tmp_path / "cv", 6, 2)
    assert (tmp_path / "cv" / "overlays").is_dir()


def test_image_stem_trains_from_the_cache(toy_cornell, tmp_path):
    """A decoder with an image stem trains from cached views: the cache keeps each view's input
    canvas, so the stem sees exactly the augmented image the features came from."""
    from vita_grasp_core.preprocess import image_to_input
    from vita_grasp_core.training.feature_cache import frame_views
    from vita_grasp_core.training.train import Trainer

    root, _ = toy_cornell
    tr = Trainer(_cfg(root, "model.image_stem=8"), tmp_path, device="cpu", progress=False)
    try:
        cds, base = tr.train_ds, tr.train_ds.dataset
        rgb = frame_views(base, 0, 3)[2][0]
        x, _ = image_to_input(rgb, base.input_size, base.output_size, base.mean, base.std)
        torch.testing.assert_close(cds.load(0, 2)["image"], x)
        summary = tr.run()
    finally:
        tr.close()
    assert summary["epochs"] == 1 and summary["last_val"]["num_images"] == 2


@pytest.mark.parametrize("name", ["dinov2_cornell", "internvit_cornell", "dinov2_realtime"])
def test_shipped_cornell_configs_train_as_written(name, toy_cornell, tmp_path):
    """The real-photograph recipes validate, and train and calibrate on a Cornell layout with
    every other setting as shipped: only the encoder is swapped for its tiny random config (no
    weights are downloaded) and the sizes shrunk."""
    from vita_grasp_core.backbones import get_spec
    from vita_grasp_core.checkpoint import read_checkpoint
    from vita_grasp_core.training.train import Trainer

    raw = load_raw(f"{name}.yaml")  # a shipped config
    cfg = build_config(raw)
    spec = get_spec(cfg.model.backbone)
    assert cfg.model.freeze_vit and cfg.train.feature_cache and cfg.train.cache_views >= 2
    assert cfg.data.format == "auto" and cfg.train.calibrate and cfg.model.width_scale == 0.5
    assert cfg.model.pretrained_model is not None  # a real pretrained encoder
    if cfg.model.feature_layers:  # the layers exist in the real encoder
        assert max(cfg.model.feature_layers) <= spec.depth
    raw["model"].update(pretrained_model=None, backbone_config=dict(spec.tiny_config),
                        feature_layers=None, input_size=[56, 56], output_size=[48, 48],
                        decoder_channels=16)
    raw["data"].update(root=str(toy_cornell[0]), val_fraction=0.25)
    raw["train"].update(epochs=1, cache_views=2, batch_size=4,
                        feature_cache_dir=str(tmp_path / "cache"))
    tr = Trainer(build_config(raw), tmp_path / "run", device="cpu", progress=False)
    try:
        summary = tr.run()
    finally:
        tr.close()
    assert summary["epochs"] == 1
    meta = read_checkpoint(tmp_path / "run" / "best_model.pt")["meta"]
    assert "decode" in meta and meta["decode"]["score_threshold"] <= 0.5


def test_a_stopped_cv_resumes_into_one_report(toy_cornell, tmp_path, monkeypatch):
    """make real on a busy machine: folds run apart (``only``), the camera check on some folds,
    a fold whose training finished but was never scored; ``resume`` ends in one report without
    training anything again."""
    import importlib

    from vita_grasp_core.training import cv

    train_mod = importlib.import_module("vita_grasp_core.training.train")
    root, _ = toy_cornell
    out = tmp_path / "cv"
    first = cv.run_cv(_cfg(root), out, device="cpu", progress=False, only=[0], camera_folds=[])
    assert [f["fold"] for f in first["per_fold"]] == [0]
    assert first["per_fold"][0]["full_frame"] is None
    assert (out / "fold_0" / cv.FOLD_RESULT).is_file()
    train_mod.train(build_config(_cfg(root).to_dict(), ["data.test_fold=1", "data.folds=2"]),
                    out / "fold_1", device="cpu", progress=False)  # stopped before its scoring
    calls, real = [], train_mod.train
    monkeypatch.setattr(train_mod, "train",
                        lambda *a, **k: calls.append(k["resume"]) or real(*a, **k))
    rep = cv.run_cv(_cfg(root), out, device="cpu", progress=False, resume=True)
    assert calls == ["auto"]  # fold 0 from its kept result; fold 1 continued, with nothing to do
    assert len((out / "fold_1" / "metrics.jsonl").read_text().splitlines()) == 1
    assert [f["fold"] for f in rep["per_fold"]] == [0, 1]
    assert rep["per_fold"][0] == first["per_fold"][0]
    assert rep["per_fold"][1]["full_frame"] is not None
    assert json.loads((out / "cv.json").read_text())["per_fold"] == rep["per_fold"]
