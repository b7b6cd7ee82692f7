"""Rectangle metric (CONVENTIONS §5) on hand-made rectangles."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest

from vita_grasp_core.metrics import (
    MISS_CAUSES,
    SplitMetrics,
    candidate_pairs,
    image_scores,
    iou_matrix,
    match_grasps,
    miss_cause,
    rotated_rect_iou,
    split_metrics,
)

D = math.radians


def test_iou_identical_and_shifted():
    a = np.array([[50, 40, 0.0, 10, 4]])
    assert rotated_rect_iou(a, a)[0] == pytest.approx(1.0)
    b = np.array([[55, 40, 0.0, 10, 4]])  # half overlap: 20 / (40 + 40 - 20)
    assert rotated_rect_iou(a, b)[0] == pytest.approx(1 / 3)
    far = np.array([[500, 40, 0.0, 10, 4]])
    assert rotated_rect_iou(a, far)[0] == 0.0


def test_iou_rotated_square_and_cross():
    sq = np.array([[0, 0, 0.0, 10, 10]])
    assert rotated_rect_iou(sq, np.array([[0, 0, D(90), 10, 10]]))[0] == pytest.approx(1.0)
    # 10x2 bar and the same bar turned by 90 deg: a 2x2 overlap, 4 / (20 + 20 - 4)
    bar = np.array([[0, 0, 0.0, 10, 2]])
    assert rotated_rect_iou(bar, np.array([[0, 0, D(90), 10, 2]]))[0] == pytest.approx(4 / 36)
    # 45 deg square inside a square of the same area: known octagon overlap
    iou45 = rotated_rect_iou(sq, np.array([[0, 0, D(45), 10, 10]]))[0]
    # the turned square's four tips beyond the sides are right triangles of area (5 sqrt2 - 5)^2
    inter = 100 - 4 * (5 * math.sqrt(2) - 5) ** 2
    assert iou45 == pytest.approx(inter / (200 - inter), rel=1e-6)


def test_degenerate_rect_has_zero_iou():
    a = np.array([[0, 0, 0.0, 10, 0.0]])
    assert rotated_rect_iou(a, a)[0] == 0.0
    assert not match_grasps(a, a)[0]


def test_angle_threshold_and_wrap_at_90_deg():
    gt = np.array([[100, 100, D(89), 40, 20]])
    # -89 deg is 2 deg away from +89 deg modulo 180: same rectangle up to 2 deg -> match
    assert match_grasps(np.array([[100, 100, D(-89), 40, 20]]), gt)[0]
    # the half-turn of the same grasp (angle + 180 deg) is the same grasp
    assert match_grasps(np.array([[100, 100, D(89 - 180), 40, 20]]), gt)[0]
    # exactly -pi/2 vs pi/2 - tiny
    assert match_grasps(np.array([[0, 0, -math.pi / 2, 40, 20]]),
                        np.array([[0, 0, math.pi / 2 - 1e-6, 40, 20]]))[0]
    base = np.array([[0, 0, 0.0, 40, 20]])
    assert match_grasps(np.array([[0, 0, D(29), 40, 20]]), base)[0]
    assert not match_grasps(np.array([[0, 0, D(31), 40, 20]]), base)[0]
    assert not match_grasps(np.array([[0, 0, D(-31), 40, 20]]), base)[0]


def test_iou_threshold():
    gt = np.array([[0, 0, 0.0, 40, 20]])
    # shift along x by s: IoU = (40 - s) / (40 + s); > 0.25 iff s < 24
    assert match_grasps(np.array([[23, 0, 0.0, 40, 20]]), gt)[0]
    assert not match_grasps(np.array([[25, 0, 0.0, 40, 20]]), gt)[0]
    # much larger prediction: IoU = 800 / 8000 = 0.1
    assert not match_grasps(np.array([[0, 0, 0.0, 400, 20]]), gt)[0]


def test_pruning_is_exact_against_brute_force():
    rng = np.random.default_rng(0)
    n_p, n_g = 60, 400
    pred = np.column_stack([rng.uniform(0, 200, n_p), rng.uniform(0, 200, n_p),
                            rng.uniform(-np.pi, np.pi, n_p), rng.uniform(5, 60, n_p),
                            rng.uniform(3, 30, n_p)])
    gt = np.column_stack([rng.uniform(0, 200, n_g), rng.uniform(0, 200, n_g),
                          rng.uniform(-np.pi, np.pi, n_g), rng.uniform(5, 60, n_g),
                          rng.uniform(3, 30, n_g)])
    iou = iou_matrix(pred, gt)
    d = np.abs(np.mod(pred[:, None, 2] - gt[None, :, 2], np.pi))
    d = np.minimum(d, np.pi - d)
    brute = ((iou > 0.25) & (d < D(30))).any(axis=1)
    assert brute.any() and not brute.all()
    np.testing.assert_array_equal(match_grasps(pred, gt), brute)
    i, j = candidate_pairs(pred, gt)
    assert len(i) < 0.2 * n_p * n_g  # the filter removes most pairs


def test_image_scores_order_and_missing_predictions():
    gt = np.array([[100, 100, 0.0, 40, 20, 1.0]])
    good = [100, 100, 0.0, 40, 20]
    bad = [300, 300, 0.0, 40, 20]
    # quality column decides the order: the good one is second best -> top-1 miss
    pred = np.array([good + [0.5], bad + [0.9]])
    s = image_scores(pred, gt)
    assert s["top1"] is False and s["precision@1"] == 0.0
    assert s["precision@5"] == pytest.approx(1 / 5)  # 1 hit, 3 missing predictions = misses
    assert s["precision@10"] == pytest.approx(1 / 10)
    pred[0, 5] = 0.95
    s = image_scores(pred, gt)
    assert s["top1"] is True and s["precision@1"] == 1.0
    empty = image_scores(np.zeros((0, 6)), gt)
    assert empty["top1"] is False and empty["precision@10"] == 0.0


def test_split_metrics_and_vector_roundtrip():
    gt = np.array([[100, 100, 0.0, 40, 20]])
    hit = np.array([[100, 100, 0.0, 40, 20, 0.9]])
    miss = np.array([[400, 100, 0.0, 40, 20, 0.9]])
    acc = SplitMetrics()
    acc.add(hit, gt)
    acc.add(miss, gt)
    assert acc.add(hit, np.zeros((0, 7))) is None  # no GT: not scored, counted
    d = acc.as_dict()
    assert d["top1_accuracy"] == 0.5 and d["num_images"] == 2
    assert d["num_images_without_gt"] == 1
    assert d["precision@5"] == pytest.approx(0.1)
    v = acc.to_vector()
    again = SplitMetrics().load_vector(v * 2)  # e.g. after an all_reduce of two equal shards
    assert again.as_dict()["top1_accuracy"] == 0.5 and again.num_images == 4
    assert split_metrics([(hit, gt)])["top1_accuracy"] == 1.0


def test_thousands_of_gt_rects_are_fast():
    rng = np.random.default_rng(1)
    n = 5000
    gt = np.column_stack([rng.uniform(0, 1280, n), rng.uniform(0, 720, n),
                          rng.uniform(-np.pi / 2, np.pi / 2, n), rng.uniform(20, 120, n),
                          np.full(n, 20.0)])
    pred = gt[:10].copy()
    pred = np.column_stack([pred, np.linspace(1, 0.1, 10)])
    t = time.perf_counter()
    s = image_scores(pred, gt)
    assert time.perf_counter() - t < 0.5
    assert s["precision@10"] == 1.0


def test_miss_cause_names_what_would_have_saved_the_best_grasp():
    gt = np.array([[100.0, 100.0, 0.0, 40.0, 24.0], [30.0, 30.0, 1.2, 20.0, 12.0]])
    assert miss_cause(np.array([101.0, 99.0, 0.1, 38.0, 23.0, 0.9]), gt) is None  # matches
    assert miss_cause(None, gt) == "no grasp" and miss_cause(np.zeros((0, 6)), gt) == "no grasp"
    # right place and opening, jaws across the wrong way: the nearest label's angle saves it
    assert miss_cause([100.0, 100.0, math.radians(70), 40.0, 24.0], gt) == "angle"
    # right place and angle, three times too wide (IoU < 0.25): the width saves it
    assert miss_cause([100.0, 100.0, 0.0, 120.0, 72.0], gt) == "width"
    assert miss_cause([100.0, 100.0, math.radians(80), 120.0, 72.0], gt) == "angle and width"
    # the nearest label is the one that counts: near the small rectangle, wrong angle
    assert miss_cause([31.0, 30.0, 0.0, 20.0, 12.0], gt) == "angle"
    # far from every label: nothing but the place is wrong
    assert miss_cause([200.0, 60.0, 0.0, 40.0, 24.0], gt) == "place"
    assert set(MISS_CAUSES) == {"no grasp", "angle", "width", "angle and width", "place"}
    with pytest.raises(ValueError, match="at least one ground-truth"):
        miss_cause([1.0, 1.0, 0.0, 5.0, 3.0], np.zeros((0, 5)))
