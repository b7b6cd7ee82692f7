"""Rectangle-metric evaluation (CONVENTIONS §5) of a model on a GraspNet-layout split.

``evaluate()`` is used both by ``vita-grasp eval`` and for validation during training. The CLI::

    vita-grasp eval --checkpoint runs/x/best_model.pt --dataset_root data/graspnet \\
        --split test_seen [--camera kinect] [--device auto] [--batch_size 4] \\
        [--out results.json] [--max_frames N]

prints a table and writes a JSON file (split metrics, settings, per-image scores).
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

from .decode_config import add_decode_arguments, decode_arguments
from .geometry import Letterbox
from .metrics import DEFAULT_ANGLE_THRESHOLD, DEFAULT_IOU_THRESHOLD, DEFAULT_KS, SplitMetrics

log = logging.getLogger(__name__)


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them if ``k`` is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, int(k)).round().astype(int).tolist()))


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
            saved = dict(score_threshold=obj.score_threshold, max_grasps=obj.max_grasps,
                         min_distance=obj.min_distance, smooth_sigma=obj.smooth_sigma)
            obj.set_decoding(**decode_kwargs)

            def restore(p=obj, s=saved):
                p.set_decoding(**s)
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
             per_image: bool = False, distributed: bool = False) -> dict:
    """Rectangle-metric scores of a model on ``dataset``.

    Args:
        predictor_or_model: a :class:`~vita_grasp_core.model.GraspModel` (evaluated in eval mode
            on its own device, then put back in its previous mode), a
            :class:`~vita_grasp_core.predictor.GraspPredictor`, or any callable
            ``fn(batch) -> list[np.ndarray (P, >=5)]`` returning each image's grasps in source px
            (x, y, angle, width, height[, quality]) - used by tests (ground truth, random).
        dataset: items with ``image`` (normalised input tensor), ``rects`` (GT, source px),
            ``src_size`` (h, w), ``scene``, ``frame`` - e.g.
            :class:`~vita_grasp_core.data.graspnet.GraspNetDataset` with ``augment=False``.
        batch_size, num_workers: data loading.
        max_frames: evaluate at most this many frames, evenly spaced over the dataset.
        ks, angle_threshold (rad), iou_threshold: metric (CONVENTIONS §5).
        score_threshold, max_grasps, min_distance, smooth_sigma: decoding; ``max_grasps``
            defaults to ``max(ks)``. ``None`` keeps a predictor's own setting.
        per_image: also return ``"images"``: one dict per frame (scene, frame, top1, precision@k).
        distributed: shard frames over the initialised process group and all-reduce the sums
            (every rank gets the same result).
    Returns:
        ``{"top1_accuracy", "precision@1", "precision@5", "precision@10", "num_images",
        "num_images_without_gt", "mean_predictions", "angle_threshold_deg", "iou_threshold",
        "seconds", "frames_per_second"[, "images"]}``; fractions in [0, 1].
    """
    from torch.utils.data import DataLoader, Subset

    from .data.graspnet import collate_fn

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
                        num_workers=num_workers, collate_fn=collate_fn)
    fn, restore = _as_predict_fn(predictor_or_model, device, decode)
    acc = SplitMetrics(ks, angle_threshold, iou_threshold)
    images = []
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
                if per_image:
                    row = {"scene": int(batch["scene"][b]), "frame": int(batch["frame"][b])}
                    row.update(s if s is not None else {"no_gt": True})
                    images.append(row)
    finally:
        if restore is not None:
            restore()
    if world > 1:
        v = torch.tensor(acc.to_vector(), dtype=torch.float64)
        backend = torch.distributed.get_backend()
        if backend == "nccl":
            v = v.cuda()
        torch.distributed.all_reduce(v)
        acc.load_vector(v.cpu().numpy())
        if per_image:
            gathered = [None] * world
            torch.distributed.all_gather_object(gathered, images)
            images = [r for part in gathered for r in part]
    dt = time.perf_counter() - t0
    out = acc.as_dict()
    out["seconds"] = dt
    out["frames_per_second"] = (acc.num_images + acc.num_images_without_gt) / dt if dt > 0 else 0.0
    if per_image:
        out["images"] = images
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
                    "angle < 30 deg and IoU > 0.25) of a checkpoint on a GraspNet-layout split.")
    p.add_argument("--checkpoint", required=True, help="best_model.pt / last.pt / .safetensors")
    p.add_argument("--dataset_root", required=True, help="root holding scenes/scene_XXXX")
    p.add_argument("--split", default="test_seen",
                   help="train, test_seen, test_similar, test_novel, test or all "
                        "(default test_seen)")
    p.add_argument("--scenes", type=int, nargs="*", default=None,
                   help="explicit scene ids (intersected with --split; --split all to disable)")
    p.add_argument("--camera", default="kinect", choices=("kinect", "realsense"))
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .data.graspnet import GraspNetDataset
    from .predictor import GraspPredictor

    try:
        predictor = GraspPredictor.from_checkpoint(args.checkpoint, device=args.device,
                                                   dtype="float32",
                                                   pretrained_model=args.pretrained_model)
    except (FileNotFoundError, ValueError) as e:
        print(f"vita-grasp eval: {e}", file=sys.stderr)
        return 2
    c = predictor.config
    try:
        ds = GraspNetDataset(args.dataset_root, camera=args.camera, scenes=args.scenes,
                             split=None if args.split == "all" else args.split,
                             output_size=c.output_size, input_size=c.input_size,
                             mean=predictor.model.mean, std=predictor.model.std,
                             width_scale=c.width_scale, augment=False)
    except (FileNotFoundError, ValueError) as e:
        print(f"vita-grasp eval: {e}", file=sys.stderr)
        return 2
    n = len(evenly_spaced(len(ds), args.max_frames))
    print(f"evaluating {args.checkpoint} on {args.split} ({args.camera}): {n} of {len(ds)} "
          "frames, "
          f"scenes {ds.scene_ids[0]}-{ds.scene_ids[-1]}, device {predictor.device}")
    res = evaluate(predictor, ds, batch_size=args.batch_size, max_frames=args.max_frames,
                   num_workers=args.num_workers, **_keep_predictor_settings(decode_arguments(args)),
                   progress=not args.no_progress, per_image=True)
    print(format_table(res, f"{args.split} ({args.camera})"))
    rep = ds.report()
    if rep["skipped"]:
        print(f"skipped files: {rep['skipped']}")
    if args.out:
        out = {"checkpoint": str(args.checkpoint), "dataset_root": str(args.dataset_root),
               "split": args.split, "camera": args.camera, "max_frames": args.max_frames,
               "decoding": {"score_threshold": predictor.score_threshold,
                            "max_grasps": predictor.max_grasps,
                            "min_distance": predictor.min_distance,
                            "smooth_sigma": predictor.smooth_sigma},
               "metrics": {k: v for k, v in res.items() if k != "images"},
               "data_report": rep, "images": res["images"]}
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(out, indent=2))
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
