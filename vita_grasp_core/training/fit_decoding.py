"""Scores that mean what they say: after training, on the validation frames (never the frames a
model is scored on), fit the quality calibration and choose the score threshold, and store both
with the checkpoint (``meta["decode"]``) so the API, the CLIs and the node use them by default.

- quality: the probability that a grasp matches a ground-truth rectangle (CONVENTIONS §5), fitted
  by isotonic regression of "matched" on the raw heatmap peak value over every decoded grasp of
  the validation frames (:func:`~vita_grasp_core.quality_calibration.fit_quality_calibration`).
  It is comparable across frames, models and data sets, as far as validation resembles use.
- threshold: half the lowest calibrated quality of a correct best grasp on validation (all but
  ``max_top1_loss`` of those frames), at most :data:`MAX_THRESHOLD`: grasps below it are rarely
  the right answer, and what the API returns by default scores (almost) as well as the model's
  best guesses. The factor 1/2 is a safety margin: a validation set of a few dozen frames does not
  see the low tail of the qualities of new frames (measured: a threshold at the validation
  minimum itself dropped correct best grasps on held-out frames).
"""
from __future__ import annotations

import math

import numpy as np

from ..decoding_settings import DecodeConfig
from ..metrics import DEFAULT_ANGLE_THRESHOLD, DEFAULT_IOU_THRESHOLD, match_grasps, sort_by_quality
from ..quality_calibration import apply_quality_calibration, fit_quality_calibration

#: The default threshold never exceeds this calibrated quality ("more likely right than wrong").
MAX_THRESHOLD = 0.5


def choose_threshold(top1_quality, top1_correct, *, max_top1_loss: float = 0.01,
                     margin: float = 0.5, cap: float = MAX_THRESHOLD) -> float:
    """``margin`` times the largest threshold that drops the correct best grasp of at most
    ``max_top1_loss`` (fraction) of the frames whose best grasp is correct; rounded down to a
    multiple of 0.01, at most ``cap``.

    Args:
        top1_quality: ``(F,)`` calibrated quality of each frame's best grasp.
        top1_correct: ``(F,)`` bool, whether that grasp matched.
    """
    q = np.sort(np.asarray(top1_quality, np.float64)[np.asarray(top1_correct, bool)])
    if q.size == 0:
        return 0.0
    allowed = int(math.floor(max_top1_loss * q.size))
    t = math.floor(100 * margin * q[allowed] + 1e-9) / 100  # keeps q[allowed] and above
    return float(min(max(t, 0.0), cap))


def calibrate(predictions, base: DecodeConfig, *, max_top1_loss: float = 0.01,
              angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
              iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> tuple[DecodeConfig, dict]:
    """Decoding settings with fitted ``quality_knots`` and a chosen ``score_threshold``.

    Args:
        predictions: ``(key, pred (P, >=6), gt (G, >=5))`` per validation frame, decoded with
            ``score_threshold = 0`` and no calibration (``evaluate(..., keep_predictions=True)``).
        base: the other decoding settings (``min_distance``, ``smooth_sigma``, ``max_grasps``)
            to keep.
    Returns:
        ``(DecodeConfig, report)``; the report holds the numbers behind the choice.
    """
    raw, ok, top_raw, top_ok = [], [], [], []
    for _, pred, gt in predictions:
        pred = sort_by_quality(pred)
        if len(gt) == 0:
            continue
        hit = match_grasps(pred, gt, angle_threshold, iou_threshold)
        raw.extend(pred[:, 5].tolist())
        ok.extend(hit.tolist())
        top_raw.append(float(pred[0, 5]) if len(pred) else 0.0)
        top_ok.append(bool(hit[0]) if len(hit) else False)
    if not raw or not any(ok):
        return base.replace(score_threshold=0.0), {
            "frames": len(top_ok), "grasps": len(raw),
            "note": "no correct grasp on validation: calibration skipped, threshold 0"}
    knots = fit_quality_calibration(raw, ok)
    top_q = apply_quality_calibration(np.asarray(top_raw), knots)
    threshold = choose_threshold(top_q, top_ok, max_top1_loss=max_top1_loss)
    top_ok = np.asarray(top_ok)
    kept = top_q >= threshold
    report = {
        "frames": int(len(top_ok)), "grasps": int(len(raw)),
        "precision_all_grasps": float(np.mean(ok)),
        "top1_accuracy_threshold0": float(top_ok.mean()),
        "top1_accuracy_at_threshold": float((top_ok & kept).mean()),
        "frames_without_grasp_at_threshold": int((~kept).sum()),
        "score_threshold": threshold, "quality_knots": [list(k) for k in knots],
    }
    return base.replace(score_threshold=threshold, quality_knots=knots), report


def recalibrate(predictor, dataset) -> dict:
    """Fit the calibration and threshold of ``predictor``'s current settings again on
    ``dataset`` (validation frames, ``input_size=predictor.input_size``) and set them on it:
    needed after a change that alters the maps, such as test-time views (``tta``). Returns the
    calibration report."""
    import dataclasses

    from ..evaluation import EvalOptions, evaluate

    raw = dataclasses.replace(predictor.decode_config, score_threshold=0.0, quality_knots=None)
    predictor.decode_config = raw
    res = evaluate(predictor, dataset, {}, EvalOptions(batch_size=8, progress=False,
                                                       keep_predictions=True))
    predictor.decode_config, report = calibrate(res["predictions"], raw)
    return report
