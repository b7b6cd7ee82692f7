"""Fixtures of the fuzzing suite (see harness.py): one fork server per session, the ``hostile``
fixture that runs, records and checks a case, shared hostile inputs, and the summary printed at
the end of the session and written to ``outputs/hostile/``.

``HOSTILE=long`` (``make hostile``) runs every generated case; the default is a fast
representative subset that keeps ``make test`` inside its budget.
"""
from __future__ import annotations

import os
import stat

import numpy as np
import pytest

from hostile.harness import SUMMARY_DIR, Case, Report, Runner, time_ratio, verdict

_REPORT = Report()
_REFERENCE: dict[str, float] = {}


@pytest.fixture(scope="session")
def runner(tmp_path_factory):
    r = Runner(tmp_path_factory.mktemp("hostile_runs"))
    yield r
    r.close()


@pytest.fixture
def hostile(runner):
    """``hostile(case) -> result``: run the case in the fork server, record it for the summary
    and fail the test with every problem :func:`harness.verdict` finds."""

    def run(case: Case, check: bool = True, reference: Case | None = None) -> dict:
        if reference is not None and reference.group not in _REFERENCE and reference is not case:
            run(reference)  # the group's yardstick first (a valid input)
        res = runner.run(case)
        if case.reference:
            _REFERENCE[case.group] = res.get("seconds", 0.0)
        ref = None if case.reference else _REFERENCE.get(case.group)
        problems = verdict(case, res, ref)
        _REPORT.add(case, res, problems, time_ratio(res, ref))
        if check and problems:
            pytest.fail(f"{case.id}: {'; '.join(problems)}\n--- stderr ---\n"
                        f"{res.get('stderr', '')[-2000:]}", pytrace=False)
        return res

    return run


@pytest.fixture
def hostile_record():
    """``hostile_record(case, result, reference_seconds, extra_problems)``: check and record a
    result measured outside the case runner (e.g. a node process fed bad messages)."""

    def record(case: Case, res: dict, reference_seconds: float | None, extra=()) -> None:
        problems = verdict(case, res, reference_seconds) + list(extra)
        _REPORT.add(case, res, problems, time_ratio(res, reference_seconds))
        if problems:
            pytest.fail(f"{case.id}: {'; '.join(problems)}\n--- log ---\n"
                        f"{res.get('stderr', '')[-2000:]}", pytrace=False)

    return record


@pytest.fixture(scope="session")
def bad_paths(tmp_path_factory) -> dict[str, str]:
    """Paths no command can use as an input file: missing, a directory, empty, random bytes, a
    FIFO, /dev/null, through a file, a name too long, a pickle (as name -> path)."""
    d = tmp_path_factory.mktemp("bad_paths")
    (d / "dir").mkdir()
    (d / "empty").write_bytes(b"")
    (d / "random").write_bytes(np.random.default_rng(0).bytes(4096))
    (d / "text.pt").write_text("not a checkpoint\n")
    os.mkfifo(d / "fifo")
    import argparse

    import torch

    # a torch.save'd pickle with a class torch's safe loader refuses (old checkpoints store
    # their argparse.Namespace; torch's error advises weights_only=False: never relay that)
    torch.save({"state_dict": {}, "args": argparse.Namespace(lr=1.0)}, d / "pickle.pt")
    assert stat.S_ISFIFO(os.stat(d / "fifo").st_mode)
    return {"missing": str(d / "missing"), "directory": str(d / "dir"),
            "empty": str(d / "empty"), "random_bytes": str(d / "random"),
            "text": str(d / "text.pt"), "fifo": str(d / "fifo"), "dev_null": "/dev/null",
            "through_a_file": str(d / "empty" / "x"), "name_too_long": str(d / ("n" * 300)),
            "pickle": str(d / "pickle.pt")}


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> str:
    """A tiny random-weight checkpoint (also readable by the fork server's children)."""
    import torch

    from vita_grasp_core import ModelConfig, build_model
    from vita_grasp_core.backbones import get_spec
    from vita_grasp_core.checkpoint import save_checkpoint

    spec = get_spec("internvit")
    torch.manual_seed(0)
    model = build_model(ModelConfig(backbone="internvit", backbone_config=dict(spec.tiny_config),
                                    decoder_channels=32, input_size=spec.tiny_input_size))
    path = tmp_path_factory.mktemp("hostile_ckpt") / "best_model.pt"
    return str(save_checkpoint(path, model, meta={"epoch": 0}))


@pytest.fixture(scope="session")
def photo(tmp_path_factory) -> str:
    import cv2

    path = tmp_path_factory.mktemp("hostile_img") / "photo.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (96, 128, 3), np.uint8))
    return str(path)


def pytest_sessionfinish(session):
    """The summary is written by the process that ran the cases (a pytest-xdist worker under
    `make test`); test/conftest.py prints it at the end of the run."""
    if _REPORT.results:
        _REPORT.write(SUMMARY_DIR)
