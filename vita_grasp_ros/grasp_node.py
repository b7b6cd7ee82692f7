"""``grasp_node``: RGB frames in, ``vita_grasp/GraspArray`` out (docs/ros.md, CONVENTIONS §6).

Run::

    vita-grasp-node --ros-args --params-file config/vita_grasp.yaml -p checkpoint:=best_model.pt \\
        -r image:=/rgb/image_raw -r __ns:=/robot
    vita-grasp-node --lifecycle --ros-args ...             # managed node (configure/activate ...)
    ros2 run vita_grasp grasp_node --ros-args ...          # same, on a ROS install
    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=...

This module is the entry point only; it imports rclpy when the node runs, so ``--help`` is cheap.
The node classes live in :mod:`.node_base` (:class:`GraspNode`, the default) and
:mod:`.lifecycle_node` (:class:`GraspLifecycleNode`); both are also reachable here
(``from vita_grasp_ros.grasp_node import GraspNode``). Parameters: :mod:`.node_params`.

Exit status: 0 after Ctrl-C / SIGTERM, 1 when the node cannot start (one error line, no
traceback), 2 for bad arguments or a missing ROS environment. Signals: the first SIGINT or SIGTERM
stops the node (during start-up it interrupts the model load); later ones are ignored, so a
terminal Ctrl-C under ``ros2 launch`` (SIGINT from the terminal and from launch) never interrupts
the shutdown.
"""
from __future__ import annotations

import os
import sys

from .node_params import NODE_NAME, StartupError
from .node_support import ShutdownSignals

#: How often the spin loop looks at the shutdown request [s].
SPIN_PERIOD = 0.1

USAGE = """usage: vita-grasp-node [--lifecycle] [--ros-args -p name:=value -r from:=to \
--params-file FILE ...]

Runs the VITA-Grasp ROS 2 node (name: {name}). Subscribes `image` (or `image/compressed`),
optionally `depth` + `camera_info`; publishes `grasps`, `detections` (with vision_msgs),
`debug/heatmap`, `markers`, /diagnostics.
  --lifecycle   run as a managed (lifecycle) node: configure loads the model, activate starts
                subscribing and publishing, deactivate pauses, cleanup frees the model
Example:
  vita-grasp-node --ros-args --params-file config/vita_grasp.yaml -p checkpoint:=best_model.pt \\
      -r image:=/rgb/image_raw -r __ns:=/robot
Parameters and topics: docs/ros.md.
""".format(name=NODE_NAME)

__all__ = ["NODE_NAME", "USAGE", "StartupError", "main"]  # + GraspNode, GraspLifecycleNode (lazy)


def __getattr__(name):  # PEP 562: the node classes without importing rclpy for --help
    if name == "GraspNode":
        from .node_base import GraspNode

        return GraspNode
    if name == "GraspLifecycleNode":
        from .lifecycle_node import GraspLifecycleNode

        return GraspLifecycleNode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None, *, fast_exit: bool = True) -> int:
    """Entry point (``vita-grasp-node``, ``vita-grasp node``, ``ros2 run vita_grasp grasp_node``).

    ``argv``: arguments without the program name (``sys.argv[1:]`` when None), ROS arguments after
    ``--ros-args``. Returns the exit status (0 after Ctrl-C, 1 when it cannot start, 2 for bad
    arguments). With ``fast_exit`` (default) the process ends right after a node that ran has
    shut down (``os._exit`` once everything is released and the output flushed): the
    interpreter's finalisation takes seconds with torch loaded on a busy CPU (6 s measured here
    under load), more than ``ros2 launch`` waits after SIGINT (5 s) before escalating.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index("--ros-args") if "--ros-args" in args else len(args)
    user_args, ros_part = args[:cut], args[cut:]
    if any(a in ("-h", "--help") for a in user_args):
        print(USAGE)
        return 0
    lifecycle = "--lifecycle" in user_args
    user_args = [a for a in user_args if a != "--lifecycle"]
    signals = ShutdownSignals()
    signals.install()  # first thing: a Ctrl-C from now on never ends in a traceback
    try:
        status = _run(user_args + ros_part, lifecycle, signals)
    except KeyboardInterrupt:  # a signal before the node existed (imports, model load)
        signals.shutting_down()
        status = 0
    if fast_exit and signals.requested.is_set():  # rclpy ran (and is shut down) or a signal
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status


def _run(args: list[str], lifecycle: bool, signals: ShutdownSignals) -> int:
    """Import rclpy, start the node, spin until a signal; the exit status."""
    try:
        import rclpy
        from rclpy.executors import ExternalShutdownException, MultiThreadedExecutor
        from rclpy.signals import SignalHandlerOptions
        from rclpy.utilities import remove_ros_args
    except ImportError as e:
        print(f"vita-grasp-node: error: rclpy is not importable ({e}); run `make setup` or source "
              "a ROS 2 installation", file=sys.stderr)
        return 2
    extra = [a for a in remove_ros_args(["vita-grasp-node"] + args)[1:] if a]
    if extra:
        print(f"vita-grasp-node: error: unexpected arguments {extra} (ROS arguments go after "
              f"--ros-args)\n\n{USAGE}", file=sys.stderr)
        return 2
    node = None
    try:
        try:  # rclpy's own handlers off: ShutdownSignals decides
            rclpy.init(args=["vita-grasp-node"] + args,
                       signal_handler_options=SignalHandlerOptions.NO)
        except Exception as e:  # noqa: BLE001 - malformed --ros-args
            print(f"vita-grasp-node: error: bad ROS arguments: {e}", file=sys.stderr)
            return 2
        node = _make_node(lifecycle)
        if node is None:
            return 2
        # Two threads: get_grasps may wait for a frame while the callbacks deliver it.
        executor = MultiThreadedExecutor(num_threads=2)
        executor.add_node(node)
        signals.interrupt = False  # from now on a signal ends the loop below
        while not signals.requested.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=SPIN_PERIOD)
    except StartupError as e:
        rclpy.logging.get_logger(NODE_NAME).error(str(e))
        return 1
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        signals.shutting_down()  # signals are ignored from now on: nothing interrupts this
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


def _make_node(lifecycle: bool):
    """The node (StartupError when it cannot start); None when the messages are missing."""
    try:
        if lifecycle:
            from .lifecycle_node import GraspLifecycleNode as NodeClass
        else:
            from .node_base import GraspNode as NodeClass
    except ImportError as e:
        print(f"vita-grasp-node: error: {e} (the vita_grasp messages are built by "
              "`make setup` / colcon build)", file=sys.stderr)
        return None
    return NodeClass()


if __name__ == "__main__":
    sys.exit(main())
