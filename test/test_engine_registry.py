"""The engine registry: the predictor always holds an engine (torch is one of them), and a new
engine is one class plus one registration, used by GraspPredictor.from_checkpoint and
load_predictor like the built-in ones."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vita_grasp_core import GraspPredictor, load_predictor
from vita_grasp_core.choices import DEFAULT_ENGINE, ENGINES
from vita_grasp_core.engines import TorchEngine, register_engine, unregister_engine


class Float64Engine:
    """A toy engine: the PyTorch model in float64 on the CPU."""

    name = "float64"

    def __init__(self, model):
        self.model = model.to("cpu", torch.float64).eval()
        self.config, self.mean, self.std = model.config, model.mean, model.std
        self.device, self.dtype = torch.device("cpu"), torch.float64
        self.calls = 0

    @torch.inference_mode()
    def run(self, pixel_values):
        self.calls += 1
        return self.model(pixel_values.to(torch.float64)).float()


def float64_from_checkpoint(checkpoint, *, pretrained_model=None, **_):
    from vita_grasp_core.checkpoint import load_model

    model, blob = load_model(checkpoint, pretrained_model=pretrained_model)
    return Float64Engine(model), (blob.get("meta") or {}).get("decode")


@pytest.fixture
def float64_registered():
    register_engine("float64", float64_from_checkpoint)  # the one registration
    yield
    unregister_engine("float64")


def test_the_predictor_always_holds_an_engine(tiny_model_factory):
    pred = GraspPredictor(tiny_model_factory(), device="cpu")
    assert isinstance(pred.engine, TorchEngine) and pred.engine_name == DEFAULT_ENGINE == "torch"
    assert pred.model is pred.engine.model and pred.dtype == torch.float32
    assert list(ENGINES)[:2] == ["torch", "onnxruntime"]


def test_a_registered_toy_engine_is_used_by_from_checkpoint(float64_registered, tiny_checkpoint):
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    ref = GraspPredictor.from_checkpoint(tiny_checkpoint, device="cpu", score_threshold=0.0)
    toy = load_predictor(tiny_checkpoint, engine="float64", score_threshold=0.0)
    assert toy.engine_name == "float64" and toy.dtype == torch.float64
    a, b = ref.predict(rgb), toy.predict(rgb)
    assert toy.engine.calls == 1
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-4)
    assert len(a.grasps) == len(b.grasps) > 0
    with pytest.raises(ValueError, match="brings its own device and dtype"):
        GraspPredictor(toy.engine, device="cuda")
    with pytest.raises(ValueError, match="registered twice"):
        register_engine("float64", float64_from_checkpoint)
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        GraspPredictor.from_checkpoint(tiny_checkpoint, engine="nope")
