"""``vita-grasp eval``: rectangle-metric evaluation of a checkpoint (see
:mod:`vita_grasp_core.evaluation`).

::

    vita-grasp eval --checkpoint runs/x/best_model.pt --dataset_root data/graspnet \\
        [--split test_seen | --scenes 100 101] [--camera kinect] [--device auto] \\
        [--batch_size 4] [--out results.json] [--max_frames N]
    vita-grasp eval --checkpoint ... --dataset_root ../shared/data/cornell \\
        [--fold 2 --folds 5 --seed 0 --split_by image]

prints a table and writes a JSON file (split metrics, settings, per-image scores).
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from ..bounds import MAX_SEED, check_bounds, count
from ..choices import CAMERAS, DEFAULT_CAMERA, FLOAT32, SPLIT_BY, format_choices
from ..cli_errors import one_line_errors
from ..data.splits import DEFAULT_BLOCK_SIZE, evenly_spaced
from ..decoding_settings import add_decode_arguments, decode_arguments
from ..evaluation import EvalOptions, evaluate, format_table


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
    p.add_argument("--format", default="auto", choices=format_choices(),
                   help="data set layout (default auto: detected from the files)")
    g = p.add_argument_group("GraspNet-1Billion")
    g.add_argument("--split", default=None,
                   help="train, test_seen, test_similar, test_novel, test or all (default: all "
                        "scenes when --scenes is given, else test_seen)")
    g.add_argument("--scenes", type=int, nargs="*", default=None,
                   help="explicit scene ids (intersected with --split when both are given)")
    g.add_argument("--camera", default=DEFAULT_CAMERA, choices=CAMERAS)
    c = p.add_argument_group("Cornell / Jacquard cross-validation (default: every frame)")
    c.add_argument("--fold", type=int, default=None, help="score only this fold (0-based)")
    c.add_argument("--folds", type=int, default=5, help="number of folds (default 5)")
    c.add_argument("--seed", type=int, default=0, help="fold shuffle seed (default 0)")
    c.add_argument("--split_by", default="image", choices=SPLIT_BY,
                   help="image-wise folds (Cornell convention), object-wise (Jacquard: one "
                        "object folder per fold) or block (Cornell object-wise: blocks of "
                        "--block_size consecutive frame numbers); default image")
    c.add_argument("--block_size", type=int, default=DEFAULT_BLOCK_SIZE,
                   help=f"frame numbers per block of --split_by block (default "
                        f"{DEFAULT_BLOCK_SIZE})")
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
    from ..data.formats import get_format, scan_dataset
    from ..data.splits import kfold

    graspnet_split = args.split
    if graspnet_split is None and not args.scenes:
        graspnet_split = "test_seen"
    fmt = args.format
    if fmt == "auto":
        from ..data.formats import detect_format

        fmt = detect_format(args.dataset_root)
    sel: dict = {"format": fmt}
    if get_format(fmt).scenes:
        if args.fold is not None:
            raise ValueError("--fold selects a Cornell / Jacquard fold; for GraspNet use --split "
                             "or --scenes")
        split = None if graspnet_split == "all" else graspnet_split
        res = scan_dataset(args.dataset_root, fmt, camera=args.camera, scenes=args.scenes,
                           split=split)
        frames = res.frames
        ids = res.scene_ids
        from .data import _ranges

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
            folds = kfold(frames, args.folds, seed=args.seed, by=args.split_by,
                          block_size=args.block_size)
            frames = [frames[i] for i in folds[args.fold]]
            desc = (f"{fmt}, fold {args.fold} of {args.folds} ({args.split_by}-wise, "
                    f"seed {args.seed})")
            sel.update(fold=args.fold, folds=args.folds, seed=args.seed, split_by=args.split_by,
                       **({"block_size": args.block_size} if args.split_by == "block" else {}))
    if not frames:
        raise FileNotFoundError(f"no usable frames in {args.dataset_root} ({desc}); problems: "
                                f"{res.faults.summary()}")
    return res, frames, desc, sel


#: Ranges of the numeric options (99999999999 loader workers hung the machine).
ARG_BOUNDS = {"batch_size": count(1, 4096), "num_workers": count(0, 256),
              "max_frames": count(1, 10**9, none=True), "fold": count(0, 999, none=True),
              "folds": count(2, 1000), "seed": count(0, MAX_SEED), "block_size": count(1, 10**6)}


@one_line_errors("vita-grasp eval", known=(ValueError,))
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    check_bounds(args, ARG_BOUNDS, "-", sep="-")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from ..checkpoint import CheckpointError
    from ..data.dataset import GraspDataset, Origin, SampleSpec
    from ..predictor import load_predictor

    try:
        res, frames, desc, sel = select_frames(args)
    except (FileNotFoundError, NotADirectoryError, ValueError) as e:
        print(f"vita-grasp eval: {e}", file=sys.stderr)
        return 2
    try:
        predictor = load_predictor(args.checkpoint, device=args.device, dtype=FLOAT32,
                                   pretrained_model=args.pretrained_model)
    except CheckpointError as e:
        print(f"vita-grasp eval: cannot load checkpoint: {e}", file=sys.stderr)
        return 2
    try:
        ds = GraspDataset(frames, SampleSpec.of(predictor),
                          origin=Origin(args.dataset_root, f"{args.dataset_root} ({desc})",
                                        res.faults))
    except ValueError as e:
        print(f"vita-grasp eval: {e}", file=sys.stderr)
        return 2
    n = len(evenly_spaced(len(ds), args.max_frames))
    print(f"evaluating {args.checkpoint} on {desc}: {n} of {len(ds)} frames, "
          f"device {predictor.device}")
    opt = EvalOptions(batch_size=args.batch_size, max_frames=args.max_frames,
                      num_workers=args.num_workers, progress=not args.no_progress,
                      per_image=True)
    # decoding: the checkpoint's settings (what the API returns), with those given here on top
    res_m = evaluate(predictor, ds, decode_arguments(args), opt)
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
