"""Bad files per data reader and bad values per config field, through the case runner.

Readers: a small data set of every registered layout with one file of its first frame replaced
by each hostile file (empty, random bytes, cut in half, a header declaring 20000 x 20000 px, a
FIFO, a directory, label rows with NaN / 1e39 / huge counts of columns). Reading every frame as
training does must load it with finite values or refuse it (``FrameFault``), and ``vita-grasp
data check`` must report it in one clean run: no traceback, no hang, no large memory.

Configs: every number of every section (the bounds tables) set to NaN, inf, 1e308, a boolean, a
string, a list (or one number where a list belongs): one ``ConfigError`` naming the field.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures.bad_images import png_declaring

from hostile.harness import Case, pick

#: The files of a frame of each layout's toy set (FrameRecord fields).
FILES = {"graspnet": ("rgb", "depth", "label", "grasps"),
         "cornell": ("rgb", "depth", "grasps", "negatives"),
         "jacquard": ("rgb", "depth", "label", "grasps"), "ocid": ("rgb", "label", "grasps")}
TEXT_ROWS = {"nan_rows": "nan nan nan nan\n" * 8, "overflow_rows": "1e39;100;0;20;10\n" * 8,
             "wide_row": " ".join(["1"] * 100_000) + "\n", "short_rows": "1\n2\n3\n"}


def _faults(kind_of_file: str) -> dict:
    """name -> writer(path) of the hostile files for one file of a frame."""
    rng = np.random.default_rng(0)

    def put(data: bytes):
        def write(p: Path):
            p.write_bytes(data)
        return write

    def fifo(p: Path):
        os.mkfifo(p)

    def directory(p: Path):
        p.mkdir()

    def half(p: Path):
        p.write_bytes(_ORIGINAL[p][: len(_ORIGINAL[p]) // 2])

    faults = {"empty": put(b""), "random_bytes": put(rng.bytes(4096)), "cut_in_half": half,
              "fifo": fifo, "directory": directory,
              "declares_20000x20000": put(png_declaring(20000, 20000))}
    if kind_of_file in ("grasps", "negatives"):
        faults.update({k: put(v.encode()) for k, v in TEXT_ROWS.items()})
    return faults


_ORIGINAL: dict = {}


def _make(fmt: str, root: Path) -> None:
    if fmt == "graspnet":
        from vita_grasp_core.data.synth import synthesize

        synthesize(root, scenes=1, frames=2, seed=0)
    else:
        from vita_grasp_core.data.toy import write_toy_dataset

        write_toy_dataset(root, fmt, frames=2, size=(48, 64), depth=True, negatives=True)


def reader_cases(base: Path | None) -> list[Case]:
    """One case per (format, file of the first frame, fault); ``base`` None: ids only."""
    cases = []
    for fmt, fields in FILES.items():
        for field in fields:
            for name in _faults(field):
                root = "" if base is None else str(base / fmt / f"{field}_{name}")
                cases.append(Case(f"reader:{fmt}", f"{field}_{name}", kind="call",
                                  target="hostile.targets:read_every_frame", args=[root],
                                  expected=["builtins:ValueError"], expect="any"))
    return cases


def _prepare(base: Path, case: Case) -> None:
    """Copy the clean set of the case's format and plant its fault."""
    fmt = case.group.split(":")[1]
    field, name = case.name.split("_", 1)
    root = Path(case.args[0])
    if root.exists():
        return
    from vita_grasp_core.data import scan_dataset

    shutil.copytree(base / fmt / "clean", root)
    rec = scan_dataset(root).frames[0]
    assert getattr(rec, field), f"{fmt}: the toy set has no {field} file (update FILES)"
    path = Path(getattr(rec, field))
    _ORIGINAL[path] = path.read_bytes()
    path.unlink()
    _faults(field)[name](path)


@pytest.fixture(scope="module")
def readers_base(tmp_path_factory):
    base = tmp_path_factory.mktemp("readers")
    for fmt in FILES:
        _make(fmt, base / fmt / "clean")
    return base


READER_IDS = [c.id for c in reader_cases(None)]


@pytest.mark.parametrize("case_id", pick(READER_IDS, 10))
def test_bad_file_per_reader(case_id, readers_base, hostile):
    case = next(c for c in reader_cases(readers_base) if c.id == case_id)
    _prepare(readers_base, case)
    hostile(case)
    root = case.args[0]
    hostile(Case(f"reader:{case.group.split(':')[1]}", f"{case.name}_data_check",
                 argv=["data", "check", root, "--quiet"], expect="any"))


def config_cases() -> list[Case]:
    from test_config_hostile import BAD_NUMBERS, _numeric_fields, _override

    cases = []
    for key, rng in _numeric_fields():
        values = ([f"[{v}, {v}]" for v in BAD_NUMBERS] + ["3"] if rng.many
                  else [*BAD_NUMBERS, "[1]"])
        cases += [Case("config", f"{key}={v}", kind="call", target="hostile.targets:tiny_config",
                       args=[_override(key, v)], must_say=key.rsplit(".", 1)[1],
                       expected=["vita_grasp_core.training.config_files:ConfigError"])
                  for v in values]
    return cases


CONFIG_IDS = [c.id for c in config_cases()]


@pytest.mark.parametrize("case_id", pick(CONFIG_IDS, 12))
def test_bad_config_value(case_id, hostile):
    hostile(next(c for c in config_cases() if c.id == case_id))
