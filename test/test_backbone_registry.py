"""Backbone registry facts (issue #11): one home per backbone fact, no branching on names."""
from __future__ import annotations

import json

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import save_file

from vita_grasp_core import ModelConfig, build_model
from vita_grasp_core.backbones import get_spec, list_backbones, spread_layers
from vita_grasp_core.checkpoint import load_model, save_checkpoint
from vita_grasp_core.conventions import CLIP_MEAN, IMAGENET_MEAN


def test_every_backbone_states_its_facts():
    assert set(list_backbones()) >= {"internvit", "qwen2vl", "dinov2"}
    for name in list_backbones():
        spec = get_spec(name)
        assert spec.hub_id and spec.description and spec.patch_unit in (14, 28)
        assert spec.default_layers == spread_layers(spec.depth)
        h, w = spec.tiny_input_size
        assert h % spec.patch_unit == 0 and w % spec.patch_unit == 0
        m = build_model(tiny_config(name))
        assert tuple(m.backbone.mean) == spec.mean and tuple(m.backbone.std) == spec.std
        assert m.backbone.size_multiple == spec.patch_unit
        feats = m.backbone_features(torch.randn(1, 3, h, w))
        assert len(feats) == len(m.config.feature_layers)
    assert get_spec("internvit").default_layers == (6, 12, 18, 24)
    assert get_spec("qwen2vl").default_layers == (8, 16, 24, 32)
    assert get_spec("dinov2").default_layers == (3, 6, 9, 12)
    assert get_spec("qwen2vl").mean == CLIP_MEAN and get_spec("dinov2").mean == IMAGENET_MEAN
    with pytest.raises(ValueError, match="unknown backbone 'vit9'.*available"):
        get_spec("vit9")


def test_model_type_choices_come_from_the_registry():
    from vita_grasp_core.cli.train import build_parser

    action = next(a for a in build_parser()._actions if a.dest == "model_type")
    assert list(action.choices) == list_backbones()


def _write_local_dinov2(directory, layers: int):
    """A local DINOv2 checkpoint directory (transformers layout) with ``layers`` blocks."""
    from transformers import Dinov2Config, Dinov2Model

    spec = get_spec("dinov2")
    cfg = Dinov2Config(**{**spec.tiny_config, "num_hidden_layers": layers, "image_size": 56,
                          "patch_size": 14})
    model = Dinov2Model(cfg)
    state = {k: v.contiguous() for k, v in model.state_dict().items() if "mask_token" not in k}
    directory.mkdir()
    save_file(state, str(directory / "model.safetensors"))
    d = cfg.to_dict()
    d["model_type"] = "dinov2"
    (directory / "config.json").write_text(json.dumps(d))


def test_default_feature_layers_follow_the_loaded_encoder(tmp_path):
    """A 4-layer local encoder with default feature_layers (issue #11: it used to fail with
    'feature_layers (3, 6, 9, 12) exceed the encoder's 4 layers')."""
    _write_local_dinov2(tmp_path / "enc", layers=4)
    cfg = ModelConfig(backbone="dinov2", pretrained_model=str(tmp_path / "enc"),
                      input_size=(56, 56), output_size=(32, 32), decoder_channels=16)
    assert cfg.feature_layers is None
    model = build_model(cfg)
    assert model.config.feature_layers == (1, 2, 3, 4)
    assert cfg.feature_layers is None and model.config is not cfg  # building never writes cfg
    ck = save_checkpoint(tmp_path / "m.pt", model)
    again, blob = load_model(ck)
    assert blob["model_config"]["feature_layers"] == [1, 2, 3, 4]
    assert again.config.feature_layers == (1, 2, 3, 4)
    # explicit layers are still checked against the real depth
    with pytest.raises(ValueError, match="exceed"):
        build_model(ModelConfig(backbone="dinov2", pretrained_model=str(tmp_path / "enc"),
                                input_size=(56, 56), feature_layers=(3, 6)))
