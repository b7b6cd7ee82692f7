"""Quality calibration: a monotone piecewise-linear map from the raw heatmap peak value to the
probability that the grasp is correct (CONVENTIONS §4, issue 10 item 6).

A trained heatmap's peak values are not probabilities: one model's 0.2 may be another's 0.6.
Training fits :func:`fit_quality_calibration` on validation pairs (raw peak value, matched a
ground-truth rectangle or not) and stores the knots in the checkpoint (``meta["decode"]
["quality_knots"]``, see :class:`~vita_grasp_core.decoding_settings.DecodeConfig`);
:func:`~vita_grasp_core.decoding.decode_maps` then reports the calibrated value as ``quality`` and
compares ``score_threshold`` with it. The map is monotone, so it never changes the ranking.

Knots are ``((raw_0, q_0), ..., (raw_n, q_n))`` with ``0 = raw_0 < ... < raw_n = 1`` and
``q_0 <= ... <= q_n`` in [0, 1]; between knots the map is linear.
"""
from __future__ import annotations

import numpy as np

#: Default number of knots kept by :func:`fit_quality_calibration` (end points included).
DEFAULT_KNOTS = 8


def _as_knots(knots) -> tuple[np.ndarray, np.ndarray]:
    k = np.asarray(knots, dtype=np.float64)
    if k.ndim != 2 or k.shape[1] != 2 or len(k) < 2:
        raise ValueError(f"knots must be at least two (raw, quality) pairs, got {knots!r}")
    return k[:, 0], k[:, 1]


def apply_quality_calibration(raw, knots):
    """Calibrated quality of raw heatmap peak values.

    Args:
        raw: raw peak values (scalar or array, nominally in [0, 1]).
        knots: ``((raw, quality), ...)`` with strictly increasing raw (as validated by
            :class:`~vita_grasp_core.decoding_settings.DecodeConfig`), or ``None`` = identity.
    Returns:
        the calibrated values (same shape; a float for a scalar): linear between knots, the end
        knot's quality outside the knots' range.
    """
    if knots is None:
        out = np.asarray(raw, dtype=np.float64)
    else:
        xs, ys = _as_knots(knots)
        out = np.interp(np.asarray(raw, dtype=np.float64), xs, ys)
    return out if out.ndim else float(out)


def raw_threshold(threshold: float, knots) -> float:
    """The smallest raw value whose calibrated quality is >= ``threshold``.

    ``0.0`` when every raw value passes, ``inf`` when none does (the threshold is above the
    calibration's best quality). Without knots this is ``threshold`` itself.
    """
    if knots is None:
        return float(threshold)
    xs, ys = _as_knots(knots)
    if threshold <= ys[0]:
        return 0.0
    if threshold > ys[-1]:
        return float("inf")
    i = int(np.argmax(ys >= threshold))  # first knot that reaches it; ys[i - 1] < threshold
    return float(xs[i - 1] + (threshold - ys[i - 1]) / (ys[i] - ys[i - 1]) * (xs[i] - xs[i - 1]))


