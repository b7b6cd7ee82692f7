"""vita-grasp infer against hostile images and a hostile environment (issue 21 items 1, 5, 8):
decompression bombs are refused before decoding, bad output places and unknown devices are one
line with exit 2, and a full disk stops the run instead of reporting pictures it did not write."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from fixtures.bad_images import jpeg_declaring, png_declaring, png_grey
from fixtures.small_fs import fill, small_fs

from vita_grasp_core.cli.infer import main


def _infer(capsys, ckpt, images, out, *extra):
    code = main(["--checkpoint", str(ckpt), "--image_path", str(images), "--output_dir",
                 str(out), "--device", "cpu", "--score_threshold", "0", *map(str, extra)])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.err
    return code, cap.out, cap.err


def _photo(path, h=96, w=128):
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 255, (h, w, 3), np.uint8))


def test_bombs_are_skipped_without_decoding(tmp_path, tiny_checkpoint, capsys, monkeypatch):
    src = tmp_path / "imgs"
    src.mkdir()
    _photo(src / "good.png")
    (src / "bomb.png").write_bytes(png_grey(20000, 20000))   # 1.2 MB, 1.2 GB decoded
    (src / "header.png").write_bytes(png_declaring(20000, 20000))
    (src / "scan.jpg").write_bytes(jpeg_declaring(4000, 3000))  # 16x16 scan, grey otherwise
    decoded = []
    real = cv2.imdecode
    monkeypatch.setattr(cv2, "imdecode", lambda buf, flags: decoded.append(buf.size) or
                        real(buf, flags))
    code, out, err = _infer(capsys, tiny_checkpoint, src, tmp_path / "out")
    assert code == 0, err
    assert "done: 1 image(s)" in out and "3 skipped" in out
    assert out.count("max_pixels") == 2 and "scan ends early" in out
    assert len(decoded) == 1  # only good.png reached the decoder
    code, out, _ = _infer(capsys, tiny_checkpoint, src / "good.png", tmp_path / "o2",
                          "--max_pixels", 1000)
    assert code == 1 and "max_pixels = 1000" in out
    code, _, err = _infer(capsys, tiny_checkpoint, src, tmp_path / "o3", "--max_pixels", 0)
    assert code == 2 and err.startswith("inference: --max_pixels")


@pytest.mark.parametrize("device", ["banana", "cuda:7", "meta", "cpu:x"])
def test_unknown_device_is_one_line(tmp_path, tiny_checkpoint, capsys, device):
    _photo(tmp_path / "a.png")
    code = main(["--checkpoint", str(tiny_checkpoint), "--image_path", str(tmp_path / "a.png"),
                 "--output_dir", str(tmp_path / "out"), "--device", device])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and "device" in err


def test_output_dir_that_is_a_file_or_read_only(tmp_path, tiny_checkpoint, capsys):
    _photo(tmp_path / "a.png")
    (tmp_path / "file").write_text("x")
    code, _, err = _infer(capsys, tiny_checkpoint, tmp_path / "a.png", tmp_path / "file")
    assert code == 2 and "exists and is not a directory" in err
    with small_fs(tmp_path / "ro", read_only=True) as ro:
        code, out, err = _infer(capsys, tiny_checkpoint, tmp_path / "a.png", ro / "out")
    assert code == 2 and "read-only file system" in err and "done" not in out


def test_full_disk_stops_the_run(tmp_path, tiny_checkpoint, capsys):
    """Issue 21 item 5: three pictures missing, "done: 7 image(s)", exit 0."""
    src = tmp_path / "imgs"
    src.mkdir()
    for k in range(4):
        _photo(src / f"p{k}.png", 240, 320)
    with small_fs(tmp_path / "full", size_kb=512) as root:
        (root / "out").mkdir()
        fill(root, leave=40_000)  # room for a few JSON files, not for the pictures
        code, out, err = _infer(capsys, tiny_checkpoint, src, root / "out")
    assert code == 2, (out, err)
    assert "disk full" in err and "done:" not in out
    assert len(err.strip().splitlines()) == 1
