"""VITA-Grasp ROS 2 adapter: the grasp node, message conversions, bag tools and the demo.

A thin layer over :mod:`vita_grasp_core` (which never imports ROS): sensor_msgs -> numpy ->
``GraspPredictor`` -> ``vita_grasp/GraspArray``. Importing this package imports no ROS module.
Modules:

- :mod:`.image_conversions` - Image / CompressedImage <-> numpy (no cv_bridge)
- :mod:`.grasp_msgs` - Prediction -> GraspArray, RViz markers, the debug image
- :mod:`.detections` - grasps -> ``vision_msgs/Detection2DArray`` (optional)
- :mod:`.diagnostics` - run-time statistics -> ``/diagnostics``
- the node (``vita-grasp-node``, ``ros2 run vita_grasp grasp_node``): :mod:`.grasp_node` (entry
  point, signals), :mod:`.node_base` (the pipeline's stages, the plain node),
  :mod:`.lifecycle_node` (the managed node), :mod:`.node_params` (parameters),
  :mod:`.node_worker` (one-slot frame worker), :mod:`.node_sync` + :mod:`.node_depth` (depth and
  CameraInfo paired by stamp, 3-D poses), :mod:`.node_outputs` (the registry of output topics),
  :mod:`.node_support` (throttled logs, model loading, shutdown signals)
- :mod:`.bag` - rosbag2 make / play / record / eval / info (``vita-grasp bag``; docs/bags.md)
- :mod:`.demo` (steps), :mod:`.demo_replay` (node + bag replay), :mod:`.demo_report` (report) -
  ``make demo`` (docs/demo.md)
- :mod:`.commands` - the ``vita-grasp`` subcommands this package adds (``bag``, ``node``,
  ``demo``), registered in setup.py under the ``vita_grasp.commands`` entry-point group
"""
