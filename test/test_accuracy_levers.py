"""The accuracy levers of issue 18: trained last encoder blocks through the feature cache
(``model.train_blocks``), test-time augmentation (``tta``) and block-wise (object-wise) folds."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import tiny_config
from safetensors.torch import save_file

from vita_grasp_core import build_model
from vita_grasp_core.checkpoint import (
    CheckpointError,
    load_model,
    read_checkpoint,
    save_checkpoint,
)


def _pretrained_dinov2(tmp_path, depth=4):
    """A tiny DINOv2 written in the transformers layout (a stand-in for real weights)."""
    from vita_grasp_core.backbones import get_spec

    torch.manual_seed(0)
    bc = dict(get_spec("dinov2").tiny_config, num_hidden_layers=depth)
    src = build_model(tiny_config("dinov2", backbone_config=bc))
    d = tmp_path / "dinov2"
    d.mkdir()
    src.backbone.vit.config.save_pretrained(d)
    save_file({k: v.contiguous() for k, v in src.backbone.vit.state_dict().items()},
              str(d / "model.safetensors"))
    return d


def test_train_blocks_split_the_encoder_into_a_cached_head_and_a_trained_tail(tmp_path):
    d = _pretrained_dinov2(tmp_path)
    frozen = build_model(tiny_config("dinov2", pretrained_model=str(d), backbone_config={}))
    m = build_model(tiny_config("dinov2", pretrained_model=str(d), backbone_config={},
                                train_blocks=2))
    assert m.config.feature_layers == (1, 2, 3, 4) and m.tail_blocks == 2
    trained = {n for n, p in m.backbone.named_parameters() if p.requires_grad}
    assert trained and all(n.startswith(("vit.encoder.layer.2.", "vit.encoder.layer.3."))
                           for n in trained)
    x = torch.randn(2, 3, 112, 112)
    whole = m.backbone_features(x)
    for a, b in zip(whole, frozen.backbone_features(x)):  # same weights before training
        torch.testing.assert_close(a, b)
    feats, tokens = m.cache_features(x, 1)  # every frozen map, and the tokens after block 1
    assert len(feats) == 4 and tokens.shape == (2, 1 + 8 * 8, 64)  # CLS + 8 x 8 patches
    for at in (0, 1, 2):  # blocks between the tokens and the trained ones run frozen
        _, tokens = m.cache_features(x, at)
        for a, b in zip(whole, feats[:m.head_levels] + m.tail_features(tokens, at)):
            torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="cannot feed"):
        m.tail_features(m.cache_features(x, 3)[1], 3)
    # gradients reach the tail blocks, never the head
    m.decoder(m.backbone_features(x)).square().mean().backward()
    grads = {n for n, p in m.backbone.named_parameters() if p.grad is not None}
    assert grads == trained
    # the checkpoint stores the decoder and the trained blocks, and refers to the rest
    with torch.no_grad():
        for p in m.backbone.vit.encoder.layer[3].parameters():
            p.add_(0.01)
    path = save_checkpoint(tmp_path / "m.pt", m)
    keys = read_checkpoint(path)["state_dict"].keys()
    enc = sorted({k.split(".")[4] for k in keys if k.startswith("backbone.")})
    assert enc == ["2", "3"]
    again, _ = load_model(path)
    torch.testing.assert_close(again.eval()(x), m.eval()(x))
    assert not torch.allclose(frozen.eval()(x), m(x))
    # a checkpoint whose encoder blocks do not match its train_blocks is refused in one line
    blob = torch.load(path, weights_only=True)
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items()
                          if ".layer.3." not in k}
    torch.save(blob, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="do not match its last 2 blocks"):
        load_model(tmp_path / "bad.pt")


def test_train_blocks_validation(tmp_path):
    with pytest.raises(ValueError, match="exceeds"):
        tiny_config("dinov2", feature_layers=(1, 2), train_blocks=3)
    with pytest.raises(ValueError, match="cannot train only its last blocks"):
        build_model(tiny_config("qwen2vl", train_blocks=1))
    with pytest.raises(ValueError, match="freeze_vit: false"):
        build_model(tiny_config("dinov2", train_blocks=1, freeze_vit=False))


def test_tta_views_undo_their_geometry():
    """Maps rendered from grasps moved by each view, moved back, equal the original maps: the
    angle channels change sign as the geometry says (CONVENTIONS §3)."""
    from vita_grasp_core.data.augment import compose, hflip_matrix, rot90_matrix, transform_grasps
    from vita_grasp_core.data.targets import render_targets
    from vita_grasp_core.geometry import Letterbox
    from vita_grasp_core.tta import VIEWS, _fix_angles, _forward, _inverse

    h = w = 48
    lb = Letterbox.fit((h, w), (h, w))
    rng = np.random.default_rng(0)
    g = np.zeros((5, 7))
    g[:, :2] = rng.uniform(6, 42, (5, 2))
    g[:, 2], g[:, 3], g[:, 4], g[:, 5] = rng.uniform(-1.5, 1.5, 5), 12.0, 6.0, 1.0
    maps = torch.from_numpy(render_targets(g, None, lb, 0.5, 2.0).maps[:4])[None]
    for name, k, flip in VIEWS:
        m = compose(rot90_matrix(k, (h, w))[0], hflip_matrix(w) if flip else np.eye(3)[:2])
        seen = render_targets(transform_grasps(g, m, (h, w)), None, lb, 0.5, 2.0).maps[:4]
        seen = torch.from_numpy(seen)[None]
        torch.testing.assert_close(_forward(maps[:, :1], k, flip), seen[:, :1], msg=name)
        torch.testing.assert_close(_fix_angles(_inverse(seen, k, flip), k, flip), maps,
                                   msg=name)


def test_predictor_tta_averages_views(tiny_model_factory):
    from vita_grasp_core.predictor import GraspPredictor
    from vita_grasp_core.tta import tta_views

    model = tiny_model_factory("dinov2", input_size=(112, 112), output_size=(64, 64))
    img = np.random.default_rng(1).integers(0, 255, (90, 120, 3), dtype=np.uint8)
    p1 = GraspPredictor(model, device="cpu")
    calls = []
    p4 = GraspPredictor(model, device="cpu", tta=4)
    run = p4.engine.run
    p4.engine.run = lambda x: calls.append(x.shape[0]) or run(x)
    a, b = p1.predict(img), p4.predict(img)
    assert calls == [4] and b.maps.shape == a.maps.shape  # one batch of 4 views
    assert not np.allclose(a.maps, b.maps)
    # an image that every flip leaves unchanged: the averaged maps are mirror-symmetric (a
    # random network is not), and the mirrored angle channel changes sign
    sym = p4.predict(np.full((112, 112, 3), 128, np.uint8)).maps
    np.testing.assert_allclose(sym[0], sym[0][:, ::-1], atol=1e-5)
    np.testing.assert_allclose(sym[0], sym[0][::-1, :], atol=1e-5)
    np.testing.assert_allclose(sym[2], -sym[2][:, ::-1], atol=1e-5)
    assert len(tta_views(8, square=False)) == 4 and len(tta_views(8, square=True)) == 8
    with pytest.raises(ValueError, match="tta"):
        GraspPredictor(model, device="cpu", tta=9)


def test_block_folds_keep_consecutive_frame_numbers_together():
    from vita_grasp_core.data import kfold, split_groups
    from vita_grasp_core.data.common import FrameRecord

    nums = [100, 101, 103, 149, 150, 151, 198, 199, 200, 260, 262, 301, 350, 351]
    frames = [FrameRecord(key=f"pcd{n:04d}", group=f"pcd{n:04d}", rgb="x", format="cornell",
                          frame=n) for n in nums]
    assert split_groups(frames, "block", 50)[:6] == ["-1/2", "-1/2", "-1/2", "-1/2", "-1/3",
                                                     "-1/3"]
    folds = kfold(frames, 3, seed=0, by="block", block_size=50)
    assert sorted(sum(folds, [])) == list(range(len(nums)))
    for f in folds:
        blocks = {nums[i] // 50 for i in f}
        assert all(nums[i] // 50 not in blocks for g in folds if g is not f for i in g)
    assert kfold(frames, 3, seed=0, by="block", block_size=50) == folds
    with pytest.raises(ValueError, match="frame numbers"):
        kfold([FrameRecord(key="a", group="a", rgb="x")] * 4, 2, by="block")
    with pytest.raises(ValueError, match="block groups"):
        kfold(frames, 3, by="block", block_size=1000)


def test_train_blocks_train_from_cached_tokens(tmp_path):
    """With ``train_blocks`` the cache holds the frozen head's maps and tokens; training moves
    only the tail blocks (and the decoder), and validation / calibration use them."""
    from safetensors import safe_open
    from test_train_utils import TINY

    from vita_grasp_core.data.toy import write_toy_dataset
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train import Trainer
    from vita_grasp_core.training.train_config import build_config

    root = tmp_path / "toy"
    write_toy_dataset(root, "cornell", frames=6, size=(96, 128), seed=3)
    d = _pretrained_dinov2(tmp_path)
    cfg = build_config(load_raw(TINY), [
        f"data.root={root}", "data.format=cornell", "data.val_fraction=0.34",
        "data.train_scenes=null", "data.val_scenes=null", "data.memory_cache=false",
        "data.augment={rotate_p: 1.0}", "model.backbone=dinov2", f"model.pretrained_model={d}",
        "model.backbone_config={}", "model.feature_layers=null", "model.freeze_vit=true",
        "model.train_blocks=1", "model.input_size=[56,70]", "model.output_size=[48,64]",
        "model.width_scale=0.5", "model.decoder_channels=16", "train.feature_cache=true",
        "train.cache_views=2", "train.epochs=2", "train.batch_size=2"])
    tr = Trainer(cfg, tmp_path / "run", device="cpu", progress=False)
    try:
        files = sorted(tr.cache.dir.glob("*.safetensors"))
        with safe_open(str(files[0]), framework="pt") as f:
            assert sorted(k for k in f.keys() if k.startswith(("feat", "tokens"))) == [
                "feat0", "feat1", "feat2", "feat3", "tokens"]  # tokens after block 3
        head = {k: v.clone() for k, v in tr.model.backbone.state_dict().items()}
        summary = tr.run()
        moved = {k for k, v in tr.model.backbone.state_dict().items()
                 if not torch.equal(v, head[k])}
    finally:
        tr.close()
    assert moved and all(k.startswith("vit.encoder.layer.3.") for k in moved)
    assert summary["last_val"]["num_images"] == 2
    blob = read_checkpoint(tmp_path / "run" / "best_model.pt")
    assert "decode" in blob["meta"]
    assert {k.split(".")[4] for k in blob["state_dict"] if k.startswith("backbone.")} == {"3"}


def test_cv_block_folds_and_the_camera_scale_check(tmp_path):
    """``vita-grasp cv --split_by block`` deals whole blocks of frame numbers; a crop embedded
    at a camera's scale keeps its grasps on the object, scaled by the zoom."""
    from test_train_utils import TINY

    from vita_grasp_core.data import load_frame
    from vita_grasp_core.data.fullframe import embed_in_frame, zoom_for_scale
    from vita_grasp_core.data.toy import write_toy_dataset
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.cv import fold_frames
    from vita_grasp_core.training.scale_check import width_ratios, width_summary
    from vita_grasp_core.training.train_config import build_config

    root = tmp_path / "toy"
    write_toy_dataset(root, "cornell", frames=8, size=(96, 128), seed=3)
    cfg = build_config(load_raw(TINY), [f"data.root={root}", "data.format=cornell",
                                        "data.split_by=block", "data.block_size=2",
                                        "data.folds=2"])
    frames, folds, by = fold_frames(cfg)
    assert by == "block" and sorted(sum(folds, [])) == list(range(8))
    for f in folds:
        assert {frames[i].frame // 2 for i in f}.isdisjoint(
            {frames[i].frame // 2 for g in folds if g is not f for i in g})
    fr = load_frame(frames[0])
    zoom = zoom_for_scale(0.5, fr.rgb.shape[:2], (224, 224))
    assert zoom == pytest.approx(0.5 * (224 / 128) / (224 / 640))
    img, g = embed_in_frame(fr.rgb, fr.grasps, zoom)
    assert img.shape == (480, 640, 3) and len(g) == len(fr.grasps)
    np.testing.assert_allclose(g[:, 3], fr.grasps[:, 3] * zoom, rtol=1e-5)
    centre = np.array([319.5, 239.5])
    np.testing.assert_allclose(g[:, :2] - centre,
                               (fr.grasps[:, :2] - np.array([63.5, 47.5])) * zoom, atol=1e-3)
    assert tuple(img[0, 0]) == tuple(img[-1, -1])  # the fill: the crop's border colour
    pred = np.array([[*g[0, :3], 2 * g[0, 3], 10.0, 0.9]])
    s = width_summary(width_ratios([(pred, g)]))
    assert s["ratio_median"] == pytest.approx(2.0) and s["within_tolerance"] == 0.0


def test_tta_is_calibrated_on_the_views_and_stored_with_the_checkpoint(tmp_path):
    from test_train_utils import TINY

    from vita_grasp_core.data.toy import write_toy_dataset
    from vita_grasp_core.engines import TorchEngine
    from vita_grasp_core.predictor import GraspPredictor
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train import Trainer
    from vita_grasp_core.training.train_config import build_config

    root = tmp_path / "toy"
    write_toy_dataset(root, "cornell", frames=6, size=(96, 128), seed=3)
    cfg = build_config(load_raw(TINY), [
        f"data.root={root}", "data.format=cornell", "data.val_fraction=0.34",
        "data.train_scenes=null", "data.val_scenes=null", "data.memory_cache=false",
        "data.augment={rotate_p: 1.0}", "model.freeze_vit=true", "model.input_size=[56,70]",
        "model.output_size=[48,64]", "model.width_scale=0.5", "model.decoder_channels=16",
        "train.feature_cache=true", "train.cache_views=2", "train.epochs=1",
        "train.batch_size=2", "train.eval.tta=4"])
    tr = Trainer(cfg, tmp_path / "run", device="cpu", progress=False)
    calls = []
    orig = TorchEngine.run

    def counting(self, x):
        calls.append(x.shape[0])
        return orig(self, x)

    TorchEngine.run = counting
    try:
        tr.run()
    finally:
        TorchEngine.run = orig
        tr.close()
    assert calls and all(n % 4 == 0 for n in calls)  # calibration saw the 4 views of each frame
    p = GraspPredictor.from_checkpoint(tmp_path / "run" / "best_model.pt", device="cpu")
    assert p.decode_config.tta == 4 and p.decode_sources["tta"] == "checkpoint"
    assert GraspPredictor.from_checkpoint(tmp_path / "run" / "best_model.pt", device="cpu",
                                          tta=1).decode_config.tta == 1


def test_input_scale_enlarges_the_canvas_and_reads_openings_at_the_training_scale(
        tiny_model_factory):
    """``input_scale`` k: the network sees the frame k times larger (a camera frame shown at the
    scale of the training crops); its openings, learned in canvas pixels, are read k times
    smaller on the maps."""
    from vita_grasp_core.predictor import GraspPredictor

    model = tiny_model_factory("dinov2", input_size=(112, 112), output_size=(64, 64))
    p1 = GraspPredictor(model, device="cpu", score_threshold=0.0)
    p2 = GraspPredictor(model, device="cpu", score_threshold=0.0, input_scale=2.0)
    assert p1.input_size == (112, 112) and p2.input_size == (224, 224)
    assert GraspPredictor(model, device="cpu", input_scale=1.3).input_size == (140, 140)
    img = np.random.default_rng(2).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    x, lbs = p2.preprocess([img])
    assert x.shape[-2:] == (224, 224)
    maps = p1.forward_maps(p1.preprocess([img])[0])
    g1, g2 = p1.decode(maps, lbs)[0], p2.decode(maps, lbs)[0]
    assert g1 and [round(a.x, 3) for a in g1] == [round(b.x, 3) for b in g2]
    np.testing.assert_allclose([b.width for b in g2], [0.5 * a.width for a in g1], rtol=1e-6)
    assert p2.predict(img).maps.shape == (5, 64, 64)
