"""Rectangle-metric evaluation (CONVENTIONS §5) of a model on GraspNet, Cornell or Jacquard data.

``evaluate()`` is used both by ``vita-grasp eval`` and for validation during training. The CLI::

    vita-grasp eval --checkpoint runs/x/best_model.pt --dataset_root data/graspnet \\
        [--split test_seen | --scenes 100 101] [--camera kinect] [--device auto] \\
        [--batch_size 4] [--out results.json] [--max_frames N]
    vita-grasp eval --checkpoint ... --dataset_root ../shared/data/cornell \\
        [--fold 2 --folds 5 --seed 0 --split_by image]

prints a table and writes a JSON file (split metrics, settings, per-image scores). Ground-truth
rectangles whose centre lies outside the image are kept (they cannot be matched) and counted.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .data.splits import evenly_spaced  # noqa: F401  (re-exported: training imports it here)
from .decode_config import add_decode_arguments, decode_arguments
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


def evaluate(predictor_or_model, dataset, *, batch_size: int = 4, max_frames: int | None = None,
             device=None, num_workers: int = 0, ks=DEFAULT_KS,
             angle_threshold: float = DEFAULT_ANGLE_THRESHOLD,
             iou_threshold: float = DEFAULT_IOU_THRESHOLD, score_threshold: float | None = 0.0,
             max_grasps: int | None = None, min_distance: int | None = None,
             smooth_sigma: float | None = None, progress: bool = True,
             per_image: bool = False, distributed: bool = False, collate=None,
             keep_predictions: bool = False) -> dict:
    """Rectangle-metric scores of a model on ``dataset``.

    Args:
        predictor_or_model: a :class:`~vita_grasp_core.model.GraspModel` (evaluated in eval mode
            on its own device, then put back in its previous mode), a
            :class:`~vita_grasp_core.predictor.GraspPredictor`, or any callable
            ``fn(batch) -> list[np.ndarray (P, >=5)]`` returning each image's grasps in source px
            (x, y, angle, width, height[, quality]) - used by tests (ground truth, random).
        dataset: items with ``image`` (normalised input tensor), ``rects`` (GT, source px),
            ``src_size`` (h, w), ``scene``, ``frame`` (and ``key``) - e.g. a
            :class:`~vita_grasp_core.data.dataset.GraspDataset` with ``augment=False``.
        batch_size, num_workers: data loading.
        max_frames: evaluate at most this many frames, evenly spaced over the dataset.
        ks, angle_threshold (rad), iou_threshold: metric (CONVENTIONS §5).
        score_threshold, max_grasps, min_distance, smooth_sigma: decoding; ``max_grasps``
            defaults to ``max(ks)``. ``None`` keeps a predictor's own setting.
        per_image: also return ``"images"``: one dict per frame (key, scene, frame, top1,
            precision@k, num_gt, num_gt_outside).
        distributed: shard frames over the initialised process group and all-reduce the sums
            (every rank gets the same result).
        collate: the DataLoader's collate function (default: the datasets' ``collate_fn``).
        keep_predictions: also return ``"predictions"``: ``(key, pred (P, 7), gt (G, >=5))`` per
            frame of this rank, best first (quality calibration, overlays).
    Returns:
        ``{"top1_accuracy", "precision@1", "precision@5", "precision@10", "num_images",
        "num_images_without_gt", "mean_predictions", "angle_threshold_deg", "iou_threshold",
        "gt_rects", "gt_rects_outside", "seconds", "frames_per_second"[, "images"]}``;
        fractions in [0, 1]; ``gt_rects_outside`` counts ground-truth rectangles whose centre
        lies outside the image (kept as ground truth; no prediction can sit on them).
    """
    from torch.utils.data import DataLoader, Subset

    from .data.common import inside_image
    from .data.dataset import collate_fn

    ks = tuple(int(k) for k in ks)
    decode = {k: v for k, v in dict(score_threshold=score_threshold,
                                    max_grasps=max_grasps if max_grasps is not None else max(ks),
                                    min_distance=min_distance,
                                    smooth_sigma=smooth_sigma).items() if v is not None}
    rank, world = 0, 1
    if distributed and torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    indices = evenly_spaced(len(dataset), max_frames)
    shard = indices[rank::world]
    loader = DataLoader(Subset(dataset, shard), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate or collate_fn)
    fn, restore = _as_predict_fn(predictor_or_model, device, decode)
    acc = SplitMetrics(ks, angle_threshold, iou_threshold)
    gt_count = np.zeros(2, np.float64)  # GT rectangles, of which centre outside the image
    images, kept = [], []
    t0 = time.perf_counter()
    it = loader
    if progress and rank == 0:
        from tqdm import tqdm

        it = tqdm(loader, desc="eval", unit="batch", dynamic_ncols=True, leave=False)
    try:
        for batch in it:
            preds = fn(batch)
            if len(preds) != len(batch["rects"]):
                raise ValueError(f"predictor returned {len(preds)} results for "
                                 f"{len(batch['rects'])} images")
            for b, (pred, gt) in enumerate(zip(preds, batch["rects"])):
                gt = gt.numpy() if isinstance(gt, torch.Tensor) else np.asarray(gt)
                s = acc.add(pred, gt)
                n_out = int((~inside_image(gt, batch["src_size"][b])).sum()) if len(gt) else 0
                gt_count += (len(gt), n_out)
                if keep_predictions:
                    kept.append((batch["key"][b] if "key" in batch else "", pred, gt))
                if per_image:
                    row = {"key": batch["key"][b] if "key" in batch else ""}
                    for k in ("scene", "frame"):
                        if k in batch:
                            row[k] = int(batch[k][b])
                    row.update(s if s is not None else {"no_gt": True})
                    row["num_gt_outside"] = n_out
                    images.append(row)
    finally:
        if restore is not None:
            restore()
    if world > 1:
        v = torch.tensor(np.concatenate([acc.to_vector(), gt_count]), dtype=torch.float64)
        backend = torch.distributed.get_backend()
        if backend == "nccl":
            v = v.cuda()
        torch.distributed.all_reduce(v)
        v = v.cpu().numpy()
        acc.load_vector(v[:-2])
        gt_count = v[-2:]
        if per_image:
            gathered = [None] * world
            torch.distributed.all_gather_object(gathered, images)
            images = [r for part in gathered for r in part]
    dt = time.perf_counter() - t0
    out = acc.as_dict()
    out["gt_rects"], out["gt_rects_outside"] = int(round(gt_count[0])), int(round(gt_count[1]))
    out["seconds"] = dt
    out["frames_per_second"] = (acc.num_images + acc.num_images_without_gt) / dt if dt > 0 else 0.0
    if per_image:
        out["images"] = images
    if keep_predictions:
        out["predictions"] = kept
    return out


def _keep_predictor_settings(settings: dict) -> dict:
    """evaluate() keyword arguments: the given settings, ``None`` (= the predictor's own, i.e.
    what the API returns with its defaults) for every other one."""
    out = {k: None for k in ("score_threshold", "max_grasps", "min_distance", "smooth_sigma")}
    out.update(settings)
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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vita-grasp eval",
        description="Rectangle-metric evaluation (top-1 accuracy, precision@1/5/10; "
                    "angle < 30 deg and IoU > 0.25) of a checkpoint on a GraspNet-1Billion "
                    "split, a Cornell or Jacquard data set, or one cross-validation fold of it. "
                    "Decoding uses the checkpoint's settings unless given. Exit status 0 on "
                    "success, 2 for bad arguments, an unusable checkpoint or no data.",
        epilog="Examples: --dataset_root data/graspnet --split test_seen; --dataset_root "
               "data/graspnet --scenes 100 101; --dataset_root ../shared/data/cornell --fold 0 "
               "--folds 5 --seed 0")
    p.add_argument("--checkpoint", required=True,
                   help="best_model.pt / last.pt / .safetensors, or the name of a shipped model "
                        "(cornell, realtime, sim: `vita-grasp weights list`)")
    p.add_argument("--dataset_root", required=True, help="data set root")
    p.add_argument("--format", default="auto", choices=("auto", "graspnet", "cornell", "jacquard"),
                   help="data set layout (default auto: detected from the files)")
    g = p.add_argument_group("GraspNet-1Billion")
    g.add_argument("--split", default=None,
                   help="train, test_seen, test_similar, test_novel, test or all (default: all "
                        "scenes when --scenes is given, else test_seen)")
    g.add_argument("--scenes", type=int, nargs="*", default=None,
                   help="explicit scene ids (intersected with --split when both are given)")
    g.add_argument("--camera", default="kinect", choices=("kinect", "realsense"))
    c = p.add_argument_group("Cornell / Jacquard cross-validation (default: every frame)")
    c.add_argument("--fold", type=int, default=None, help="score only this fold (0-based)")
    c.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    c.add_argument("--seed", type=int, default=0, help="fold shuffle seed (default 0)")
    c.add_argument("--split_by", default="image", choices=("image", "object"),
                   help="image-wise folds (Cornell convention) or object-wise (Jacquard: one "
                        "object folder per fold); default image")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--batch_size", type=int, default=4)
    p.add_argument("--num_workers", type=int, default=0)
    p.add_argument("--max_frames", type=int, default=None,
                   help="evaluate at most N frames, evenly spaced")
    p.add_argument("--out", default=None, help="write the results as JSON here")
    add_decode_arguments(p)
    p.add_argument("--pretrained_model", default=None,
                   help="override the encoder reference stored in the checkpoint (local copy)")
    p.add_argument("--no_progress", action="store_true")
    return p


def select_frames(args) -> tuple:
    """``(scan result, frames, description, selection dict)`` of the eval command line.

    Raises ``ValueError`` / ``FileNotFoundError`` (bad arguments, no frames)."""
    from .data.formats import scan_dataset
    from .data.splits import kfold

    graspnet_split = args.split
    if graspnet_split is None and not args.scenes:
        graspnet_split = "test_seen"
    fmt = args.format
    if fmt == "auto":
        from .data.formats import detect_format

        fmt = detect_format(args.dataset_root)
    sel: dict = {"format": fmt}
    if fmt == "graspnet":
        if args.fold is not None:
            raise ValueError("--fold selects a Cornell / Jacquard fold; for GraspNet use --split "
                             "or --scenes")
        split = None if graspnet_split == "all" else graspnet_split
        res = scan_dataset(args.dataset_root, fmt, camera=args.camera, scenes=args.scenes,
                           split=split)
        frames = res.frames
        ids = res.scene_ids
        from .data.cli import _ranges

        desc = (f"{graspnet_split + ' ' if graspnet_split else ''}scenes {_ranges(ids)} "
                f"({args.camera})")
        sel.update(split=graspnet_split, scenes=ids, camera=args.camera)
    else:
        if args.split is not None or args.scenes:
            raise ValueError(f"--split / --scenes select GraspNet scenes; a {fmt} data set is "
                             "evaluated whole or one fold at a time (--fold K --folds N)")
        res = scan_dataset(args.dataset_root, fmt)
        frames = res.frames
        desc = f"{fmt}, all frames"
        if args.fold is not None:
            if not 0 <= args.fold < args.folds:
                raise ValueError(f"--fold must be in 0..{args.folds - 1}, got {args.fold}")
            folds = kfold(frames, args.folds, seed=args.seed, by=args.split_by)
            frames = [frames[i] for i in folds[args.fold]]
            desc = (f"{fmt}, fold {args.fold} of {args.folds} ({args.split_by}-wise, "
                    f"seed {args.seed})")
            sel.update(fold=args.fold, folds=args.folds, seed=args.seed, split_by=args.split_by)
    if not frames:
        raise FileNotFoundError(f"no usable frames in {args.dataset_root} ({desc}); problems: "
                                f"{res.faults.summary()}")
    return res, frames, desc, sel


def main(argv: list[str] | None = None) -> int:
    import pickle

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .data.dataset import GraspDataset
    from .predictor import GraspPredictor

    try:
        res, frames, desc, sel = select_frames(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        print(f"vita-grasp eval: {e}", file=sys.stderr)
        return 2
    try:
        predictor = GraspPredictor.from_checkpoint(args.checkpoint, device=args.device,
                                                   dtype="float32",
                                                   pretrained_model=args.pretrained_model)
    except (FileNotFoundError, ValueError, RuntimeError, OSError, pickle.UnpicklingError,
            EOFError) as e:
        msg = " ".join(str(e).split()) or type(e).__name__
        print(f"vita-grasp eval: cannot load checkpoint {args.checkpoint}: {msg}",
              file=sys.stderr)
        return 2
    c = predictor.config
    try:
        ds = GraspDataset(frames, output_size=c.output_size, input_size=c.input_size,
                          mean=predictor.mean, std=predictor.std, width_scale=c.width_scale,
                          augment=False, root=args.dataset_root, faults=res.faults,
                          name=f"{args.dataset_root} ({desc})")
    except ValueError as e:
        print(f"vita-grasp eval: {e}", file=sys.stderr)
        return 2
    n = len(evenly_spaced(len(ds), args.max_frames))
    print(f"evaluating {args.checkpoint} on {desc}: {n} of {len(ds)} frames, "
          f"device {predictor.device}")
    res_m = evaluate(predictor, ds, batch_size=args.batch_size, max_frames=args.max_frames,
                     num_workers=args.num_workers,
                     **_keep_predictor_settings(decode_arguments(args)),
                     progress=not args.no_progress, per_image=True)
    print(format_table(res_m, desc))
    rep = ds.report()
    if rep["skipped"]:
        print(f"skipped files: {rep['skipped']}")
    if rep["rows_skipped"]:
        print(f"skipped rectangles: {rep['rows_skipped']}")
    if args.out:
        out = {"checkpoint": str(args.checkpoint), "dataset_root": str(args.dataset_root),
               **sel, "split": sel.get("split"), "camera": sel.get("camera"),
               "max_frames": args.max_frames, "decoding": predictor.decode_config.to_dict(),
               "metrics": {k: v for k, v in res_m.items() if k != "images"},
               "data_report": rep, "images": res_m["images"]}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
