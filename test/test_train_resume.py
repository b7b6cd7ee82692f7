"""Every resume continues from the last epoch and ends with the same weights as an uninterrupted
run (issue 21 item 4), with and without the feature cache: the shipped Cornell recipe
(config/dinov2_cornell.yaml: a pretrained frozen encoder with feature_layers null, augmented
views in the feature cache) with only the encoder swapped for a tiny local one and sizes shrunk.
Before the fix, its resume ended in ``TypeError: object of type 'NoneType' has no len()``."""
from __future__ import annotations

import json

import pytest
import torch
from test_backbone_registry import _write_local_dinov2

from vita_grasp_core.checkpoint import read_checkpoint
from vita_grasp_core.configs import configs_dir
from vita_grasp_core.data.toy import write_toy_dataset
from vita_grasp_core.training.config_files import load_raw
from vita_grasp_core.training.train import Trainer
from vita_grasp_core.training.train_config import build_config

RECIPE = configs_dir() / "dinov2_cornell.yaml"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("resume")
    write_toy_dataset(base / "cornell", "cornell", frames=8, size=(96, 128), seed=3)
    _write_local_dinov2(base / "enc", layers=4)
    return base


def _cfg(base, cache: bool, tmp_path):
    raw = load_raw(RECIPE)
    raw["model"].update(pretrained_model=str(base / "enc"), input_size=[56, 56],
                        output_size=[48, 48], decoder_channels=16)
    assert raw["model"]["feature_layers"] is None  # follows the loaded encoder
    raw["data"].update(root=str(base / "cornell"), val_fraction=0.25)
    raw["train"].update(epochs=3, cache_views=2, batch_size=4, num_workers=0, torch_threads=1,
                        feature_cache=cache, feature_cache_dir=str(tmp_path / "cache"))
    return build_config(raw)


def _run(make_cfg, out, **kw):
    """A fresh config per run, as each command line builds one."""
    tr = Trainer(make_cfg(), out, device="cpu", progress=False, **kw.pop("init", {}))
    try:
        return tr, tr.run(**kw)
    finally:
        tr.close()


@pytest.mark.parametrize("cache", [True, False], ids=["feature_cache", "no_cache"])
def test_resume_ends_with_the_uninterrupted_weights(setup, tmp_path, cache):
    def cfg():
        return _cfg(setup, cache, tmp_path)

    _run(cfg, tmp_path / "a")                      # uninterrupted
    _run(cfg, tmp_path / "b", stop_after=1)        # "killed" after epoch 1
    tr, summary = _run(cfg, tmp_path / "b", init={"resume": "auto"}, stop_after=1)
    assert tr.cached == cache
    assert read_checkpoint(tmp_path / "b" / "last.pt")["extra"]["epoch"] == 2
    _run(cfg, tmp_path / "b", init={"resume": str(tmp_path / "b")})  # a run directory works
    for name in ("last.pt", "best_model.pt"):
        a = read_checkpoint(tmp_path / "a" / name)
        b = read_checkpoint(tmp_path / "b" / name)
        assert a["meta"]["epoch"] == b["meta"]["epoch"]
        for k, v in a["state_dict"].items():
            assert torch.equal(v, b["state_dict"][k]), (name, k)
    ra = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    rb = [json.loads(x) for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rb] == [1, 2, 3]
    assert [r["train"] for r in ra] == [r["train"] for r in rb]


@pytest.mark.parametrize("lr", [".inf", ".nan"])
def test_non_finite_learning_rate_is_refused_with_exit_2(lr, tmp_path, capsys):
    """Issue 21 item 5: --set train.learning_rate=.inf wrote no checkpoint, logged an ERROR,
    printed "done" and exited 0."""
    from vita_grasp_core.cli.train import main

    code = main(["--config", str(RECIPE), "--output_dir", str(tmp_path / "run"), "--set",
                 f"train.learning_rate={lr}", "--no_progress"])
    err = capsys.readouterr().err
    assert code == 2 and "train.learning_rate" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_weights_gone_non_finite_stop_the_run_with_exit_1(setup, tmp_path, monkeypatch, capsys):
    """A run whose weights stop being finite stops with exit 1 (the last good checkpoints
    kept), instead of carrying on and saying "done" with exit 0."""
    from vita_grasp_core.cli.train import main
    from vita_grasp_core.training import run_checkpoints as checkpointing

    cfg = tmp_path / "c.yaml"
    cfg.write_text(_cfg(setup, False, tmp_path).to_yaml())
    calls = []
    real = checkpointing.params_finite
    monkeypatch.setattr(checkpointing, "params_finite",
                        lambda m: real(m) and len(calls.append(1) or calls) < 2)
    code = main(["--config", str(cfg), "--output_dir", str(tmp_path / "run"), "--no_progress"])
    err = capsys.readouterr().err
    assert code == 1 and "not finite after epoch 2" in err and "Traceback" not in err
    assert read_checkpoint(tmp_path / "run" / "last.pt")["extra"]["epoch"] == 1


