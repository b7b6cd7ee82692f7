"""Decoder ensembles: checkpoints of other seeds joined into one model whose maps are their mean
(`vita-grasp weights ensemble`, `vita-grasp cv --rescore DIR --ensemble DIR2 ..`)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_train_utils import TINY, TOY_CV_SETS

from vita_grasp_core.data.toy import write_toy_dataset


def _cv(root, out, *sets):
    from vita_grasp_core.cli.cv import main

    argv = ["--config", str(TINY), "--dataset_root", str(root), "--output_dir", str(out),
            "--folds", "2", "--no_progress", "--device", "cpu"]
    assert main(argv + sum((["--set", s] for s in TOY_CV_SETS + sets), [])) == 0


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two 2-fold cross-validations of the tiny recipe on a toy Cornell set that differ only in
    their training (the tiny encoder is random, so members must share its seed: here the
    learning rate differs; real members differ in train.seed over one pretrained encoder)."""
    base = tmp_path_factory.mktemp("ensemble")
    root = base / "data"
    write_toy_dataset(root, "cornell", frames=8, size=(96, 128), seed=3)
    _cv(root, base / "a")
    _cv(root, base / "b", "train.learning_rate=3e-3")
    return root, base / "a", base / "b"


def _maps(path, x):
    from vita_grasp_core.predictor import GraspPredictor

    return GraspPredictor.from_checkpoint(path, device="cpu").forward_maps(x)


def test_the_decoders_maps_are_averaged():
    from vita_grasp_core.fpn_decoder import DecoderEnsemble, GraspDecoder
    from vita_grasp_core.model import build_model
    from vita_grasp_core.model_config import ModelConfig

    torch.manual_seed(0)
    cfg = ModelConfig.tiny("dinov2", decoders=3, output_size=(24, 32), decoder_channels=16)
    model = build_model(cfg).eval()
    assert isinstance(model.decoder, DecoderEnsemble) and len(model.decoder.members) == 3
    x = torch.randn(2, 3, *cfg.input_size)
    with torch.no_grad():
        feats = model.backbone_features(x)
        want = torch.stack([GraspDecoder.activate(m(feats, x))
                            for m in model.decoder.members]).mean(0)
        got = model(x)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    # saturated members still give finite logits that activate back to the mean
    sat = torch.full((1, 5, 4, 4), 80.0)
    ens = model.decoder
    for m in ens.members:
        m.forward = lambda f, p=None, s=sat: s
    logits = ens(feats, x)
    assert torch.isfinite(logits).all()
    assert torch.allclose(GraspDecoder.activate(logits), GraspDecoder.activate(sat), atol=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        DecoderEnsemble([GraspDecoder([8], 8, (8, 8), 1)])


def test_an_ensemble_is_not_trained_as_one():
    from vita_grasp_core.training.config_files import ConfigError, load_raw
    from vita_grasp_core.training.train_config import build_config

    with pytest.raises(ConfigError, match="vita-grasp weights ensemble"):
        build_config(load_raw(TINY), ["model.decoders=2"])


def test_weights_ensemble_joins_and_calibrates(two_runs, tmp_path, capsys):
    from vita_grasp_core.checkpoint import read_checkpoint
    from vita_grasp_core.cli.weights import main
    from vita_grasp_core.predictor import GraspPredictor

    _, a, b = two_runs
    members = [str(a / "fold_0" / "best_model.pt"), str(b / "fold_0" / "best_model.pt")]
    out = tmp_path / "new" / "joined.safetensors"  # folders are made
    assert main(["ensemble", *members, "--output", str(out)]) == 0
    assert "joined 2 checkpoints" in capsys.readouterr().out
    blob = read_checkpoint(out)
    assert blob["model_config"]["decoders"] == 2
    meta = blob["meta"]
    assert meta["ensemble"]["members"] == members and len(meta["ensemble"]["sha256"]) == 2
    assert meta["calibration"]["frames"] == 1  # fold 0's validation frame (25 % of 4 + 1)
    assert meta["decode"]["score_threshold"] == GraspPredictor.from_checkpoint(
        out, device="cpu").decode_config.score_threshold
    x = torch.randn(2, 3, 56, 70)
    m0, m1 = _maps(members[0], x), _maps(members[1], x)
    assert (m0 - m1).abs().max() > 1e-3  # the members differ, so the mean is neither
    torch.testing.assert_close(_maps(out, x), (m0 + m1) / 2, atol=1e-4, rtol=0)
    pred = GraspPredictor.from_checkpoint(out, device="cpu")
    rgb = np.random.default_rng(0).integers(0, 255, (96, 128, 3), dtype=np.uint8)
    assert pred.predict(rgb).image_size == (96, 128)
    # it ships like any checkpoint
    card = tmp_path / "card.md"
    card.write_text("# joined\n")
    assert main(["ship", str(out), "--name", "joined", "--card", str(card), "--folder",
                 str(tmp_path / "zoo")]) == 0
    # ONNX Runtime runs the joined model too (one graph: the encoder once, both decoders)
    pytest.importorskip("onnxruntime")
    ort = GraspPredictor.from_checkpoint(out, device="cpu", engine="onnxruntime")
    torch.testing.assert_close(ort.forward_maps(x), (m0 + m1) / 2, atol=1e-4, rtol=0)


def test_weights_ensemble_refuses_what_cannot_be_joined(two_runs, tmp_path, capsys):
    from vita_grasp_core.cli.weights import main

    root, a, b = two_runs
    f0 = str(a / "fold_0" / "best_model.pt")
    cases = [
        ([f0], "at least 2 checkpoints"),
        ([f0] * 17, "17 members: decoders"),
        ([f0, str(a / "fold_1" / "best_model.pt")], "validated on other frames"),
        ([f0, str(tmp_path / "missing.pt")], "not found"),
        ([f0, str(b / "fold_0" / "best_model.pt"), "--dataset_root", str(tmp_path / "none")],
         "validation frames cannot be read"),
    ]
    for args, msg in cases:
        capsys.readouterr()
        assert main(["ensemble", *args, "--output", str(tmp_path / "x.pt")]) == 2, msg
        err = capsys.readouterr().err.strip()
        assert msg in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "x.pt").exists()
    # another decoder size: not the same model
    other = tmp_path / "other"
    _cv(root, other, "model.decoder_channels=8", "data.folds=2")
    assert main(["ensemble", f0, str(other / "fold_0" / "best_model.pt"), "--output",
                 str(tmp_path / "x.pt")]) == 2
    assert "decoder_channels" in capsys.readouterr().err


