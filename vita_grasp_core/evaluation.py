"""Rectangle-metric evaluation (CONVENTIONS §5) of a model on GraspNet, Cornell or Jacquard data.

``evaluate()`` is used both by ``vita-grasp eval`` (:mod:`vita_grasp_core.cli.eval`) and for
validation during training. Ground-truth rectangles whose centre lies outside the image are kept
(they cannot be matched) and counted.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .data.splits import evenly_spaced
from .decoding_settings import DecodeConfig
from .geometry import Letterbox
from .metrics import DEFAULT_ANGLE_THRESHOLD, DEFAULT_IOU_THRESHOLD, DEFAULT_KS, SplitMetrics

log = logging.getLogger(__name__)


def _as_predict_fn(predictor_or_model, device, decode_kwargs) -> tuple[Callable, Callable | None]:
    """``(fn(batch) -> list of (P, 7) arrays, restore())`` for a model, predictor or callable."""
    from .model import GraspModel
    from .predictor import GraspPredictor

    obj = predictor_or_model
    if isinstance(obj, torch.nn.parallel.DistributedDataParallel):
        obj = obj.module
    restore = None
    if isinstance(obj, GraspModel):
        was_training = obj.training
        dev = device if device is not None else next(obj.parameters()).device
        dtype = next(obj.decoder.parameters()).dtype
        obj = GraspPredictor(obj, device=str(dev), dtype=dtype, **decode_kwargs)
        model = obj.model

        def restore():
            model.train(was_training)
    elif isinstance(obj, GraspPredictor):
        if decode_kwargs:
            saved = obj.decode_config
            obj.set_decoding(**decode_kwargs)

            def restore(p=obj, s=saved):
                p.decode_config = s
    elif not callable(obj):
        raise TypeError("evaluate() takes a GraspModel, a GraspPredictor or a callable "
                        f"batch -> list of grasp arrays, got {type(obj).__name__}")

    if isinstance(obj, GraspPredictor):
        predictor = obj

        def fn(batch):
            x = batch["image"].to(predictor.device, predictor.dtype, non_blocking=True)
            if tuple(x.shape[-2:]) != tuple(predictor.input_size):
                raise ValueError(f"evaluate(): the data set's input canvas {tuple(x.shape[-2:])} "
                                 f"is not the predictor's {tuple(predictor.input_size)} (build "
                                 "it with input_size=predictor.input_size)")
            maps = predictor.forward_maps(x)
            h, w = maps.shape[-2:]
            lbs = [Letterbox.fit(s, (h, w)) for s in batch["src_size"]]
            out = []
            for grasps in predictor.decode(maps, lbs):
                out.append(np.array([[g.x, g.y, g.angle, g.width, g.height, g.quality,
                                      g.object_score] for g in grasps], np.float64).reshape(-1, 7))
            return out
        return fn, restore
    return obj, restore


@dataclass(frozen=True)
class EvalOptions:
    """How :func:`evaluate` runs and what it returns (everything but the decoding settings).

    Attributes:
        batch_size, num_workers: data loading.
        max_frames: evaluate at most this many frames, evenly spaced over the dataset.
        ks, angle_threshold (rad), iou_threshold: the metric (CONVENTIONS §5).
        per_image: also return ``"images"``: one dict per frame (key, scene, frame, top1,
            precision@k, num_gt, num_gt_outside).
        keep_predictions: also return ``"predictions"``: ``(key, pred (P, 7), gt (G, >=5))`` per
            frame of this rank, best first (quality calibration, overlays).
        progress: a progress bar (rank 0).
        distributed: shard frames over the initialised process group and all-reduce the sums
            (every rank gets the same result).
    """

    batch_size: int = 4
    num_workers: int = 0
    max_frames: int | None = None
    ks: tuple[int, ...] = DEFAULT_KS
    angle_threshold: float = DEFAULT_ANGLE_THRESHOLD
    iou_threshold: float = DEFAULT_IOU_THRESHOLD
    per_image: bool = False
    keep_predictions: bool = False
    progress: bool = True
    distributed: bool = False


def evaluation_decoding(decode: DecodeConfig | dict | None, ks) -> dict:
    """The decoding settings :func:`evaluate` applies: every field of a :class:`DecodeConfig`;
    the given fields of a dict, on top of the predictor's own (``max_grasps`` defaults to
    ``max(ks)``); ``None`` = every grasp ranked (``score_threshold`` 0, ``max_grasps`` max(ks))
    with the predictor's other settings."""
    if isinstance(decode, DecodeConfig):
        return {k: v for k, v in decode.to_dict().items() if v is not None}
    out = {"score_threshold": 0.0} if decode is None else dict(decode)
    out.setdefault("max_grasps", max(int(k) for k in ks))
    return out


def _rank_world(distributed: bool) -> tuple[int, int]:
    if distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def _image_row(batch, b: int, scores: dict | None, n_out: int) -> dict:
    row = {"key": batch["key"][b] if "key" in batch else ""}
    for k in ("scene", "frame"):
        if k in batch:
            row[k] = int(batch[k][b])
    row.update(scores if scores is not None else {"no_gt": True})
    row["num_gt_outside"] = n_out
    return row


