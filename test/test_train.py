"""Training: config validation, the tiny CLI run (outputs, held-out accuracy), resume (CLI and
exact), non-finite steps, the feature cache."""
from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
from test_train_utils import TINY, WITH_TRAINED_RUN, run, synth_root, train_cmd, trained_run

from vita_grasp_core.training.config_files import load_raw
from vita_grasp_core.training.train_config import ConfigError, build_config, load_config


# ----------------------------------------------------------------------------- config
def test_shipped_configs_are_valid_and_keep_the_original_defaults():
    for name, backbone, hub in (("internvit_grasp", "internvit", "OpenGVLab/InternViT-300M-448px"),
                                ("qwen2vl_grasp", "qwen2vl", "Qwen/Qwen2-VL-7B-Instruct")):
        c = load_config(f"config/{name}.yaml")
        assert c.model.backbone == backbone and c.model.pretrained_model == hub
        assert c.model.freeze_vit and c.model.decoder_channels == 256
        assert c.model.output_size == (480, 640)
        assert (c.train.batch_size, c.train.epochs, c.train.learning_rate) == (8, 100, 1e-4)
    tiny = load_config(TINY)
    assert tiny.model.pretrained_model is None


def test_overrides_and_validation():
    raw = load_raw(TINY)
    c = build_config(raw, ["train.epochs=3", "data.train_scenes=[0, 1]",
                           "model.backbone_config.hidden_size=32", "train.loss.w_angle=2",
                           "model.pretrained_model=null"])
    assert c.train.epochs == 3 and c.data.train_scenes == [0, 1]
    assert c.model.backbone_config["hidden_size"] == 32
    assert c.train.loss.w_angle == 2.0 and isinstance(c.train.loss.w_angle, float)
    # YAML 1.2 floats: 1e-3 is a number, not the string "1e-3" of PyYAML's YAML 1.1 rules
    assert build_config(raw, ["train.learning_rate=1e-3"]).train.learning_rate == 1e-3
    for bad, msg in (("train.epoch=3", "train.epoch"), ("train.epochs=many", "wrong type"),
                     ("train.loss.position=l2", "loss.position"), ("nosection.x=1", "nosection"),
                     ("model.decoder_chanels=8", "decoder_chanels"),
                     ("data.augment={hflip: 2}", "hflip"), ("data.augment={flip: 1}", "flip"),
                     ("train.epochs", "key=value"), ("epochs=3", "section.key")):
        with pytest.raises(ConfigError, match=msg):
            build_config(raw, [bad])
    # the resolved config round-trips through YAML
    again = build_config(__import__("yaml").safe_load(c.to_yaml()))
    assert again.to_dict() == c.to_dict()


