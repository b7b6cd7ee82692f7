"""Shared fixtures: tiny random configs (milliseconds on CPU) and tiny checkpoints."""
from __future__ import annotations

import json
import os
import sys
import time

import pytest
from fixtures.xdist_groups import pytest_xdist_make_scheduler  # noqa: F401  (the hook)

#: This conftest is imported when the run starts (also in the pytest-xdist main process).
_RUN_STARTED = time.time()


def _threads_per_process() -> int:
    """CPU threads for each test process: the cores shared by the pytest-xdist workers.

    Two workers that each compute (and start nodes, trainings, CLIs) with every core's worth of
    OpenMP threads oversubscribe the CPU: two tiny trainings at once took 96 s each with 2 threads
    and 27 s with 1 on 2 cores. The count goes to ``OMP_NUM_THREADS`` too, so that the processes
    the tests start (which inherit it) compute with as many threads as the test process.
    """
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    return max(1, min(2, (os.cpu_count() or 1) // max(1, workers)))


THREADS = _threads_per_process()
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(THREADS)


def _tiny(backbone: str) -> dict:
    from vita_grasp_core.backbones import get_spec

    return dict(get_spec(backbone).tiny_config)


#: Tiny InternViT (hidden 64, 2 layers) - the real one is hidden 1024, 24 layers.
TINY_INTERNVIT = _tiny("internvit")
#: Tiny Qwen2-VL tower.
TINY_QWEN2VL = _tiny("qwen2vl")


def tiny_config(backbone: str = "internvit", **overrides):
    """A tiny random-weight ``ModelConfig`` of any registered backbone (its registry facts)."""
    from vita_grasp_core import ModelConfig

    return ModelConfig.tiny(backbone, **overrides)


@pytest.fixture
def tiny_model_factory():
    import torch

    from vita_grasp_core import build_model

    def make(backbone="internvit", seed=0, **overrides):
        torch.manual_seed(seed)
        return build_model(tiny_config(backbone, **overrides))

    return make


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model_factory):
    """Path to a tiny random-weight internvit checkpoint (``best_model.pt``)."""
    from vita_grasp_core.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path / "best_model.pt", tiny_model_factory(), meta={"epoch": 0})


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(THREADS)
    yield


@pytest.fixture(autouse=True)
def _signal_handlers():
    """Every test leaves SIGINT and SIGTERM as it found them: a node run in process ignores both
    once it shuts down, and a later test in the same worker must not inherit that."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for s, handler in saved.items():
        if handler is not None and signal.getsignal(s) is not handler:
            signal.signal(s, handler)


@pytest.fixture(autouse=True, scope="module")
def _release_ros_domains():
    """ROS domain ids a test module reserved (vita_grasp_ros.testing.allocate_domain_id) go back
    after its last test, when its module-scoped nodes have stopped (autouse: torn down last)."""
    yield
    testing = sys.modules.get("vita_grasp_ros.testing")
    if testing is not None:
        testing.release_all_domain_ids()


def pytest_terminal_summary(terminalreporter):
    """The fuzzing suite's table (test/hostile), from the summary its cases wrote in this run."""
    from hostile.harness import SUMMARY_DIR, Report

    summary = SUMMARY_DIR / "summary.json"
    if not summary.is_file() or summary.stat().st_mtime < _RUN_STARTED:
        return
    report = Report()
    report.results = json.loads(summary.read_text())["results"]
    terminalreporter.write_sep("-", "hostile-input suite")
    terminalreporter.write_line(report.table())
    terminalreporter.write_line(f"(details: {SUMMARY_DIR / 'summary.md'})")
