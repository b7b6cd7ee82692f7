"""The grasp node's outputs: a registry of output objects, one per published topic.

Each output is a :class:`NodeOutput` subclass with its own parameters (``parameters``, declared
with the node's and checked by the same :meth:`ParamSpec.check`) and its own publisher(s). The node
creates one instance of every registered output when it configures and calls
:meth:`NodeOutput.publish` with the :class:`FrameResult` of every processed frame, in registration
order (``grasps`` first). A failing output is logged (throttled) and never loses the others'
results. Adding a topic is one class and one :func:`register_output`::

    @register_output
    class GraspCount(NodeOutput):
        name = "grasp_count"
        parameters = (ParamSpec("publish_grasp_count", bool, True, "Publish `grasp_count`."),)

        def __init__(self, node, publishers):
            super().__init__(node, publishers)
            from std_msgs.msg import UInt32
            self.msg_type = UInt32
            self.pub = publishers.create(UInt32, "grasp_count", 10)

        def publish(self, result, settings):
            if settings.publish_grasp_count:
                self.pub.publish(self.msg_type(data=len(result.grasps_msg.grasps)))

The built-in outputs: ``grasps`` (:class:`GraspsOutput`), ``detections``, ``markers``,
``debug_image``. No rclpy import at module level (message types are imported when an output is
created).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from . import grasp_msgs
from .detections import grasps_to_detections, load_vision_msgs
from .node_params import (
    DECODING_PARAMETERS,
    STARTUP_PARAMETERS,
    ParameterTable,
    ParamSpec,
)


@dataclass(frozen=True)
class FrameResult:
    """Everything the node knows about one processed frame (what outputs publish from).

    Attributes:
        header: ``std_msgs/Header`` of the results (the image's stamp, its frame_id or the
            ``frame_id`` parameter).
        source_header: the image message's own header.
        rgb: ``HxWx3`` uint8 RGB frame.
        prediction: the core's :class:`~vita_grasp_core.predictor.Prediction`.
        poses: one :class:`~vita_grasp_core.grasp3d.GraspPose` or None per grasp, or None
            without depth.
        grasps_msg: the ``vita_grasp/GraspArray`` of the frame (published by ``grasps``).
        depth: the :class:`~vita_grasp_ros.node_depth.DepthUse` (which depth frame and
            CameraInfo were paired with the frame), or None without depth.
        frame: the node's ``Frame`` it came from (arrival time; which frame is the newest).
    """

    header: Any
    source_header: Any
    rgb: Any
    prediction: Any
    poses: Any
    grasps_msg: Any
    depth: Any = None
    frame: Any = None

    @property
    def has_pose(self) -> bool:
        return self.poses is not None and any(p is not None for p in self.poses)


class Publishers:
    """How outputs create and destroy publishers: plain or lifecycle (managed node)."""

    def __init__(self, node, lifecycle: bool = False):
        self._node = node
        self._lifecycle = lifecycle
        self.created: list = []

    def create(self, msg_type, topic: str, depth: int):
        make = (self._node.create_lifecycle_publisher if self._lifecycle
                else self._node.create_publisher)
        pub = make(msg_type, topic, depth)
        self.created.append(pub)
        return pub

    def destroy_all(self) -> None:
        destroy = (self._node.destroy_lifecycle_publisher if self._lifecycle
                   else self._node.destroy_publisher)
        for pub in self.created:
            destroy(pub)
        self.created = []


class NodeOutput:
    """One output of the node (subclass, set ``name`` and ``parameters``, register).

    Class attributes:
        name: short name (logs, the throttle key of its failures).
        parameters: its :class:`ParamSpec` s (run-time unless ``read_only``); their values are
            attributes of the ``settings`` passed to :meth:`publish`.
    """

    name: ClassVar[str] = ""
    parameters: ClassVar[tuple[ParamSpec, ...]] = ()

    def __init__(self, node, publishers: Publishers):
        """Create the publishers (``publishers.create(type, topic, depth)``); ``node`` is the
        rclpy node (its logger, clock ...)."""
        self.node = node

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this output cannot run here (e.g. a missing optional package), or None."""
        return None

    def publish(self, result: FrameResult, settings) -> None:
        """Publish what this output makes of ``result`` (``settings``: run-time values)."""
        raise NotImplementedError

    def topics(self) -> list[str]:
        """Resolved topic names of its publishers (for the start-up log)."""
        return [p.topic_name for p in vars(self).values() if hasattr(p, "topic_name")]


