"""GraspPredictor engines: ONNX Runtime gives the same grasps as PyTorch; the export cache;
from_onnx without a checkpoint; providers, threads and the errors a user can hit."""
from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch
from conftest import tiny_config

pytest.importorskip("onnxruntime")

from vita_grasp_core import GraspPredictor, build_model  # noqa: E402
from vita_grasp_core.checkpoint import save_checkpoint  # noqa: E402
from vita_grasp_core.engines import OnnxRuntimeEngine, resolve_providers  # noqa: E402
from vita_grasp_core.onnx_cache import cache_key, onnx_for_checkpoint  # noqa: E402

DECODE = {"score_threshold": 0.1, "max_grasps": 8, "min_distance": 4, "smooth_sigma": 1.0}


def _frames():
    """Frames of several sizes and aspect ratios with structure for the maps to respond to."""
    from vita_grasp_core.export import check_frames

    return check_frames(4, seed=3)


def _checkpoint(path, backbone="internvit", seed=0):
    torch.manual_seed(seed)
    model = build_model(tiny_config(backbone, output_size=(120, 160)))
    return save_checkpoint(path, model, meta={"decode": DECODE})


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    return _checkpoint(tmp_path_factory.mktemp("eng") / "best_model.pt")


def _assert_same_grasps(a, b):
    """Every grasp of ``a`` has a twin in ``b``: position within 0.5 px, angle within 1 degree
    (modulo pi), quality and object score within 1e-3; same number of grasps."""
    ga, gb = a.grasp_array(), b.grasp_array()
    assert len(ga) == len(gb) and len(ga) > 0
    for g in ga:
        d = np.hypot(gb[:, 0] - g[0], gb[:, 1] - g[1])
        j = int(np.argmin(d))
        assert d[j] < 0.5, (g, gb[j])
        da = abs((gb[j, 2] - g[2] + math.pi / 2) % math.pi - math.pi / 2)
        assert da < math.radians(1.0), (g, gb[j])
        assert abs(gb[j, 5] - g[5]) < 1e-3 and abs(gb[j, 6] - g[6]) < 1e-3
        assert abs(gb[j, 3] - g[3]) < 0.5


@pytest.mark.parametrize("backbone", ["internvit", "qwen2vl"])
def test_both_engines_give_the_same_grasps(tmp_path, backbone):
    ck = _checkpoint(tmp_path / "best_model.pt", backbone)
    torch_pred = GraspPredictor.from_checkpoint(ck, device="cpu", score_threshold=0.0)
    ort_pred = GraspPredictor.from_checkpoint(ck, engine="onnxruntime", score_threshold=0.0)
    assert (torch_pred.engine_name, ort_pred.engine_name) == ("torch", "onnxruntime")
    assert ort_pred.decode_config == torch_pred.decode_config  # checkpoint decoding + override
    frames = _frames()
    batch_t, batch_o = torch_pred.predict_batch(frames), ort_pred.predict_batch(frames)
    for im, pt, po in zip(frames, batch_t, batch_o):
        assert po.image_size == im.shape[:2]
        _assert_same_grasps(pt, po)
        assert np.abs(pt.maps - po.maps).max() < 1e-4
        _assert_same_grasps(pt, ort_pred.predict(im))  # one frame at a time too


def test_export_cache_is_reused_and_keyed_by_content(tmp_path):
    ck = _checkpoint(tmp_path / "best_model.pt")
    p1 = onnx_for_checkpoint(ck)
    assert p1.parent == ck.parent and p1.name.startswith("best_model.pt.fp32.")
    stamp = p1.stat().st_mtime_ns
    GraspPredictor.from_checkpoint(ck, engine="onnxruntime")
    assert onnx_for_checkpoint(ck) == p1 and p1.stat().st_mtime_ns == stamp  # not re-exported
    _checkpoint(ck, seed=1)  # new weights under the same name -> a new cache file
    p2 = onnx_for_checkpoint(ck)
    assert p2 != p1 and p2.is_file()
    assert cache_key("a" * 64, pretrained_model=None, precision="fp32", opset=17) != \
        cache_key("a" * 64, pretrained_model=None, precision="int8", opset=17)


def test_onnx_path_is_written_then_must_match_its_checkpoint(tmp_path, ckpt):
    path = tmp_path / "deploy" / "model.onnx"
    pred = GraspPredictor.from_checkpoint(ckpt, engine="onnxruntime", onnx_path=path)
    assert path.is_file() and pred.engine.path == path
    other = _checkpoint(tmp_path / "other.pt", seed=5)
    with pytest.raises(ValueError, match="exported from another checkpoint"):
        GraspPredictor.from_checkpoint(other, engine="onnxruntime", onnx_path=path)


