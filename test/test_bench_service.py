"""Smoke test of bench/bench_service.py (so that it does not rot): a node process with the tiny
checkpoint, two requests per case, the JSON and the markdown report."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.srv")

from vita_grasp_ros.testing import START_TIMEOUT, write_tiny_checkpoint  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


def test_bench_service_tiny(tmp_path):
    ckpt = write_tiny_checkpoint(tmp_path / "best_model.pt")
    js, md = tmp_path / "service.json", tmp_path / "service.md"
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_service.py"), "--checkpoint", str(ckpt),
         "--requests", "2", "--rate", "5", "--threads", "1", "--json", str(js),
         "--report", str(md)],
        cwd=tmp_path, env=dict(os.environ, ROS_HOME=str(tmp_path)), capture_output=True,
        text=True, timeout=3 * START_TIMEOUT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    r = json.loads(js.read_text())
    for case in ("newest_stream_on_box", "newest_stream_off", "next_stream_off"):
        assert r[case]["failed"] == 0 and r[case]["median"] > 0, r[case]
    assert r["node_streaming"]["inference_ms_p50"] > 0
    assert r["node_end"]["requests"] >= 6
    assert "| NEWEST, stream off (predicted on request) |" in md.read_text()
    assert "median / inference" in out.stdout