#: The registered outputs, in publishing order.
OUTPUTS: dict[str, type[NodeOutput]] = {}


def register_output(cls: type[NodeOutput]) -> type[NodeOutput]:
    """Register an output class (a decorator); its parameters join the node's table."""
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in OUTPUTS and OUTPUTS[cls.name] is not cls:
        raise ValueError(f"an output named {cls.name!r} is already registered")
    OUTPUTS[cls.name] = cls
    return cls


def unregister_output(name: str) -> None:
    OUTPUTS.pop(name, None)


def parameter_table(outputs=None) -> ParameterTable:
    """The node's whole parameter table: start-up, the outputs' (default: the registered ones),
    decoding."""
    outputs = OUTPUTS.values() if outputs is None else outputs
    return ParameterTable(list(STARTUP_PARAMETERS)
                          + [spec for cls in outputs for spec in cls.parameters]
                          + list(DECODING_PARAMETERS))


# ---------------------------------------------------------------- the built-in outputs
@register_output
class GraspsOutput(NodeOutput):
    """``grasps`` (``vita_grasp/GraspArray``, reliable, keep last 10): every processed frame."""

    name = "grasps"

    def __init__(self, node, publishers):
        super().__init__(node, publishers)
        from vita_grasp.msg import GraspArray

        self.pub = publishers.create(GraspArray, "grasps", 10)

    def publish(self, result, settings):
        self.pub.publish(result.grasps_msg)


@register_output
class DetectionsOutput(NodeOutput):
    """``detections`` (``vision_msgs/Detection2DArray``), when vision_msgs is installed."""

    name = "detections"
    parameters = (ParamSpec("publish_detections", bool, True, "Also publish `detections` "
                            "(vision_msgs/Detection2DArray) when vision_msgs is installed."),)

    @classmethod
    def unavailable(cls):
        if load_vision_msgs() is None:
            return ("vision_msgs is not installed: the `detections` topic "
                    "(vision_msgs/Detection2DArray) is off (install ros-$ROS_DISTRO-vision-msgs "
                    "to get it)")
        return None

    def __init__(self, node, publishers):
        super().__init__(node, publishers)
        self.vm = load_vision_msgs()
        self.pub = publishers.create(self.vm.Detection2DArray, "detections", 10)

    def publish(self, result, settings):
        if settings.publish_detections:
            self.pub.publish(grasps_to_detections(result.prediction.grasps, result.header,
                                                  result.poses, self.vm))


@register_output
class MarkersOutput(NodeOutput):
    """``markers`` (``visualization_msgs/MarkerArray``): frames with at least one 3-D pose."""

    name = "markers"

    def __init__(self, node, publishers):
        super().__init__(node, publishers)
        from visualization_msgs.msg import MarkerArray

        self.pub = publishers.create(MarkerArray, "markers", 2)

    def publish(self, result, settings):
        if result.has_pose:
            markers = grasp_msgs.grasps_to_markers(result.grasps_msg)
            if markers is not None:
                self.pub.publish(markers)


@register_output
class DebugImageOutput(NodeOutput):
    """``debug/heatmap`` (bgr8): every ``debug_every_n``-th frame, only while subscribed."""

    name = "debug_image"
    parameters = (
        ParamSpec("publish_debug", bool, True, "Publish `debug/heatmap` (bgr8 heatmap overlay "
                  "+ rectangles) when it has subscribers."),
        ParamSpec("debug_every_n", int, 1, "Publish the debug image for every n-th processed "
                  "frame.", range=(1, 1000)),
    )

    def __init__(self, node, publishers):
        super().__init__(node, publishers)
        from sensor_msgs.msg import Image

        self.pub = publishers.create(Image, "debug/heatmap", 2)
        self._count = 0

    def publish(self, result, settings):
        self._count += 1
        if (settings.publish_debug and self._count % max(1, int(settings.debug_every_n)) == 0
                and self.pub.get_subscription_count() > 0):
            self.pub.publish(grasp_msgs.debug_image_msg(result.rgb, result.prediction,
                                                        result.header))