def test_from_onnx_needs_no_checkpoint(tmp_path):
    ck = _checkpoint(tmp_path / "best_model.pt")
    path = onnx_for_checkpoint(ck, onnx_path=tmp_path / "model.onnx")
    ref = GraspPredictor.from_checkpoint(ck, device="cpu").predict(_frames()[0])
    ck.unlink()
    pred = GraspPredictor.from_onnx(path, intra_op_threads=1)
    assert pred.model is None and pred.engine_name == "onnxruntime"
    assert pred.decode_config.max_grasps == 8 and pred.score_threshold == 0.1  # from metadata
    _assert_same_grasps(ref, pred.predict(_frames()[0]))
    pred2 = GraspPredictor.from_onnx(path, max_grasps=2)
    assert pred2.max_grasps == 2 and len(pred2.predict(_frames()[0]).grasps) <= 2


def test_int8_engine_through_the_predictor(ckpt):
    pred = GraspPredictor.from_checkpoint(ckpt, engine="onnxruntime", onnx_precision="int8")
    assert pred.engine.precision == "int8"
    assert pred.engine.path.name.startswith("best_model.pt.int8.")
    out = pred.predict(_frames()[1])
    assert out.maps.shape == (5, 120, 160) and np.isfinite(out.maps).all()


def test_provider_and_engine_errors(ckpt, monkeypatch):
    assert resolve_providers(None) == ["CPUExecutionProvider"]
    assert resolve_providers("CPUExecutionProvider") == ["CPUExecutionProvider"]
    opts = ("CPUExecutionProvider", {"arena_extend_strategy": "kSameAsRequested"})
    assert resolve_providers([opts]) == [opts]
    with pytest.raises(ValueError, match="a provider is a name or a"):
        resolve_providers([3])
    with pytest.raises(ValueError, match=r"provider\(s\) \['NoSuchExecutionProvider'\] not "
                                         r"available.*available: \["):
        GraspPredictor.from_checkpoint(ckpt, engine="onnxruntime",
                                       providers=["NoSuchExecutionProvider"])
    import onnxruntime

    if "CUDAExecutionProvider" not in onnxruntime.get_available_providers():
        with pytest.raises(ValueError, match="CUDAExecutionProvider"):
            resolve_providers(["CUDAExecutionProvider"])
    with pytest.raises(ValueError, match="unknown engine 'tensorrt'"):
        GraspPredictor.from_checkpoint(ckpt, engine="tensorrt")
    with pytest.raises(ValueError, match="unknown ONNX precision"):
        GraspPredictor.from_checkpoint(ckpt, engine="onnxruntime", onnx_precision="int4")
    with pytest.raises(ValueError, match="takes its device from `providers`"):
        GraspPredictor.from_checkpoint(ckpt, "cuda", engine="onnxruntime")
    with pytest.raises(ValueError, match="intra_op_threads must be >= 0"):
        GraspPredictor.from_checkpoint(ckpt, engine="onnxruntime", intra_op_threads=-1)
    with pytest.raises(FileNotFoundError):
        GraspPredictor.from_checkpoint(ckpt.parent / "missing.pt", engine="onnxruntime")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    with pytest.raises(RuntimeError, match="needs the onnxruntime package"):
        GraspPredictor.from_onnx(ckpt.parent / "any.onnx")


def test_engine_rejects_wrong_input_shape(tmp_path, ckpt):
    path = onnx_for_checkpoint(ckpt, onnx_path=tmp_path / "m.onnx")
    engine = OnnxRuntimeEngine(path)
    with pytest.raises(ValueError, match=r"pixel_values must be \(B, 3, 112, 140\)"):
        engine.run(torch.zeros(1, 3, 112, 112))
    pred = GraspPredictor(engine)
    with pytest.raises(ValueError, match="uint8"):  # same validation as the torch engine
        pred.predict(np.zeros((10, 10, 3), np.float32))


@pytest.mark.parametrize("damage", ["truncated", "flipped"])
def test_damaged_cached_export_is_exported_again(tmp_path, damage, caplog):
    """Issue 21 item 12: a corrupt cached ONNX file was used (or failed) forever, and the error
    did not say what to delete. Truncation breaks the file; flipped weight bytes still parse and
    load, only the recorded SHA-256 tells."""
    import logging

    ck = _checkpoint(tmp_path / "best_model.pt")
    path = onnx_for_checkpoint(ck)
    good = GraspPredictor.from_checkpoint(ck, engine="onnxruntime", score_threshold=0.0)
    data = bytearray(path.read_bytes())
    if damage == "truncated":
        data = data[: len(data) // 2]
    else:
        mid = len(data) * 2 // 3
        data[mid:mid + 64] = bytes(b ^ 0x55 for b in data[mid:mid + 64])
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="vita_grasp_core.onnx_cache"):
        again = GraspPredictor.from_checkpoint(ck, engine="onnxruntime", score_threshold=0.0)
    assert "is damaged" in caplog.text and "exporting it again" in caplog.text
    assert again.engine.path == path and path.read_bytes() != bytes(data)
    frame = _frames()[0]
    _assert_same_grasps(good.predict(frame), again.predict(frame))
    # an explicit onnx_path is never overwritten: the error says what to delete
    own = tmp_path / "deploy.onnx"
    own.write_bytes(bytes(data[:100]))
    with pytest.raises(ValueError, match="delete it"):
        onnx_for_checkpoint(ck, onnx_path=own)
