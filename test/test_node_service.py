"""The node's get_grasps service logic without a running node: request checks and which frames a
waiting NEXT request makes the worker predict with ``stream: false`` (only the one that answers
it: a frame predicted for nobody delays the next request by an inference time)."""
from __future__ import annotations

import math
import threading
import time
from types import SimpleNamespace as NS

import pytest

pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.srv")

from vita_grasp_ros.node_service import GraspRequests, check_request  # noqa: E402
from vita_grasp_ros.testing import WAIT_TIMEOUT, wait_for  # noqa: E402


def test_check_request_names_the_bad_field():
    from vita_grasp.srv import GetGrasps

    assert check_request(GetGrasps.Request()) is None
    assert check_request(GetGrasps.Request(frame=1, max_grasps=1000, timeout=60.0)) is None
    for req, why in ((GetGrasps.Request(frame=2), "frame must be 0 (NEWEST) or 1 (NEXT)"),
                     (GetGrasps.Request(max_grasps=1001), "max_grasps 1001 is above 1000"),
                     (GetGrasps.Request(timeout=-1.0), "timeout must be in [0, 60]"),
                     (GetGrasps.Request(timeout=math.inf), "timeout must be in [0, 60]")):
        assert why in check_request(req)


def _node():
    return NS(result_cv=threading.Condition(), last_result=None, image_sub=None, executor=None)


def test_only_the_frame_that_answers_a_next_request_is_predicted():
    node = _node()
    requests = GraspRequests(node)
    requests.service = object()  # "offered": waits run until answered or timed out
    before = NS(arrival=time.monotonic())
    assert not requests.wants_frames(before)  # nobody waits
    out = {}
    waiter = threading.Thread(target=lambda: out.update(r=requests._next_result(30.0)))
    waiter.start()
    try:
        wait_for(lambda: requests._next_since, WAIT_TIMEOUT, what="the NEXT request to wait")
        assert not requests.wants_frames(before), "a frame from before the request"
        first, second = NS(arrival=time.monotonic() + 1), NS(arrival=time.monotonic() + 2)
        assert requests.wants_frames(first)
        with node.result_cv:  # the worker's result: the request is answered from now on
            node.last_result = NS(frame=first)
            assert not requests.wants_frames(second), "a frame after the answer"
            node.result_cv.notify_all()
        waiter.join(WAIT_TIMEOUT)
        assert out["r"].frame is first
        assert not requests._next_since and not requests.wants_frames(second)
    finally:
        requests.service = None  # ends the wait if an assertion failed first
        waiter.join(10)


def test_next_request_times_out_with_one_line():
    requests = GraspRequests(_node())
    requests.service = object()
    t0 = time.monotonic()
    msg = requests._next_result(0.3)
    assert time.monotonic() - t0 < 10  # returns after its 0.3 s, not the next frame's
    assert msg == "no new frame arrived on image within 0.3 s"
    assert not requests._next_since
