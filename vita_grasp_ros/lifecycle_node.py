"""The managed (lifecycle) grasp node: ``vita-grasp-node --lifecycle``.

Same parameters, topics and behaviour as :class:`~vita_grasp_ros.node_base.GraspNode`, driven by
the standard lifecycle services (``<node>/change_state``, ``<node>/get_state``; ``ros2
lifecycle set``, nav2's lifecycle manager ...):

========================  =================================================================
construction              parameters declared and checked (a bad one: one line, exit 1)
``configure``             loads the model, declares the decoding parameters (defaults from
                          the checkpoint), creates the publishers and /diagnostics
``activate``              subscribes to the inputs, starts the worker, enables publishing,
                          offers the ``get_grasps`` service
``deactivate``            withdraws ``get_grasps``, unsubscribes and stops the worker; the
                          model stays loaded
``cleanup``               destroys the publishers and frees the model
``shutdown``              from any state: everything stopped and freed
========================  =================================================================

A failed ``configure`` (e.g. a missing checkpoint) logs one error line and leaves the node
*unconfigured* and running, so a manager can retry.
"""
from __future__ import annotations

import gc

from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn

from .node_base import GraspPipeline
from .node_params import NODE_NAME, StartupError


class GraspLifecycleNode(GraspPipeline, LifecycleNode):
    """The VITA-Grasp node as a managed node: each transition is one stage of
    :class:`~vita_grasp_ros.node_base.GraspPipeline` (the stages the plain node runs at start).
    Raises :class:`~vita_grasp_ros.node_params.StartupError` for bad parameters at
    construction."""

    def __init__(self, node_name: str = NODE_NAME, **kwargs):
        super().__init__(node_name, **kwargs)
        self._init_pipeline()
        self._state_label = "unconfigured"  # what diagnostics report (published when configured)
        self.get_logger().info("unconfigured: waiting for the configure transition")

    def _diagnostics_extra(self) -> dict:
        extra = super()._diagnostics_extra()
        extra["lifecycle_state"] = self._state_label
        return extra

    def _release(self) -> None:
        self.cleanup()
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    # ---------------------------------------------------------------- transitions
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.configure(lifecycle=True)
        except StartupError as e:
            self.get_logger().error(str(e))
            self._release()
            return TransitionCallbackReturn.FAILURE
        except Exception as e:  # noqa: BLE001 - never leave a half-configured node
            self.get_logger().error(f"configure failed: {type(e).__name__}: {e}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        self._state_label = "inactive"
        self.get_logger().info("configured: model loaded, publishers created (inactive)")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self.activate()
        except StartupError as e:  # e.g. an unreadable target_example file
            self.get_logger().error(str(e))
            self.deactivate()
            return TransitionCallbackReturn.FAILURE
        ret = super().on_activate(state)  # enables the lifecycle publishers
        self._state_label = "active"
        self._log_ready()
        return ret

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.deactivate()
        ret = super().on_deactivate(state)
        self._state_label = "inactive"
        self.get_logger().info("deactivated: not subscribed, model kept")
        return ret

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state_label = "unconfigured"
        self.get_logger().info("cleaned up: model freed")
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        self._state_label = "finalized"
        self.get_logger().info("shut down")
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.get_logger().error(f"error during a transition from {state.label}: releasing "
                                "everything (back to unconfigured)")
        self._release()
        self._state_label = "unconfigured"
        return TransitionCallbackReturn.SUCCESS
