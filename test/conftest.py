"""Shared fixtures: tiny random configs (milliseconds on CPU) and tiny checkpoints."""
from __future__ import annotations

import os
import sys

import pytest


def _tiny(backbone: str) -> dict:
    from vita_grasp_core.backbones import get_spec

    return dict(get_spec(backbone).tiny_config)


#: Tiny InternViT (hidden 64, 2 layers) - the real one is hidden 1024, 24 layers.
TINY_INTERNVIT = _tiny("internvit")
#: Tiny Qwen2-VL tower.
TINY_QWEN2VL = _tiny("qwen2vl")


def tiny_config(backbone: str = "internvit", **overrides):
    """A tiny random-weight ``ModelConfig`` of any registered backbone (its registry facts)."""
    from vita_grasp_core import ModelConfig

    return ModelConfig.tiny(backbone, **overrides)


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


@pytest.fixture(autouse=True, scope="module")
def _release_ros_domains():
    """ROS domain ids a test module reserved (vita_grasp_ros.testing.allocate_domain_id) go back
    after its last test, when its module-scoped nodes have stopped (autouse: torn down last)."""
    yield
    testing = sys.modules.get("vita_grasp_ros.testing")
    if testing is not None:
        testing.release_all_domain_ids()
