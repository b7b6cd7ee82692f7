"""Launch the VITA-Grasp node (and optionally RViz2).

    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=/path/best_model.pt
    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=... \
        image_topic:=/kinect2/qhd/image_color_rect
    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=... namespace:=robot use_rviz:=true
    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=sim use_depth:=true approach:=table \
        depth_fallback:=true depth_topic:=/depth_to_rgb/image_raw \
        camera_info_topic:=/rgb/camera_info
    ros2 launch vita_grasp vita_grasp.launch.py params_file:=/path/my.yaml   # checkpoint in it

Precedence of the node's parameters: `checkpoint:=` / `use_compressed:=` / `use_depth:=` /
`approach:=` / `depth_fallback:=` given here > the params file > the node's defaults (decoding:
the checkpoint's).
Those arguments are passed to the node only when given, so a params file can set them.

`use_rviz:=true` where the rviz2 package is not installed logs a warning (WARNING level) and
starts the node alone: the check runs before anything is started, so nothing is left running on
its own. A `params_file:=` that does not exist is refused before anything starts (one line, exit
status 1), instead of launch_ros's warning and a node on defaults.

The same start-up without `launch` (e.g. in the PyPI-wheel venv, where launch/launch_ros are not
installable) is a plain command:

    vita-grasp-node --ros-args --params-file config/vita_grasp.yaml \
        -p checkpoint:=/path/best_model.pt -r image:=/rgb/image_raw -r __ns:=/robot

Only standard actions are used (DeclareLaunchArgument, OpaqueFunction, Node, FindPackageShare),
so the file runs on Humble, Jazzy and Kilted. See docs/ros.md.
"""
import os

import launch.logging
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare

from launch import LaunchDescription

try:  # the node's one name; a launch file copied out of the package still runs
    from vita_grasp_ros.node_params import NODE_NAME
except ImportError:
    NODE_NAME = 'vita_grasp_node'

_TRUE = ('true', '1', 'yes', 'on')
_FALSE = ('false', '0', 'no', 'off')


def parse_bool(name, text):
    """A launch argument's text as a bool ('true'/'false', '1'/'0', 'yes'/'no', 'on'/'off')."""
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"launch argument {name}:={text!r} is not a boolean (use true or false)")


APPROACHES = ('camera', 'table')


def node_parameters(params_file, checkpoint='', use_compressed='', use_depth='', approach='',
                    depth_fallback=''):
    """The node's `parameters`: the params file, then only the launch arguments that were given
    (an empty string = not given, so the params file's value stands)."""
    overrides = {}
    if checkpoint.strip():
        # value_type=str: a numeric-looking path stays a string
        overrides['checkpoint'] = ParameterValue(checkpoint, value_type=str)
    if use_compressed.strip():
        overrides['use_compressed'] = parse_bool('use_compressed', use_compressed)
    if use_depth.strip():
        overrides['use_depth'] = parse_bool('use_depth', use_depth)
    if approach.strip():
        if approach.strip() not in APPROACHES:
            raise ValueError(f"launch argument approach:={approach!r} is not one of "
                             f"{', '.join(APPROACHES)}")
        overrides['approach'] = approach.strip()
    if depth_fallback.strip():
        overrides['depth_fallback'] = parse_bool('depth_fallback', depth_fallback)
    return [params_file] + ([overrides] if overrides else [])


def remappings(image_topic, depth_topic='', camera_info_topic=''):
    """The node's remappings: the colour topic (and its /compressed), and the depth and
    CameraInfo topics when given (empty = the node's own `depth` and `camera_info`)."""
    out = [('image', image_topic), ('image/compressed', image_topic + '/compressed')]
    if depth_topic.strip():
        out.append(('depth', depth_topic.strip()))
    if camera_info_topic.strip():
        out.append(('camera_info', camera_info_topic.strip()))
    return out


def package_available(name):
    """True when the ament index knows package `name` (e.g. rviz2)."""
    from ament_index_python.packages import PackageNotFoundError, get_package_prefix

    try:
        get_package_prefix(name)
    except PackageNotFoundError:
        return False
    return True


def check_params_file(path):
    """The params file must exist (launch_ros would only warn and start the node on defaults)."""
    if not os.path.isfile(path):
        what = 'is a directory' if os.path.isdir(path) else 'does not exist'
        raise RuntimeError(f'params_file:={path} {what}: give an existing parameter file '
                           '(e.g. a copy of share/vita_grasp/config/vita_grasp.yaml)')
    return path


