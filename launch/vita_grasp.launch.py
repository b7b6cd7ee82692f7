"""Launch the VITA-Grasp node (and optionally RViz2).

    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=/path/best_model.pt
    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=... \
        image_topic:=/kinect2/qhd/image_color_rect
    ros2 launch vita_grasp vita_grasp.launch.py checkpoint:=... namespace:=robot use_rviz:=true

The same start-up without `launch` (e.g. in the PyPI-wheel venv, where launch/launch_ros are not
installable) is a plain command:

    vita-grasp-node --ros-args --params-file config/vita_grasp.yaml \
        -p checkpoint:=/path/best_model.pt -r image:=/rgb/image_raw -r __ns:=/robot

Only standard actions are used (DeclareLaunchArgument, Node, FindPackageShare), so the file runs on
Humble, Jazzy and Kilted. See docs/ros.md.
"""
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue
from launch_ros.substitutions import FindPackageShare


def generate_launch_description():
    share = FindPackageShare('vita_grasp')
    args = [
        DeclareLaunchArgument(
            'checkpoint', default_value='',
            description='Path of the trained checkpoint (best_model.pt); required'),
        DeclareLaunchArgument(
            'image_topic', default_value='/rgb/image_raw',
            description='Colour image topic (Azure Kinect: /rgb/image_raw; Kinect v2: '
                        '/kinect2/qhd/image_color_rect). With use_compressed:=true the node '
                        'subscribes <image_topic>/compressed.'),
        DeclareLaunchArgument(
            'namespace', default_value='',
            description='Namespace of the node and of its output topics'),
        DeclareLaunchArgument(
            'params_file',
            default_value=PathJoinSubstitution([share, 'config', 'vita_grasp.yaml']),
            description='Parameter file of the node'),
        DeclareLaunchArgument(
            'use_compressed', default_value='false',
            description='Subscribe <image_topic>/compressed (sensor_msgs/CompressedImage)'),
        DeclareLaunchArgument(
            'use_rviz', default_value='false',
            description='Also start RViz2 with config/vita_grasp.rviz'),
        DeclareLaunchArgument(
            'rviz_config',
            default_value=PathJoinSubstitution([share, 'config', 'vita_grasp.rviz']),
            description='RViz2 configuration'),
    ]
    image_topic = LaunchConfiguration('image_topic')
    node = Node(
        package='vita_grasp',
        executable='grasp_node',
        name='vita_grasp_node',
        namespace=LaunchConfiguration('namespace'),
        output='screen',
        emulate_tty=True,
        parameters=[
            LaunchConfiguration('params_file'),
            {
                # value_type=str: an empty or numeric-looking path stays a string
                'checkpoint': ParameterValue(LaunchConfiguration('checkpoint'), value_type=str),
                'use_compressed': ParameterValue(LaunchConfiguration('use_compressed'),
                                                 value_type=bool),
            },
        ],
        remappings=[
            ('image', image_topic),
            ('image/compressed', [image_topic, '/compressed']),
        ],
    )
    rviz = Node(
        package='rviz2',
        executable='rviz2',
        name='vita_grasp_rviz',
        namespace=LaunchConfiguration('namespace'),
        arguments=['-d', LaunchConfiguration('rviz_config')],
        condition=IfCondition(LaunchConfiguration('use_rviz')),
        output='log',
    )
    return LaunchDescription(args + [node, rviz])
