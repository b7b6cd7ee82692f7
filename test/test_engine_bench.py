"""Smoke test of bench/bench_engines.py (tiny model, seconds) and its Cornell accuracy hook."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_config

pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
CORNELL = ROOT.parent / "shared" / "data" / "cornell"


def _run(args, timeout=300):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [v for v in [os.environ.get("PYTHONPATH")] if v]))
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_engines.py"), *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def test_bench_engines_tiny(tmp_path):
    path = tmp_path / "engines.json"
    out = _run(["--tiny", "--frames", "1", "--thread-counts", "1", "--json", str(path)])
    assert "onnxruntime int8" in out.stdout
    res = json.loads(path.read_text())
    assert len(res["headlines"]) == 1
    h = res["headlines"][0]
    assert h["threads"] == 1
    assert set(h["timing"]) == {f"{v} @ {s}" for v in ("torch fp32", "torch bf16",
                                                       "onnxruntime fp32", "onnxruntime int8")
                                for s in ("640x480", "1280x720")}
    for t in h["timing"].values():
        assert t["p50"] > 0 and t["model_p50"] > 0 and t["n"] == 1
    assert max(h["map_max_abs_diff"]["onnxruntime fp32"]) < 1e-3
    assert max(h["map_max_abs_diff"]["torch fp32"]) == 0.0
    assert res["large"] == [] and res["tables"][0]["rows"]


@pytest.mark.skipif(not CORNELL.is_dir(), reason="../shared/data/cornell is not present")
def test_bench_engines_cornell_hook(tmp_path):
    from vita_grasp_core import build_model
    from vita_grasp_core.checkpoint import save_checkpoint

    ckpt = save_checkpoint(tmp_path / "best_model.pt", build_model(
        tiny_config("internvit", input_size=(112, 112), output_size=(112, 112))))
    path = tmp_path / "engines.json"
    _run(["--no-headline", "--large", "none", "--threads", "1", "--cornell-checkpoint",
          str(ckpt), "--cornell-root", str(CORNELL), "--cornell-fold", "0", "--cornell-limit",
          "3", "--json", str(path)])
    c = json.loads(path.read_text())["cornell"]
    assert c["frames"] == 3 and c["fold"] == 0
    assert set(c["top1"]) == {"torch fp32", "torch bf16", "onnxruntime fp32", "onnxruntime int8"}
    assert all(0.0 <= v <= 1.0 for v in c["top1"].values())
    assert c["top1"]["onnxruntime fp32"] == c["top1"]["torch fp32"]
    assert c["same_top_grasp_as_torch_fp32"]["onnxruntime fp32"] == 1.0
