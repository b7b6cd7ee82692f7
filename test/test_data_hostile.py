"""Data readers against hostile files (issue 21 items 1 and 9): images over the pixel cap are
refused before decoding in every format and reported by ``data check``; a value that overflows
float32 is a dropped and counted row, not ``x = inf``."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.bad_images import png_grey

from vita_grasp_core.cli.data import data_main, synth_main
from vita_grasp_core.data import FrameFault, check_frame, load_frame, scan_dataset
from vita_grasp_core.data.toy import write_toy_dataset


@pytest.fixture
def count_decodes(monkeypatch):
    calls = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: calls.append(buf.size) or
                        real(buf, flags))
    return calls


def _dataset(root, fmt) -> None:
    """A 3-frame data set of ``fmt``."""
    if fmt == "graspnet":
        assert synth_main(["--out", str(root), "--scenes", "1", "--frames", "3", "--quiet"]) == 0
    else:
        write_toy_dataset(root, fmt, frames=3)


@pytest.mark.parametrize("fmt", ["graspnet", "cornell", "jacquard"])
def test_bomb_rgb_is_refused_and_reported(tmp_path, fmt, capsys, count_decodes):
    root = tmp_path / fmt
    _dataset(root, fmt)
    rec = scan_dataset(root).frames[0]
    with open(rec.rgb, "wb") as f:  # 1.2 MB, 1.2 GB decoded; 117 s in issue 21
        f.write(png_grey(20000, 20000))
    count_decodes.clear()
    with pytest.raises(FrameFault) as e:
        load_frame(rec)
    assert e.value.kind == "refused_rgb" and "20000x20000" in str(e.value)
    with pytest.raises(FrameFault) as e:
        check_frame(rec)
    assert e.value.kind == "refused_rgb"
    assert count_decodes == []
    capsys.readouterr()
    assert data_main(["check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    n = len(scan_dataset(root).frames)  # Jacquard: 2 views per object
    assert "refused_rgb: 1" in out and f"frames: {n - 1} usable of {n}" in out, out
    assert data_main(["check", str(root), "--quiet", "--full"]) == 0
    assert "refused_rgb: 1" in capsys.readouterr().out


def test_jacquard_row_that_overflows_float32_is_dropped_and_counted(tmp_path):
    write_toy_dataset(tmp_path, "jacquard", frames=1)
    res = scan_dataset(tmp_path)
    rec = res.frames[0]
    with open(rec.grasps, "a") as f:
        f.write("1e39;100;0;20;10\n100;1e39;0;20;10\n")
    fr = load_frame(rec)
    assert np.isfinite(fr.grasps).all()
    assert ("nonfinite_rect", rec.grasps, 2) in fr.faults


#: (format, file of the first frame, its fault suffix, whether the frame stays usable): the label
#: file every layout needs, a mask (frame skipped, like an empty one) and a depth (dropped).
SPECIAL_FILES = [("graspnet", "grasps", "rect", False), ("graspnet", "depth", "depth", True),
                 ("cornell", "grasps", "grasps", False), ("cornell", "depth", "depth", True),
                 ("jacquard", "grasps", "grasps", False), ("jacquard", "label", "label", False),
                 ("ocid", "grasps", "grasps", False), ("ocid", "label", "label", False)]


@pytest.mark.timeout(120)  # a reader that opened the FIFO would block here
@pytest.mark.parametrize("special", ["fifo", "directory"])
@pytest.mark.parametrize("fmt,field,kind,kept", SPECIAL_FILES)
def test_label_file_that_is_a_fifo_or_directory_is_reported(tmp_path, fmt, field, kind, kept,
                                                             special, capsys):
    """Issue 21 (left over): a label, mask or depth file replaced by a FIFO or a directory was
    taken for absent (a frame silently without its mask or depth, or 'missing'); now it is a
    ``not_a_file_<file>`` fault: one line in ``data check``, counted in what the loader skipped,
    never opened."""
    import os

    from vita_grasp_core.data import open_dataset
    from vita_grasp_core.data.dataset import SampleSpec

    root = tmp_path / fmt
    if fmt == "graspnet":
        assert synth_main(["--out", str(root), "--scenes", "1", "--frames", "2", "--quiet"]) == 0
    else:
        write_toy_dataset(root, fmt, frames=2, size=(48, 64), depth=True)
    rec = scan_dataset(root).frames[0]
    path = getattr(rec, field)
    assert path, f"the {fmt} set has no {field} file"
    os.unlink(path)
    os.mkfifo(path) if special == "fifo" else os.mkdir(path)
    res = scan_dataset(root)
    assert res.faults.paths == {f"not_a_file_{kind}": [path]}
    usable = [r for r in res.frames if r.key == rec.key]
    assert len(usable) == kept and all(getattr(r, field) is None for r in usable)
    if field == "depth":  # a record made before the file was replaced: dropped, listed
        assert [f[0] for f in load_frame(rec, depth=True).faults] == ["not_a_file_depth"]
    else:
        with pytest.raises(FrameFault) as e:
            load_frame(rec)
        assert e.value.kind.startswith("not_a_file") and "not a regular file" in str(e.value)
    capsys.readouterr()
    assert data_main(["check", str(root), "--quiet"]) == 0
    out = capsys.readouterr().out
    lines = [ln for ln in out.splitlines() if f"not_a_file_{kind}" in ln]
    assert len(lines) == 1 and path in lines[0], out
    spec = SampleSpec((48, 64), (42, 56), (0.5,) * 3, (0.25,) * 3, 0.5)
    with pytest.warns(UserWarning, match=f"not_a_file_{kind}"):
        ds = open_dataset(root, sample=spec)
    assert ds.skipped[f"not_a_file_{kind}"] == [path]
