"""Target selection in the core (no ROS): decoding restricted to a region finds the object's own
best grasp (not a filter of the scene's top-k), regions from boxes, masks and points, detection
filtering, and the predictor's target API."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vita_grasp_core import Letterbox, decode_maps
from vita_grasp_core import target_select as T
from vita_grasp_core.conventions import angle_to_channels, width_to_channel
from vita_grasp_core.grasp import grasps_to_array

WS = 0.25
H, W = 480, 640
LB = Letterbox.fit((H, W), (H, W))  # identity: source px == map px


def maps_with(peaks, objects=(), h=H, w=W, sigma=2.0):
    """``(5, h, w)`` maps: gaussian heat peaks ``(x, y, amplitude)`` (angle 0.3, width 40 px);
    the semantic mask is 1 inside each ``(x0, y0, x1, y1)`` of ``objects`` (map px, inclusive)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    maps = np.zeros((5, h, w), np.float32)
    for x, y, amp in peaks:
        maps[0] = np.maximum(maps[0], amp * np.exp(-((xx - x) ** 2 + (yy - y) ** 2)
                                                    / (2 * sigma ** 2)))
    c2, s2 = angle_to_channels(0.3)
    maps[1], maps[2], maps[3] = c2, s2, width_to_channel(40.0, WS, w)
    for x0, y0, x1, y1 in objects:
        maps[4, y0:y1 + 1, x0:x1 + 1] = 1.0
    return maps


def decode(maps, regions=None, lb=LB, **kw):
    kw = {"score_threshold": 0.05, "max_grasps": 20, "min_distance": 8, "smooth_sigma": 1.0,
          **kw}
    t = torch.from_numpy(np.ascontiguousarray(maps))
    return decode_maps(t, lb, width_scale=WS, regions=regions, **kw)[0]


def disc(x, y, r, h=H, w=W):
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - x) ** 2 + (yy - y) ** 2 <= r * r


# ----------------------------------------------------------------------------- decoding
def test_region_finds_a_peak_the_scene_suppresses():
    """A weaker peak 6 px from a strong one is suppressed by NMS in the scene; inside a region
    that holds only it, it is the region's own maximum, read at its own height."""
    maps = maps_with([(300, 200, 0.9), (306, 200, 0.5)], sigma=1.0)
    scene = decode(maps)
    assert [(round(g.x), round(g.y)) for g in scene] == [(300, 200)]
    region = np.zeros((H, W), bool)
    region[190:211, 304:320] = True
    out = decode(maps, [region])
    assert len(out) >= 1
    assert (round(out[0].x), round(out[0].y)) == (306, 200)
    assert out[0].quality == pytest.approx(0.5, abs=0.05)
    assert all(region[round(g.y), round(g.x)] for g in out)


def test_best_on_object_grasp_is_not_in_the_scene_top_k():
    """The scene's top-3 lie on other objects; the region's best grasp comes first anyway."""
    peaks = [(100, 100, 0.95), (200, 100, 0.9), (300, 100, 0.85), (500, 400, 0.4),
             (540, 420, 0.3)]
    maps = maps_with(peaks)
    scene = decode(maps, max_grasps=3)
    assert all(g.y < 150 for g in scene)
    region = np.zeros((H, W), bool)
    region[350:460, 450:600] = True
    out = decode(maps, [region], max_grasps=3)
    assert [(round(g.x), round(g.y)) for g in out] == [(500, 400), (540, 420)]
    assert out[0].quality > out[1].quality


