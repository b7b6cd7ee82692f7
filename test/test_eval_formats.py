"""`vita-grasp eval` on every format: Cornell / Jacquard folds, GraspNet --scenes without
--split, ground truth outside the image counted, one-line errors for unusable checkpoints."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from test_train_utils import run, subprocess_env

from vita_grasp_core.cli.eval import main
from vita_grasp_core.data import kfold, scan_dataset
from vita_grasp_core.data.toy import write_toy_dataset


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory):
    import torch
    from conftest import tiny_config

    from vita_grasp_core import build_model
    from vita_grasp_core.checkpoint import save_checkpoint

    torch.manual_seed(0)
    model = build_model(tiny_config(output_size=(96, 128)))
    return save_checkpoint(tmp_path_factory.mktemp("ck") / "best_model.pt", model,
                           meta={"epoch": 0})


def _eval(capsys, *args):
    rc = main([str(a) for a in args] + ["--no_progress", "--device", "cpu"])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cornell_fold_and_whole_set(tmp_path, small_checkpoint, capsys):
    root = tmp_path / "c"
    gt = write_toy_dataset(root, "cornell", frames=6, size=(96, 128))
    with open(root / "pcd0102cpos.txt", "a") as f:  # one GT centre outside the image: kept
        f.write("150 40\n170 40\n170 50\n150 50\n")
    js = tmp_path / "r.json"
    rc, out, err = _eval(capsys, "--checkpoint", small_checkpoint, "--dataset_root", root,
                         "--fold", 1, "--folds", 3, "--seed", 7, "--out", js)
    assert rc == 0, err
    assert "cornell, fold 1 of 3 (image-wise, seed 7)" in out and "top-1 accuracy" in out
    r = json.loads(js.read_text())
    frames = scan_dataset(root).frames
    want = sorted(frames[i].key for i in kfold(frames, 3, seed=7)[1])
    assert sorted(im["key"] for im in r["images"]) == want
    assert (r["format"], r["fold"], r["folds"], r["seed"], r["split_by"]) == ("cornell", 1, 3, 7,
                                                                           "image")
    assert r["metrics"]["num_images"] == 2
    n_gt = sum(len(gt[k]) for k in want) + ("pcd0102" in want)
    assert r["metrics"]["gt_rects"] == n_gt
    # every frame, and the outside rectangle is reported
    rc, out, err = _eval(capsys, "--checkpoint", small_checkpoint, "--dataset_root", root,
                         "--out", js, "--format", "cornell")
    assert rc == 0, err
    r = json.loads(js.read_text())
    assert r["metrics"]["num_images"] == 6 and r["metrics"]["gt_rects_outside"] == 1
    assert "centre outside image" in out and "1 (kept, unmatched)" in out
    row = next(im for im in r["images"] if im["key"] == "pcd0102")
    assert row["num_gt_outside"] == 1 and row["num_gt"] == len(gt["pcd0102"]) + 1


def test_jacquard_object_wise_fold(tmp_path, small_checkpoint, capsys):
    root = tmp_path / "j"
    write_toy_dataset(root, "jacquard", frames=4, views=2, size=(96, 128))
    js = tmp_path / "r.json"
    rc, out, err = _eval(capsys, "--checkpoint", small_checkpoint, "--dataset_root", root,
                         "--fold", 0, "--folds", 2, "--split_by", "object", "--out", js)
    assert rc == 0, err
    keys = {im["key"] for im in json.loads(js.read_text())["images"]}
    objs = {k.split("/")[0] for k in keys}
    assert len(keys) == 4 and len(objs) == 2  # two whole objects, both views each
    assert all(f"{o}/{v}_{o}" in keys for o in objs for v in (0, 1))


def test_graspnet_scenes_without_split(tmp_path, small_checkpoint, capsys):
    root = tmp_path / "g"
    write_toy_dataset(root, "graspnet", frames=6, size=(96, 128))  # scenes 0 (4) and 1 (2)
    js = tmp_path / "r.json"
    rc, out, err = _eval(capsys, "--checkpoint", small_checkpoint, "--dataset_root", root,
                         "--scenes", 1, "--out", js)
    assert rc == 0, err
    r = json.loads(js.read_text())
    assert r["metrics"]["num_images"] == 2 and {im["scene"] for im in r["images"]} == {1}
    assert r["scenes"] == [1] and r["split"] is None
    # no --scenes: the default split test_seen (scenes 100-129) has none of these scenes
    rc, out, err = _eval(capsys, "--checkpoint", small_checkpoint, "--dataset_root", root)
    assert rc == 2 and "no usable frames" in err and "test_seen" in err
    rc, out, err = _eval(capsys, "--checkpoint", small_checkpoint, "--dataset_root", root,
                         "--split", "all")
    assert rc == 0 and "6 of 6 frames" in out


@pytest.mark.parametrize("args, message", [
    (["--fold", "3", "--folds", "3"], "--fold must be in 0..2"),
    (["--split", "train"], "--split / --scenes select GraspNet scenes"),
    (["--folds", "9", "--fold", "0"], "cannot split 3 frames into 9 folds"),
    (["--format", "jacquard"], "no usable frames"),
])
def test_bad_selections_are_one_line_exit_2(tmp_path, small_checkpoint, capsys, args, message):
    write_toy_dataset(tmp_path, "cornell", frames=3, size=(96, 128))
    rc, out, err = _eval(capsys, "--checkpoint", small_checkpoint, "--dataset_root", tmp_path,
                         *args)
    assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_unusable_checkpoints_are_one_line_exit_2(tmp_path, capsys):
    root = tmp_path / "c"
    write_toy_dataset(root, "cornell", frames=2, size=(96, 128))
    rnd = tmp_path / "random.pt"
    rnd.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (tmp_path / "adir").mkdir()
    for ck in (rnd, tmp_path / "adir", tmp_path / "missing.pt"):
        rc, out, err = _eval(capsys, "--checkpoint", ck, "--dataset_root", root)
        assert rc == 2, (ck, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("vita-grasp eval: cannot load checkpoint")
        assert str(ck) in lines[0]


def test_unavailable_hub_encoder_is_one_line_exit_2(tmp_path, small_checkpoint):
    import torch

    blob = torch.load(small_checkpoint, weights_only=True)
    blob["model_config"]["pretrained_model"] = "vita-grasp-test/no-such-encoder"
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items()
                          if k.startswith("decoder.")}
    ck = tmp_path / "hub.pt"
    torch.save(blob, ck)
    root = tmp_path / "c"
    write_toy_dataset(root, "cornell", frames=2, size=(96, 128))
    res = run([sys.executable, "-m", "vita_grasp_core.cli", "eval", "--checkpoint", ck,
               "--dataset_root", root, "--device", "cpu", "--no_progress"], timeout=180,
              env=subprocess_env(HF_HUB_OFFLINE=1, TRANSFORMERS_OFFLINE=1))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    err = [ln for ln in res.stderr.strip().splitlines() if ln.startswith("vita-grasp eval:")]
    assert len(err) == 1 and "no-such-encoder" in err[0], res.stderr[-2000:]


def test_evaluate_counts_ground_truth_outside(tmp_path):
    from vita_grasp_core.conventions import IMAGENET_MEAN, IMAGENET_STD
    from vita_grasp_core.data import SampleSpec, open_dataset
    from vita_grasp_core.evaluation import EvalOptions, evaluate

    write_toy_dataset(tmp_path, "cornell", frames=3, size=(96, 128))
    with open(tmp_path / "pcd0101cpos.txt", "a") as f:
        f.write("-30 10\n-10 10\n-10 20\n-30 20\n140 100\n150 100\n150 110\n140 110\n")
    ds = open_dataset(tmp_path, sample=SampleSpec((96, 128), (84, 112), IMAGENET_MEAN,
                                                  IMAGENET_STD, 0.5))

    def gt_predictor(batch):
        return [r.numpy()[:, :6] for r in batch["rects"]]

    res = evaluate(gt_predictor, ds, options=EvalOptions(progress=False, per_image=True))
    assert res["gt_rects"] == 3 * 2 + 2 and res["gt_rects_outside"] == 2
    assert res["top1_accuracy"] == 1.0
    assert [im["num_gt_outside"] for im in res["images"]] == [0, 2, 0]
