"""GraspNetDataset on tiny synthetic sets: samples, splits, augmentation, faults, DataLoader."""
from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
import torch

from vita_grasp_core.data import (
    DataWarning,
    GraspNetDataset,
    SampleSpec,
    TargetSpec,
    collate_fn,
    synthesize,
)

OUT = (96, 128)   # small maps / inputs keep the tests fast; the geometry is the same
INP = (84, 112)


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth")
    synthesize(root, scene_ids=[0, 1, 100], frames=2, seed=3)
    return root


def _ds(root, max_rects=None, **kw):
    return GraspNetDataset(root, sample=SampleSpec(OUT, INP),
                           targets=TargetSpec(max_rects=max_rects), **kw)


def _check_sample(s, out=OUT, inp=INP):
    assert s["image"].shape == (3, *inp) and s["image"].dtype == torch.float32
    assert s["target"].shape == (5, *out) and s["target"].dtype == torch.float32
    assert s["owned"].shape == out and s["owned"].dtype == torch.bool
    t = s["target"]
    assert t[0].max() > 0.09 and s["owned"].any(), "never an all-zero target"
    assert t[4].any()
    assert (t[0] >= 0).all() and (t[0] <= 1).all() and (t[3] >= 0).all() and (t[3] <= 1).all()
    r = s["rects"]
    assert r.ndim == 2 and r.shape[1] == 7 and len(r) > 0
    h, w = s["src_size"]
    assert ((r[:, 0] >= -0.5) & (r[:, 0] < w - 0.5)).all()
    assert ((r[:, 1] >= -0.5) & (r[:, 1] < h - 0.5)).all()


def test_samples_and_splits(synth_root):
    ds = _ds(synth_root)
    assert len(ds) == 6 and ds.scene_ids == [0, 1, 100]
    s = ds[0]
    _check_sample(s)
    assert (s["scene"], s["frame"], s["camera"], s["src_size"]) == (0, 0, "kinect", (720, 1280))
    assert abs(float(s["image"].mean())) < 3
    raw = np.load(synth_root / "scenes/scene_0000/kinect/rect/0000.npy")
    assert len(s["rects"]) == len(raw)  # no augmentation: every rectangle is inside the image
    assert [f.scene for f in _ds(synth_root, split="train").frames] == [0, 0, 1, 1]
    assert {f.scene for f in _ds(synth_root, split="test_seen").frames} == {100}
    assert {f.scene for f in _ds(synth_root, scenes=[1, 100], split="train").frames} == {1}
    assert len(_ds(synth_root, scenes=1)) == 2
    with pytest.raises(FileNotFoundError):
        _ds(synth_root, split="test_novel")
    with pytest.raises(ValueError):
        _ds(synth_root, split="nope")
    assert len(_ds(synth_root, max_rects=50)[0]["rects"]) == 50


def test_augmented_samples_are_deterministic(synth_root):
    ds = _ds(synth_root, augment=True, seed=5)
    a, b = ds[1], ds[1]
    _check_sample(a)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["rects"], b["rects"])
    ds.set_epoch(1)
    c = ds[1]
    _check_sample(c)
    assert not torch.equal(a["image"], c["image"])


def _break(root):
    """Copy-free damage on a fresh synthetic set: one fault of each kind."""
    cam = root / "scenes/scene_0000/kinect"
    cam1 = root / "scenes/scene_0001/kinect"
    data = (cam / "rgb/0000.png").read_bytes()
    (cam / "rgb/0000.png").write_bytes(data[: len(data) // 2])          # truncated png
    (cam / "rect/0001.npy").write_bytes(b"\x93NUMPY garbage garbage")   # garbage npy
    (cam1 / "label/0000.png").write_bytes(b"")                         # empty file (scan time)
    np.save(cam1 / "rect/0001.npy", np.zeros((5, 6), np.float32))      # wrong shape
    r = np.load(root / "scenes/scene_0002/kinect/rect/0000.npy")
    r[:, [0, 2]] += 5000                                               # all outside the image
    np.save(root / "scenes/scene_0002/kinect/rect/0000.npy", r)
    (root / "scenes/scene_0002/kinect/rgb/0003.png").write_bytes(b"\x89PNG\r\n\x1a\n junk")


@pytest.fixture
def broken_root(tmp_path):
    root = tmp_path / "broken"
    synthesize(root, scenes=3, frames=3, seed=1)
    _break(root)
    return root


def test_faults_are_skipped_counted_and_warned_once(broken_root):
    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        ds = _ds(broken_root)
        scan_warn = [w for w in rec if issubclass(w.category, DataWarning)]
        assert len(scan_warn) == 1 and "empty_label" in str(scan_warn[0].message)
        assert "missing_rect" in str(scan_warn[0].message)  # rgb/0003.png has no rect
        assert len(ds) == 9 - 1  # scene 1 frame 0 (empty label) dropped at scan time
        samples = [ds[i] for i in range(len(ds))]
        load_warn = [w for w in rec if issubclass(w.category, DataWarning)][1:]
    assert len(load_warn) == 1, [str(w.message) for w in load_warn]
    for s in samples:
        _check_sample(s)
    used = {(s["scene"], s["frame"]) for s in samples}
    assert not used & {(0, 0), (0, 1), (1, 1), (2, 0)}
    assert samples[0]["skipped"] and samples[0]["index"] != 0  # replaced by the next good frame
    rep = ds.report()
    # labels are optional (require_label=False): a frame without one is no fault, but an
    # existing empty label file is
    assert rep["skipped"] == {"bad_shape_rect": 1, "corrupt_rect": 1, "corrupt_rgb": 1,
                              "empty_label": 1, "missing_rect": 1, "no_rects_in_image": 1}
    assert rep["fallbacks"] == 4 and rep["frames"] == 8
    assert rep["bad_frames_seen"] == 4
    assert any(p.endswith("rgb/0000.png") for p in ds.skipped["corrupt_rgb"])


def test_dataloader_with_workers(broken_root):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        ds = _ds(broken_root, augment=True)
        dl = torch.utils.data.DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_fn)
        n, seen = 0, []
        for batch in dl:
            assert batch["image"].shape[1:] == (3, *INP)
            assert batch["target"].shape[1:] == (5, *OUT) and batch["owned"].shape[1:] == OUT
            assert len(batch["rects"]) == batch["image"].shape[0]
            assert all(len(r) > 0 for r in batch["rects"])
            assert (batch["target"][:, 0].amax(dim=(1, 2)) > 0.09).all()
            ds.record_skips(batch["skipped"])
            n += batch["image"].shape[0]
            seen += batch["scene"].tolist()
    assert n == len(ds)
    assert {"corrupt_rgb", "corrupt_rect", "bad_shape_rect"} <= set(ds.report()["skipped"])


def test_all_bad_raises_clearly(tmp_path):
    root = tmp_path / "bad"
    synthesize(root, scenes=1, frames=1, seed=0)
    (root / "scenes/scene_0000/kinect/rgb/0000.png").write_bytes(b"garbage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        ds = _ds(root)
        with pytest.raises(RuntimeError, match="no loadable frame"):
            ds[0]
    shutil.rmtree(root / "scenes")
    with pytest.raises(FileNotFoundError):
        _ds(root)