def test_a_region_over_the_whole_frame_decodes_like_the_scene():
    maps = maps_with([(100, 100, 0.9), (300, 200, 0.7), (306, 204, 0.6), (500, 400, 0.3)])
    scene = grasps_to_array(decode(maps))
    assert len(scene) == 3  # (306, 204) is within min_distance of (300, 200)
    np.testing.assert_allclose(grasps_to_array(decode(maps, [np.ones((H, W), bool)])), scene,
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(grasps_to_array(decode(maps, [None])), scene)


def test_regions_of_a_batch_and_shape_errors():
    maps = maps_with([(100, 100, 0.9), (400, 300, 0.8)])
    t = torch.from_numpy(maps).unsqueeze(0).expand(2, -1, -1, -1)
    a, b = disc(100, 100, 20), disc(400, 300, 20)
    out = decode_maps(t, LB, width_scale=WS, regions=[a, b], score_threshold=0.05)
    assert [(round(g.x), round(g.y)) for g in out[0]] == [(100, 100)]
    assert [(round(g.x), round(g.y)) for g in out[1]] == [(400, 300)]
    both = decode_maps(t, LB, width_scale=WS, regions=[None, b], score_threshold=0.05)
    assert len(both[0]) == 2 and len(both[1]) == 1
    with pytest.raises(ValueError, match="region 0"):
        decode_maps(t, LB, width_scale=WS, regions=[np.ones((10, 10), bool), None])
    with pytest.raises(ValueError, match="regions for 2"):
        decode_maps(t, LB, width_scale=WS, regions=[a])


# ----------------------------------------------------------------------------- regions
def test_box_region_uses_source_pixel_centres_through_the_letterbox():
    lb = Letterbox.fit((720, 1280), (H, W))  # scale 0.5, 60 px padding top and bottom
    reg = T.box_region((99.5, 199.5, 299.5, 399.5), lb)  # source pixels 100..299 x 200..399
    ys, xs = np.nonzero(reg)
    src = lb.to_src(np.stack([xs, ys], axis=1))
    assert src[:, 0].min() >= 99.5 and src[:, 0].max() <= 299.5
    assert src[:, 1].min() >= 199.5 and src[:, 1].max() <= 399.5
    assert reg.sum() == 100 * 100  # 200 x 200 source px at scale 0.5
    assert not T.box_region((-50, -50, -10, -10), lb).any()


def test_mask_region_scales_and_refuses_other_aspect_ratios():
    lb = Letterbox.fit((480, 640), (H, W))
    m = np.zeros((240, 320), np.uint8)
    m[50:100, 100:150] = 7
    reg = T.mask_region(m, lb)
    ys, xs = np.nonzero(reg)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (100, 199, 200, 299)
    with pytest.raises(T.TargetError, match="aspect ratio"):
        T.mask_region(np.ones((100, 100), np.uint8), lb)
    with pytest.raises(T.TargetError, match="HxW"):
        T.mask_region(np.ones((4, 4, 3), np.uint8), lb)
    sel = T.MaskTarget(np.zeros((480, 640), np.uint8)).select(T.FrameMaps(maps_with([]), lb))
    assert sel.regions == [] and "empty" in sel.note


def test_point_selects_the_object_under_it_or_the_nearest():
    maps = maps_with([], objects=[(100, 100, 199, 199), (300, 100, 399, 199)])
    frame = T.FrameMaps(maps, LB)
    sel = T.PointTarget(150, 150).select(frame)
    assert sel.regions[0].target_id == "point"
    assert sel.regions[0].pixels == 100 * 100 and sel.regions[0].mask[150, 150]
    near = T.PointTarget(295, 150).select(frame)  # 5 px left of the second object
    assert near.regions[0].mask[150, 350] and not near.regions[0].mask[150, 150]
    far = T.PointTarget(250, 150).select(frame)  # 50 px from both
    assert far.regions == [] and "no object under" in far.note
    out = T.PointTarget(700, 10).select(frame)
    assert out.regions == [] and "outside the 640x480 frame" in out.note


def test_detections_target_filters_sorts_caps_and_names():
    dets = [T.Detection(100, 100, 40, 40, "cup", 0.6), T.Detection(300, 100, 40, 40, "cup", 0.9,
                                                                   id="track-7"),
            T.Detection(200, 200, 40, 40, "bottle", 0.95), T.Detection(50, 50, 10, 10, "cup", 0.2),
            T.Detection(60, 60, float("nan"), 10, "cup", 0.99)]
    t = T.detections_target(dets, "cup", 0.5)
    assert t.ids == ("track-7", "cup/1")
    assert t.boxes[0] == (280, 80, 320, 120)
    assert len(T.detections_target(dets * 10, "cup", 0.0, max_targets=3).boxes) == 3
    none = T.detections_target(dets, "plate", 0.5)
    assert none.boxes == () and "class 'plate'" in none.note and "bottle 0.95" in none.note
    sel = none.select(T.FrameMaps(maps_with([]), LB))
    assert sel.regions == [] and "no detection of class 'plate'" in sel.note
    assert "(no detections)" in T.detections_target([], "cup").note


def test_box_target_keeps_the_object_not_the_table_or_the_neighbour():
    """The box's region is its main object-mask component: the table inside the box and a
    small corner of a neighbouring object are left out; a box without object stays whole."""
    maps = maps_with([], objects=[(100, 100, 179, 179), (182, 100, 240, 110)])
    frame = T.FrameMaps(maps, LB)
    sel = T.box_target([(90, 90, 190, 190), (400, 300, 450, 350)], ["a", "b"]).select(frame)
    a, b = sel.regions
    assert a.target_id == "a" and a.pixels == 80 * 80 and a.mask[150, 150]
    assert not a.mask[105, 185]  # the neighbour's corner
    assert b.pixels == 51 * 51  # no object in it: the whole box
    with pytest.raises(T.TargetError, match="empty"):
        T.box_target([(10, 10, 5, 20)])


# ----------------------------------------------------------------------------- predictor
@pytest.fixture
def predictor(tiny_model_factory):
    from vita_grasp_core import GraspPredictor

    return GraspPredictor(tiny_model_factory(), device="cpu", score_threshold=0.0,
                          max_grasps=8)


def _frame(seed=0, h=240, w=320):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_predictor_target_grasps_lie_in_the_box_and_are_tagged(predictor):
    rgb = _frame()
    box = (100.0, 60.0, 200.0, 160.0)
    pred = predictor.predict(rgb, T.box_target([box], ["cup/0"]), keep_features=True)
    assert pred.grasps, pred.target_note
    assert all(g.target == "cup/0" for g in pred.grasps)
    assert all(box[0] - 0.5 <= g.x <= box[2] + 0.5 and box[1] - 0.5 <= g.y <= box[3] + 0.5
               for g in pred.grasps)
    q = [g.quality for g in pred.grasps]
    assert q == sorted(q, reverse=True)
    # the same maps, selected again afterwards (the service's fast path): the same grasps
    again = predictor.select(predictor.predict(rgb, keep_features=True),
                             T.box_target([box], ["cup/0"]))
    assert again.grasps == pred.grasps
    scene = predictor.select(pred, None)
    assert all(g.target == "" for g in scene.grasps)
    assert scene.grasps[0].quality >= pred.grasps[0].quality
    assert pred.grasps[0].to_dict()["target"] == "cup/0" and "target" not in scene.grasps[
        0].to_dict()


def test_predictor_no_region_gives_the_note(predictor):
    pred = predictor.predict(_frame(1), T.PointTarget(5000, 5))
    assert pred.grasps == [] and "outside" in pred.target_note
    several = predictor.predict(_frame(1), T.box_target([(0, 0, 100, 100), (150, 100, 300, 230)],
                                                        ["a", "b"]), max_grasps=4)
    assert len(several.grasps) <= 4 and {g.target for g in several.grasps} <= {"a", "b"}


# ----------------------------------------------------------------------------- example matching
def _features(objects_vec, bg, h=24, w=32, c=8, seed=0):
    """``(C, h, w)`` patch features on a 24 x 32 grid (20 map px per patch): ``bg`` everywhere,
    ``vec`` over each ``(x0, y0, x1, y1)`` patch box of ``objects_vec``, plus a little noise."""
    rng = np.random.default_rng(seed)
    f = np.tile(np.asarray(bg, np.float32)[:, None, None], (1, h, w))
    for (x0, y0, x1, y1), vec in objects_vec:
        f[:, y0:y1, x0:x1] = np.asarray(vec, np.float32)[:, None, None]
    return torch.from_numpy(f + 0.05 * rng.standard_normal(f.shape).astype(np.float32))


def test_example_matcher_finds_the_object_that_looks_like_the_example():
    from vita_grasp_core.example_match import ExampleMatcher

    e = np.eye(8)
    table, cup, box = e[0] + 0.3 * e[7], e[1] + 0.5 * e[2], e[3] + 0.5 * e[4]
    # example: the cup alone in the middle of a table (patches 10-20 x 8-16)
    ex_maps = maps_with([], objects=[(200, 160, 399, 319)])
    ex = T.FrameMaps(ex_maps, LB, [_features([((10, 8, 20, 16), cup)], table)])
    matcher = ExampleMatcher.from_frame(ex, layer=-1, background=True, min_similarity=0.05)
    assert len(matcher.positive) == 80 and len(matcher.negative) > 300
    assert len(ExampleMatcher.from_frame(ex, layer=-1).negative) == 0  # the default
    # the frame: a box on the left, the cup on the right
    maps = maps_with([(100, 240, 0.8), (500, 240, 0.4)],
                     objects=[(40, 160, 199, 319), (440, 160, 599, 319)])
    frame = T.FrameMaps(maps, LB, [_features([((2, 8, 10, 16), box), ((22, 8, 30, 16), cup)],
                                             table, seed=1)])
    _, cand, scores = matcher.scores(frame)
    assert len(cand) == 2 and scores.max() > 0.5 and scores.min() < 0.2
    sel = matcher.select(frame)
    (reg,) = sel.regions
    assert reg.target_id == "example" and reg.mask[240, 500] and not reg.mask[240, 100]
    # the example object absent: a note, no region
    other = T.FrameMaps(maps, LB, [_features([((2, 8, 10, 16), box), ((22, 8, 30, 16), box)],
                                             table, seed=2)])
    none = matcher.select(other)
    assert none.regions == [] and "not in the frame" in none.note
    with pytest.raises(T.TargetError, match="features"):
        matcher.select(T.FrameMaps(maps, LB))
    with pytest.raises(T.TargetError, match="channels"):
        matcher.similarity(torch.zeros(4, 24, 32))


def test_example_target_through_the_predictor(predictor):
    """The torch predictor computes features and maps in one forward; the matcher built from an
    example picture selects an object of a frame (or says why not), grasps tagged "example"."""
    from vita_grasp_core.example_match import ExampleMatcher

    matcher = predictor.example_target(_frame(3, 120, 160))
    assert isinstance(matcher, ExampleMatcher) and matcher.positive.shape[0] >= 3
    pred = predictor.predict(_frame(4), matcher)
    assert [tuple(f.shape[1:]) for f in pred.features] == [(8, 10)] * 2  # tiny encoder's grid
    # (the tiny random model calls everything "object": one candidate, which is selected)
    assert pred.grasps and all(g.target == "example" for g in pred.grasps)
    again = predictor.select(pred, matcher)  # cached maps and features: decoding only
    assert again.grasps == pred.grasps
