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
