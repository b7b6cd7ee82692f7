"""evaluate(): ground truth scores 100 %, random grasps ~0 %; models, predictors; the eval CLI."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from fixtures import CLI_TIMEOUT
from test_train_utils import REPO, WITH_TRAINED_RUN, run, synth_root, trained_run


@pytest.fixture(scope="module")
def val_ds(tmp_path_factory):
    from vita_grasp_core.data import GraspNetDataset, SampleSpec

    return GraspNetDataset(synth_root(tmp_path_factory), scenes=[3],
                           sample=SampleSpec((240, 320), (112, 140)))


def test_ground_truth_scores_100_percent(val_ds):
    from vita_grasp_core.evaluation import EvalOptions, evaluate

    def gt_predictor(batch):  # the best-scoring ground-truth rectangles as predictions
        out = []
        for r in batch["rects"]:
            r = r.numpy().astype(np.float64)
            out.append(r[np.argsort(-r[:, 5], kind="stable")][:10, :6])
        return out

    res = evaluate(gt_predictor, val_ds, options=EvalOptions(progress=False, per_image=True))
    assert res["num_images"] == len(val_ds) == 8
    for k in ("top1_accuracy", "precision@1", "precision@5", "precision@10"):
        assert res[k] == 1.0, k
    assert len(res["images"]) == 8 and all(r["top1"] for r in res["images"])


def test_random_grasps_score_near_zero(val_ds):
    from vita_grasp_core.evaluation import EvalOptions, evaluate

    rng = np.random.default_rng(0)

    def random_predictor(batch):
        out = []
        for h, w in batch["src_size"]:
            n = 10
            out.append(np.column_stack([rng.uniform(0, w, n), rng.uniform(0, h, n),
                                        rng.uniform(-np.pi / 2, np.pi / 2, n),
                                        rng.uniform(20, 150, n), rng.uniform(10, 40, n),
                                        rng.uniform(0, 1, n)]))
        return out

    res = evaluate(random_predictor, val_ds, options=EvalOptions(progress=False))
    assert res["top1_accuracy"] <= 0.125 and res["precision@10"] < 0.05, res


def test_evaluate_model_and_predictor(val_ds, tiny_model_factory):
    from vita_grasp_core import GraspPredictor
    from vita_grasp_core.evaluation import EvalOptions, evaluate

    model = tiny_model_factory(output_size=(240, 320))
    model.train()
    res = evaluate(model, val_ds, options=EvalOptions(max_frames=3, progress=False))
    assert res["num_images"] == 3 and 0 <= res["top1_accuracy"] <= 1
    assert res["mean_predictions"] == 10  # score_threshold 0: always max(ks) predictions
    assert model.decoder.training, "evaluate() must restore the training mode"
    pred = GraspPredictor(model, device="cpu", score_threshold=0.5, max_grasps=3)
    res2 = evaluate(pred, val_ds, options=EvalOptions(batch_size=2, max_frames=3,
                                                        progress=False))
    assert res2["top1_accuracy"] == res["top1_accuracy"]  # same decoding in evaluate()
    assert (pred.score_threshold, pred.max_grasps) == (0.5, 3)  # restored afterwards
    with pytest.raises(TypeError):
        evaluate(object(), val_ds, options=EvalOptions(progress=False))


@WITH_TRAINED_RUN
def test_eval_cli_matches_training_validation(tmp_path, tmp_path_factory):
    out, _, _ = trained_run(tmp_path_factory)
    data = synth_root(tmp_path_factory)
    js = tmp_path / "results.json"
    res = run([sys.executable, "-m", "vita_grasp_core.cli", "eval", "--checkpoint",
               out / "best_model.pt", "--dataset_root", data, "--split", "all", "--scenes", "3",
               "--device", "cpu", "--batch_size", "4", "--out", js, "--no_progress"],
              timeout=180, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "top-1 accuracy" in res.stdout and "precision@10" in res.stdout
    r = json.loads(js.read_text())
    assert r["metrics"]["num_images"] == 8 and len(r["images"]) == 8
    best = torch.load(out / "best_model.pt", weights_only=True)["meta"]
    # eval scores what the API returns: the checkpoint's calibrated threshold, i.e. what the
    # calibration measured on these validation frames with that threshold
    assert r["decoding"]["score_threshold"] == best["decode"]["score_threshold"]
    assert r["metrics"]["top1_accuracy"] == pytest.approx(
        best["calibration"]["top1_accuracy_at_threshold"])
    assert r["metrics"]["top1_accuracy"] <= best["record"]["val"]["top1_accuracy"]
    # --max_frames, and a clear error for a bad checkpoint
    res = run([sys.executable, "-m", "vita_grasp_core.cli", "eval", "--checkpoint",
               tmp_path / "missing.pt", "--dataset_root", data, "--split", "all"],
              timeout=CLI_TIMEOUT, cwd=REPO)
    assert res.returncode == 2 and "not found" in res.stderr