def test_cv_rescore_with_an_ensemble(two_runs, capsys):
    from vita_grasp_core.cli.cv import main

    _, a, b = two_runs
    assert main(["--rescore", str(a), "--ensemble", str(b), "--device", "cpu"]) == 0
    assert "ensemble-2: top-1" in capsys.readouterr().out
    s = json.loads((a / "rescore_ensemble-2.json").read_text())
    assert s["settings"] == {"ensemble": 2} and s["ensemble_with"] == [str(b)]
    assert [r["recalibrated"] for r in s["per_fold"]] == [True, True]
    for k in (0, 1):
        x = torch.randn(1, 3, 56, 70)
        want = (_maps(a / f"fold_{k}" / "best_model.pt", x)
                + _maps(b / f"fold_{k}" / "best_model.pt", x)) / 2
        torch.testing.assert_close(_maps(a / "ensemble_2" / f"fold_{k}.pt", x), want,
                                   atol=1e-4, rtol=0)
    # --ensemble needs --rescore; a directory that is not a cross-validation is one line
    with pytest.raises(SystemExit) as e:
        main(["--ensemble", str(b)])
    assert e.value.code == 2
    capsys.readouterr()
    assert main(["--rescore", str(a), "--ensemble", str(a / "fold_0")]) == 2
    assert "is not the report of a finished vita-grasp cv" in capsys.readouterr().err


def test_a_checkpoint_from_before_decoders_still_resumes(tmp_path):
    """Checkpoints written before `model.decoders` existed lack the key: it means 1."""
    from vita_grasp_core.checkpoint import read_checkpoint, save_checkpoint, write_checkpoint
    from vita_grasp_core.model import build_model
    from vita_grasp_core.model_config import ModelConfig
    from vita_grasp_core.training.config_files import ConfigError
    from vita_grasp_core.training.dist import Dist
    from vita_grasp_core.training.run_checkpoints import Checkpointer

    model = build_model(ModelConfig.tiny("dinov2", decoder_channels=16))
    save_checkpoint(tmp_path / "new.pt", model)
    blob = read_checkpoint(tmp_path / "new.pt")
    old_cfg = {k: v for k, v in blob["model_config"].items() if k != "decoders"}
    write_checkpoint(tmp_path / "old.pt", blob["state_dict"], old_cfg, blob["meta"])
    ck = Checkpointer(tmp_path, Dist(), {"data": {}, "train": {}})
    now = model.config.to_dict()
    loaded, _ = ck.load_for_resume(tmp_path / "old.pt", now)
    assert loaded.config.decoders == 1
    with pytest.raises(ConfigError, match="decoder_channels"):  # a real difference still counts
        ck.load_for_resume(tmp_path / "old.pt", dict(now, decoder_channels=32))