def _pool_adjacent_violators(y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    """Weighted isotonic (non-decreasing) regression of ``y`` in the given order.

    Returns ``(value, weight, count)`` per block, in order; block ``j`` covers the next
    ``count[j]`` inputs.
    """
    vals, wts, cnts = [], [], []
    for yi, wi in zip(y.tolist(), w.tolist()):
        vals.append(yi)
        wts.append(wi)
        cnts.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:  # merge violators into their mean
            v2, w2, c2 = vals.pop(), wts.pop(), cnts.pop()
            v1, w1 = vals[-1], wts[-1]
            wts[-1] = w1 + w2
            vals[-1] = (v1 * w1 + v2 * w2) / wts[-1]
            cnts[-1] += c2
    return np.array(vals), np.array(wts), np.array(cnts)


def fit_quality_calibration(raw_scores, is_correct, n_knots: int = DEFAULT_KNOTS
                            ) -> tuple[tuple[float, float], ...]:
    """Fit a monotone calibration from validation pairs.

    Isotonic regression (pool adjacent violators) of ``is_correct`` on ``raw_scores`` gives a
    non-decreasing step function (equal raw values are pooled first); a piecewise-linear
    function through the blocks' (mean raw, precision) points, constant beyond the data,
    is then sampled at ``n_knots`` raw positions: 0, 1, the last block at the lowest precision
    and the first blocks reaching evenly spaced precision levels up to the highest (where the
    fit rises). When the isotonic fit has few enough blocks, its points are kept exactly.

    Args:
        raw_scores: ``(N,)`` raw heatmap peak values of decoded grasps (``quality`` decoded
            without calibration), in [0, 1].
        is_correct: ``(N,)`` bool (or 0/1): whether each grasp matched a ground-truth rectangle.
        n_knots: knots to keep, >= 2 (end points included).
    Returns:
        knots ``((0.0, q_0), ..., (1.0, q_n))``: raw strictly increasing, quality
        non-decreasing, all in [0, 1] (valid ``DecodeConfig.quality_knots``).
    Raises:
        ValueError: empty, mismatched, non-finite or out-of-range inputs; ``n_knots < 2``.
    """
    raw = np.asarray(raw_scores, dtype=np.float64).reshape(-1)
    ok = np.asarray(is_correct).reshape(-1)
    if raw.shape != ok.shape:
        raise ValueError(f"raw_scores and is_correct differ in length: {raw.size} vs {ok.size}")
    if raw.size == 0:
        raise ValueError("cannot fit a quality calibration on no grasps")
    if not np.isfinite(raw).all() or raw.min() < 0 or raw.max() > 1:
        raise ValueError("raw_scores must be finite values in [0, 1], got range "
                         f"[{np.nanmin(raw):g}, {np.nanmax(raw):g}]")
    if ok.dtype != bool and not np.isin(ok, (0, 1)).all():
        raise ValueError("is_correct must be booleans or 0/1")
    if int(n_knots) != n_knots or n_knots < 2:
        raise ValueError(f"n_knots must be an integer >= 2, got {n_knots!r}")
    n_knots = int(n_knots)
    y = ok.astype(np.float64)
    order = np.argsort(raw, kind="stable")
    raw, y = raw[order], y[order]
    # Pool equal raw values first: isotonic regression is defined on distinct x.
    ux, start, counts = np.unique(raw, return_index=True, return_counts=True)
    sums = np.add.reduceat(y, start)
    vals, _, cnts = _pool_adjacent_violators(sums / counts, counts.astype(np.float64))
    # Each block's position: the count-weighted mean of its raw values.
    ends = np.cumsum(cnts)
    first = ends - cnts
    bx = np.array([np.sum(ux[a:b] * counts[a:b]) / np.sum(counts[a:b])
                   for a, b in zip(first, ends)])
    if len(bx) + 2 <= n_knots:
        xs = np.concatenate([[0.0], bx, [1.0]])
    else:
        # Knots where the fit rises: the last block still at the lowest value, then the first
        # block reaching each of n_knots - 3 evenly spaced levels up to the highest value.
        # (Quantiles of the raw scores would put every knot among the many near-zero peaks of
        # wrong grasps and turn the informative rise into one straight line.)
        levels = np.linspace(vals[0], vals[-1], n_knots - 2)[1:]
        picks = [int(np.flatnonzero(vals <= vals[0])[-1])]
        picks += [int(np.argmax(vals >= lv - 1e-12)) for lv in levels]
        xs = np.concatenate([[0.0], bx[sorted(set(picks))], [1.0]])
    xs = np.unique(np.clip(xs, 0.0, 1.0))  # sorted, duplicates (ties, ends) dropped
    if len(xs) < 2:  # cannot happen with 0 and 1 present; kept for clarity
        xs = np.array([0.0, 1.0])
    qv = np.clip(np.interp(xs, bx, vals), 0.0, 1.0)
    qv = np.maximum.accumulate(qv)  # exact monotonicity despite float rounding
    return tuple((float(a), float(b)) for a, b in zip(xs, qv))
