"""Smoke tests of the benchmark scripts (bench/), so that they do not rot. Seconds, tiny sizes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures import CLI_TIMEOUT

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def _run(args, tmp_path, timeout=CLI_TIMEOUT):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(ROOT)] + [v for v in [os.environ.get("PYTHONPATH")] if v]))
    out = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=timeout)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    return out


def _positive(x):
    return isinstance(x, (int, float)) and x > 0


def test_bench_decoding_quick(tmp_path):
    pytest.importorskip("skimage")
    path = tmp_path / "decoding.json"
    out = _run([str(BENCH / "bench_decoding.py"), "--quick", "--json", str(path)], tmp_path)
    assert "Peak agreement" in out.stdout
    res = json.loads(path.read_text())
    for key in ("timing", "agreement", "stages_s", "tables", "machine", "settings"):
        assert key in res, key
    for setting, kinds in res["timing"].items():
        for kind in ("blobs", "noise"):
            med = kinds[kind]["median_s"]
            for k in ("ours@1t", "ref_same", "ref_grconvnet@1t", "ref_literal"):
                assert _positive(med[k]), (setting, kind, k, med)
    for setting, kinds in res["agreement"].items():
        # same semantics -> same peaks (plateaus are improbable on these float maps)
        same = kinds["blobs"]["ref_same"]
        assert same["n_ours"] == same["n_ref"] > 0
        assert same["ref_found_by_ours"] == 1.0 and same["ours_found_by_ref"] == 1.0, same
    assert all(_positive(v) for v in res["stages_s"].values())
    assert res["machine"]["cpu"] and res["machine"]["torch"]


def test_bench_model_tiny(tmp_path):
    path = tmp_path / "model.json"
    _run([str(BENCH / "bench_model.py"), "--tiny-only", "--backbones", "internvit",
          "--tiny-repeats", "1", "--json", str(path)], tmp_path)
    res = json.loads(path.read_text())
    assert res["real"] == {} and "internvit" in res["tiny"]
    r = res["tiny"]["internvit"]
    assert r["encoder_params"] > 0 and r["decoder_trainable_params"] > 0
    for key in ("forward 112x112 fp32", "forward 112x112 bf16", "predict 1280x720 fp32",
                "predict 1280x720 bf16"):
        assert _positive(r["timing"][key]["median"]), key
    assert set(r["timing"]["predict 1280x720 fp32"]["stages_median"]) == {
        "preprocess", "model", "decode"}
    needs_gpu = any("GPU" in str(row) for t in res["tables"] for row in t["rows"])
    assert needs_gpu or res["device"] == "cuda"  # CPU: the CUDA rows say so, never faked


def test_run_all_report_handles_missing_failed_and_plain_output():
    sys.path.insert(0, str(BENCH))
    try:
        import run_all
        from common import machine_info
    finally:
        sys.path.remove(str(BENCH))

    def rec(name, status, **kw):
        base = {"name": name, "script": f"bench/bench_{name}.py", "status": status,
                "seconds": 1.0, "command": f"python bench/bench_{name}.py", "returncode": 0,
                "data": None, "stdout": "", "stderr": "", "flags": []}
        base.update(kw)
        return base

    records = [
        rec("decoding", "ok", data={"title": "Dec", "tables": [
            {"title": "T", "headers": ["a", "b"], "rows": [[1, "x|y"]], "notes": ["n1"]},
            {"title": "Machine", "headers": ["", ""], "rows": [["CPU", "dup"]], "notes": []}]}),
        rec("targets", "ok", data={"median_ms": 12.5, "rects": 5000, "src": [720, 1280]}),
        rec("train", "ok", stdout="steps/s 3.0\n"),
        rec("node", "failed", returncode=1, stderr="Traceback ...\nValueError: boom\n"),
        rec("model", "missing"),
    ]
    args = type("A", (), {"quick": True, "only": ""})()
    md = run_all.render(records, machine_info(), args, [0.1, 0.2, 0.3])
    assert md.startswith("# Benchmarks") and "## Machine" in md and "## Summary" in md
    assert "| 1 | x\\|y |" in md and "- n1" in md and "dup" not in md
    assert "| median_ms | 12.5 |" in md and "| src | 720, 1280 |" in md
    assert "steps/s 3.0" in md
    assert "FAILED" in md and "ValueError: boom" in md
    assert "Not present: `bench/bench_model.py`" in md
