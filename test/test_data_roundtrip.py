"""For each format: files -> frame -> targets -> decode -> rectangle metric scores 100 % on the
frame's own ground truth; the semantic channel of mask-less frames; check_frames; splits."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from vita_grasp_core.conventions import IMAGENET_MEAN, IMAGENET_STD
from vita_grasp_core.data import (
    DataWarning,
    GraspDataset,
    SampleSpec,
    collate_fn,
    format_names,
    holdout,
    kfold,
    open_dataset,
    scan_dataset,
)
from vita_grasp_core.data.targets import rect_union_mask
from vita_grasp_core.data.toy import write_toy_dataset
from vita_grasp_core.decoding import decode_maps
from vita_grasp_core.metrics import image_scores

OUT, INP = (96, 128), (84, 112)
KW = dict(sample=SampleSpec(OUT, INP, IMAGENET_MEAN, IMAGENET_STD, 0.5))


@pytest.mark.parametrize("fmt", format_names())
def test_round_trip_scores_100_percent(tmp_path, fmt):
    """Every registered format (GraspNet, Cornell, Jacquard, OCID-grasp)."""
    gt = write_toy_dataset(tmp_path, fmt, frames=4, size=(96, 128), seed=3, bars=2)
    ds = open_dataset(tmp_path, **KW)
    assert ds.format == fmt and len(ds) == len(gt)
    for i in range(len(ds)):
        s = ds[i]
        assert not s["fallback"] and not s["skipped"]
        np.testing.assert_allclose(s["rects"].numpy(), gt[s["key"]], atol=2e-3)
        lb = ds.letterbox(s["src_size"])
        jaw = float(np.median(s["rects"][:, 4] / s["rects"][:, 3]))
        pred = decode_maps(s["target"], lb, width_scale=ds.width_scale, height_ratio=jaw,
                           score_threshold=0.1, max_grasps=10, min_distance=2)[0]
        n_centres = len({(round(float(x), 2), round(float(y), 2)) for x, y in
                         s["rects"][:, :2].numpy()})
        assert len(pred) == n_centres  # one peak per distinct grasp centre
        rows = np.array([[g.x, g.y, g.angle, g.width, g.height, g.quality] for g in pred])
        sc = image_scores(rows, s["rects"].numpy(), ks=(1, len(rows)))
        assert sc["top1"] and sc[f"precision@{len(rows)}"] == 1.0, (s["key"], sc)
        # decoded centres land on the ground truth within a map pixel
        d = np.linalg.norm(rows[:, None, :2] - s["rects"].numpy()[None, :, :2], axis=2)
        assert d.min(axis=1).max() < 1.0 / lb.scale + 0.5


def test_maskless_semantic_channel_is_the_rectangle_union(tmp_path):
    write_toy_dataset(tmp_path, "cornell", frames=2, size=(96, 128))
    ds = open_dataset(tmp_path, **KW)
    s = ds[0]
    lb = ds.letterbox(s["src_size"])
    union = rect_union_mask(s["rects"].numpy(), lb)
    assert union.sum() > 50
    np.testing.assert_array_equal(s["target"][4].numpy(), union.astype(np.float32))
    # with augmentation the union follows the moved rectangles
    ds_aug = open_dataset(tmp_path, augment=True, seed=4, **KW)
    for i in range(2):
        a = ds_aug[i]
        union = rect_union_mask(a["rects"].numpy(), ds_aug.letterbox(a["src_size"]))
        np.testing.assert_array_equal(a["target"][4].numpy(), union.astype(np.float32))
    # Jacquard has masks: channel 4 comes from the mask, not from the rectangles
    write_toy_dataset(tmp_path / "j", "jacquard", frames=1, size=(96, 128))
    dj = open_dataset(tmp_path / "j", **KW)
    sj = dj[0]
    union = rect_union_mask(sj["rects"].numpy(), dj.letterbox(sj["src_size"]))
    assert not np.array_equal(sj["target"][4].numpy(), union.astype(np.float32))


def test_check_frames_drops_bad_frames_instead_of_repeating_neighbours(tmp_path):
    write_toy_dataset(tmp_path, "cornell", frames=6, size=(96, 128))
    (tmp_path / "pcd0101r.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")   # corrupt png
    (tmp_path / "pcd0103cpos.txt").write_text("1 2\n3 4\n5 6\n")            # corrupt rects
    with open(tmp_path / "pcd0104cpos.txt", "a") as f:                     # one NaN rectangle
        f.write("nan nan\nnan nan\nnan nan\nnan nan\n")
    ds = open_dataset(tmp_path, **KW)
    assert len(ds) == 6
    with pytest.warns(DataWarning, match="4 usable of 6"):
        info = ds.check_frames()
    assert info["usable"] == 4 and info["found"] == 6 and len(ds) == 4
    assert sorted(info["removed"]) == [("pcd0101", "corrupt_rgb"), ("pcd0103", "corrupt_grasps")]
    assert info["rows_skipped"] == {"nonfinite_rect": 1}
    keys = [ds[i]["key"] for i in range(len(ds))]
    assert keys == ["pcd0100", "pcd0102", "pcd0104", "pcd0105"]  # every frame once
    rep = ds.report()
    assert rep["fallbacks"] == 0 and rep["frames"] == 4 and rep["frames_found"] == 6
    assert rep["rows_skipped"] == {"nonfinite_rect": 1}
    assert rep["skipped"] == {"corrupt_grasps": 1, "corrupt_rgb": 1, "nonfinite_rect": 1}
    # without the check, the fallback still works and is counted
    ds2 = open_dataset(tmp_path, **KW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        s = ds2[1]
    assert s["fallback"] and s["key"] == "pcd0102" and ds2.fallbacks == 1
    # worker processes: fallbacks and faults travel with the batch
    ds3 = open_dataset(tmp_path, **KW)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        dl = torch.utils.data.DataLoader(ds3, batch_size=3, num_workers=2, collate_fn=collate_fn)
        for batch in dl:
            assert len(batch["key"]) == batch["image"].shape[0]
            ds3.record_skips(batch["skipped"], batch["fallbacks"])
    rep = ds3.report()
    assert rep["fallbacks"] == 2 and rep["skipped"]["corrupt_rgb"] == 1
    assert rep["rows_skipped"] == {"nonfinite_rect": 1}
    # nothing usable: a clear error
    for p in tmp_path.glob("*cpos.txt"):
        p.write_text("x\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        with pytest.raises(RuntimeError, match="no usable frame"):
            open_dataset(tmp_path, **KW).check_frames()


def test_grasp_dataset_arguments(tmp_path):
    write_toy_dataset(tmp_path, "jacquard", frames=2, size=(96, 128))
    frames = scan_dataset(tmp_path).frames
    ds = GraspDataset(frames[1:], **KW)
    assert len(ds) == 3 and ds.format == "jacquard" and ds.camera == ""
    assert ds[0]["key"] == frames[1].key and (ds[0]["scene"], ds[0]["frame"]) == (-1, 1)
    with pytest.raises(ValueError, match="no frames"):
        GraspDataset([], **KW)
    with pytest.raises(TypeError, match="FrameRecord"):
        GraspDataset(["a.png"], **KW)
    with pytest.raises(FileNotFoundError, match="no usable frames"):
        (tmp_path / "empty").mkdir()
        write_toy_dataset(tmp_path / "empty", "cornell", frames=1)
        (tmp_path / "empty" / "pcd0100cpos.txt").write_bytes(b"")
        open_dataset(tmp_path / "empty", **KW)


# --------------------------------------------------------------------------- splits
class _Rec:
    def __init__(self, group):
        self.group = group


def test_kfold_image_and_object():
    frames = [_Rec(f"o{i // 3}") for i in range(20)]       # 7 groups (last one has 2 frames)
    folds = kfold(frames, 5, seed=1)
    assert sorted(i for f in folds for i in f) == list(range(20))
    assert [len(f) for f in folds] == [4, 4, 4, 4, 4]
    assert folds == kfold(frames, 5, seed=1) and folds != kfold(frames, 5, seed=2)
    ob = kfold(frames, 3, seed=0, by="object")
    assert sorted(i for f in ob for i in f) == list(range(20))
    for a in range(3):
        for b in range(a + 1, 3):
            assert not {frames[i].group for i in ob[a]} & {frames[i].group for i in ob[b]}
    assert max(len(f) for f in ob) - min(len(f) for f in ob) <= 3
    with pytest.raises(ValueError, match="7 object groups into 8 folds"):
        kfold(frames, 8, by="object")
    with pytest.raises(ValueError, match="cannot split 20 frames into 21"):
        kfold(frames, 21)
    with pytest.raises(ValueError, match="k >= 2"):
        kfold(frames, 1)
    with pytest.raises(ValueError, match="by must be"):
        kfold(frames, 2, by="scene")


def test_holdout_image_and_object():
    idx = list(range(3, 23))
    tr, va = holdout(idx, 0.2, seed=0)
    assert len(va) == 4 and sorted(tr + va) == idx and not set(tr) & set(va)
    assert (tr, va) == holdout(idx, 0.2, seed=0) and va != holdout(idx, 0.2, seed=5)[1]
    groups = [f"o{i // 4}" for i in range(30)]
    tr, va = holdout(idx, 0.25, seed=0, groups=groups)
    assert sorted(tr + va) == idx and len(va) >= 5
    assert not {groups[i] for i in tr} & {groups[i] for i in va}
    with pytest.raises(ValueError, match="in \\(0, 1\\)"):
        holdout(idx, 1.0)
    with pytest.raises(ValueError, match="group of every frame index"):
        holdout(idx, 0.2, groups=groups[:10])
    with pytest.raises(ValueError, match="only 1 group"):
        holdout([0, 1, 2], 0.5, groups=["a", "a", "a"])
