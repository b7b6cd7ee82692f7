"""Shared fixtures: tiny random configs (milliseconds on CPU) and tiny checkpoints."""
from __future__ import annotations

import os

import pytest

#: Tiny InternViT (hidden 64, 2 layers) - the real one is hidden 1024, 24 layers.
TINY_INTERNVIT = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=128)
#: Tiny Qwen2-VL tower.
TINY_QWEN2VL = dict(depth=2, embed_dim=64, num_heads=2, hidden_size=64)


def tiny_config(backbone: str = "internvit", **overrides):
    from vita_grasp_core import ModelConfig

    bb = TINY_INTERNVIT if backbone == "internvit" else TINY_QWEN2VL
    kw = dict(backbone=backbone, backbone_config=dict(bb), decoder_channels=32,
              input_size=(112, 140) if backbone == "internvit" else (112, 168))
    kw.update(overrides)
    return ModelConfig(**kw)


@pytest.fixture
def tiny_model_factory():
    import torch

    from vita_grasp_core import build_model

    def make(backbone="internvit", seed=0, **overrides):
        torch.manual_seed(seed)
        return build_model(tiny_config(backbone, **overrides))

    return make


@pytest.fixture
def tiny_checkpoint(tmp_path, tiny_model_factory):
    """Path to a tiny random-weight internvit checkpoint (``best_model.pt``)."""
    from vita_grasp_core.checkpoint import save_checkpoint

    return save_checkpoint(tmp_path / "best_model.pt", tiny_model_factory(), meta={"epoch": 0})


@pytest.fixture(autouse=True)
def _torch_threads():
    import torch

    torch.set_num_threads(min(2, os.cpu_count() or 1))
    yield
