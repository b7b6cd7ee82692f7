"""Shared helpers of the training / evaluation / inference tests (no tests here).

Synthetic data and one tiny training run are made once per pytest session, under the session's
base temp directory, and reused by every module that needs them.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
TINY = REPO / "vita_grasp_core" / "configs" / "tiny.yaml"

#: Frames used by the quick tests (the full tiny config trains on all of them).
SYNTH_SCENES, SYNTH_FRAMES = 4, 8

#: `--set` overrides of `vita-grasp cv` with the tiny config on a toy Cornell set (a frozen
#: random encoder, an augmented-view cache, one epoch): seconds per fold.
TOY_CV_SETS = ("data.format=cornell", "data.val_fraction=0.25", "data.train_scenes=null",
               "data.val_scenes=null", "data.augment={rotate_p: 1.0}", "model.freeze_vit=true",
               "model.input_size=[56,70]", "model.output_size=[48,64]", "model.width_scale=0.5",
               "model.decoder_channels=16", "train.feature_cache=true", "train.cache_views=2",
               "train.epochs=1", "train.batch_size=2", "data.memory_cache=false")


def subprocess_env(**extra) -> dict:
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + old if old else "")
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def run(cmd, timeout: float, **kw) -> subprocess.CompletedProcess:
    """Run a command with a timeout; the process group is killed on timeout or error."""
    p = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=kw.pop("env", subprocess_env()), cwd=kw.pop("cwd", REPO),
                         start_new_session=True, **kw)
    try:
        out, err = p.communicate(timeout=timeout)
    finally:
        kill_group(p)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def kill_group(p: subprocess.Popen) -> None:
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait(timeout=30)


def _done(marker: Path) -> bool:
    return marker.is_file()


def _session_dir(tmp_path_factory) -> Path:
    """The session's base temp directory, shared by every pytest-xdist worker of the run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _once(tmp_path_factory, name: str):
    """A lock held while one process makes the shared ``name`` (the other workers wait)."""
    from filelock import FileLock

    return FileLock(str(_session_dir(tmp_path_factory) / f"{name}.lock"))


def synth_root(tmp_path_factory) -> Path:
    """A 4-scene x 8-frame synthetic GraspNet-layout set (scenes 0-3), made once per session."""
    base = _session_dir(tmp_path_factory) / "vg_synth"
    marker = base / ".complete"
    with _once(tmp_path_factory, "vg_synth"):
        if not _done(marker):
            from vita_grasp_core.data import synthesize

            synthesize(base, scenes=SYNTH_SCENES, frames=SYNTH_FRAMES, seed=0)
            marker.write_text("ok")
    return base


def train_cmd(data: Path, out: Path, *sets: str, config: Path = TINY, extra=()) -> list:
    cmd = [PY, REPO / "scripts" / "train.py", "--config", config, "--dataset_root", data,
           "--output_dir", out, "--no_progress", *extra]
    for s in sets:
        cmd += ["--set", s]
    return cmd


#: How long the shared tiny training may take [s] (420 s ran out at load 15), and the pytest
#: timeout of a test that uses it (it counts the fixture's set-up, or the wait for another test
#: process that trains it, so above make test's 600 s per test; 600 s ran out at load 8-9).
TRAINED_RUN_TIMEOUT = 1200
WITH_TRAINED_RUN = pytest.mark.timeout(TRAINED_RUN_TIMEOUT + 300)


def trained_run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess | None, float]:
    """The tiny config trained through the CLI once per session: (output_dir, result, seconds)."""
    data = synth_root(tmp_path_factory)
    out = _session_dir(tmp_path_factory) / "vg_tiny_run"
    marker = out / ".complete"
    with _once(tmp_path_factory, "vg_tiny_run"):
        if _done(marker):
            return out, None, float(marker.read_text())
        t0 = time.perf_counter()
        res = run(train_cmd(data, out), timeout=TRAINED_RUN_TIMEOUT)
        dt = time.perf_counter() - t0
        if res.returncode != 0:
            raise AssertionError(f"tiny training failed (rc {res.returncode}):\n"
                                 f"{res.stderr[-4000:]}")
        marker.write_text(f"{dt:.1f}")
        return out, res, dt


def wait_for(predicate, timeout: float, proc: subprocess.Popen | None = None,
             interval: float = 0.05) -> bool:
    """Poll ``predicate`` until true, the timeout, or ``proc`` exiting (then one last check)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        if proc is not None and proc.poll() is not None:
            return bool(predicate())
        time.sleep(interval)
    return False
