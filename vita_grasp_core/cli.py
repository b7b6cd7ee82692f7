"""``vita-grasp``: the project's command line. Each subcommand lives in its own module and is
imported only when used (so ``vita-grasp synth`` never imports torch models or ROS)."""
from __future__ import annotations

import importlib
import sys

#: subcommand -> ("module:function", one-line help). Functions take argv (list) and return int.
COMMANDS = {
    "synth": ("vita_grasp_core.data.cli:synth_main", "write a synthetic GraspNet-layout data set"),
    "data": ("vita_grasp_core.data.cli:data_main", "check or show a GraspNet-layout data set"),
    "train": ("vita_grasp_core.training.train:main", "train the grasp decoder (= scripts/train.py)"),
    "eval": ("vita_grasp_core.evaluation:main", "rectangle-metric evaluation of a checkpoint"),
    "infer": ("vita_grasp_core.inference:main", "predict grasps for images (= scripts/inference.py)"),
    "bag": ("vita_grasp_ros.bag_cli:main", "make, play, record and evaluate rosbag2 files"),
    "node": ("vita_grasp_ros.grasp_node:main", "run the ROS 2 grasp node (= vita-grasp-node)"),
    "demo": ("vita_grasp_ros.demo:main", "the whole loop on synthetic data (= make demo)"),
    "weights": ("vita_grasp_core.weights_cli:main", "prepare local encoder weights (offline)"),
    "export": ("vita_grasp_core.export:main",
               "export a checkpoint to ONNX and check it against PyTorch"),
}


def _usage() -> str:
    lines = ["usage: vita-grasp <command> [options]   (vita-grasp <command> --help for details)", "",
             "commands:"]
    lines += [f"  {name:<7} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"vita-grasp {__version__}")
        return 0
    name = argv[0]
    if name not in COMMANDS:
        print(f"vita-grasp: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    mod, func = target.split(":")
    try:
        fn = getattr(importlib.import_module(mod), func)
    except ModuleNotFoundError as e:
        if e.name and (e.name.startswith(("rclpy", "vita_grasp.", "rosbags")) or e.name == "vita_grasp"):
            print(f"vita-grasp {name}: needs the ROS 2 Python environment ({e.name} is missing); "
                  "run `make setup` and use .venv/bin/vita-grasp", file=sys.stderr)
            return 2
        raise
    return int(fn(argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
