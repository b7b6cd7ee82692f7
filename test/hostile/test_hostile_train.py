"""The training-side commands of issue 21 item 8, each through ``vita-grasp`` in the case runner:
offline hub encoders (``cv``, ``cv --rescore``), unusable data set roots and data sets without a
usable frame (``train``, ``eval``), unknown devices, a directory named ``last.pt``, a pickle in a
local encoder folder, a full disk under the checkpoints and under the feature cache. Every one
must end with one line and exit 2 (1 for a run that diverged), never a traceback, never 0."""
from __future__ import annotations

import argparse
import json

import pytest
import torch

from hostile.harness import Case

HUB_ID = "OpenGVLab/InternViT-300M-448px"


@pytest.fixture(scope="module")
def world(tmp_path_factory, tiny_ckpt):
    """A toy Cornell set, a tiny 1-epoch config for it, a checkpoint that references a hub
    encoder, a finished-looking cv folder of such checkpoints, a local encoder folder with a
    pickled object, and a data set whose every image is broken."""
    from vita_grasp_core.data.toy import write_toy_dataset
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train_config import build_config

    d = tmp_path_factory.mktemp("hostile_train")
    write_toy_dataset(d / "cornell", "cornell", frames=6, size=(96, 128), seed=3)
    cfg = build_config(load_raw("tiny.yaml"), [
        f"data.root={d / 'cornell'}", "data.format=cornell", "data.val_fraction=0.34",
        "data.folds=2", "data.train_scenes=null", "data.val_scenes=null",
        "model.input_size=[56,70]", "model.output_size=[48,64]", "model.decoder_channels=16",
        "train.epochs=1", "train.batch_size=4", "train.calibrate=false",
        "data.memory_cache=false"])
    (d / "tiny.yaml").write_text(cfg.to_yaml())
    hub = cfg.to_dict()
    hub["model"].update(pretrained_model=HUB_ID, backbone_config={}, feature_layers=None,
                        freeze_vit=True)
    (d / "hub.yaml").write_text(json.dumps(hub))
    blob = torch.load(tiny_ckpt, weights_only=True)
    blob["model_config"]["pretrained_model"] = HUB_ID
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items() if k.startswith("decoder.")}
    (d / "cv" / "fold_0").mkdir(parents=True)
    torch.save(blob, d / "cv" / "fold_0" / "best_model.pt")
    (d / "cv" / "cv.json").write_text(json.dumps({"config": cfg.to_dict(), "per_fold": [
        {"fold": 0, "top1_accuracy": 0.5}]}))
    (d / "cv_bad").mkdir()
    (d / "cv_bad" / "cv.json").write_text("{}")
    enc = d / "pickled_encoder"
    enc.mkdir()
    (enc / "config.json").write_text(json.dumps({"model_type": "intern_vit_6b"}))
    torch.save({"w": torch.zeros(2), "x": argparse.Namespace(a=1)}, enc / "pytorch_model.bin")
    broken = d / "broken"
    write_toy_dataset(broken, "cornell", frames=3, size=(96, 128), seed=4)
    for png in broken.rglob("*r.png"):
        png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    last = d / "run_lastdir"
    (last / "last.pt").mkdir(parents=True)
    return d


def _train(d, out, *extra):
    return ["train", "--config", str(d / "tiny.yaml"), "--output_dir", str(out),
            "--no_progress", *map(str, extra)]


OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


def cases(d, bad_paths, ckpt) -> list[Case]:
    out = d / "runs"
    hf = {**OFFLINE, "HF_HOME": str(d / "hf")}
    c = [Case("train", "cv_offline_hub_encoder", env=hf, must_say="not available",
              argv=["cv", "--config", d / "hub.yaml", "--dataset_root", d / "cornell",
                    "--output_dir", out / "cv1", "--no_progress"]),
         Case("train", "cv_rescore_offline_hub_encoder", env=hf, must_say="not available",
              argv=["cv", "--rescore", d / "cv", "--device", "cpu"]),
         Case("train", "cv_rescore_not_a_cv_report", argv=["cv", "--rescore", d / "cv_bad"],
              must_say="not the report"),
         Case("train", "train_offline_hub_encoder", env=hf, must_say="not available",
              argv=["train", "--config", d / "hub.yaml", "--output_dir", out / "t0"]),
         Case("train", "dataset_root_a_file", must_say="not a directory",
              argv=_train(d, out / "t1", "--dataset_root", bad_paths["empty"])),
         Case("train", "dataset_root_dev_null", must_say="not a directory",
              argv=_train(d, out / "t2", "--dataset_root", "/dev/null")),
         Case("train", "no_usable_frame", must_say="usable",
              argv=_train(d, out / "t3", "--dataset_root", d / "broken")),
         Case("train", "eval_no_usable_frame", must_say="no loadable frame",
              argv=["eval", "--checkpoint", ckpt, "--dataset_root", d / "broken", "--device",
                    "cpu"]),
         Case("train", "device_banana", must_say="device",
              argv=_train(d, out / "t4", "--device", "banana")),
         Case("train", "cv_device_banana", must_say="device",
              argv=["cv", "--config", d / "tiny.yaml", "--dataset_root", d / "cornell",
                    "--output_dir", out / "cv2", "--device", "banana", "--no_progress"]),
         Case("train", "eval_device_banana", must_say="device",
              argv=["eval", "--checkpoint", ckpt, "--dataset_root", d / "cornell", "--device",
                    "banana"]),
         Case("train", "last_pt_is_a_directory", must_say="last.pt", timeout=30,
              argv=_train(d, d / "run_lastdir", "--resume", "auto")),
         Case("train", "pickle_in_local_encoder", must_say="pickled",
              argv=_train(d, out / "t5", "--set",
                          f"model.pretrained_model={d / 'pickled_encoder'}",
                          "--set", "model.backbone_config={}", "--set",
                          "model.feature_layers=null")),
         Case("train", "output_dir_a_file", must_say="not a directory",
              argv=_train(d, bad_paths["empty"])),
         Case("train", "learning_rate_inf", must_say="learning_rate",
              argv=_train(d, out / "t6", "--set", "train.learning_rate=.inf")),
         ]
    return c


CASE_NAMES = [c.name for c in cases(*[__import__("pathlib").Path("x")] * 1,
                                    bad_paths={"empty": "e"}, ckpt="c")]


@pytest.mark.parametrize("name", CASE_NAMES)
def test_training_command_fails_in_one_line(name, world, bad_paths, tiny_ckpt, hostile):
    case = next(c for c in cases(world, bad_paths, tiny_ckpt) if c.name == name)
    case.argv = [str(a) for a in case.argv]
    hostile(case)
