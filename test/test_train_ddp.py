"""DistributedDataParallel on CPU: 2 processes under torchrun (gloo) agree on the weights."""
from __future__ import annotations

import json
import os
import sys
import textwrap

import torch
from fixtures import CLI_TIMEOUT
from test_train_utils import TINY, run, subprocess_env, synth_root

SCRIPT = textwrap.dedent("""
    import sys, torch
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train_config import build_config
    from vita_grasp_core.training.train import Trainer

    tiny, data, out = sys.argv[1:4]
    cfg = build_config(load_raw(tiny), [f"data.root={data}", "data.train_max_frames=4",
                                        "data.val_max_frames=3", "train.batch_size=1",
                                        "train.epochs=1", "train.log_every=1"])
    tr = Trainer(cfg, out, device="cpu", progress=False)
    init = {k: v.clone() for k, v in tr.model.state_dict().items()}
    summary = tr.run()
    torch.save({"init": init, "final": tr.model.state_dict(), "summary": summary,
                "world": tr.dist.world_size, "steps": tr.steps_per_epoch,
                "threads": torch.get_num_threads()}, f"{out}/rank{tr.dist.rank}.pt")
    tr.close()
""")


def test_two_process_ddp_ranks_agree(tmp_path, tmp_path_factory):
    data = synth_root(tmp_path_factory)
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           script, TINY, data, out]
    res = run(cmd, timeout=CLI_TIMEOUT, env=subprocess_env(OMP_NUM_THREADS=1))
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    r0 = torch.load(out / "rank0.pt", weights_only=True)
    r1 = torch.load(out / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    assert r0["steps"] == r1["steps"] == 2  # 4 frames / (2 ranks x batch 1)
    assert r0["threads"] == 1  # cores split between the local processes
    # each rank seeds torch with seed + rank; wrapping in DDP broadcast rank 0's initial weights
    for k in r0["init"]:
        assert torch.equal(r0["init"][k], r1["init"][k]), k
    changed = False
    for k, v in r0["final"].items():
        assert torch.equal(v, r1["final"][k]), f"ranks disagree on {k}"
        changed |= not torch.equal(v, r0["init"][k])
    assert changed, "no weight changed"
    # metrics are all-reduced: every rank reports the same validation over all 3 frames
    v0, v1 = r0["summary"]["last_val"], r1["summary"]["last_val"]
    assert v0["num_images"] == 3 and v0["top1_accuracy"] == v1["top1_accuracy"]
    assert v0["precision@5"] == v1["precision@5"]
    # rank 0 alone writes the outputs
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 1 and json.loads(rows[0])["epoch"] == 1
    assert (out / "last.pt").is_file() and (out / "best_model.pt").is_file()
    final = torch.load(out / "last.pt", weights_only=True)["state_dict"]
    for k, v in final.items():
        assert torch.equal(v, r0["final"][k]), k


def test_threads_follow_omp_num_threads_when_set(monkeypatch):
    from vita_grasp_core.training.dist import default_threads

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cores = os.cpu_count() or 1
    assert default_threads(1) == cores and default_threads(2) == max(1, cores // 2)
    # a user (or a test run in several processes) who says how many threads to use is obeyed
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads(1) == default_threads(2) == 3
    for bad in ("", "0", "-2", "two"):
        monkeypatch.setenv("OMP_NUM_THREADS", bad)
        assert default_threads(1) == cores
