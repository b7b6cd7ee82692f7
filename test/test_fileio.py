"""``vita_grasp_core.fileio.atomic_write``: complete or absent, never half-written; the previous
file survives a failed write; no temporary is left behind; directories too."""
from __future__ import annotations

import os

import pytest

from vita_grasp_core.fileio import atomic_write


def test_writes_and_replaces(tmp_path):
    out = tmp_path / "sub" / "a.txt"
    assert atomic_write(out, lambda p: p.write_text("one")) == out
    assert out.read_text() == "one"
    atomic_write(out, lambda p: p.write_text("two"))
    assert out.read_text() == "two"
    assert [p.name for p in out.parent.iterdir()] == ["a.txt"]


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_failure_keeps_previous_file_and_no_temporary(tmp_path, exc):
    out = tmp_path / "a.bin"
    out.write_bytes(b"old")

    def half_then_fail(p):
        p.write_bytes(b"new but incomplete")
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(out, half_then_fail)
    assert out.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_writer_that_writes_nothing_is_an_error(tmp_path):
    out = tmp_path / "d"
    with pytest.raises(FileNotFoundError, match="no output"):
        atomic_write(out, lambda p: None, directory=True)
    assert list(tmp_path.iterdir()) == []


def test_directory_output(tmp_path):
    out = tmp_path / "bag"

    def make(files):
        def write(p):
            p.mkdir()
            for name, text in files.items():
                (p / name).write_text(text)
        return write

    atomic_write(out, make({"metadata.yaml": "1", "x.mcap": "a"}), directory=True)
    atomic_write(out, make({"metadata.yaml": "2"}), directory=True)
    assert sorted(p.name for p in out.iterdir()) == ["metadata.yaml"]
    assert (out / "metadata.yaml").read_text() == "2"
    with pytest.raises(ValueError):
        atomic_write(out, lambda p: (p.mkdir(), (p / "half").write_text("x"),
                                     (_ for _ in ()).throw(ValueError("stop"))), directory=True)
    assert (out / "metadata.yaml").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["bag"]


def test_checkpoint_and_feature_cache_use_it():
    """The one helper replaces the copies that checkpoints and the feature cache had."""
    from pathlib import Path

    core = Path(__file__).resolve().parents[1] / "vita_grasp_core"
    for f in (core / "checkpoint.py", core / "training" / "feature_cache.py"):
        src = f.read_text()
        assert "atomic_write(" in src and "mkstemp" not in src and "def _atomic" not in src, f


def _special_files(tmp_path):
    """A FIFO, a directory, a symlink to the FIFO and (as root) a character device node like
    /dev/full, all inside ``tmp_path``."""
    import stat

    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "fifo")
    out = {"fifo": "a FIFO", "dir": "a directory", "link": "a FIFO"}
    if os.geteuid() == 0:
        os.mknod(tmp_path / "full", 0o666 | stat.S_IFCHR, os.makedev(1, 7))
        out["full"] = "a character device"
    return out


def test_special_files_are_never_replaced(tmp_path):
    """Issue 21 item 7: as root, `export --out /dev/full` turned the device into a file."""
    import stat

    for name, kind in _special_files(tmp_path).items():
        before = os.lstat(tmp_path / name).st_mode
        with pytest.raises(FileExistsError, match=f"exists and is {kind}; refusing"):
            atomic_write(tmp_path / name, lambda p: p.write_text("x"))
        assert os.lstat(tmp_path / name).st_mode == before, name
        assert not stat.S_ISREG(os.stat(tmp_path / name).st_mode)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
    # a directory may be replaced by a directory output
    atomic_write(tmp_path / "dir", lambda p: p.mkdir(), directory=True)
