"""The node's depth path is the core's (vita_grasp_core.depth_poses): with ``approach:=table`` the
depth check judges the grasp along the table normal, in the node as in the API."""
from __future__ import annotations

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from ros_depth_frames import CX, CY, FX, FY  # noqa: E402
from test_depth_poses import tilted_box  # noqa: E402
from test_ros_node_depth import NS, _send_depth, setup  # noqa: E402, F401 (the node fixture)

from vita_grasp_core.depth_fallback import FallbackSettings  # noqa: E402
from vita_grasp_core.depth_poses import depth_poses  # noqa: E402
from vita_grasp_core.grasp_depth import DepthCheckSettings  # noqa: E402
from vita_grasp_ros.testing import START_TIMEOUT  # noqa: E402

pytestmark = [pytest.mark.ros, pytest.mark.slow]

K = np.array([[FX, 0.0, CX], [0.0, FY, CY], [0.0, 0.0, 1.0]])  # ros_depth_frames.camera_info


def test_the_node_checks_along_the_table_normal_as_the_api_does(setup, request):  # noqa: F811
    """A box seen 30 degrees off vertical; the model has no grasp (threshold 1), the depth
    fallback proposes one on the box. The published opening and pose are the core's for the
    same frame, and they differ between the camera axis and the table normal."""
    depth, _, _, _ = tilted_box(30.0, K=K)
    d = np.nan_to_num(depth * 1000.0).round().astype(np.uint16)  # 16UC1 [mm]
    metres = np.where(d > 0, d / 1000.0, np.nan)

    name = f"{NS}/vita_grasp_node"
    request.addfinalizer(lambda: setup.h.set_params(
        name, START_TIMEOUT, score_threshold=0.0, depth_fallback=False, approach="camera"))
    published = {}
    for approach in ("camera", "table"):
        results = setup.h.set_params(name, START_TIMEOUT, score_threshold=1.0,
                                     depth_fallback=True, approach=approach)
        assert all(r.successful for r in results), [r.reason for r in results]
        (g,) = _send_depth(setup, d, seed=3)[0].grasps
        core = depth_poses([], metres, K, (480, 640), check=DepthCheckSettings(),
                           approach=approach, fallback=FallbackSettings())
        pose = core.poses[0]
        assert g.quality == 0.0 and g.has_pose
        assert g.width_m == pytest.approx(pose.width_m, abs=1e-4)
        p, q = g.pose.position, g.pose.orientation
        assert [p.x, p.y, p.z] == pytest.approx(list(pose.position), abs=1e-4)
        assert abs(float(np.dot([q.x, q.y, q.z, q.w], pose.quaternion))) == \
            pytest.approx(1.0, abs=1e-6)
        published[approach] = g.width_m
    # along the normal the box's visible side is not across the closing line
    assert abs(published["table"] - published["camera"]) > 0.004
