"""``vita-grasp doctor``: the camera check's ROS side (message collection from a bag or live
topics, the command line). The checks themselves are ROS-free:
:mod:`vita_grasp_core.camera_check`."""
