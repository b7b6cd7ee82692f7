"""VITA-Grasp ROS 2 adapter: the grasp node, message conversions, bag tools and the demo.

A thin layer over :mod:`vita_grasp_core` (which never imports ROS): sensor_msgs -> numpy ->
``GraspPredictor`` -> ``vita_grasp/GraspArray``. Importing this package imports no ROS module.
Modules:

- :mod:`.image_conversions` - Image / CompressedImage <-> numpy (no cv_bridge)
- :mod:`.grasp_msgs` - Prediction -> GraspArray, RViz markers, the debug image
- :mod:`.detections` - grasps -> ``vision_msgs/Detection2DArray`` (optional)
- :mod:`.diagnostics` - run-time statistics -> ``/diagnostics``
- :mod:`.node_params`, :mod:`.node_support`, :mod:`.node_base`, :mod:`.lifecycle_node`,
  :mod:`.grasp_node` - the node (``vita-grasp-node``, ``ros2 run vita_grasp grasp_node``)
- :mod:`.bag` - rosbag2 make / play / record / eval / info (``vita-grasp bag``; docs/bags.md)
- :mod:`.demo` (steps), :mod:`.demo_replay` (node + bag replay), :mod:`.demo_report` (report) -
  ``make demo`` (docs/demo.md)
- :mod:`.commands` - the ``vita-grasp`` subcommands this package adds (``bag``, ``node``,
  ``demo``), registered in setup.py under the ``vita_grasp.commands`` entry-point group
"""
