"""kill -9 during training leaves loadable checkpoints, and --resume continues from them."""
from __future__ import annotations

import json
import os
import signal
import subprocess

import torch
from fixtures import CLI_TIMEOUT
from test_train_utils import kill_group, run, subprocess_env, synth_root, train_cmd, wait_for

SMALL = ("data.train_max_frames=4", "data.val_max_frames=2", "train.batch_size=2")


def test_kill_9_leaves_loadable_checkpoints_and_resume_works(tmp_path, tmp_path_factory):
    from vita_grasp_core.checkpoint import load_model, read_checkpoint

    data = synth_root(tmp_path_factory)
    out = tmp_path / "run"
    cmd = [str(c) for c in train_cmd(data, out, *SMALL, "train.epochs=200")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(), start_new_session=True)
    try:
        appeared = wait_for(lambda: (out / "last.pt").is_file(), timeout=CLI_TIMEOUT, proc=proc)
        assert appeared, f"no checkpoint appeared (rc {proc.poll()})"
        # kill as soon as the first checkpoint exists; the process may be writing the next one
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert proc.returncode == -signal.SIGKILL
    finally:
        kill_group(proc)
    for name in ("last.pt", "best_model.pt"):
        blob = read_checkpoint(out / name)
        model, _ = load_model(out / name)
        assert blob["meta"]["epoch"] >= 1 and model is not None
    done = torch.load(out / "last.pt", weights_only=True)["extra"]["epoch"]
    res = run(train_cmd(data, out, *SMALL, f"train.epochs={done + 1}", extra=["--resume", "auto"]),
              timeout=CLI_TIMEOUT)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"{done} epochs done" in res.stderr
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == list(range(1, done + 2))
    assert torch.load(out / "last.pt", weights_only=True)["extra"]["epoch"] == done + 1
    assert not list(out.glob(".*.tmp"))  # a write interrupted by the kill is cleaned up
