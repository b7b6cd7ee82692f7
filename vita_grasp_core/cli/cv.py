"""``vita-grasp cv``: k-fold cross-validation on Cornell / Jacquard (see
:mod:`vita_grasp_core.training.cv`).

::

    vita-grasp cv --config dinov2_cornell.yaml --dataset_root ../shared/data/cornell \\
        --output_dir runs/cv [--folds 5] [--split_by image|object|block] [--block_size 50]
        [--only 0 2] [--set ...]
    vita-grasp cv --rescore runs/cv --engine onnxruntime --onnx_precision int8
    vita-grasp cv --rescore runs/cv --tta 4
    vita-grasp cv --rescore runs/cv --alternatives 4
    vita-grasp cv --rescore runs/cv --ensemble runs/cv_seed1 runs/cv_seed2
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..backbones.weights import EncoderUnavailableError
from ..choices import ENGINES, ONNX_PRECISIONS, SPLIT_BY
from ..cli_errors import one_line_errors
from ..training.config_files import ConfigError, load_raw
from ..training.cv import format_report, rescore_cv, run_cv
from ..training.train_config import build_config


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vita-grasp cv",
        description="k-fold cross-validation on a Cornell or Jacquard data set: train each fold "
                    "(checkpoint and threshold selected on a validation part of its training "
                    "folds), score the held-out fold with the API's defaults (top-1 and P@k, "
                    "IoU > 0.25, angle < 30 deg), print mean +- std.")
    p.add_argument("--config", help="YAML config, e.g. dinov2_cornell.yaml (shipped)")
    p.add_argument("--dataset_root", help="Cornell or Jacquard data set root")
    p.add_argument("--output_dir", help="fold runs, cv.json, overlays")
    p.add_argument("--rescore", metavar="DIR", default=None,
                   help="instead of training: score the folds of a finished cross-validation in "
                        "DIR again with another inference variant (--engine, --onnx_precision, "
                        "--dtype)")
    p.add_argument("--engine", default=None, choices=tuple(ENGINES),
                   help="--rescore: inference engine")
    p.add_argument("--onnx_precision", default=None, choices=ONNX_PRECISIONS,
                   help="--rescore with --engine onnxruntime: precision of the exported network")
    p.add_argument("--dtype", default=None, help="--rescore with torch: float32, bfloat16")
    p.add_argument("--tta", type=int, default=None,
                   help="--rescore with test-time views (1-8; calibration and threshold are "
                        "fitted again on each fold's validation frames)")
    p.add_argument("--alternatives", type=int, default=None,
                   help="--rescore with further grasps per object (decoding `alternatives`, "
                        "0-20): P@k then counts the other grasps on each object")
    p.add_argument("--ensemble", nargs="+", metavar="DIR", default=(),
                   help="--rescore with each fold's model joined to the same fold's models of "
                        "these cross-validations (same folds, other --set train.seed=N): their "
                        "maps averaged, calibration and threshold fitted again on the fold's "
                        "validation frames (vita-grasp weights ensemble)")
    p.add_argument("--folds", type=int, default=None, help="number of folds (data.folds, 5)")
    p.add_argument("--split_by", choices=SPLIT_BY, default=None,
                   help="image-wise folds (the Cornell convention), object-wise (where object "
                        "ids are known: Jacquard) or block: object-wise for Cornell, whole "
                        "blocks of --block_size consecutive frame numbers per fold "
                        "(data.split_by)")
    p.add_argument("--block_size", type=int, default=None,
                   help="frame numbers per block of --split_by block (data.block_size, 50)")
    p.add_argument("--seed", type=int, default=None, help="split seed (data.split_seed)")
    p.add_argument("--only", type=int, nargs="+", default=None, metavar="K",
                   help="run only these folds (0-based)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (as in vita-grasp train)")
    p.add_argument("--no_progress", action="store_true")
    return p


@one_line_errors("vita-grasp cv", known=(ValueError, EncoderUnavailableError))
def main(argv=None) -> int:
    """Exit status 0 done, 2 configuration / data problems (one line)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.ensemble and not args.rescore:
        parser.error("--ensemble joins the folds of finished cross-validations: use it with "
                     "--rescore DIR")
    if args.rescore:
        kw = {k: v for k, v in (("engine", args.engine), ("onnx_precision", args.onnx_precision),
                                ("dtype", args.dtype), ("tta", args.tta),
                                ("alternatives", args.alternatives)) if v is not None}
        try:
            s = rescore_cv(args.rescore, device=args.device, ensemble=args.ensemble, **kw)
        except (FileNotFoundError, ValueError, ConfigError) as e:
            print(f"vita-grasp cv: {e}", file=sys.stderr)
            return 2
        print(f"{s['variant']}: top-1 {100 * s['top1_accuracy_mean']:.1f} +- "
              f"{100 * s['top1_accuracy_std']:.1f} % (reference "
              f"{100 * s['reference_top1_mean']:.1f} %), predict "
              f"{s['predict_ms_median_mean']:.0f} ms/frame")
        return 0
    missing = [n for n in ("config", "dataset_root", "output_dir") if not getattr(args, n)]
    if missing:
        parser.error(f"the following arguments are required: "
                     f"{', '.join('--' + m for m in missing)} (or --rescore DIR)")
    ovr = list(args.overrides) + [f"data.root={json.dumps(args.dataset_root)}"]
    for key, val in (("data.folds", args.folds), ("data.split_by", args.split_by),
                     ("data.split_seed", args.seed), ("data.block_size", args.block_size)):
        if val is not None:
            ovr.append(f"{key}={val}")
    try:
        cfg = build_config(load_raw(args.config), ovr)
        if args.only and any(not 0 <= f < cfg.data.folds for f in args.only):
            raise ConfigError(f"--only {args.only}: folds are 0 .. {cfg.data.folds - 1}")
        report = run_cv(cfg, args.output_dir, device=args.device, only=args.only,
                        progress=not args.no_progress)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"vita-grasp cv: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"wrote {Path(args.output_dir) / 'cv.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
