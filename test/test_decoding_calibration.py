"""Quality calibration (issue 10 item 6): applying knots, the raw threshold they imply, and
fitting them by isotonic regression on (raw peak value, correct or not) pairs."""
from __future__ import annotations

import numpy as np
import pytest

from vita_grasp_core.decoding_settings import DecodeConfig
from vita_grasp_core.quality_calibration import (
    apply_quality_calibration,
    fit_quality_calibration,
    raw_threshold,
)

KNOTS = ((0.0, 0.0), (0.2, 0.05), (0.5, 0.5), (0.8, 0.5), (1.0, 0.9))


def test_apply_is_piecewise_linear_and_identity_without_knots():
    assert apply_quality_calibration(0.35, None) == 0.35
    np.testing.assert_allclose(apply_quality_calibration([0.0, 0.1, 0.35, 0.6, 0.9, 1.0], KNOTS),
                               [0.0, 0.025, 0.275, 0.5, 0.7, 0.9])
    assert isinstance(apply_quality_calibration(0.5, KNOTS), float)
    # outside the knots' raw range: the end values (knots need not start at 0 or end at 1)
    assert apply_quality_calibration([0.0, 1.0], ((0.2, 0.1), (0.6, 0.7))).tolist() == [0.1, 0.7]


def test_raw_threshold_inverts_the_calibration():
    for t in (0.01, 0.05, 0.2, 0.5, 0.6, 0.9):
        r = raw_threshold(t, KNOTS)
        assert apply_quality_calibration(r, KNOTS) == pytest.approx(t)
        assert apply_quality_calibration(r - 1e-6, KNOTS) < t  # the smallest such raw value
    assert raw_threshold(0.5, KNOTS) == pytest.approx(0.5)  # start of the flat part
    assert raw_threshold(0.0, KNOTS) == 0.0
    assert raw_threshold(0.95, KNOTS) == float("inf")
    assert raw_threshold(0.3, None) == 0.3


def test_pool_adjacent_violators_small_case():
    # sorted raw: correct, wrong, correct, correct -> isotonic fit 0.5, 0.5, 1, 1: blocks
    # (mean raw 0.15, 0.5), (0.3, 1), (0.4, 1), linear between them, constant outside
    knots = fit_quality_calibration([0.4, 0.2, 0.3, 0.1], [True, False, True, True], n_knots=8)
    np.testing.assert_allclose(knots, [(0.0, 0.5), (0.15, 0.5), (0.3, 1.0), (0.4, 1.0),
                                       (1.0, 1.0)])
    np.testing.assert_allclose(apply_quality_calibration([0.0, 0.15, 0.225, 0.35, 1.0], knots),
                               [0.5, 0.5, 0.75, 1.0, 1.0])


def test_fit_recovers_a_known_curve_with_few_monotone_knots():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 20000)
    correct = rng.uniform(0, 1, raw.size) < raw ** 2  # P(correct | raw) = raw^2
    knots = fit_quality_calibration(raw, correct, n_knots=8)
    x, q = np.array(knots).T
    assert len(knots) <= 8 and x[0] == 0.0 and x[-1] == 1.0
    assert np.all(np.diff(x) > 0) and np.all(np.diff(q) >= 0)
    assert q.min() >= 0 and q.max() <= 1
    grid = np.linspace(0.1, 0.9, 9)
    np.testing.assert_allclose(apply_quality_calibration(grid, knots), grid ** 2, atol=0.05)
    DecodeConfig(quality_knots=knots)  # valid as the checkpoint's stored calibration
    # reversed order of the inputs and ties do not matter
    again = fit_quality_calibration(raw[::-1], correct[::-1], n_knots=8)
    np.testing.assert_allclose(np.array(again), np.array(knots))
    tied = fit_quality_calibration(np.round(raw, 1), correct, n_knots=5)
    assert len(tied) <= 5 and DecodeConfig(quality_knots=tied)


def test_fit_edge_cases_and_errors():
    assert fit_quality_calibration([0.3, 0.3], [1, 1]) == ((0.0, 1.0), (0.3, 1.0), (1.0, 1.0))
    assert fit_quality_calibration([1.0], [False]) == ((0.0, 0.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="no grasps"):
        fit_quality_calibration([], [])
    with pytest.raises(ValueError, match="differ in length"):
        fit_quality_calibration([0.1, 0.2], [True])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_quality_calibration([0.1, np.nan], [True, False])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fit_quality_calibration([0.1, 1.5], [True, False])
    with pytest.raises(ValueError, match="0/1"):
        fit_quality_calibration([0.1, 0.5], [2, 0])
    with pytest.raises(ValueError, match="n_knots"):
        fit_quality_calibration([0.1, 0.5], [1, 0], n_knots=1)


def test_knots_follow_the_rise_not_the_crowd_of_wrong_peaks():
    """Most decoded grasps are near-zero wrong peaks: the knots must still describe where the
    precision rises (raw 0.03-0.18 here), not a straight line from the crowd to raw 1."""
    rng = np.random.default_rng(0)
    raw = np.concatenate([rng.uniform(0, 0.01, 400), rng.uniform(0.02, 0.3, 60)])
    ok = rng.random(len(raw)) < np.clip((raw - 0.03) / 0.15, 0, 1)
    knots = fit_quality_calibration(raw, ok)
    q = apply_quality_calibration(np.array([0.005, 0.2, 0.3]), knots)
    assert q[0] < 0.05 and q[1] > 0.8 and q[2] > 0.8
