"""``scripts/train.py`` / ``vita-grasp train``: the training command line (see
:mod:`vita_grasp_core.training.train`)."""
from __future__ import annotations

import argparse
import json
import os
import sys

from ..backbones.weights import EncoderUnavailableError
from ..cli_errors import CommandError, one_line_errors, writable_dir
from ..training.train_config import ConfigError, resolve_run_config


def build_parser() -> argparse.ArgumentParser:
    from ..backbones import list_backbones

    p = argparse.ArgumentParser(
        prog="vita-grasp train | scripts/train.py",
        description="Train the VITA-Grasp decoder on a GraspNet-1Billion, Cornell or Jacquard "
                    "data set (torchrun --nproc_per_node N for DistributedDataParallel).",
        epilog="Examples: python scripts/train.py --model_type internvit --dataset_root "
               "data/graspnet --output_dir runs/internvit --set train.batch_size=4 | "
               "python scripts/train.py --config dinov2_cornell.yaml --dataset_root "
               "../shared/data/cornell --output_dir runs/cornell")
    p.add_argument("--model_type", choices=list_backbones(), default=None,
                   help="backbone; selects the shipped <model_type>_grasp.yaml without --config")
    p.add_argument("--config", default=None, help="YAML config (sections model, data, train)")
    p.add_argument("--dataset_root", default=None, help="data set root (sets data.root)")
    p.add_argument("--output_dir", required=True, help="checkpoints, logs and metrics go here")
    p.add_argument("--resume", nargs="?", const="auto", default=None,
                   help="continue from a last.pt (path, run directory, or 'auto' = "
                        "<output_dir>/last.pt if it exists)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda (default auto)")
    p.add_argument("--seed", type=int, default=None, help="sets train.seed")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override any config key (dotted, value parsed as YAML), repeatable: "
                        "--set train.epochs=3 --set data.train_scenes=[0,1]")
    p.add_argument("--no_progress", action="store_true", help="no tqdm progress bars")
    p.add_argument("--print_config", action="store_true",
                   help="print the resolved config and exit")
    return p


@one_line_errors("train", known=(ValueError, EncoderUnavailableError))
def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 done, 1 aborted on non-finite losses or weights, 2 configuration, data,
    checkpoint, encoder or disk problems (one line on stderr; a full disk says so)."""
    args = build_parser().parse_args(argv)
    try:
        cfg = resolve_run_config(args.model_type, args.config, args.dataset_root, args.seed,
                                 args.overrides)
    except ConfigError as e:
        raise CommandError(f"config error: {e}") from None
    if args.print_config:
        print(cfg.to_yaml(), end="")
        return 0
    from ..training.train import train

    writable_dir(args.output_dir)
    summary = train(cfg, args.output_dir, resume=args.resume, device=args.device,
                    progress=not args.no_progress)
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in summary.items()
                          if k not in ("last_val", "calibration")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