def test_a_config_can_start_from_a_base_config(tmp_path):
    """``base:`` takes another file's values; this file's override them key by key (nested
    mappings merge), relative to the file or to the repository root; a loop is an error."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text(
        "base: ../mid.yaml\nmodel: {decoder_channels: 24}\ntrain: {loss: {w_angle: 3.0}}\n")
    (tmp_path / "mid.yaml").write_text(
        f"base: {TINY}\ntrain: {{epochs: 2, loss: {{w_width: 4.0}}}}\n")
    raw = load_raw(tmp_path / "sub" / "child.yaml")
    c, tiny = build_config(raw), load_config(TINY)
    assert "base" not in raw and c.model.decoder_channels == 24 and c.train.epochs == 2
    assert (c.train.loss.w_angle, c.train.loss.w_width) == (3.0, 4.0)
    assert c.model.backbone_config == tiny.model.backbone_config  # untouched keys inherited
    assert c.train.loss.position == tiny.train.loss.position
    (tmp_path / "rel.yaml").write_text("base: config/tiny.yaml\ntrain: {epochs: 5}\n")
    assert load_config(tmp_path / "rel.yaml").train.epochs == 5  # the repository's config/
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with pytest.raises(ConfigError, match="includes itself"):
        load_raw(tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text("base: [x]\n")
    with pytest.raises(ConfigError, match="base must be"):
        load_raw(tmp_path / "bad.yaml")
    (tmp_path / "gone.yaml").write_text("base: nowhere.yaml\n")
    with pytest.raises(ConfigError, match="not found: nowhere.yaml"):
        load_raw(tmp_path / "gone.yaml")


def test_model_type_must_match_config(tmp_path):
    from vita_grasp_core.cli.train import main

    assert main(["--model_type", "qwen2vl", "--config", str(TINY), "--output_dir",
                 str(tmp_path), "--print_config"]) == 2
    assert main(["--model_type", "qwen2vl", "--output_dir", str(tmp_path), "--print_config"]) == 0
    assert main(["--config", str(TINY), "--output_dir", str(tmp_path), "--set", "x.y=1",
                 "--print_config"]) == 2


# ----------------------------------------------------------------------------- the tiny CLI run
@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return trained_run(tmp_path_factory)


@WITH_TRAINED_RUN
def test_tiny_training_outputs_and_accuracy(tiny_run):
    out, _, seconds = tiny_run
    cfg = load_config(out / "config.yaml")
    for name in ("best_model.pt", "last.pt", "metrics.jsonl", "config.yaml", "train.log"):
        assert (out / name).is_file(), name
    if importlib.util.find_spec("tensorboard") is not None:  # optional: a warning without it
        assert list((out / "tb").glob("events.out.tfevents.*")), "no TensorBoard events"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, cfg.train.epochs + 1))
    assert rows[-1]["train"]["total"] < rows[0]["train"]["total"]
    # last.pt: plain types + tensors only, resumable
    blob = torch.load(out / "last.pt", map_location="cpu", weights_only=True)
    assert blob["extra"]["epoch"] == cfg.train.epochs
    assert {"optimizer", "scheduler", "rng", "best_metric"} <= set(blob["extra"])
    best = torch.load(out / "best_model.pt", map_location="cpu", weights_only=True)
    assert "extra" not in best
    best_top1 = max(r["val"]["top1_accuracy"] for r in rows)
    assert best["meta"]["best_metric"] == pytest.approx(best_top1)
    # held out scene 3: clearly better than chance (random rectangles score ~0, see test_eval)
    val = rows[-1]["val"]
    assert val["num_images"] == 8
    assert best_top1 >= 0.5, rows
    assert val["precision@5"] >= 0.3, val
    print(f"tiny training: {seconds:.1f} s wall, best held-out top-1 {best_top1:.3f}, "
          f"last P@5 {val['precision@5']:.3f}")


@WITH_TRAINED_RUN
def test_resume_cli_continues(tiny_run, tmp_path, tmp_path_factory):
    out, _, _ = tiny_run
    run_dir = tmp_path / "run"
    shutil.copytree(out, run_dir)
    cfg = load_config(out / "config.yaml")
    n = cfg.train.epochs
    data = synth_root(tmp_path_factory)
    res = run(train_cmd(data, run_dir, f"train.epochs={n + 1}", "data.val_max_frames=2",
                        extra=["--resume", "auto"]), timeout=240)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"resumed from {run_dir / 'last.pt'}: {n} epochs done" in res.stderr
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, n + 2))
    blob = torch.load(run_dir / "last.pt", map_location="cpu", weights_only=True)
    assert blob["extra"]["epoch"] == n + 1
    assert blob["extra"]["global_step"] == rows[-1]["step"]


# ----------------------------------------------------------------------------- in-process
def _small_cfg(data, *extra):
    return build_config(load_raw(TINY), [f"data.root={data}", "data.train_max_frames=4",
                                         "data.val_max_frames=2", "train.batch_size=2",
                                         "train.epochs=2", *extra])


def _state(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_resume_is_exact(tmp_path, tmp_path_factory):
    from vita_grasp_core.training.train import Trainer

    data = synth_root(tmp_path_factory)
    cfg = _small_cfg(data)
    a = Trainer(cfg, tmp_path / "a", device="cpu", progress=False)
    a.run()
    a.close()
    b = Trainer(cfg, tmp_path / "b", device="cpu", progress=False)
    b.run(stop_after=1)  # "killed" after the first epoch
    b.close()
    assert _state(tmp_path / "b" / "last.pt")["extra"]["epoch"] == 1
    b2 = Trainer(cfg, tmp_path / "b", device="cpu", resume="auto", progress=False)
    assert b2.state.epoch == 1
    b2.run()
    b2.close()
    sa, sb = _state(tmp_path / "a" / "last.pt"), _state(tmp_path / "b" / "last.pt")
    assert sa["extra"]["global_step"] == sb["extra"]["global_step"]
    for k, v in sa["state_dict"].items():
        assert torch.equal(v, sb["state_dict"][k]), k
    ra = (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()
    rb = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(ra) == len(rb) == 2
    assert json.loads(ra[1])["train"] == json.loads(rb[1])["train"]


def test_nonfinite_loss_skips_step_and_keeps_checkpoint(tmp_path, tmp_path_factory):
    from vita_grasp_core.training.train import Trainer

    data = synth_root(tmp_path_factory)
    tr = Trainer(_small_cfg(data, "train.epochs=1"), tmp_path, device="cpu", progress=False)
    try:
        tr.run()
        good = _state(tmp_path / "last.pt")
        batch = next(iter(tr.loader))
        before = {k: v.clone() for k, v in tr.model.state_dict().items()}
        batch["target"][0, 0, 0, 0] = float("nan")
        parts, skipped = tr.train_step(batch)
        assert skipped and parts is None
        for k, v in tr.model.state_dict().items():
            assert torch.equal(v, before[k]), k
        # a clean batch still trains
        batch["target"] = torch.nan_to_num(batch["target"])
        parts, skipped = tr.train_step(batch)
        assert not skipped and np.isfinite(parts["total"])
        # weights gone bad: the last good checkpoint is not overwritten
        with torch.no_grad():
            next(tr.model.decoder.parameters()).fill_(float("inf"))
        tr.state.epoch += 1
        with pytest.raises(FloatingPointError, match="not finite after epoch 2"):
            tr.ckpt.save(tr.model, tr.state, {"epoch": tr.state.epoch}, True, tr.optimizer,
                         tr.scheduler)
        after = _state(tmp_path / "last.pt")
        assert after["extra"]["epoch"] == good["extra"]["epoch"]
        for k, v in good["state_dict"].items():
            assert torch.equal(v, after["state_dict"][k])
    finally:
        tr.close()


def test_feature_cache_trains_decoder_from_disk(tmp_path, tmp_path_factory):
    from vita_grasp_core.training.feature_cache import CachedFeatureDataset
    from vita_grasp_core.training.train import Trainer

    data = synth_root(tmp_path_factory)
    cfg = _small_cfg(data, "model.freeze_vit=true", "train.feature_cache=true", "train.epochs=2")
    tr = Trainer(cfg, tmp_path, device="cpu", progress=False)
    try:
        assert tr.cached and isinstance(tr.train_ds, CachedFeatureDataset)
        files = sorted((tmp_path / "feature_cache").glob("*/*.safetensors"))
        assert len(files) == 4 + 2  # training frames, and the validation frames' own view
        # the cached features are the encoder's output for that frame (fp16)
        from vita_grasp_core.training.data import make_datasets

        ds = make_datasets(cfg, tr.model).train
        item = ds[0]
        feats = tr.model.backbone_features(item["image"][None])
        cached = tr.train_ds[0]
        for f, c in zip(feats, cached["features"]):
            torch.testing.assert_close(c.float(), f[0], atol=2e-2, rtol=1e-2)
        torch.testing.assert_close(cached["target"], item["target"], atol=1e-3, rtol=1e-3)
        assert torch.equal(cached["owned"], item["owned"])
        enc = {k: v.clone() for k, v in tr.model.backbone.state_dict().items()}
        dec = {k: v.clone() for k, v in tr.model.decoder.state_dict().items()}
        summary = tr.run()
        assert summary["epochs"] == 2 and summary["nonfinite_steps"] == 0
        assert all(torch.equal(v, tr.model.backbone.state_dict()[k]) for k, v in enc.items())
        assert any(not torch.equal(v, tr.model.decoder.state_dict()[k]) for k, v in dec.items())
    finally:
        tr.close()
    # a second run reuses the files (nothing recomputed)
    mtimes = {f: f.stat().st_mtime_ns for f in files}
    tr2 = Trainer(cfg, tmp_path, device="cpu", progress=False)
    tr2.close()
    assert {f: f.stat().st_mtime_ns for f in files} == mtimes


def test_memory_cache_wraps_unaugmented_sets(tmp_path_factory):
    from vita_grasp_core.model import build_model
    from vita_grasp_core.training.data import make_datasets, memory_cached
    from vita_grasp_core.training.feature_cache import MemoryCachedDataset

    data = synth_root(tmp_path_factory)
    cfg = _small_cfg(data, "data.memory_cache=true")
    model = build_model(cfg.model)
    run_data = make_datasets(cfg, model)
    train, val = memory_cached(run_data.train, run_data.val)
    assert isinstance(train, MemoryCachedDataset) and isinstance(val, MemoryCachedDataset)
    assert len(train) == 4 and len(val) == 2
    a = train[1]
    assert train[1] is a  # served from RAM the second time
    cfg = _small_cfg(data, "data.memory_cache=true", "data.augment=true")
    run_data = make_datasets(cfg, model)
    train, val = memory_cached(run_data.train, run_data.val)
    assert not isinstance(train, MemoryCachedDataset) and isinstance(val, MemoryCachedDataset)


def test_validation_scenes_never_train(tmp_path_factory, caplog):
    """``train_split: all`` with ``val_scenes`` is a scene hold-out (the sim recipe): the
    validation scenes are left out of training, with a log line saying so."""
    import logging

    from vita_grasp_core.model import build_model
    from vita_grasp_core.training.data import make_datasets

    data = synth_root(tmp_path_factory)
    cfg = build_config(load_raw(TINY), [f"data.root={data}", "data.train_split=all",
                                        "data.train_scenes=null", "data.val_split=null",
                                        "data.val_scenes=[1, 3]"])
    with caplog.at_level(logging.INFO, logger="vita_grasp"):
        run_data = make_datasets(cfg, build_model(cfg.model))
    assert sorted({f.scene for f in run_data.train.frames}) == [0, 2]
    assert sorted({f.scene for f in run_data.val.frames}) == [1, 3]
    assert "frames of the validation scenes left out of training" in caplog.text
    assert "scenes [0, 2] for training" in run_data.description


def test_the_sim_recipe_is_valid():
    """dinov2_sim.yaml: a frozen DINOv2-S with a feature cache of the frames themselves
    (``cache_views: 1``), a scene hold-out, maps at a quarter of the 640x480 frame."""
    c = load_config("dinov2_sim.yaml")
    assert c.model.backbone == "dinov2" and c.model.freeze_vit and c.train.feature_cache
    assert c.train.cache_views == 1 and c.data.train_split == "all"
    assert c.data.val_scenes and all(s % 10 == 9 for s in c.data.val_scenes)
    assert c.model.output_size == (120, 160)
    # width_scale covers the longest opening of the labels (161 px at 640x480)
    assert c.model.width_scale * 160 * 4 >= 161
    with pytest.raises(ConfigError, match="cache_views"):
        build_config(load_raw("dinov2_sim.yaml"), ["train.cache_views=0"])


def test_head_bias_init_matches_target_means(tmp_path_factory):
    from vita_grasp_core.data import GraspNetDataset, SampleSpec
    from vita_grasp_core.model import build_model
    from vita_grasp_core.training.data import init_head_biases

    cfg = load_config(TINY)
    model = build_model(cfg.model)
    ds = GraspNetDataset(synth_root(tmp_path_factory), scenes=[0],
                         sample=SampleSpec((60, 80), cfg.model.input_size))
    info = init_head_biases(model, ds, max_frames=3)
    mean = info["mean"]
    assert 0 < mean[0] < 0.2 and 0 < mean[4] < 0.5 and 0 < mean[3] < 1
    for c, head in enumerate(model.decoder.heads):
        b = head[-1].bias.detach()
        act = torch.tanh(b) if c in (1, 2) else torch.sigmoid(b)
        torch.testing.assert_close(act, torch.full_like(act, mean[c]), atol=2e-3, rtol=1e-3)


# ----------------------------------------------------------------------------- faults (issue 12)
def test_resume_from_a_corrupt_last_pt_is_one_line_exit_2(tmp_path, capsys):
    from vita_grasp_core.cli.train import main

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "last.pt").write_bytes(b"\x00garbage, not a checkpoint" * 10)
    rc = main(["--config", str(TINY), "--dataset_root", str(tmp_path), "--output_dir",
               str(run_dir), "--resume", "auto", "--no_progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1, err
    assert "--resume" in err[0] and "last.pt" in err[0] and "Traceback" not in err[0]


def test_bad_frames_are_dropped_from_the_epoch_and_counted(tmp_path, tmp_path_factory):
    from vita_grasp_core.training.train import Trainer

    data = tmp_path / "data"
    shutil.copytree(synth_root(tmp_path_factory) / "scenes" / "scene_0000",
                    data / "scenes" / "scene_0000")
    rgb = sorted((data / "scenes" / "scene_0000" / "kinect" / "rgb").glob("*.png"))
    rgb[1].write_bytes(b"not a png")  # corrupt image
    rgb[2].write_bytes(rgb[2].read_bytes()[:100])  # truncated image
    cfg = build_config(load_raw(TINY), [f"data.root={data}", "data.train_scenes=[0]",
                                        "data.val_scenes=null", "train.batch_size=2",
                                        "train.epochs=1", "data.memory_cache=false"])
    tr = Trainer(cfg, tmp_path / "run", device="cpu", progress=False)
    try:
        assert len(tr.train_ds) == 6  # 8 found, 2 unreadable: never replaced by a neighbour
        # the run's own log: its console handler keeps the lines off the root logger (caplog)
        logged = (tmp_path / "run" / "train.log").read_text()
        assert "training frames: 6 usable of 8 (skipped: {'corrupt_rgb': 2})" in logged
        assert tr.steps_per_epoch == 3
        keys = set(tr.train_ds.keys)
        assert len(keys) == 6 and all("f0001" not in k and "f0002" not in k for k in keys)
    finally:
        tr.close()


def test_frames_replaced_after_read_failures_are_counted_per_epoch(tmp_path, tmp_path_factory):
    """Issue 21 item 10: a frame whose headers pass the start-up check but whose pixels do not
    decode is replaced by its neighbour each epoch: counted in the epoch's log line and
    metrics.jsonl (it was reported once on stderr)."""
    from vita_grasp_core.training.train import Trainer

    data = tmp_path / "data"
    shutil.copytree(synth_root(tmp_path_factory) / "scenes" / "scene_0000",
                    data / "scenes" / "scene_0000")
    rgb = sorted((data / "scenes" / "scene_0000" / "kinect" / "rgb").glob("*.png"))[3]
    raw = bytearray(rgb.read_bytes())
    mid = len(raw) // 2
    raw[mid:mid + 64] = bytes(64)  # damaged pixel data; signature, size and IEND intact
    rgb.write_bytes(bytes(raw))
    cfg = build_config(load_raw(TINY), [f"data.root={data}", "data.train_scenes=[0]",
                                        "data.val_scenes=null", "train.batch_size=4",
                                        "train.epochs=2", "data.memory_cache=false",
                                        "model.input_size=[56,70]", "model.output_size=[48,64]",
                                        "train.calibrate=false"])
    tr = Trainer(cfg, tmp_path / "run", device="cpu", progress=False)
    try:
        assert len(tr.train_ds) == 8  # the headers pass the start-up check
        tr.run()
    finally:
        tr.close()
    lines = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(x) for x in lines]
    assert [r["replaced_frames"] for r in records] == [1, 1]
    text = (tmp_path / "run" / "train.log").read_text()
    assert text.count("1 frame(s) replaced after read failures") == 2


def test_select_last_keeps_the_last_epoch_and_best_the_best_validation(tmp_path, tmp_path_factory):
    """``train.select: last``: ``best_model.pt`` holds the last epoch's weights (calibrated);
    ``best`` (the default): the epoch with the best validation top-1, the first of ties."""
    from vita_grasp_core.training.train import Trainer

    data = synth_root(tmp_path_factory)
    with pytest.raises(ConfigError, match="train.select"):
        _small_cfg(data, "train.select=final")
    for select in ("last", "best"):
        out = tmp_path / select
        t = Trainer(_small_cfg(data, "train.epochs=3", f"train.select={select}"), out,
                    device="cpu", progress=False)
        summary = t.run()
        t.close()
        rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
        top1 = [r["val"]["top1_accuracy"] for r in rows]
        want = 3 if select == "last" else 1 + int(np.argmax(top1))
        best, last = _state(out / "best_model.pt"), _state(out / "last.pt")
        assert summary["best_epoch"] == want and best["meta"]["epoch"] == want
        assert "decode" in best["meta"]  # calibrated on validation either way
        same = all(torch.equal(v, last["state_dict"][k]) for k, v in best["state_dict"].items())
        assert same == (want == 3), (select, top1)