def _score_batches(fn, batches, acc: SplitMetrics, opt: EvalOptions):
    """Run ``fn`` over the batches and add each frame to ``acc``; returns ``(GT counts, image
    rows, kept predictions)``."""
    from .data.common import inside_image

    gt_count = np.zeros(2, np.float64)  # GT rectangles, of which centre outside the image
    images, kept = [], []
    for batch in batches:
        preds = fn(batch)
        if len(preds) != len(batch["rects"]):
            raise ValueError(f"predictor returned {len(preds)} results for "
                             f"{len(batch['rects'])} images")
        for b, (pred, gt) in enumerate(zip(preds, batch["rects"])):
            gt = gt.numpy() if isinstance(gt, torch.Tensor) else np.asarray(gt)
            scores = acc.add(pred, gt)
            n_out = int((~inside_image(gt, batch["src_size"][b])).sum()) if len(gt) else 0
            gt_count += (len(gt), n_out)
            if opt.keep_predictions:
                kept.append((batch["key"][b] if "key" in batch else "", pred, gt))
            if opt.per_image:
                images.append(_image_row(batch, b, scores, n_out))
    return gt_count, images, kept


def _all_reduce(acc: SplitMetrics, gt_count, images: list, per_image: bool, world: int):
    """Sum the metric accumulators and GT counts over the ranks (and gather image rows)."""
    v = torch.tensor(np.concatenate([acc.to_vector(), gt_count]), dtype=torch.float64)
    if torch.distributed.get_backend() == "nccl":
        v = v.cuda()
    torch.distributed.all_reduce(v)
    v = v.cpu().numpy()
    acc.load_vector(v[:-2])
    if per_image:
        gathered = [None] * world
        torch.distributed.all_gather_object(gathered, images)
        images = [r for part in gathered for r in part]
    return v[-2:], images


def evaluate(predictor_or_model, dataset, decode: DecodeConfig | dict | None = None,
             options: EvalOptions | None = None, *, device=None, collate=None) -> dict:
    """Rectangle-metric scores of a model on ``dataset``.

    Args:
        predictor_or_model: a :class:`~vita_grasp_core.model.GraspModel` (evaluated in eval mode
            on ``device``, default its own, then put back in its previous mode), a
            :class:`~vita_grasp_core.predictor.GraspPredictor`, or any callable
            ``fn(batch) -> list[np.ndarray (P, >=5)]`` returning each image's grasps in source px
            (x, y, angle, width, height[, quality]) - used by tests (ground truth, random).
        dataset: items with ``image`` (normalised input tensor), ``rects`` (GT, source px),
            ``src_size`` (h, w), ``scene``, ``frame`` (and ``key``) - e.g. a
            :class:`~vita_grasp_core.data.dataset.GraspDataset` with ``augment=False``.
        decode: the decoding settings (see :func:`evaluation_decoding`).
        options: :class:`EvalOptions` (loading, metric, what to return).
        collate: the DataLoader's collate function (default: the datasets' ``collate_fn``).
    Returns:
        ``{"top1_accuracy", "precision@1", "precision@5", "precision@10", "num_images",
        "num_images_without_gt", "mean_predictions", "angle_threshold_deg", "iou_threshold",
        "gt_rects", "gt_rects_outside", "seconds", "frames_per_second"[, "images"]
        [, "predictions"]}``; fractions in [0, 1]; ``gt_rects_outside`` counts ground-truth
        rectangles whose centre lies outside the image (kept as ground truth; no prediction can
        sit on them).
    """
    from torch.utils.data import DataLoader, Subset

    from .data.dataset import collate_fn

    opt = options or EvalOptions()
    ks = tuple(int(k) for k in opt.ks)
    rank, world = _rank_world(opt.distributed)
    shard = evenly_spaced(len(dataset), opt.max_frames)[rank::world]
    loader = DataLoader(Subset(dataset, shard), batch_size=opt.batch_size, shuffle=False,
                        num_workers=opt.num_workers, collate_fn=collate or collate_fn)
    fn, restore = _as_predict_fn(predictor_or_model, device, evaluation_decoding(decode, ks))
    acc = SplitMetrics(ks, opt.angle_threshold, opt.iou_threshold)
    t0 = time.perf_counter()
    batches = loader
    if opt.progress and rank == 0:
        from tqdm import tqdm

        batches = tqdm(loader, desc="eval", unit="batch", dynamic_ncols=True, leave=False)
    try:
        gt_count, images, kept = _score_batches(fn, batches, acc, opt)
    finally:
        if restore is not None:
            restore()
    if world > 1:
        gt_count, images = _all_reduce(acc, gt_count, images, opt.per_image, world)
    dt = time.perf_counter() - t0
    out = acc.as_dict()
    out["gt_rects"], out["gt_rects_outside"] = int(round(gt_count[0])), int(round(gt_count[1]))
    out["seconds"] = dt
    out["frames_per_second"] = (acc.num_images + acc.num_images_without_gt) / dt if dt > 0 else 0.0
    if opt.per_image:
        out["images"] = images
    if opt.keep_predictions:
        out["predictions"] = kept
    return out


def format_table(results: dict, title: str = "") -> str:
    """A small text table of the split metrics (percentages)."""
    rows = [("top-1 accuracy", f"{100 * results['top1_accuracy']:.2f} %")]
    rows += [(k, f"{100 * v:.2f} %") for k, v in results.items() if k.startswith("precision@")]
    rows += [("images", str(results["num_images"]))]
    if "gt_rects" in results:
        rows.append(("GT rectangles", str(results["gt_rects"])))
        rows.append(("  centre outside image", f"{results['gt_rects_outside']} (kept, unmatched)"))
    if results.get("num_images_without_gt"):
        rows.append(("images without GT (skipped)", str(results["num_images_without_gt"])))
    rows.append(("predictions / image", f"{results['mean_predictions']:.2f}"))
    if "frames_per_second" in results:
        rows.append(("frames / s", f"{results['frames_per_second']:.2f}"))
    w = max(len(r[0]) for r in rows)
    lines = [title] if title else []
    lines += [f"  {k:<{w}}  {v:>10}" for k, v in rows]
    return "\n".join(lines)
