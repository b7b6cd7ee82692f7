"""rosbag2 tools of VITA-Grasp (``vita-grasp bag make|play|record|eval|info``; docs/bags.md).

Modules, each importing only those below it in this list:

- :mod:`.types` - default topics and type names, :class:`BagError`, the rosbags typestore,
  ``import_msg_type`` (``pkg/msg/Type`` -> rclpy class)
- :mod:`.io` - :class:`BagWriter` / :class:`BagReader` (.mcap, .db3, rosbag2 directories)
- :mod:`.messages` - messages in and out of bags, built with the node's own builders
  (:mod:`vita_grasp_ros.grasp_msgs`, :mod:`vita_grasp_ros.image_conversions`)
- :mod:`.make` - data set -> evaluation bag
- :mod:`.play`, :mod:`.record` - rclpy publishers / subscriptions (need ROS 2)
- :mod:`.evaluate` - rectangle metric, latency and drops of grasps against a bag's ground truth
- :mod:`.cli` - the command line

Importing the package or :mod:`.types`, :mod:`.io`, :mod:`.evaluate` and :mod:`.cli` needs
neither rclpy nor any ROS message package (``bag eval`` and ``bag info`` run without ROS).
"""
