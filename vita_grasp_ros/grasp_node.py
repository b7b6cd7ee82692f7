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
traceback), 2 for bad arguments or a missing ROS environment.
"""
from __future__ import annotations

import sys

from .node_params import StartupError

NODE_NAME = "vita_grasp_node"

USAGE = """usage: vita-grasp-node [--lifecycle] [--ros-args -p name:=value -r from:=to \
--params-file FILE ...]

Runs the VITA-Grasp ROS 2 node (name: vita_grasp_node). Subscribes `image` (or `image/compressed`),
optionally `depth` + `camera_info`; publishes `grasps`, `detections` (with vision_msgs),
`debug/heatmap`, `markers`, /diagnostics.
  --lifecycle   run as a managed (lifecycle) node: configure loads the model, activate starts
                subscribing and publishing, deactivate pauses, cleanup frees the model
Example:
  vita-grasp-node --ros-args --params-file config/vita_grasp.yaml -p checkpoint:=best_model.pt \\
      -r image:=/rgb/image_raw -r __ns:=/robot
Parameters and topics: docs/ros.md.
"""

__all__ = ["NODE_NAME", "USAGE", "StartupError", "main"]  # + GraspNode, GraspLifecycleNode (lazy)


def __getattr__(name):  # PEP 562: the node classes without importing rclpy for --help
    if name == "GraspNode":
        from .node_base import GraspNode

        return GraspNode
    if name == "GraspLifecycleNode":
        from .lifecycle_node import GraspLifecycleNode

        return GraspLifecycleNode
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> int:
    """Entry point (``vita-grasp-node``, ``vita-grasp node``, ``ros2 run vita_grasp grasp_node``).

    ``argv``: arguments without the program name (``sys.argv[1:]`` when None), ROS arguments after
    ``--ros-args``. Returns the exit status (0 after Ctrl-C, 1 when it cannot start, 2 for bad
    arguments).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    cut = args.index("--ros-args") if "--ros-args" in args else len(args)
    user_args, ros_part = args[:cut], args[cut:]
    if any(a in ("-h", "--help") for a in user_args):
        print(USAGE)
        return 0
    lifecycle = "--lifecycle" in user_args
    user_args = [a for a in user_args if a != "--lifecycle"]
    args = user_args + ros_part
    try:
        import rclpy
        from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
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
    try:
        rclpy.init(args=["vita-grasp-node"] + args)
    except Exception as e:  # noqa: BLE001 - malformed --ros-args
        print(f"vita-grasp-node: error: bad ROS arguments: {e}", file=sys.stderr)
        return 2
    node = None
    try:
        try:
            if lifecycle:
                from .lifecycle_node import GraspLifecycleNode as NodeClass
            else:
                from .node_base import GraspNode as NodeClass
        except ImportError as e:
            print(f"vita-grasp-node: error: {e} (the vita_grasp messages are built by "
                  "`make setup` / colcon build)", file=sys.stderr)
            return 2
        try:
            node = NodeClass()
        except StartupError as e:
            rclpy.logging.get_logger(NODE_NAME).error(str(e))
            return 1
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.stop()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
