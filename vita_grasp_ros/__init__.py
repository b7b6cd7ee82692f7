"""VITA-Grasp ROS 2 adapter: the ``grasp_node`` and message conversions.

A thin layer over :mod:`vita_grasp_core` (which never imports ROS): sensor_msgs -> numpy ->
``GraspPredictor`` -> ``vita_grasp/GraspArray``. Modules:

- :mod:`.image_conversions` - Image / CompressedImage <-> numpy (no cv_bridge)
- :mod:`.grasp_msgs` - Prediction -> GraspArray, RViz markers, the debug image
- :mod:`.diagnostics` - run-time statistics -> ``/diagnostics``
- :mod:`.grasp_node` - the node (``vita-grasp-node``, ``ros2 run vita_grasp grasp_node``)
"""
