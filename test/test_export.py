"""ONNX export: every backbone exports and matches PyTorch, metadata round trip, external data,
fp16 / int8 variants, the `vita-grasp export` command line and its failures."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import tiny_config

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from vita_grasp_core import build_model  # noqa: E402
from vita_grasp_core.checkpoint import save_checkpoint  # noqa: E402
from vita_grasp_core.cli.export import main  # noqa: E402
from vita_grasp_core.engines import OnnxRuntimeEngine  # noqa: E402
from vita_grasp_core.export import (  # noqa: E402
    check_export,
    export_checkpoint,
    export_onnx,
    quantize_int8,
)
from vita_grasp_core.onnx_meta import ONNX_FORMAT, read_onnx_metadata  # noqa: E402

DECODE = {"score_threshold": 0.05, "max_grasps": 7, "min_distance": 6, "smooth_sigma": 0.5,
          "quality_knots": [[0.0, 0.0], [0.5, 0.8], [1.0, 1.0]]}


def _model(backbone, seed=0):
    torch.manual_seed(seed)  # small output maps keep every export + check around a second
    return build_model(tiny_config(backbone, output_size=(96, 128))).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """backbone -> (model, path of its fp32 export) for the three backbones, exported once."""
    out = {}
    root = tmp_path_factory.mktemp("onnx")
    for bb in ("internvit", "qwen2vl", "dinov2"):
        model = _model(bb)
        res = export_onnx(model, root / f"{bb}.onnx", decode=DECODE, source="x.pt",
                          source_sha256="ab" * 32)
        out[bb] = (model, res)
    return out


@pytest.mark.parametrize("backbone", ["internvit", "qwen2vl", "dinov2"])
def test_every_backbone_exports_and_matches_torch(exported, backbone):
    model, res = exported[backbone]
    engine = OnnxRuntimeEngine(res.path)
    result = check_export(model, engine, frames=2)
    assert result.passed, result.summary()
    assert result.worst < 1e-4 and len(result.max_abs_diff) == 5
    # Qwen2-VL's per-image attention split is traced for one batch size: fixed batch 1, and
    # the engine feeds a batch of 3 frame by frame; the others take any batch in one call.
    assert res.batch == (1 if backbone == "qwen2vl" else "dynamic")
    assert engine.dynamic_batch == (backbone != "qwen2vl")
    x = torch.randn(3, 3, *model.config.input_size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        ref = model(x)
    got = engine.run(x)
    assert got.shape == ref.shape == (3, 5, *model.config.output_size)
    assert got.dtype == torch.float32
    assert (got - ref).abs().max().item() < 1e-4


def test_metadata_round_trip(exported):
    model, res = exported["internvit"]
    info = read_onnx_metadata(res.path)
    assert info.raw["vita_grasp.format"] == ONNX_FORMAT
    assert info.model_config == json.loads(json.dumps(model.config.to_dict()))
    assert info.decode == DECODE
    assert info.mean == pytest.approx(model.mean) and info.std == pytest.approx(model.std)
    assert info.precision == "fp32" and info.dynamic_batch
    assert info.source == "x.pt" and info.source_sha256 == "ab" * 32
    engine = OnnxRuntimeEngine(res.path)
    assert engine.config == model.config  # rebuilt from the metadata alone
    assert engine.info.model_config == info.model_config
    assert engine.providers == ["CPUExecutionProvider"]


def test_external_data_is_written_and_loads(tmp_path):
    model = _model("dinov2")
    res = export_onnx(model, tmp_path / "ext.onnx", external_data=True)
    assert res.data_path == tmp_path / "ext.onnx.data" and res.data_path.is_file()
    assert res.path.stat().st_size < res.data_path.stat().st_size  # graph apart from weights
    assert res.size_bytes == res.path.stat().st_size + res.data_path.stat().st_size
    engine = OnnxRuntimeEngine(res.path)
    assert check_export(model, engine, frames=1).passed
    # Re-exporting without external data removes the stale weights file.
    res2 = export_onnx(model, tmp_path / "ext.onnx", external_data=False)
    assert res2.data_path is None and not (tmp_path / "ext.onnx.data").exists()


def test_int8_quantises_only_encoder_matmuls(exported, tmp_path):
    import onnx

    model, res = exported["internvit"]
    q = quantize_int8(res.path, tmp_path / "q.onnx")
    assert q.precision == "int8" and read_onnx_metadata(q.path).precision == "int8"
    graph = onnx.load(str(q.path)).graph
    quant = [n.name for n in graph.node if n.op_type in ("MatMulInteger",
                                                         "DynamicQuantizeLinear")]
    assert quant and all("/backbone/" in n for n in quant)
    assert any(n.op_type == "Conv" and "/decoder/" in n.name for n in graph.node)  # fp32 decoder
    engine = OnnxRuntimeEngine(q.path)
    chk = check_export(model, engine, frames=1)
    assert chk.tolerance == 0.25 and chk.passed, chk.summary()
    assert chk.worst > 1e-6  # it really is quantised
    with pytest.raises(ValueError, match="starts from an fp32 export"):
        quantize_int8(q.path, tmp_path / "qq.onnx")


def test_fp16_export_matches_within_its_tolerance(tmp_path):
    model = _model("internvit")
    res = export_onnx(model, tmp_path / "h.onnx", fp16=True)
    engine = OnnxRuntimeEngine(res.path)
    chk = check_export(model, engine, frames=1)
    assert engine.precision == "fp16" and chk.tolerance == 2e-2 and chk.passed, chk.summary()
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is untouched
    bf = _model("internvit").to(torch.bfloat16).train()
    export_onnx(bf, tmp_path / "bf.onnx")  # exported from an fp32 CPU copy
    assert next(bf.parameters()).dtype == torch.bfloat16 and bf.training
    assert check_export(model, OnnxRuntimeEngine(tmp_path / "bf.onnx"), frames=1).worst < 0.1


def checkpoint_file(folder):
    return save_checkpoint(folder / "best_model.pt", _model("internvit"), meta={"decode": DECODE})


def _decode_of(info) -> dict:
    """The stored decoding settings the checkpoint set (later settings keep their defaults)."""
    return {k: info.decode[k] for k in DECODE if k in info.decode}


@pytest.fixture
def checkpoint(tmp_path):
    return checkpoint_file(tmp_path)


def test_cli_exports_checks_and_reports(checkpoint, tmp_path, capsys):
    out = tmp_path / "deploy" / "model.onnx"
    assert main(["--checkpoint", str(checkpoint), "--out", str(out), "--check-frames", "2"]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out}" in text and "check: max |onnx - torch| per channel over 2" in text
    assert "<= tolerance 0.001" in text
    info = read_onnx_metadata(out)
    assert _decode_of(info) == DECODE and info.source == "best_model.pt"
    assert len(info.source_sha256) == 64


def test_cli_without_out_fills_the_predictor_cache(checkpoint, capsys):
    from vita_grasp_core import GraspPredictor

    assert main(["--checkpoint", str(checkpoint), "--check-frames", "1"]) == 0
    cached = [p for p in checkpoint.parent.iterdir() if p.suffix == ".onnx"]
    assert len(cached) == 1 and cached[0].name.startswith("best_model.pt.fp32.")
    assert f"wrote {cached[0]}" in capsys.readouterr().out
    stamp = cached[0].stat().st_mtime_ns
    pred = GraspPredictor.from_checkpoint(checkpoint, engine="onnxruntime")
    assert pred.engine.path == cached[0] and cached[0].stat().st_mtime_ns == stamp  # re-used


def test_cli_failed_check_exits_1_and_removes_the_file(checkpoint, tmp_path, capsys):
    out = tmp_path / "model.onnx"
    rc = main(["--checkpoint", str(checkpoint), "--out", str(out), "--check-frames", "1",
               "--tolerance", "1e-12"])
    err = capsys.readouterr().err
    assert rc == 1 and "FAILED" in err and "tolerance 1e-12" in err and "was removed" in err
    assert not out.exists()


def test_cli_user_errors_exit_2_with_one_line(tmp_path, capsys):
    rc = main(["--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "m.onnx")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "checkpoint not found" in err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "not a VITA-Grasp checkpoint" in capsys.readouterr().err
    (tmp_path / "adir.onnx").mkdir()
    assert main(["--checkpoint", str(checkpoint_file(tmp_path)), "--out",
                 str(tmp_path / "adir.onnx"), "--check-frames", "0"]) == 2
    assert capsys.readouterr().err.startswith("vita-grasp export: ")
    with pytest.raises(SystemExit):  # argparse: --fp16 and --int8 are exclusive
        main(["--checkpoint", str(bad), "--out", "x.onnx", "--fp16", "--int8"])


def test_export_checkpoint_int8_carries_the_checkpoint_metadata(checkpoint, tmp_path):
    res, chk = export_checkpoint(checkpoint, tmp_path / "q.onnx", precision="int8", check=1)
    info = read_onnx_metadata(res.path)
    assert info.precision == "int8" and _decode_of(info) == DECODE and chk.passed


def test_foreign_and_broken_files_are_refused(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    foreign = tmp_path / "relu.onnx"
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    onnx.save_model(helper.make_model(graph), str(foreign))
    with pytest.raises(ValueError, match="not a VITA-Grasp ONNX model"):
        read_onnx_metadata(foreign)
    with pytest.raises(ValueError, match="not a VITA-Grasp ONNX model"):
        OnnxRuntimeEngine(foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(ValueError, match="not a (loadable|readable) ONNX"):
        OnnxRuntimeEngine(garbage)
    with pytest.raises(FileNotFoundError):
        OnnxRuntimeEngine(tmp_path / "nope.onnx")


@pytest.mark.parametrize("bad", [{"score_threshold": 7.0}, {"max_grasps": -3},
                                 {"smooth_sigma": float("nan")}, {"banana": 1},
                                 {"quality_knots": [[0.5, 0.9], [0.2, 0.1]]}])
def test_invalid_stored_decoding_is_refused_like_every_other_tool(tmp_path, capsys, bad):
    """Issue 21 item 9: export embedded decoding settings that infer / eval / the node refuse."""
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "m.pt", build_model(tiny_config(output_size=(96, 128))),
                           meta={"decode": {**DECODE, **bad}})
    assert main(["--checkpoint", str(path), "--out", str(tmp_path / "m.onnx"),
                 "--check-frames", "0"]) == 2
    err = capsys.readouterr().err
    assert "invalid stored decoding" in err and err.count("\n") == 1
    assert not (tmp_path / "m.onnx").exists()
