#!/usr/bin/env python3
"""Train VITA-Grasp: ``vita-grasp train`` (thin wrapper of ``vita_grasp_core.training.train``).

    python scripts/train.py --model_type internvit --dataset_root data/graspnet --output_dir runs/x
    torchrun --nproc_per_node 2 scripts/train.py ...        (DistributedDataParallel)

Run ``python scripts/train.py --help`` for every option; docs/training.md explains the config.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vita_grasp_core.cli.train import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
