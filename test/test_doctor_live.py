"""``vita-grasp doctor`` on live topics: a camera published from this test process (fresh
stamps, 15 Hz), the doctor as a real process on the same isolated ROS domain."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from fixtures import CLI_TIMEOUT, REPO
from fixtures.camera_scenes import render

from vita_grasp_ros.testing import RosHarness, allocate_domain_id, ros_env

pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

pytestmark = [pytest.mark.ros, pytest.mark.slow]


class Camera:
    """Publishes colour, registered depth (16UC1) and CameraInfo with one header at ``rate``."""

    def __init__(self, harness: RosHarness, scene, rate: float = 15.0,
                 depth_frame: str = "rgb_camera_link"):
        from sensor_msgs.msg import CameraInfo, Image

        from vita_grasp_ros.bag import messages
        from vita_grasp_ros.image_conversions import numpy_to_image_msg

        self.msgs, self.numpy_to_image_msg = messages, numpy_to_image_msg
        self.scene, self.rate, self.depth_frame = scene, rate, depth_frame
        self.depth_mm = np.clip(np.nan_to_num(scene.depth_m * 1000), 0, 65535).astype(np.uint16)
        self.pubs = [harness.publisher(Image, "/rgb/image_raw"),
                     harness.publisher(Image, "/depth_to_rgb/image_raw"),
                     harness.publisher(CameraInfo, "/rgb/camera_info")]
        self.stop = threading.Event()
        self.sent = 0
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        """Frame k is stamped t0 + k / rate, the capture time of a camera with its own clock,
        and sent at that time (at once when this thread is late: a starved test process must
        not change the rate the stamps show)."""
        h, w = self.scene.rgb.shape[:2]
        t0, period = time.time_ns(), int(1e9 / self.rate)
        while not self.stop.is_set():
            t = t0 + self.sent * period
            hdr = self.msgs.make_header(t, "rgb_camera_link")
            dhdr = self.msgs.make_header(t, self.depth_frame)
            self.pubs[0].publish(self.numpy_to_image_msg(self.scene.rgb, "rgb8", hdr))
            self.pubs[1].publish(self.numpy_to_image_msg(self.depth_mm, "16UC1", dhdr))
            self.pubs[2].publish(self.msgs.camera_info_msg(self.scene.K, w, h, hdr))
            self.sent += 1
            self.stop.wait(max(0.0, (t0 + self.sent * period - time.time_ns()) / 1e9))

    def close(self):
        self.stop.set()
        self.thread.join(5)


def _doctor(env, *args, timeout=CLI_TIMEOUT):
    cmd = [sys.executable, "-m", "vita_grasp_ros.doctor.cli", "--json", "-", "--overlay", "",
           *args]
    p = subprocess.run(cmd, env=env, cwd=str(REPO), capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


@pytest.fixture
def domain(tmp_path):
    d = allocate_domain_id()
    return d, ros_env(tmp_path, d)


def test_live_camera_passes_and_a_wrong_depth_frame_fails(domain):
    d, env = domain
    scene = render((240, 320), seed=5, distance=0.65)
    ros = RosHarness(d)
    cam = Camera(ros, scene)
    try:
        rc, out, err = _doctor(env, "--duration", "2", "--timeout", "60")
        res = json.loads(out)
        status = {c["check"]: c["status"] for c in res["checks"]}
        # The camera's own checks pass. Rates and sync judge the transport as well: on a
        # machine loaded far beyond its cores, delivery stalls for seconds may warn there.
        transport = {"rates", "sync"}
        assert all(v == "pass" for k, v in status.items() if k not in transport), res
        assert all(status[k] in ("pass", "warn") for k in transport), res
        assert rc == (0 if set(status.values()) == {"pass"} else 1)
        assert res["source"] == "live" and res["frames_checked"] >= 1
        rates = next(c for c in res["checks"] if c["check"] == "rates")["values"]["hz"]
        assert 10 < rates["colour"] < 20, rates  # stamps: the camera's 15 Hz
        cam.depth_frame = "depth_camera_link"
        rc, out, err = _doctor(env, "--duration", "1.5", "--timeout", "60")
        res = json.loads(out)
        fid = next(c for c in res["checks"] if c["check"] == "frame ids")
        assert rc == 1 and fid["status"] == "fail" and "depth_camera_link" in fid["finding"]
    finally:
        cam.close()
        ros.close()


def test_live_without_a_camera_fails_after_the_timeout(domain):
    _, env = domain
    t0 = time.monotonic()
    rc, out, err = _doctor(env, "--timeout", "2", "--image", "/nobody/image_raw")
    res = json.loads(out)
    topics = res["checks"][0]
    assert rc == 1 and topics["status"] == "fail" and "/nobody/image_raw" in topics["finding"]
    assert time.monotonic() - t0 < CLI_TIMEOUT / 2  # the 2 s, not a hang (start-up aside)
