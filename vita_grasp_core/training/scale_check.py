"""Do predicted openings follow the object? Width errors on crops and at a camera's scale.

``vita-grasp cv`` scores each test fold twice: on the frames as they are, and on the same frames
shown as a robot's camera would show them (:func:`score_full_frames`: each crop embedded in a
640x480 frame so that the object appears ``object_scale`` times as large on the model canvas,
:mod:`vita_grasp_core.data.fullframe`). Both with the predictor's defaults.

Width error of a frame: the best grasp's opening over the opening of the ground-truth rectangle
whose centre is nearest to it (the object part it grasps), ``ratio = predicted / labelled``.
"""
from __future__ import annotations

import numpy as np

#: Openings more than this factor off (either way) count as wrong in the report.
RATIO_TOLERANCE = 1.5


def width_ratios(pairs) -> np.ndarray:
    """``(pred (P, >=5) best first, gt (G, >=5))`` pairs -> predicted / nearest labelled
    opening per frame with a prediction and a label."""
    out = []
    for pred, gt in pairs:
        pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
        if len(pred) == 0 or len(gt) == 0:
            continue
        j = int(np.argmin(np.hypot(gt[:, 0] - pred[0, 0], gt[:, 1] - pred[0, 1])))
        if gt[j, 3] > 0:
            out.append(pred[0, 3] / gt[j, 3])
    return np.asarray(out, np.float64)


def width_summary(ratios) -> dict:
    """Median ratio, its 10th / 90th percentiles, the share within :data:`RATIO_TOLERANCE` and
    the median absolute log error (0.1 = about 10 % off)."""
    r = np.asarray(ratios, np.float64)
    if r.size == 0:
        return {"frames": 0}
    lr = np.log(r)
    return {"frames": int(r.size), "ratio_median": float(np.median(r)),
            "ratio_p10": float(np.percentile(r, 10)), "ratio_p90": float(np.percentile(r, 90)),
            "within_tolerance": float(np.mean(np.abs(lr) <= np.log(RATIO_TOLERANCE))),
            "abs_log_error_median": float(np.median(np.abs(lr)))}


def score_full_frames(predictor, frames, object_scale: float = 0.5,
                      input_scales=(None,)) -> dict:
    """Top-1 and width errors of ``predictor`` on ``frames`` embedded in camera frames where the
    object appears ``object_scale`` times its size in the crop: with its defaults (``None``) and
    with each other ``input_scale`` given (``1 / object_scale`` shows the object at the crops'
    scale again, :attr:`GraspPredictor.input_size`)."""
    from ..data import load_frame
    from ..data.fullframe import embed_in_frame, zoom_for_scale
    from ..metrics import image_scores

    shown = []
    for rec in frames:
        fr = load_frame(rec)
        zoom = zoom_for_scale(object_scale, fr.rgb.shape[:2], predictor.config.output_size)
        shown.append(embed_in_frame(fr.rgb, fr.grasps, zoom))
    out = {"object_scale": object_scale, "frames": len(shown)}
    saved = predictor.decode_config
    try:
        for k in input_scales:
            if k is not None:
                predictor.decode_config = saved.replace(input_scale=k)
            top1, pairs = [], []
            for img, gt in shown:
                pred = predictor.predict(img).grasp_array()
                top1.append(image_scores(pred, gt)["top1"] if len(gt) else False)
                pairs.append((pred, gt))
            res = {"top1_accuracy": float(np.mean(top1)) if top1 else 0.0,
                   "width": width_summary(width_ratios(pairs))}
            if k is None:
                out.update(res)
            else:
                out[f"input_scale_{k:g}"] = res
    finally:
        predictor.decode_config = saved
    return out