def test_console_log_follows_the_current_stderr(tmp_path, monkeypatch):
    """A run started while stderr was redirected (a test's capture, a notebook cell) must not
    leave a console handler that writes into that closed stream in the next run."""
    import io
    import logging

    from vita_grasp_core.training.run_log import RunLog

    log = logging.getLogger("vita_grasp.train")
    monkeypatch.setattr(log, "handlers", [])
    first, second = io.StringIO(), io.StringIO()
    monkeypatch.setattr("sys.stderr", first)
    run = RunLog(tmp_path / "a", True)
    log.info("first run")
    run.close()
    first.close()  # the first capture is gone
    monkeypatch.setattr("sys.stderr", second)
    run = RunLog(tmp_path / "b", True)
    log.info("second run")
    run.close()
    assert "second run" in second.getvalue() and "Logging error" not in second.getvalue()
    assert not log.handlers  # a finished run leaves no handler behind


def test_a_cross_validation_keeps_its_lines_between_the_fold_runs(tmp_path, monkeypatch, capsys):
    """run_cv logs 'fold K/5: test top-1 ...' after each fold's own run has closed its log: those
    lines must still reach the console, and nothing is left attached afterwards."""
    import logging

    from vita_grasp_core.training.run_log import RunLog, console_log

    log = logging.getLogger("vita_grasp.train")
    monkeypatch.setattr(log, "handlers", [])
    with console_log():
        for k in range(2):
            run = RunLog(tmp_path / f"fold_{k}", True)
            log.info("training fold %d", k)
            run.close()
            log.info("fold %d/2: test top-1", k + 1)
    err = capsys.readouterr().err
    assert "fold 1/2: test top-1" in err and "fold 2/2: test top-1" in err
    assert not log.handlers


def test_handlers_that_do_not_print_do_not_swallow_the_console(tmp_path, monkeypatch,
                                                                          capsys):
    """A train.log handler left by a run that was never closed (a Trainer built and dropped),
    or a capture handler (pytest attaches one to every non-propagating logger), must not keep
    the next run's lines off the console."""
    import logging

    from vita_grasp_core.training.run_log import RunLog, console_log

    log = logging.getLogger("vita_grasp.train")
    import io

    left = logging.FileHandler(tmp_path / "old.log")
    capture = logging.StreamHandler(io.StringIO())  # e.g. a test runner's capture
    monkeypatch.setattr(log, "handlers", [left, capture])
    monkeypatch.setattr(log, "propagate", True)
    try:
        with console_log():
            run = RunLog(tmp_path / "run", True)
            log.info("fold 1/1: test top-1")
            run.close()
    finally:
        left.close()
    assert "fold 1/1: test top-1" in capsys.readouterr().err
    # the run and the console log remove only what they added, and leave the logger as found
    assert log.handlers == [left, capture] and log.propagate


def test_a_run_that_fails_to_start_leaves_no_log_handler(setup, tmp_path, monkeypatch):
    """A Trainer whose set-up raises (here: a training set with no frames) is never closed by
    its caller: it must not leave its train.log / console handlers on the logger."""
    import logging

    from vita_grasp_core.training.config_files import ConfigError

    log = logging.getLogger("vita_grasp.train")
    monkeypatch.setattr(log, "handlers", [])
    empty = tmp_path / "empty"
    write_toy_dataset(empty, "cornell", frames=0, size=(96, 128), seed=3)

    cfg = _cfg(setup, False, tmp_path)
    cfg.data.root = str(empty)
    with pytest.raises(ConfigError):
        Trainer(cfg, tmp_path / "run", device="cpu", progress=False)
    assert log.handlers == []
