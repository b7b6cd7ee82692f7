"""Core model: backbones, decoder, checkpoints, real-layout weight loading (issue #2)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import TINY_INTERNVIT, TINY_QWEN2VL, tiny_config
from reference.original_internvit import OriginalInternViT, tiny_original_config
from safetensors.torch import save_file

from vita_grasp_core import GraspPredictor, ModelConfig, build_model
from vita_grasp_core.backbones import get_spec, list_backbones
from vita_grasp_core.backbones.qwen2vl import pack_patches, tokens_to_map
from vita_grasp_core.checkpoint import load_model, read_checkpoint, save_checkpoint


@pytest.mark.parametrize("backbone", list_backbones())
@pytest.mark.parametrize("hw", [(720, 1280), (480, 640), (333, 517)])
def test_tiny_end_to_end_cpu(tiny_model_factory, backbone, hw):
    """image -> maps of output_size in range -> grasps inside the source image."""
    model = tiny_model_factory(backbone)
    pred = GraspPredictor(model, device="cpu", score_threshold=0.0, max_grasps=5)
    img = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    p = pred.predict(img)
    assert p.maps.shape == (5, 480, 640) and p.maps.dtype == np.float32
    assert p.maps[[0, 3, 4]].min() >= 0 and p.maps[[0, 3, 4]].max() <= 1
    assert p.maps[1:3].min() >= -1 and p.maps[1:3].max() <= 1
    assert 1 <= len(p.grasps) <= 5
    q = [g.quality for g in p.grasps]
    assert q == sorted(q, reverse=True)
    for g in p.grasps:
        assert -0.5 <= g.x <= hw[1] - 0.5 and -0.5 <= g.y <= hw[0] - 0.5
        assert -np.pi / 2 <= g.angle < np.pi / 2 and g.width >= 0
    batch = pred.predict_batch([img, img[: hw[0] // 2].copy()])
    assert [b.image_size for b in batch] == [hw, (hw[0] // 2, hw[1])]


def test_backbone_features_shapes(tiny_model_factory):
    m = tiny_model_factory("internvit")
    x = torch.randn(2, 3, 112, 140)
    feats = m.backbone_features(x)
    assert len(feats) == 2 and all(f.shape == (2, 64, 8, 10) for f in feats)
    q = tiny_model_factory("qwen2vl")
    feats = q.backbone_features(torch.randn(1, 3, 112, 168))
    assert all(f.shape == (1, 256, 4, 6) for f in feats)  # 2x2 merge blocks, 4 * 64 channels


def test_frozen_backbone_stays_eval_and_decoder_trains(tiny_model_factory):
    m = tiny_model_factory("internvit",
                           backbone_config={**TINY_INTERNVIT, "hidden_dropout_prob": 0.5})
    m.train()
    assert not m.backbone.training and m.decoder.training
    assert all(not p.requires_grad for p in m.backbone.parameters())
    out = m(torch.randn(1, 3, 112, 140), return_logits=True)
    out.mean().backward()
    assert all(p.grad is not None for p in m.decoder.parameters())
    # frozen + eval: features are deterministic despite dropout in the config
    x = torch.randn(1, 3, 112, 140)
    assert torch.equal(m.backbone_features(x)[0], m.backbone_features(x)[0])


def test_decoder_parameter_counts_at_real_sizes():
    counts = {}
    for bb in ("internvit", "qwen2vl"):
        with torch.device("meta"):
            m = build_model(ModelConfig(backbone=bb))
        counts[bb] = (m.trainable_parameters(), sum(p.numel() for p in m.backbone.parameters()))
    assert 4e6 <= counts["internvit"][0] <= 6e6, counts
    assert 7e6 <= counts["qwen2vl"][0] <= 9e6, counts
    assert abs(counts["internvit"][1] - 304.0e6) < 0.1e6  # InternViT-300M-448px
    assert abs(counts["qwen2vl"][1] - 631.2e6) < 0.2e6  # tower without the 44.6 M merger


def test_qwen2vl_token_order_raster():
    """Token (i, j) of the returned map holds patch (i, j) of the image."""
    p, merge, gh, gw = 14, 2, 4, 6
    img = torch.zeros(1, 3, gh * p, gw * p)
    for i in range(gh):
        for j in range(gw):
            img[0, 0, i * p:(i + 1) * p, j * p:(j + 1) * p] = i * 100 + j
    packed, h, w = pack_patches(img, p, merge, 2)
    assert (h, w) == (gh, gw) and packed.shape == (gh * gw, 3 * 2 * p * p)
    # Qwen2-VL order is block-major: the second token is patch (0, 1), the third (1, 0)
    assert packed[1, 0] == 1 and packed[2, 0] == 100
    tok = packed[:, :1]  # first value of each patch = its id
    m = tokens_to_map(tok, 1, gh, gw, merge)[0, 0]
    expect = torch.tensor([[i * 100 + j for j in range(gw)] for i in range(gh)], dtype=m.dtype)
    assert torch.equal(m, expect)


def test_qwen2vl_features_follow_image_content(tiny_model_factory):
    """Swapping two image patches swaps the per-layer-0 patch features at those map positions."""
    q = tiny_model_factory("qwen2vl", feature_layers=(1,), backbone_config={**TINY_QWEN2VL})
    q.backbone.merge_tokens = False
    x = torch.randn(1, 3, 56, 56)
    # the patch embedding alone (before attention) is position-free: compare via packed embed
    packed, gh, gw = pack_patches(x, 14, 2, 2)
    emb = q.backbone.vit.patch_embed(packed)
    m = tokens_to_map(emb, 1, gh, gw, 2)
    direct = torch.nn.functional.conv2d(
        x, q.backbone.vit.patch_embed.proj.weight.sum(2), stride=14)
    assert torch.allclose(m, direct, atol=1e-4)


def _write_original_checkpoint(directory, prefix="", **cfg_kw):
    torch.manual_seed(0)
    cfg = tiny_original_config(**cfg_kw)
    ref = OriginalInternViT(cfg).eval()
    directory.mkdir(parents=True, exist_ok=True)
    state = {prefix + k: v.contiguous() for k, v in ref.state_dict().items()}
    if prefix:
        state["language_model.model.embed_tokens.weight"] = torch.zeros(4, 4)
        full = {"model_type": "internvl_chat", "vision_config": cfg, "llm_config": {}}
        (directory / "config.json").write_text(json.dumps(full))
    else:
        (directory / "config.json").write_text(json.dumps(cfg))
    # sharded like the hub repos
    keys = sorted(state)
    half = len(keys) // 2
    shards = {"model-00001-of-00002.safetensors": keys[:half],
              "model-00002-of-00002.safetensors": keys[half:]}
    for name, ks in shards.items():
        save_file({k: state[k] for k in ks}, str(directory / name))
    index = {"metadata": {}, "weight_map": {k: n for n, ks in shards.items() for k in ks}}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index))
    return ref, cfg


@pytest.mark.parametrize("prefix", ["", "vision_model."])
@pytest.mark.parametrize("qk_norm", [False, True])
def test_internvit_original_layout_matches_original_computation(tmp_path, prefix, qk_norm):
    ref, cfg = _write_original_checkpoint(tmp_path / "ckpt", prefix, qk_normalization=qk_norm,
                                          norm_type="rms_norm" if qk_norm else "layer_norm")
    config = ModelConfig(backbone="internvit", pretrained_model=str(tmp_path / "ckpt"),
                         feature_layers=(1, 2, 3), decoder_channels=16, input_size=(56, 70))
    model = build_model(config)
    x = torch.randn(2, 3, 56, 70)  # not the native 56x56: position embeddings interpolate
    with torch.no_grad():
        expect = ref(x)
    feats = model.backbone_features(x)
    for layer, f in zip((1, 2, 3), feats):
        e = expect[layer][:, 1:].transpose(1, 2).reshape(2, cfg["hidden_size"], 4, 5)
        torch.testing.assert_close(f, e, atol=2e-5, rtol=1e-4)


def test_internvit_strict_loading_names_bad_keys(tmp_path):
    _write_original_checkpoint(tmp_path / "ckpt")
    # an unexpected extra tensor in a shard -> error naming it
    extra = tmp_path / "ckpt" / "model-00003-of-00003.safetensors"
    save_file({"encoder.layers.0.attn.bogus.weight": torch.zeros(2)}, str(extra))
    idx = json.loads((tmp_path / "ckpt" / "model.safetensors.index.json").read_text())
    idx["weight_map"]["encoder.layers.0.attn.bogus.weight"] = extra.name
    (tmp_path / "ckpt" / "model.safetensors.index.json").write_text(json.dumps(idx))
    with pytest.raises(ValueError, match="bogus"):
        build_model(ModelConfig(backbone="internvit", pretrained_model=str(tmp_path / "ckpt"),
                                feature_layers=(1,), decoder_channels=16, input_size=(56, 56)))
    # a config field the mapping does not know is refused, not silently ignored
    cfg = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    cfg["use_secret_sauce"] = True
    (tmp_path / "ckpt" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="use_secret_sauce"):
        build_model(ModelConfig(backbone="internvit", pretrained_model=str(tmp_path / "ckpt"),
                                feature_layers=(1,), decoder_channels=16, input_size=(56, 56)))


def test_internvit_missing_keys_error(tmp_path):
    _write_original_checkpoint(tmp_path / "ckpt")
    (tmp_path / "ckpt" / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        build_model(ModelConfig(backbone="internvit", pretrained_model=str(tmp_path / "ckpt"),
                                feature_layers=(1,), decoder_channels=16, input_size=(56, 56)))


def _write_native_internvit(tmp_path, tiny_model_factory):
    """A tiny InternViT saved in the native transformers layout: (source model, directory)."""
    src = tiny_model_factory("internvit")
    d = tmp_path / "native"
    d.mkdir()
    src.backbone.vit.config.save_pretrained(d)
    save_file({k: v.contiguous() for k, v in src.backbone.vit.state_dict().items()},
              str(d / "model.safetensors"))
    return src, d


def test_internvit_native_layout(tmp_path, tiny_model_factory):
    src, d = _write_native_internvit(tmp_path, tiny_model_factory)
    m = build_model(tiny_config("internvit", pretrained_model=str(d)))
    x = torch.randn(1, 3, 112, 140)
    for a, b in zip(m.backbone_features(x), src.backbone_features(x)):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("layout", ["full", "tower"])
def test_qwen2vl_checkpoint_layouts(tmp_path, tiny_model_factory, layout):
    src = tiny_model_factory("qwen2vl")
    d = tmp_path / layout
    d.mkdir()
    vit_cfg = {**TINY_QWEN2VL, "spatial_merge_size": 2, "patch_size": 14, "temporal_patch_size": 2}
    # the real checkpoints carry the merger; it must be accepted and skipped
    from transformers.models.qwen2_vl.modeling_qwen2_vl import PatchMerger

    merger = PatchMerger(dim=64, context_dim=64, spatial_merge_size=2)
    state = {**src.backbone.vit.state_dict(),
             **{f"merger.{k}": v for k, v in merger.state_dict().items()}}
    if layout == "full":
        cfg = {"model_type": "qwen2_vl", "vision_config": vit_cfg}
        state = {f"visual.{k}": v for k, v in state.items()}
        state["model.embed_tokens.weight"] = torch.zeros(3, 3)
    else:
        cfg = {"model_type": "qwen2_vl_vision", **vit_cfg}
    (d / "config.json").write_text(json.dumps(cfg))
    save_file({k: v.contiguous() for k, v in state.items()}, str(d / "model.safetensors"))
    m = build_model(tiny_config("qwen2vl", pretrained_model=str(d)))
    x = torch.randn(1, 3, 112, 168)
    for a, b in zip(m.backbone_features(x), src.backbone_features(x)):
        torch.testing.assert_close(a, b)


def test_unreachable_pretrained_is_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(RuntimeError, match="not available locally"):
        build_model(ModelConfig(backbone="internvit",
                                pretrained_model=get_spec("internvit").hub_id))


def test_config_validation():
    with pytest.raises(ValueError, match="unknown backbone"):
        ModelConfig(backbone="resnet")
    with pytest.raises(ValueError, match="unknown model config keys"):
        ModelConfig.from_dict({"backbone": "internvit", "decoder_chanels": 3})
    with pytest.raises(ValueError, match="multiples of 14"):
        build_model(tiny_config("internvit", input_size=(100, 140)))
    with pytest.raises(ValueError, match="multiples of 28"):
        build_model(tiny_config("qwen2vl", input_size=(112, 126)))
    assert ModelConfig(backbone="internvit").feature_layers == (6, 12, 18, 24)


def test_checkpoint_round_trip_and_errors(tmp_path, tiny_model_factory):
    m = tiny_model_factory("qwen2vl")
    path = save_checkpoint(tmp_path / "best_model.pt", m, meta={"epoch": 3, "acc": 0.5})
    m2, blob = load_model(path)
    assert blob["meta"] == {"epoch": 3, "acc": 0.5}
    x = torch.randn(1, 3, 112, 168)
    torch.testing.assert_close(m.eval()(x), m2(x))
    st = save_checkpoint(tmp_path / "model.safetensors", m)
    torch.testing.assert_close(load_model(st)[0](x), m2(x))
    # truncated
    data = path.read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_checkpoint(bad)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        read_checkpoint(tmp_path / "empty.pt")
    with pytest.raises(FileNotFoundError):
        GraspPredictor.from_checkpoint(tmp_path / "nope.pt", device="cpu")
    # a pickle with code in it is refused (weights_only)
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"format": Evil()}))
    with pytest.raises(ValueError, match="refusing to unpickle"):
        read_checkpoint(tmp_path / "evil.pt")
    # mismatched decoder (other width) -> names the keys
    other = tiny_model_factory("qwen2vl", decoder_channels=16)
    p3 = save_checkpoint(tmp_path / "other.pt", other)
    blob = torch.load(p3, weights_only=True)
    blob["model_config"]["decoder_channels"] = 32
    torch.save(blob, p3)
    with pytest.raises(ValueError, match="shape mismatches"):
        load_model(p3)


def test_frozen_pretrained_encoder_is_referenced_not_copied(tmp_path, tiny_model_factory):
    src, d = _write_native_internvit(tmp_path, tiny_model_factory)
    m = build_model(tiny_config("internvit", pretrained_model=str(d)))
    path = save_checkpoint(tmp_path / "best_model.pt", m)
    keys = read_checkpoint(path)["state_dict"].keys()
    assert keys and all(k.startswith("decoder.") for k in keys)
    m2, _ = load_model(path)
    x = torch.randn(1, 3, 112, 140)
    torch.testing.assert_close(m.eval()(x), m2(x))


def test_image_stem_reads_the_input_image(tiny_model_factory, tmp_path):
    """``image_stem``: the decoder also sees the input image (edges finer than the patches)."""
    m = tiny_model_factory("internvit", image_stem=8)
    assert m.needs_image and not tiny_model_factory("internvit").needs_image
    x = torch.randn(2, 3, 112, 140)
    feats = m.backbone_features(x)
    with pytest.raises(ValueError, match="image stem"):
        m.decode_logits(feats)
    out = m(x)
    assert out.shape == (2, 5, 480, 640)
    torch.testing.assert_close(m.decoder.activate(m.decode_logits(feats, x)), out)
    # the image changes the maps through the stem even with the same features
    assert not torch.allclose(m.decode_logits(feats, x), m.decode_logits(feats, x.flip(-1)))
    again, _ = load_model(save_checkpoint(tmp_path / "s.pt", m))
    assert again.config.image_stem == 8
    torch.testing.assert_close(again(x), out)
