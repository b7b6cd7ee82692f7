#!/usr/bin/env python3
"""Predict grasps for images: ``vita-grasp infer`` (thin wrapper of ``vita_grasp_core.cli.infer``).

    python scripts/inference.py --checkpoint runs/x/best_model.pt --image_path img.png \
        --output_dir out

``--image_path`` is a file, a folder or a glob. Run with ``--help`` for every option.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vita_grasp_core.cli.infer import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
