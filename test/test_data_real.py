"""The real Cornell photographs in ../shared/data/cornell (skipped when absent)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vita_grasp_core.cli.data import data_main
from vita_grasp_core.conventions import IMAGENET_MEAN, IMAGENET_STD
from vita_grasp_core.data import (
    GraspDataset,
    SampleSpec,
    detect_format,
    kfold,
    load_frame,
    scan_dataset,
    summarize,
)

CORNELL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cornell"
pytestmark = pytest.mark.skipif(not CORNELL.is_dir(), reason=f"{CORNELL} not present")


@pytest.fixture(scope="module")
def scan():
    return scan_dataset(CORNELL)


def test_scan_finds_all_568_frames(scan):
    assert detect_format(CORNELL) == "cornell"
    assert scan.format == "cornell" and len(scan.frames) == 568 and not scan.faults.paths
    keys = [f.key for f in scan.frames]
    assert len(set(keys)) == 568 and all(k.startswith("pcd") for k in keys)
    assert all(f.group == f.key and f.negatives is None and f.depth is None for f in scan.frames)


def test_a_handful_of_frames_load(scan):
    for rec in scan.frames[::113]:
        fr = load_frame(rec)
        assert fr.rgb.shape == (224, 224, 3) and fr.rgb.dtype == np.uint8
        assert fr.label is None and len(fr.grasps) > 0 and not fr.faults
        g = fr.grasps
        assert np.isfinite(g).all() and (g[:, 3] > 3).all() and (g[:, 3] < 224).all()
        assert ((g[:, 2] >= -np.pi / 2) & (g[:, 2] < np.pi / 2)).all()
        assert (g[:, 5] == 1).all() and (g[:, 6] == 0).all()


def test_summary_of_the_shared_copy(scan):
    s = summarize(scan)
    assert s["frames_usable"] == 568 and s["image_sizes"] == {"224x224": 568}
    assert s["rects_per_frame"]["min"] > 0 and s["rects_total"] > 568 * 3
    assert 10 < s["width_px"]["p50"] < 60 and s["width_px"]["p99"] < 224
    assert 0 < s["outside_count"] < 50 and s["outside_fraction"] < 0.02
    # over the whole set the jaw is shorter than the opening (Cornell's labelling)
    assert 0.3 < s["height_width_ratio"] < 1.0 and not s["rows_skipped"]


def test_dataset_folds_and_check_on_real_frames(scan):
    folds = kfold(scan.frames, 5, seed=0)
    assert sorted(len(f) for f in folds) == [113, 113, 114, 114, 114]
    fold = [scan.frames[i] for i in folds[0][:6]]
    ds = GraspDataset(fold, SampleSpec((224, 224), (224, 224), IMAGENET_MEAN, IMAGENET_STD, 0.4))
    assert ds.check_frames()["usable"] == 6
    s = ds[0]
    assert s["src_size"] == (224, 224) and s["target"][0].max() > 0.9
    assert s["target"][3].max() < 1  # width_scale 0.4 x 224 px covers these openings


def test_data_check_prints_the_summary(capsys):
    assert data_main(["check", str(CORNELL), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "format cornell" in out and "frames: 568 usable of 568 found" in out
    assert "image sizes: 224x224 (568)" in out and "opening width px" in out
    assert "centres outside the image" in out and "problems: none" in out
    assert "frames without a mask: 568" in out
