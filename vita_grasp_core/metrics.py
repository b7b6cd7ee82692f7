"""Rectangle metric (CONVENTIONS §5): pure numpy functions, no torch.

Units: grasp rows are ``(x, y, angle, width, height[, quality, ...])`` in *source-image pixels*
(x = column, y = row, y down), angle in radians (any range; compared modulo pi).

A predicted grasp **matches** a ground-truth rectangle when

- the angle difference modulo pi is below ``angle_threshold`` (default 30 degrees), and
- the IoU of the two rotated rectangles is above ``iou_threshold`` (default 0.25); the predicted
  rectangle is the prediction's own ``width x height``.

Per image (predictions sorted by quality, best first):

- ``top1``: the best prediction matches some ground-truth rectangle (False without predictions);
- ``precision@k``: (matching predictions among the best k) / k. An image with fewer than k
  predictions counts the missing ones as misses, so precision@k never rewards a model for
  predicting less. ``precision@1`` equals ``top1``.

Per split: the means over images. Images without any ground-truth rectangle cannot be scored;
they are left out of the means and counted in ``num_images_without_gt``.

GraspNet frames carry thousands of rectangles. Before any polygon IoU, candidate pairs are pruned
with exact necessary conditions: angle difference below the threshold, centres closer than the sum
of the circumscribed radii (otherwise the rectangles cannot overlap), and an area ratio above the
IoU threshold (IoU <= min(area) / max(area)). Only the survivors go through shapely's vectorised
polygon intersection.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .grasp import angle_difference, rect_corners

#: Default k values of precision@k.
DEFAULT_KS = (1, 5, 10)
DEFAULT_ANGLE_THRESHOLD = math.radians(30.0)
DEFAULT_IOU_THRESHOLD = 0.25


def _as_rects(a, name: str) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    if a.size == 0:
        return np.zeros((0, max(5, a.shape[-1] if a.ndim == 2 else 5)), np.float64)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] < 5:
        raise ValueError(f"{name} must be (N, >=5) rows (x, y, angle, width, height, ...), "
                         f"got shape {a.shape}")
    return a


def rotated_rect_iou(a, b) -> np.ndarray:
    """Elementwise IoU of rotated rectangles ``a[i]`` and ``b[i]``.

    Args:
        a, b: ``(N, >=5)`` rows (x, y, angle, width, height) in pixels, radians.
    Returns:
        ``(N,)`` float64 IoU in [0, 1]; 0 for degenerate (zero-area) rectangles.
    """
    import shapely

    a, b = _as_rects(a, "a"), _as_rects(b, "b")
    if len(a) != len(b):
        raise ValueError(f"a and b must have the same number of rows, got {len(a)} and {len(b)}")
    if len(a) == 0:
        return np.zeros(0, np.float64)
    area_a = np.abs(a[:, 3] * a[:, 4])
    area_b = np.abs(b[:, 3] * b[:, 4])
    pa = shapely.polygons(rect_corners(a[:, :5]))
    pb = shapely.polygons(rect_corners(b[:, :5]))
    inter = shapely.area(shapely.intersection(pa, pb))
    union = area_a + area_b - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    return np.clip(np.nan_to_num(iou), 0.0, 1.0)


def iou_matrix(pred, gt) -> np.ndarray:
    """Dense ``(P, G)`` rotated-rectangle IoU (no pruning; for small inputs and tests)."""
    pred, gt = _as_rects(pred, "pred"), _as_rects(gt, "gt")
    i, j = np.meshgrid(np.arange(len(pred)), np.arange(len(gt)), indexing="ij")
    return rotated_rect_iou(pred[i.ravel()], gt[j.ravel()]).reshape(len(pred), len(gt))


def candidate_pairs(pred, gt, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
                    iou_threshold: float = DEFAULT_IOU_THRESHOLD):
    """Index pairs ``(i, j)`` that can still match after the cheap necessary tests.

    Exact pruning (no false negatives): angle difference < ``angle_threshold``; centre distance
    < sum of the circumscribed radii; ``min(area) / max(area) > iou_threshold``.
    """
    pred, gt = _as_rects(pred, "pred"), _as_rects(gt, "gt")
    if len(pred) == 0 or len(gt) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    ok = angle_difference(pred[:, None, 2], gt[None, :, 2]) < angle_threshold
    rp = 0.5 * np.hypot(pred[:, 3], pred[:, 4])
    rg = 0.5 * np.hypot(gt[:, 3], gt[:, 4])
    d2 = (pred[:, None, 0] - gt[None, :, 0]) ** 2 + (pred[:, None, 1] - gt[None, :, 1]) ** 2
    ok &= d2 < (rp[:, None] + rg[None, :]) ** 2
    ap = np.abs(pred[:, 3] * pred[:, 4])[:, None]
    ag = np.abs(gt[:, 3] * gt[:, 4])[None, :]
    ok &= np.minimum(ap, ag) > iou_threshold * np.maximum(ap, ag)
    return np.nonzero(ok)


def match_grasps(pred, gt, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
                 iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> np.ndarray:
    """For each prediction: does it match at least one ground-truth rectangle?

    Args:
        pred: ``(P, >=5)`` predicted grasps (x, y, angle, width, height, ...), source px, rad.
        gt: ``(G, >=5)`` ground-truth rectangles in the same units (e.g. GraspNet rects after
            :func:`~vita_grasp_core.grasp.graspnet_rects_to_grasps`).
        angle_threshold: radians (default 30 degrees); a match needs a difference *below* it.
        iou_threshold: a match needs an IoU *above* it.
    Returns:
        ``(P,)`` bool.
    """
    pred, gt = _as_rects(pred, "pred"), _as_rects(gt, "gt")
    hit = np.zeros(len(pred), bool)
    i, j = candidate_pairs(pred, gt, angle_threshold, iou_threshold)
    if len(i):
        iou = rotated_rect_iou(pred[i], gt[j])
        np.logical_or.at(hit, i[iou > iou_threshold], True)
    return hit


def sort_by_quality(pred) -> np.ndarray:
    """Rows sorted best first by column 5 (quality) when present (stable), else unchanged."""
    pred = _as_rects(pred, "pred")
    if pred.shape[1] > 5 and len(pred) > 1:
        pred = pred[np.argsort(-pred[:, 5], kind="stable")]
    return pred


def image_scores(pred, gt, ks=DEFAULT_KS, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
                 iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> dict:
    """Scores of one image.

    Args:
        pred: ``(P, >=5)`` predictions; sorted by column 5 (quality) when it exists, otherwise
            taken to be best first already. Only the best ``max(ks)`` are tested.
        gt: ``(G, >=5)`` ground-truth rectangles.
    Returns:
        ``{"top1": bool, "precision@k": float for k in ks, "num_predictions": int,
        "num_gt": int}``; missing predictions (P < k) count as misses.
    """
    ks = tuple(int(k) for k in ks)
    if not ks or min(ks) < 1:
        raise ValueError(f"ks must be positive integers, got {ks}")
    pred = sort_by_quality(pred)[: max(ks)]
    gt = _as_rects(gt, "gt")
    hit = match_grasps(pred, gt, angle_threshold, iou_threshold)
    out = {"top1": bool(hit[0]) if len(hit) else False}
    for k in ks:
        out[f"precision@{k}"] = float(hit[:k].sum()) / k
    out["num_predictions"] = int(len(pred))
    out["num_gt"] = int(len(gt))
    return out


@dataclass
class SplitMetrics:
    """Accumulates :func:`image_scores` over a split; sums can be all-reduced across processes.

    ``add(pred, gt)`` scores one image; ``as_dict()`` gives the split metrics:
    ``top1_accuracy``, ``precision@k``, ``num_images`` (scored), ``num_images_without_gt``,
    ``mean_predictions``. Fractions are in [0, 1].
    """

    ks: tuple[int, ...] = DEFAULT_KS
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    top1: float = 0.0
    precision: dict = field(default_factory=dict)
    num_images: int = 0
    num_images_without_gt: int = 0
    num_predictions: int = 0

    def __post_init__(self):
        self.ks = tuple(int(k) for k in self.ks)
        for k in self.ks:
            self.precision.setdefault(k, 0.0)

    def add(self, pred, gt) -> dict | None:
        """Score one image and accumulate; returns its scores (None when it has no GT)."""
        gt = _as_rects(gt, "gt")
        if len(gt) == 0:
            self.num_images_without_gt += 1
            return None
        s = image_scores(pred, gt, self.ks, self.angle_threshold, self.iou_threshold)
        self.top1 += float(s["top1"])
        for k in self.ks:
            self.precision[k] += s[f"precision@{k}"]
        self.num_images += 1
        self.num_predictions += s["num_predictions"]
        return s

    # -- reduction across processes -------------------------------------------------------------
    def to_vector(self) -> np.ndarray:
        """Sums as a float64 vector (for ``all_reduce``); inverse of :meth:`from_vector`."""
        return np.array([self.top1, *(self.precision[k] for k in self.ks), self.num_images,
                         self.num_images_without_gt, self.num_predictions], np.float64)

    def load_vector(self, v) -> "SplitMetrics":
        v = np.asarray(v, np.float64)
        n = len(self.ks)
        self.top1 = float(v[0])
        self.precision = {k: float(v[1 + i]) for i, k in enumerate(self.ks)}
        self.num_images = int(round(v[1 + n]))
        self.num_images_without_gt = int(round(v[2 + n]))
        self.num_predictions = int(round(v[3 + n]))
        return self

    def as_dict(self) -> dict:
        n = max(self.num_images, 1)
        out = {"top1_accuracy": self.top1 / n}
        out.update({f"precision@{k}": self.precision[k] / n for k in self.ks})
        out.update({"num_images": self.num_images,
                    "num_images_without_gt": self.num_images_without_gt,
                    "mean_predictions": self.num_predictions / n,
                    "angle_threshold_deg": math.degrees(self.angle_threshold),
                    "iou_threshold": self.iou_threshold})
        return out


def split_metrics(pairs, ks=DEFAULT_KS, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
                  iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> dict:
    """Split metrics of an iterable of ``(pred, gt)`` per image (see :class:`SplitMetrics`)."""
    acc = SplitMetrics(ks, angle_threshold, iou_threshold)
    for pred, gt in pairs:
        acc.add(pred, gt)
    return acc.as_dict()


#: Why a best grasp missed (:func:`miss_cause`), in the order they are tried.
MISS_CAUSES = ("no grasp", "angle", "width", "angle and width", "place")


def miss_cause(best, gt, angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
               iou_threshold: float = DEFAULT_IOU_THRESHOLD) -> str | None:
    """Why the best grasp of an image matches no ground-truth rectangle.

    Args:
        best: the best prediction, one ``(>=5,)`` row, or ``None`` / an empty array.
        gt: ``(G, >=5)`` ground-truth rectangles (G >= 1), same units.
    Returns:
        ``None`` when it matches; ``"no grasp"`` without a prediction; otherwise the first of
        ``"angle"``, ``"width"`` (opening and jaw size), ``"angle and width"`` whose values,
        taken from the ground-truth rectangle nearest to the prediction's centre, make it match;
        ``"place"`` when none does (no labelled rectangle is where it grasps).
    """
    gt = _as_rects(gt, "gt")
    if len(gt) == 0:
        raise ValueError("miss_cause needs at least one ground-truth rectangle")
    if best is None or np.size(best) == 0:
        return "no grasp"
    row = _as_rects(best, "best")[0, :5]
    if match_grasps(row[None], gt, angle_threshold, iou_threshold)[0]:
        return None
    near = gt[np.argmin(np.hypot(gt[:, 0] - row[0], gt[:, 1] - row[1]))]
    fixes = {"angle": [2], "width": [3, 4], "angle and width": [2, 3, 4]}
    for cause, cols in fixes.items():
        fixed = row.copy()
        fixed[cols] = near[cols]
        if match_grasps(fixed[None], gt, angle_threshold, iou_threshold)[0]:
            return cause
    return "place"
