"""``vita-grasp``: the project's command line. Each subcommand lives in its own module and is
imported only when used (so ``vita-grasp synth`` never imports torch models or ROS).

The core's own commands are listed here. Other installed packages add theirs through the
entry-point group :data:`ENTRY_POINT_GROUP` (``vita_grasp.commands``): each entry point is named
after its subcommand and loads to a :class:`Command` (the ROS adapter adds ``bag``, ``node`` and
``demo`` this way, from its setup.py). The core never names them.

Exit codes: whatever the subcommand returns; 2 for an unknown command or a subcommand whose
modules cannot be imported (one line naming the missing module).
"""
from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass

#: Entry-point group through which installed packages add subcommands.
ENTRY_POINT_GROUP = "vita_grasp.commands"


@dataclass(frozen=True)
class Command:
    """A subcommand: ``target`` is ``"module:function"`` (the function takes the remaining argv
    list and returns an exit code), ``help`` the one-line description shown by ``--help``."""

    target: str
    help: str


#: The core's subcommands.
COMMANDS = {
    "synth": Command("vita_grasp_core.cli.data:synth_main",
                     "write a synthetic GraspNet-layout data set"),
    "data": Command("vita_grasp_core.cli.data:data_main",
                    "check or show a data set (GraspNet, Cornell, Jacquard)"),
    "train": Command("vita_grasp_core.cli.train:main",
                     "train the grasp decoder (= scripts/train.py)"),
    "cv": Command("vita_grasp_core.cli.cv:main",
                  "k-fold cross-validation on Cornell / Jacquard (mean +- std top-1, P@5)"),
    "eval": Command("vita_grasp_core.cli.eval:main",
                    "rectangle-metric evaluation of a checkpoint"),
    "infer": Command("vita_grasp_core.cli.infer:main",
                     "predict grasps for images (= scripts/inference.py)"),
    "weights": Command("vita_grasp_core.cli.weights:main",
                       "prepare local encoder weights (offline)"),
    "export": Command("vita_grasp_core.cli.export:main",
                      "export a checkpoint to ONNX and check it against PyTorch"),
    "sim": Command("vita_grasp_core.sim.cli:main",
                   "simulated tabletop: physics-labelled data, the pick benchmark (pybullet)"),
}


def installed_commands() -> tuple[dict[str, Command], list[str]]:
    """The core's commands plus those of the :data:`ENTRY_POINT_GROUP` entry points.

    Returns ``(commands, problems)``: an entry point that cannot be loaded or is not a
    :class:`Command` is left out and described in ``problems``; one that reuses a taken name is
    ignored (the core's command wins), silently when it is the same entry point installed twice.
    """
    from importlib.metadata import entry_points

    out, problems, seen = dict(COMMANDS), [], {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if seen.get(ep.name) == ep.value:
            continue  # the same package installed twice (e.g. pip and colcon): one command
        if ep.name in out:
            problems.append(f"{ep.name} ({ep.value}): a command of that name exists already")
            continue
        seen[ep.name] = ep.value
        try:
            cmd = ep.load()
        except Exception as e:  # noqa: BLE001 - a broken plug-in must not break the others
            problems.append(f"{ep.name} ({ep.value}): {type(e).__name__}: {e}")
            continue
        target, help_ = getattr(cmd, "target", None), getattr(cmd, "help", None)
        if not (isinstance(target, str) and ":" in target and isinstance(help_, str)):
            problems.append(f"{ep.name} ({ep.value}): not a Command (target 'module:function' "
                            "and help)")
            continue
        # (rebuilt: under `python -m vita_grasp_core.cli` the plug-in's Command class is the one
        # of the imported module, not of __main__)
        out[ep.name] = Command(target, help_)
    return out, problems


def _usage(commands: dict[str, Command]) -> str:
    lines = ["usage: vita-grasp <command> [options]   (vita-grasp <command> --help for details)",
             "", "commands:"]
    lines += [f"  {name:<7} {c.help}" for name, c in commands.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-V", "--version"):
        from .. import __version__

        print(f"vita-grasp {__version__}")
        return 0
    commands, problems = installed_commands()
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage(commands))
        for p in problems:
            print(f"vita-grasp: warning: command entry point {p}", file=sys.stderr)
        return 0 if argv else 2
    name = argv[0]
    if name not in commands:
        print(f"vita-grasp: unknown command {name!r}\n\n{_usage(commands)}", file=sys.stderr)
        for p in problems:
            print(f"vita-grasp: warning: command entry point {p}", file=sys.stderr)
        return 2
    mod, func = commands[name].target.split(":")
    try:
        fn = getattr(importlib.import_module(mod), func)
    except ModuleNotFoundError as e:
        print(f"vita-grasp {name}: cannot import {mod}: module {e.name or '?'} is missing; run "
              "`make setup` and use .venv/bin/vita-grasp", file=sys.stderr)
        return 2
    return int(fn(argv[1:]) or 0)