def launch_setup(context, *args, **kwargs):
    """Build the actions from the resolved launch arguments (runs before anything starts)."""
    def arg(name):
        return LaunchConfiguration(name).perform(context)

    namespace = arg('namespace')
    image_topic = arg('image_topic')
    params_file = check_params_file(arg('params_file'))
    node = Node(
        package='vita_grasp',
        executable='grasp_node',
        name=NODE_NAME,
        namespace=namespace,
        output='screen',
        emulate_tty=True,
        arguments=['--lifecycle'] if parse_bool('lifecycle', arg('lifecycle')) else [],
        parameters=node_parameters(params_file, arg('checkpoint'), arg('use_compressed'),
                                   arg('use_depth'), arg('approach'), arg('depth_fallback')),
        remappings=remappings(image_topic, arg('depth_topic'), arg('camera_info_topic')),
    )
    actions = [node]
    if parse_bool('use_rviz', arg('use_rviz')):
        if package_available('rviz2'):
            actions.append(Node(
                package='rviz2',
                executable='rviz2',
                name='vita_grasp_rviz',
                namespace=namespace,
                arguments=['-d', arg('rviz_config')],
                output='log',
            ))
        else:
            launch.logging.get_logger('launch.user').warning(
                'use_rviz:=true but the rviz2 package is not installed '
                '(apt install ros-$ROS_DISTRO-rviz2): starting the grasp node without RViz')
    return actions


def generate_launch_description():
    share = FindPackageShare('vita_grasp')
    args = [
        DeclareLaunchArgument(
            'checkpoint', default_value='',
            description='Path of the trained checkpoint (best_model.pt); required here or in '
                        'params_file (this argument wins when given)'),
        DeclareLaunchArgument(
            'image_topic', default_value='/rgb/image_raw',
            description='Colour image topic (Azure Kinect: /rgb/image_raw; Kinect v2: '
                        '/kinect2/qhd/image_color_rect). With use_compressed the node '
                        'subscribes <image_topic>/compressed.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node and of its output topics'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([share, 'config', 'vita_grasp.yaml']),
            description='Parameter file of the node'),
        DeclareLaunchArgument(
            'use_compressed', default_value='',
            description='true: subscribe <image_topic>/compressed (sensor_msgs/CompressedImage); '
                        'empty = as in params_file (default there: false)'),
        DeclareLaunchArgument(
            'use_depth', default_value='',
            description='true: also subscribe depth_topic and camera_info_topic and publish 3-D '
                        'poses; empty = as in params_file (default there: false)'),
        DeclareLaunchArgument(
            'depth_topic', default_value='',
            description='Depth image registered to the colour image (Azure Kinect: '
                        '/depth_to_rgb/image_raw); empty = the node\'s own "depth"'),
        DeclareLaunchArgument(
            'camera_info_topic', default_value='',
            description='CameraInfo of the colour image (Azure Kinect: /rgb/camera_info); '
                        'empty = the node\'s own "camera_info"'),
        DeclareLaunchArgument(
            'approach', default_value='',
            description='camera: poses approach along the optical axis; table: along the '
                        'normal of the table plane in the depth image (a tilted camera); '
                        'empty = as in params_file (default there: camera)'),
        DeclareLaunchArgument(
            'depth_fallback', default_value='',
            description='true: where the model has no grasp above its threshold, publish one '
                        'found in the depth image (quality 0); empty = as in params_file '
                        '(default there: false)'),
        DeclareLaunchArgument(
            'lifecycle', default_value='false',
            description='Run the managed (lifecycle) node: configure/activate it with '
                        'ros2 lifecycle set or a lifecycle manager'),
        DeclareLaunchArgument(
            'use_rviz', default_value='false',
            description='Also start RViz2 with rviz_config (skipped with a warning when rviz2 '
                        'is not installed)'),
        DeclareLaunchArgument(
            'rviz_config',
            default_value=PathJoinSubstitution([share, 'config', 'vita_grasp.rviz']),
            description='RViz2 configuration'),
    ]
    return LaunchDescription(args + [OpaqueFunction(function=launch_setup)])
