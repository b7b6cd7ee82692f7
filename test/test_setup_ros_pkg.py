"""Tests of the set-up and the ROS package `vita_grasp`: messages, rclpy transport, colcon build.

The messages must match docs CONVENTIONS section 6 exactly. These tests need the venv built by
`make setup` (messages generated and installed into the venv prefix); they fail, not skip, when it
is missing, since a skipped check would hide a broken set-up.

Deselect the colcon build (about 10-20 s on 2 cores) with `-m "not colcon"`.
"""
import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fixtures import CLI_TIMEOUT

from vita_grasp_ros.testing import allocate_domain_id  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.prefix)

# CONVENTIONS section 6, in declaration order.
GRASP_FIELDS = {
    'x': 'float',
    'y': 'float',
    'angle': 'float',
    'width': 'float',
    'height': 'float',
    'quality': 'float',
    'object_score': 'float',
    'has_pose': 'boolean',
    'pose': 'geometry_msgs/Pose',
    'width_m': 'float',
    'target_id': 'string',
}
GRASP_TARGET_FIELDS = {
    'kind': 'uint8',
    'class_id': 'string',
    'min_score': 'float',
    'box': 'sensor_msgs/RegionOfInterest',
    'mask': 'sensor_msgs/Image',
    'point': 'geometry_msgs/Point',
    'example': 'sensor_msgs/Image',
}
GET_GRASPS_REQUEST = {'frame': 'uint8', 'max_grasps': 'uint32', 'timeout': 'float',
                      'target': 'vita_grasp/GraspTarget'}
GET_GRASPS_RESPONSE = {'success': 'boolean', 'message': 'string',
                       'grasps': 'vita_grasp/GraspArray'}
GRASP_ARRAY_FIELDS = {
    'header': 'std_msgs/Header',
    'image_width': 'uint32',
    'image_height': 'uint32',
    'grasps': 'sequence<vita_grasp/Grasp>',
    'depth_stamp': 'builtin_interfaces/Time',
}
# Variables that would point a subprocess at another ROS install or venv.
FOREIGN_ENV = ('PYTHONPATH', 'AMENT_PREFIX_PATH', 'CMAKE_PREFIX_PATH', 'COLCON_PREFIX_PATH',
               'LD_LIBRARY_PATH', '_ROS_WHEELS_BOOTSTRAP_COMPLETE', 'VIRTUAL_ENV', 'ROS_DISTRO')


def _msgs():
    try:
        from vita_grasp.msg import Grasp, GraspArray
    except ImportError as exc:  # a failed set-up must not pass as a skip
        pytest.fail(f'vita_grasp.msg is not importable ({exc}): run `make setup`')
    return Grasp, GraspArray


