"""Cornell and Jacquard readers against files written here in the published formats; format
detection; skipped and counted rows (NaN, absurd widths); corrupt and missing files."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from vita_grasp_core.data import FrameFault, check_frame, detect_format, load_frame, scan_dataset
from vita_grasp_core.data.common import clean_grasp_rows, corners_to_grasps, grasps_to_corners
from vita_grasp_core.data.toy import write_toy_dataset
from vita_grasp_core.grasp import angle_difference, grasps_to_graspnet_rects, rect_corners


def _png(path, h=60, w=80, value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((h, w, 3), value, np.uint8))


def _lines(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


# --------------------------------------------------------------------------- Cornell
def test_cornell_corner_order_and_angle_sign(tmp_path):
    # p0 -> p1 is the opening (angle, width), p1 -> p2 the jaw (height), y DOWN
    _png(tmp_path / "pcd0100r.png")
    _lines(tmp_path / "pcd0100cpos.txt",
           "10 20\n40 20\n40 30\n10 30\n"        # opening along +x: angle 0, width 30, jaw 10
           "30 30\n40 40\n36 44\n26 34\n"        # opening towards +x+y (down-right): +45 deg
           "60.5 10\n60.5 30\n54.5 30\n54.5 10\n"  # opening straight down: wraps to -90 deg
           "20 50\n10 40\n12 38\n22 48\n")       # p0 -> p1 up-left: same line as +45 deg
    rec = scan_dataset(tmp_path).frames[0]
    assert (rec.key, rec.group, rec.format, rec.frame) == ("pcd0100", "pcd0100", "cornell", 100)
    g = load_frame(rec).grasps
    assert g.shape == (4, 7) and g.dtype == np.float32
    np.testing.assert_allclose(g[0], [25, 25, 0, 30, 10, 1, 0], atol=1e-5)
    np.testing.assert_allclose(g[1, :2], [33, 37], atol=1e-5)
    assert g[1, 2] == pytest.approx(math.pi / 4, abs=1e-5)  # positive = clockwise on screen
    assert g[1, 3] == pytest.approx(math.hypot(10, 10))
    assert g[1, 4] == pytest.approx(math.hypot(4, 4))
    assert g[2, 2] == pytest.approx(-math.pi / 2) and g[2, 3] == pytest.approx(20)
    assert g[2, 4] == pytest.approx(6)
    assert g[3, 2] == pytest.approx(math.pi / 4, abs=1e-5)
    assert (g[:, 2] >= -math.pi / 2).all() and (g[:, 2] < math.pi / 2).all()


def test_cornell_corners_round_trip():
    rng = np.random.default_rng(0)
    g = np.column_stack([rng.uniform(0, 640, 40), rng.uniform(0, 480, 40),
                         rng.uniform(-np.pi / 2, np.pi / 2, 40), rng.uniform(5, 90, 40),
                         rng.uniform(5, 40, 40), np.ones(40), np.zeros(40)])
    back = corners_to_grasps(grasps_to_corners(g))
    np.testing.assert_allclose(back[:, [0, 1, 3, 4]], g[:, [0, 1, 3, 4]], atol=1e-9)
    assert angle_difference(back[:, 2], g[:, 2]).max() < 1e-9


def test_cornell_nan_rows_skipped_and_counted(tmp_path):
    _png(tmp_path / "pcd0101r.png")
    _lines(tmp_path / "pcd0101cpos.txt",
           "10 20\n40 20\n40 30\n10 30\n"
           "NaN NaN\nNaN NaN\n5 5\n6 6\n"
           "20 20\n30 20\n30 25\n20 25\n")
    fr = load_frame(scan_dataset(tmp_path).frames[0])
    assert len(fr.grasps) == 2 and np.isfinite(fr.grasps).all()
    assert fr.faults == [("nonfinite_rect", str(tmp_path / "pcd0101cpos.txt"), 1)]


@pytest.mark.parametrize("text, detail", [
    ("10 20\n40 20\n40 30\n10 30\n1 2\n", "not a multiple of 4"),
    ("10 20\n40 20\nforty 30\n10 30\n", "not numbers"),
    ("10 20 3\n40 20\n40 30\n10 30\n", "expected 'x y'"),
    ("\n\n  \n", "empty"),
])
def test_cornell_corrupt_files_are_counted_and_skipped(tmp_path, text, detail):
    write_toy_dataset(tmp_path, "cornell", frames=2)
    _lines(tmp_path / "pcd0100cpos.txt", text)
    res = scan_dataset(tmp_path)
    assert len(res.frames) == 2  # found at scan time (cheap), fails at load time
    with pytest.raises(FrameFault) as e:
        load_frame(res.frames[0])
    assert e.value.kind == ("empty_grasps" if detail == "empty" else "corrupt_grasps")
    assert detail in str(e.value) or detail == "empty"
    with pytest.raises(FrameFault):
        check_frame(res.frames[0])
    load_frame(res.frames[1])  # the other frame is fine


def test_cornell_nested_folders_missing_and_optional_files(tmp_path):
    gt = write_toy_dataset(tmp_path, "cornell", frames=4, nested=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["01", "02"]
    (tmp_path / "02/pcd0101cpos.txt").unlink()              # rgb without rectangles
    _png(tmp_path / "01/pcd0200r.png")
    (tmp_path / "01/pcd0200cpos.txt").write_bytes(b"")      # empty file
    _lines(tmp_path / "02/pcd0300cpos.txt", "1 1\n2 2\n3 3\n4 4\n")  # rectangles without rgb
    res = scan_dataset(tmp_path)
    assert res.format == "cornell" and res.found == 6
    assert [f.key for f in res.frames] == ["pcd0100", "pcd0102", "pcd0103"]
    assert res.faults.counts() == {"empty_grasps": 1, "missing_grasps": 1, "missing_rgb": 1}
    fr = load_frame(res.frames[1], depth=True)
    assert fr.label is None and fr.depth is None and fr.negatives.shape == (0, 7)
    np.testing.assert_allclose(fr.grasps, gt["pcd0102"], atol=2e-3)
    # require_label: Cornell has no masks, so every frame is a missing_label fault
    assert not scan_dataset(tmp_path, require_label=True).frames


def test_cornell_negatives_and_depth_when_present(tmp_path):
    write_toy_dataset(tmp_path, "cornell", frames=2, negatives=True, depth=True)
    rec = scan_dataset(tmp_path, "cornell").frames[0]
    assert rec.negatives.endswith("pcd0100cneg.txt") and rec.depth.endswith("pcd0100d.tiff")
    fr = load_frame(rec, depth=True)
    assert len(fr.negatives) == 1 and len(fr.grasps) == 2
    # negatives lie ALONG the bar, positives across it: never mixed up
    assert angle_difference(fr.negatives[0, 2], fr.grasps[0, 2]) == pytest.approx(math.pi / 2,
                                                                                   abs=1e-3)
    assert fr.depth.shape == fr.rgb.shape[:2] and fr.depth.dtype == np.float32
    assert load_frame(rec).depth is None  # only when asked
    (tmp_path / "pcd0100cneg.txt").write_text("garbage\n")
    fr = load_frame(rec)
    assert len(fr.grasps) == 2 and fr.faults == [("corrupt_negatives", rec.negatives, None)]


# --------------------------------------------------------------------------- Jacquard
def _grconvnet_jacquard_corners(x, y, theta_deg, w, h):
    """Corners (x, y) as GR-ConvNet's Jacquard loader builds them: it negates theta because its
    angles are measured with y up, then places the opening (length w) along (cos a, -sin a) in
    (x, y-down) pixels and the jaws (h) across it."""
    a = -math.radians(theta_deg)
    ox, oy = math.cos(a) * w / 2, -math.sin(a) * w / 2   # half opening, y down
    jx, jy = math.sin(a) * h / 2, math.cos(a) * h / 2    # half jaw, perpendicular
    return np.array([[x + sx * ox + sj * jx, y + sx * oy + sj * jy]
                     for sx, sj in ((1, 1), (1, -1), (-1, -1), (-1, 1))])


def test_jacquard_angle_matches_public_loader(tmp_path):
    d = tmp_path / "obj1"
    _png(d / "0_obj1_RGB.png", 200, 200)
    lines = [(100, 90, 30.0, 60, 20), (80, 120, -75.0, 40, 10), (120, 60, 120.0, 50, 30)]
    _lines(d / "0_obj1_grasps.txt", "".join(f"{x};{y};{t};{w};{h}\n" for x, y, t, w, h in lines))
    res = scan_dataset(tmp_path)
    assert res.format == "jacquard"
    rec = res.frames[0]
    assert (rec.key, rec.group, rec.frame, rec.label, rec.depth) == ("obj1/0_obj1", "obj1", 0,
                                                                     None, None)
    g = load_frame(rec).grasps
    for row, (x, y, t, w, h) in zip(g, lines):
        assert row[2] == pytest.approx(math.radians(((t + 90) % 180) - 90), abs=1e-6)
        ours = rect_corners(row[None, :5])[0]
        ref = _grconvnet_jacquard_corners(x, y, t, w, h)
        # the same polygon: every reference corner is one of ours
        dist = np.linalg.norm(ours[:, None] - ref[None], axis=2).min(axis=0)
        assert dist.max() < 1e-3, (t, ours, ref)


def test_jacquard_drawn_bar_is_grasped_across(tmp_path):
    """A bar drawn along direction phi (y down); the file's grasp has theta = phi + 90 deg: the
    loaded opening must be perpendicular to the bar as measured from the pixels."""
    phi = math.radians(25)
    img = np.zeros((200, 200, 3), np.uint8)
    u, v = np.array([math.cos(phi), math.sin(phi)]), np.array([-math.sin(phi), math.cos(phi)])
    c = np.array([100.0, 100.0])
    poly = np.array([c + a * 60 * u + b * 8 * v for a, b in ((1, 1), (1, -1), (-1, -1), (-1, 1))])
    cv2.fillConvexPoly(img, np.round(poly).astype(np.int32), (255, 255, 255))
    d = tmp_path / "bar"
    d.mkdir()
    cv2.imwrite(str(d / "3_bar_RGB.png"), img)
    _lines(d / "3_bar_grasps.txt", f"100;100;{math.degrees(phi) + 90};30;10\n")
    g = load_frame(scan_dataset(tmp_path).frames[0]).grasps[0]
    ys, xs = np.nonzero(load_frame(scan_dataset(tmp_path).frames[0]).rgb[..., 0] > 128)
    _, vecs = np.linalg.eigh(np.cov(np.stack([xs, ys])))
    bar_angle = math.atan2(vecs[1, -1], vecs[0, -1])  # principal axis, y down
    assert math.degrees(angle_difference(bar_angle, phi)) < 1
    assert math.degrees(angle_difference(g[2], bar_angle + math.pi / 2)) < 1
    # the opening's fingertips are off the bar, the centre is on it
    tips = g[:2] + np.array([[1], [-1]]) * 15 * np.array([math.cos(g[2]), math.sin(g[2])])
    rgb = load_frame(scan_dataset(tmp_path).frames[0]).rgb
    assert rgb[100, 100, 0] == 255
    for x, y in np.round(tips).astype(int):
        assert rgb[y, x, 0] == 0


def test_jacquard_layout_masks_depth_jaws_and_faults(tmp_path):
    gt = write_toy_dataset(tmp_path, "jacquard", frames=3, views=2, nested=True, depth=True)
    obj = tmp_path / "Jacquard_Dataset_0" / "0001obj"
    (obj / "1_0001obj_mask.png").unlink()                          # optional: no mask
    (obj / "1_0001obj_perfect_depth.tiff").rename(obj / "1_0001obj_stereo_depth.tiff")
    _lines(tmp_path / "Jacquard_Dataset_0/0002obj/0_0002obj_grasps.txt", "1;2;3;4\n")  # corrupt
    (tmp_path / "Jacquard_Dataset_0/0002obj/1_0002obj_RGB.png").unlink()
    res = scan_dataset(tmp_path)
    assert res.format == "jacquard" and res.found == 6
    assert res.faults.counts() == {"missing_rgb": 1}
    assert [f.group for f in res.frames] == ["0000obj", "0000obj", "0001obj", "0001obj",
                                             "0002obj"]
    fr = load_frame(res.frames[0], depth=True)
    assert fr.label is not None and set(np.unique(fr.label)) == {0, 255}
    assert fr.depth is not None and res.frames[0].depth.endswith("_perfect_depth.tiff")
    # each grasp repeated with two jaw sizes, both kept
    assert len(fr.grasps) == 4
    np.testing.assert_allclose(fr.grasps[:2, :4], fr.grasps[2:, :4])
    np.testing.assert_allclose(fr.grasps[2:, 4], 1.5 * fr.grasps[:2, 4], rtol=1e-4)
    np.testing.assert_allclose(fr.grasps, gt[res.frames[0].key], atol=2e-3)
    rec = res.frames[3]
    assert rec.label is None and rec.depth.endswith("_stereo_depth.tiff")
    with pytest.raises(FrameFault) as e:
        load_frame(res.frames[4])
    assert e.value.kind == "corrupt_grasps" and "x;y;theta;w;h" in str(e.value)


# --------------------------------------------------------------------------- all formats
def test_detect_format_and_clear_errors(tmp_path):
    for fmt in ("graspnet", "cornell", "jacquard"):
        write_toy_dataset(tmp_path / fmt, fmt, frames=2)
        assert detect_format(tmp_path / fmt) == fmt
    assert detect_format(tmp_path / "graspnet" / "scenes") == "graspnet"
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(ValueError) as e:
        detect_format(tmp_path / "empty")
    msg = str(e.value)
    for part in (str(tmp_path / "empty"), "scene_XXXX", "pcdNNNNcpos.txt", "_grasps.txt"):
        assert part in msg
    with pytest.raises(FileNotFoundError, match="does not exist"):
        scan_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="unknown data format"):
        scan_dataset(tmp_path / "cornell", "coco")
    with pytest.raises(ValueError, match="kfold"):
        scan_dataset(tmp_path / "cornell", split="train")
    write_toy_dataset(tmp_path / "both", "cornell", frames=1)
    write_toy_dataset(tmp_path / "both", "jacquard", frames=1)
    with pytest.raises(ValueError, match=r"several layouts \(cornell, jacquard\)"):
        detect_format(tmp_path / "both")
    assert len(scan_dataset(tmp_path / "both", "jacquard").frames) == 2


def test_absurd_and_nonfinite_rows_counted_never_clipped(tmp_path):
    write_toy_dataset(tmp_path, "graspnet", frames=1)
    rect = tmp_path / "scenes/scene_0000/kinect/rect/0000.npy"
    g = np.array([[40, 40, 0.3, 20, 10, 0.9, 0], [40, 40, 0.3, 2e30, 10, 0.9, 0],
                  [40, 40, 0.3, 0, 10, 0.9, 0], [40, 40, 0.3, 20, -3, 0.9, 0],
                  [np.nan, 40, 0.3, 20, 10, 0.9, 0], [40, 40, 0.3, 20, 10, np.inf, 0],
                  [300, 40, 0.3, 20, 10, 0.9, 0]], np.float32)   # centre outside: kept
    np.save(rect, grasps_to_graspnet_rects(g))
    fr = load_frame(scan_dataset(tmp_path).frames[0])
    assert len(fr.grasps) == 2 and fr.grasps[:, 3].max() < 25  # 2e30 skipped, not clipped
    assert fr.grasps[1, 0] == pytest.approx(300)
    assert sorted(fr.faults) == [("absurd_height_rect", str(rect), 1),
                                 ("absurd_width_rect", str(rect), 2),
                                 ("nonfinite_rect", str(rect), 2)]
    # the limit is 2 image diagonals
    diag = math.hypot(96, 128)
    rows = np.array([[5, 5, 0, 2 * diag - 1, 5, 1, 0], [5, 5, 0, 2 * diag + 1, 5, 1, 0]])
    kept, faults = clean_grasp_rows(rows, (96, 128), "f")
    assert len(kept) == 1 and faults == [("absurd_width_rect", "f", 1)]


def test_frame_with_all_centres_outside_is_unusable(tmp_path):
    write_toy_dataset(tmp_path, "cornell", frames=1)
    _lines(tmp_path / "pcd0100cpos.txt", "200 20\n240 20\n240 30\n200 30\n")
    rec = scan_dataset(tmp_path).frames[0]
    for fn in (load_frame, check_frame):
        with pytest.raises(FrameFault) as e:
            fn(rec)
        assert e.value.kind == "no_rects_in_image"