@pytest.fixture
def ros_env(tmp_path, monkeypatch):
    """Isolated ROS 2 environment: own domain id, localhost discovery, logs under tmp_path."""
    env = {
        'ROS_DOMAIN_ID': str(allocate_domain_id()),
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_HOME': str(tmp_path / 'ros_home'),
        'ROS_LOG_DIR': str(tmp_path / 'ros_log'),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _sample_array(n=3):
    """A GraspArray with non-default values in every field (float32-exact numbers)."""
    Grasp, GraspArray = _msgs()
    msg = GraspArray()
    msg.header.stamp.sec = 1_700_000_000
    msg.header.stamp.nanosec = 123_456_789
    msg.header.frame_id = 'rgb_camera_link'
    msg.image_width = 1280
    msg.image_height = 720
    for i in range(n):
        g = Grasp(x=100.5 + i, y=200.25, angle=-0.5 * i, width=40.0, height=20.0,
                  quality=1.0 - 0.125 * i, object_score=0.75, has_pose=(i % 2 == 0),
                  width_m=0.0625 if i % 2 == 0 else 0.0)
        g.pose.position.z = 0.5 + i
        g.pose.orientation.z = math.sin(0.25)
        g.pose.orientation.w = math.cos(0.25)
        msg.grasps.append(g)
    return msg


# --- (a) message definitions -------------------------------------------------------------------

def test_messages_have_exactly_the_conventions_fields():
    Grasp, GraspArray = _msgs()
    assert Grasp.get_fields_and_field_types() == GRASP_FIELDS
    assert list(Grasp.get_fields_and_field_types()) == list(GRASP_FIELDS)
    assert GraspArray.get_fields_and_field_types() == GRASP_ARRAY_FIELDS
    assert list(GraspArray.get_fields_and_field_types()) == list(GRASP_ARRAY_FIELDS)
    g = Grasp()
    assert (g.has_pose, g.width_m, g.pose.orientation.w, g.target_id) == (False, 0.0, 1.0, '')


def test_target_message_and_service_have_the_conventions_fields():
    try:
        from vita_grasp.msg import GraspTarget
        from vita_grasp.srv import GetGrasps
    except ImportError as exc:
        pytest.fail(f'vita_grasp.msg.GraspTarget / vita_grasp.srv.GetGrasps missing ({exc}): '
                    'run `make setup`')
    assert list(GraspTarget.get_fields_and_field_types().items()) == list(
        GRASP_TARGET_FIELDS.items())
    assert (GraspTarget.NODE, GraspTarget.SCENE, GraspTarget.DETECTIONS, GraspTarget.BOX,
            GraspTarget.MASK, GraspTarget.POINT, GraspTarget.EXAMPLE) == tuple(range(7))
    assert list(GetGrasps.Request.get_fields_and_field_types().items()) == list(
        GET_GRASPS_REQUEST.items())
    assert list(GetGrasps.Response.get_fields_and_field_types().items()) == list(
        GET_GRASPS_RESPONSE.items())
    assert (GetGrasps.Request.NEWEST, GetGrasps.Request.NEXT) == (0, 1)
    req = GetGrasps.Request()
    assert (req.frame, req.max_grasps, req.timeout, req.target.kind) == (0, 0, 0.0, 0)


def test_installed_messages_are_built_from_this_checkout():
    """The venv's share/vita_grasp/msg must hold the repo's msg files (else: run make setup)."""
    for name in ('msg/Grasp.msg', 'msg/GraspArray.msg', 'msg/GraspTarget.msg',
                 'srv/GetGrasps.srv'):
        installed = VENV / 'share' / 'vita_grasp' / name
        assert installed.is_file(), f'{installed} missing: run make setup'
        assert installed.read_text() == (REPO / name).read_text(), \
            f'{installed} differs from {name}: run make setup'


def test_setup_status_is_up_to_date():
    """After `make setup` every step's stamp matches its inputs (what a second run skips)."""
    if not (VENV / '.vita_grasp_stamps').is_dir():
        pytest.skip('this interpreter is not a venv made by scripts/setup.sh')
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env['VITA_GRASP_VENV'] = str(VENV)
    res = subprocess.run(['bash', str(REPO / 'scripts' / 'setup.sh'), 'status'], env=env,
                         capture_output=True, text=True, timeout=CLI_TIMEOUT)
    assert res.returncode == 0, res.stdout + res.stderr


# --- (b) serialization -------------------------------------------------------------------------

def test_grasp_array_round_trips_through_rclpy_serialization():
    from rclpy.serialization import deserialize_message, serialize_message
    _, GraspArray = _msgs()
    msg = _sample_array()
    data = serialize_message(msg)
    assert isinstance(data, bytes) and len(data) > 0
    back = deserialize_message(data, GraspArray)
    assert back == msg
    assert back.grasps[1].angle == -0.5 and back.grasps[2].quality == 0.75
    assert back.header.frame_id == 'rgb_camera_link' and back.image_height == 720


def test_rosbags_reads_what_rclpy_writes_with_the_same_type_hash():
    """The bag tools (rosbags, registering these .msg files) agree with rosidl on the wire."""
    import json

    from rclpy.serialization import deserialize_message, serialize_message
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    _, GraspArray = _msgs()
    store = get_typestore(Stores.ROS2_KILTED)
    types = {}
    for name in ('Grasp', 'GraspArray'):
        types.update(get_types_from_msg((REPO / 'msg' / f'{name}.msg').read_text(),
                                        f'vita_grasp/msg/{name}'))
    store.register(types)
    for name in ('Grasp', 'GraspArray'):
        desc = json.loads((VENV / 'share' / 'vita_grasp' / 'msg' / f'{name}.json').read_text())
        rosidl_hash = desc['type_hashes'][0]['hash_string']
        assert store.hash_rihs01(f'vita_grasp/msg/{name}') == rosidl_hash

    msg = _sample_array()
    data = serialize_message(msg)
    rb = store.deserialize_cdr(data, 'vita_grasp/msg/GraspArray')
    assert rb.image_width == 1280 and len(rb.grasps) == 3
    assert rb.grasps[0].has_pose and rb.grasps[0].width_m == pytest.approx(0.0625)
    rb_data = bytes(store.serialize_cdr(rb, 'vita_grasp/msg/GraspArray'))
    assert deserialize_message(rb_data, GraspArray) == msg


# --- (c) transport ------------------------------------------------------------------------------

def test_publish_and_receive_grasp_array_in_one_process(ros_env):
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    _, GraspArray = _msgs()
    sent = _sample_array(5)
    received = []
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    node = None
    try:
        node = rclpy.create_node('test_vita_grasp_msgs', context=ctx)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        node.create_subscription(GraspArray, 'grasps', received.append, qos)
        pub = node.create_publisher(GraspArray, 'grasps', qos)
        executor = SingleThreadedExecutor(context=ctx)
        executor.add_node(node)
        deadline = time.monotonic() + 20.0
        next_pub = 0.0
        while not received and time.monotonic() < deadline:
            if time.monotonic() >= next_pub:  # until discovery has matched the pair
                pub.publish(sent)
                next_pub = time.monotonic() + 0.2
            executor.spin_once(timeout_sec=0.05)
        executor.shutdown()
        assert received, 'no GraspArray received within 20 s'
        assert received[0] == sent
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown(context=ctx)


# --- (d) colcon build ---------------------------------------------------------------------------

@pytest.mark.colcon
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_colcon_build_of_the_package(tmp_path, ros_env):
    colcon = VENV / 'bin' / 'colcon'
    assert colcon.is_file(), f'{colcon} missing: run make setup'
    ws = tmp_path / 'ws'
    base = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    env = dict(base, VITA_GRASP_VENV=str(VENV), COLCON_HOME=str(tmp_path / 'colcon_home'),
               **ros_env)
    t0 = time.monotonic()
    res = subprocess.run(['bash', str(REPO / 'scripts' / 'setup.sh'), 'colcon', str(ws)],
                         env=env, capture_output=True, text=True, timeout=540)
    took = time.monotonic() - t0
    assert res.returncode == 0, f'colcon build failed:\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}'

    prefix = ws / 'install' / 'vita_grasp'
    assert (prefix / 'share' / 'vita_grasp' / 'package.xml').is_file()
    index = prefix / 'share' / 'ament_index' / 'resource_index'
    assert (index / 'packages' / 'vita_grasp').is_file()
    msg_modules = list(prefix.glob('lib/python3*/site-packages/vita_grasp/msg/_grasp_array.py'))
    assert msg_modules, 'generated Python message module not installed'
    node_exe = prefix / 'lib' / 'vita_grasp' / 'grasp_node'
    assert node_exe.is_file() and os.access(node_exe, os.X_OK)
    shebang = node_exe.read_text().splitlines()[0]
    assert shebang.startswith('#!/'), shebang
    assert Path(shebang[2:]).parent == VENV / 'bin', f'not this venv\'s python: {shebang}'
    assert 'vita_grasp_ros.grasp_node' in node_exe.read_text()

    # A shell that sources the workspace (as on a robot) finds the package through the ament
    # index and imports the workspace's message module; no other environment is passed.
    check = (
        'import vita_grasp, sys\n'
        'from vita_grasp.msg import GraspArray\n'
        'from ament_index_python.packages import get_package_prefix\n'
        'print(get_package_prefix("vita_grasp"))\n'
        'print(vita_grasp.__file__)\n'
    )
    shell_env = {'PATH': '/usr/bin:/bin', 'HOME': str(tmp_path), **ros_env}
    res = subprocess.run(['bash', '-c', f'. "{ws}/install/setup.bash" && python -c \'{check}\''],
                         env=shell_env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=CLI_TIMEOUT)
    assert res.returncode == 0, res.stdout + res.stderr
    pkg_prefix, msg_file = res.stdout.strip().splitlines()[-2:]
    assert Path(pkg_prefix) == prefix
    assert Path(msg_file).is_relative_to(prefix)
    print(f'colcon build took {took:.1f} s')
    shutil.rmtree(ws / 'build', ignore_errors=True)  # keep tmp small
