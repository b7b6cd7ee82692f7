"""Pairing side inputs with colour frames by stamp (vita_grasp_ros.node_sync) and the one-slot
frame worker (vita_grasp_ros.node_worker), without ROS: the exact stamp wins even when it arrives
after the frame (a bounded wait for it), the nearest is used only within the tolerance and never
from before a newer one nearer the image, a silent stream costs no wait, the reasons never blame
identical stamps. The same through a real node process: test_ros_node_depth.py."""
from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from vita_grasp_ros.node_sync import StampedInput
from vita_grasp_ros.node_worker import FrameWorker

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000


def _msg(stamp_ns: int, tag: str = ""):
    return SimpleNamespace(header=SimpleNamespace(
        stamp=SimpleNamespace(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)),
        tag=tag)


#: A wait only a failure runs into, and the bound for "returned without waiting for it": far
#: apart, so that a test process starved for seconds on a loaded machine cannot fail them.
LONG = 60.0
SOON = 10.0


def _deadline(s: float) -> float:
    return time.monotonic() + s


def test_exact_stamp_already_there_wins_without_waiting():
    s = StampedInput("depth frame")
    for k in (-66, -33, 0):
        s.add(_msg(T0 + k * MS, str(k)))
    p = s.open(T0)
    m = s.resolve(p, 0.05, _deadline(LONG))
    assert m.msg.tag == "0" and m.exact and m.offset_s == 0.0
    assert m.waited_s < SOON


def test_exact_stamp_arriving_after_the_frame_is_waited_for():
    """A driver publishing colour and depth back to back on a loaded machine: the depth frame of
    the image's stamp comes 150 ms after the image; an older one (33 ms, within the tolerance)
    is already there and must not be used."""
    s = StampedInput("depth frame")
    s.add(_msg(T0 - 33 * MS, "old"))
    p = s.open(T0)
    threading.Timer(0.15, s.add, args=(_msg(T0, "exact"),)).start()
    m = s.resolve(p, 0.05, _deadline(LONG))
    assert m.msg.tag == "exact" and m.exact
    assert 0.1 <= m.waited_s < SOON


def test_newer_message_settles_the_wait_and_the_nearest_within_tolerance_is_used():
    """Unsynchronised streams (no exact stamp ever): the first message stamped after the image
    ends the wait; the nearer one is used."""
    s = StampedInput("depth frame")
    s.add(_msg(T0 - 20 * MS, "before"))
    p = s.open(T0)
    s.add(_msg(T0 + 13 * MS, "after"))
    m = s.resolve(p, 0.05, _deadline(LONG))
    assert m.msg.tag == "after" and m.offset_s == pytest.approx(0.013)
    assert not m.exact and m.waited_s < SOON


def test_never_an_older_message_when_a_newer_one_is_nearer():
    """With a generous tolerance the previous scene's depth (500 ms old) was used: not any more
    while a nearer one exists."""
    s = StampedInput("depth frame")
    s.add(_msg(T0 - 500 * MS, "previous scene"))
    p = s.open(T0)
    s.add(_msg(T0 + 2 * MS, "this scene"))
    assert s.resolve(p, 0.9, _deadline(5.0)).msg.tag == "this scene"


def test_outside_the_tolerance_is_refused_and_the_reason_says_the_streams_are_out_of_step():
    s = StampedInput("depth frame")
    p = s.open(T0)
    s.add(_msg(T0 + 200 * MS, "late stamp"))
    m = s.resolve(p, 0.05, _deadline(5.0))
    assert m.msg is None
    assert "nearest depth frame stamp is 200.0 ms newer" in m.reason
    assert "not in step" in m.reason


def test_timeout_with_only_older_frames_does_not_blame_the_stamps():
    s = StampedInput("depth frame")
    s.add(_msg(T0 - 100 * MS))
    p = s.open(T0)
    m = s.resolve(p, 0.05, _deadline(0.2))
    assert m.msg is None and 0.15 <= m.waited_s < SOON
    assert "arrives late or not at all" in m.reason and "depth_wait" in m.reason
    assert "not in step" not in m.reason


def test_an_older_frame_within_tolerance_is_the_fallback_after_the_wait():
    s = StampedInput("depth frame")
    s.add(_msg(T0 - 10 * MS, "10 ms older"))
    p = s.open(T0)
    m = s.resolve(p, 0.05, _deadline(0.1))
    assert m.msg.tag == "10 ms older" and m.offset_s == pytest.approx(-0.010)


def test_a_silent_stream_stops_costing_a_wait_and_a_one_shot_camera_never_does():
    """A dead depth camera: after give_up_after frames that waited in vain, no more waits
    until a message arrives again. A camera that publishes one frame on request, seconds
    apart, with the depth frame a little after the image, is waited for every time."""
    s = StampedInput("depth frame", give_up_after=2)
    for _ in range(2):
        m = s.resolve(s.open(T0), 0.05, _deadline(0.1))
        assert m.msg is None and m.waited_s >= 0.08 and m.reason == "no depth frame received yet"
    m = s.resolve(s.open(T0), 0.05, _deadline(LONG))
    assert m.waited_s < SOON  # silent: no wait
    s.add(_msg(T0 - 5_000 * MS))  # the stream is back
    p = s.open(T0)
    threading.Timer(0.1, s.add, args=(_msg(T0, "back"),)).start()
    assert s.resolve(p, 0.05, _deadline(LONG)).msg.tag == "back"

    shots = StampedInput("depth frame", give_up_after=2)
    for k in range(4):
        t = T0 + k * 2_000 * MS
        p = shots.open(t)
        threading.Timer(0.1, shots.add, args=(_msg(t, f"shot {k}"),)).start()
        m = shots.resolve(p, 0.05, _deadline(LONG))
        assert m.msg.tag == f"shot {k}" and m.exact


def test_memory_is_bounded_by_the_open_pairings():
    """A slow model: many side messages arrive while a frame waits; only the best is kept."""
    s = StampedInput("depth frame", keep=3)
    p = s.open(T0)
    for k in range(1000):
        s.add(_msg(T0 - (1000 - k) * MS))
    assert len(s._recent) == 3
    assert s.resolve(p, 0.05, _deadline(0.01)).offset_s == pytest.approx(-0.001)
    assert not s._open  # resolved pairings are forgotten
    p2 = s.open(T0)
    s.close(p2)  # a dropped frame's pairing too
    assert not s._open


def test_stop_ends_the_wait():
    s = StampedInput("depth frame")
    s.add(_msg(T0 - 100 * MS))
    p = s.open(T0)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    t0 = time.monotonic()
    s.resolve(p, 0.05, _deadline(LONG), stop)
    assert time.monotonic() - t0 < SOON


def test_worker_processes_the_newest_frame_and_hands_back_replaced_ones():
    done, errors = [], []
    gate, started = threading.Event(), threading.Event()

    def process(frame):
        started.set()
        gate.wait(LONG)
        if frame == "boom":
            raise RuntimeError("inside process")
        done.append(frame)

    w = FrameWorker(process, errors.append)
    w.start()
    try:
        assert w.put("a") is None
        assert started.wait(LONG)  # the worker took "a" and blocks on the gate
        assert w.put("b") is None
        assert w.put("c") == "b"  # replaced before it was processed: dropped
        gate.set()
        deadline = time.monotonic() + LONG
        while len(done) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert done == ["a", "c"]
        w.put("boom")
        while not errors and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(errors[0], RuntimeError) and w.is_alive()
    finally:
        w.stop()
    assert not w.is_alive()


def test_a_stream_that_delivers_other_frames_never_counts_as_silent():
    """A slow model: each frame's wait is over before the worker resolves it, while the depth
    stream goes on delivering other stamps (these were lost in transport). Such a stream is not
    silent: the next frame still waits for its own depth frame."""
    s = StampedInput("depth frame", give_up_after=2)
    for k in range(4):
        p = s.open(T0 + k * 100 * MS)
        s.add(_msg(T0 + (k * 100 + 50) * MS))  # another frame's depth frame came meanwhile
        s.resolve(p, 0.01, time.monotonic() - 1.0)  # the deadline passed during inference
    p = s.open(T0 + 1000 * MS)
    threading.Timer(0.1, s.add, args=(_msg(T0 + 1000 * MS, "exact"),)).start()
    assert s.resolve(p, 0.01, _deadline(LONG)).msg.tag == "exact"


class _Frame:
    def __init__(self, name: str, ready: bool = False):
        self.name, self.ready = name, ready


def _until(predicate, timeout: float = LONG):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_worker_takes_the_newest_frame_whose_depth_frame_is_there():
    """use_depth: a frame whose depth frame was lost in transport is passed over for a newer one
    whose depth frame arrived (as message_filters hands over complete sets only); a frame not
    ready yet is taken as soon as it is; the mailbox stays bounded."""
    done, dropped, errors = [], [], []
    gate, started = threading.Event(), threading.Event()

    def process(frame):
        started.set()
        gate.wait(LONG)
        done.append(frame.name)

    w = FrameWorker(process, errors.append, capacity=3, ready=lambda f: f.ready,
                    patience=lambda: 60.0, on_drop=dropped.extend)
    w.start()
    try:
        w.put(_Frame("a", True))
        assert started.wait(LONG)  # busy with "a"
        b, c, d, e = _Frame("b", True), _Frame("c", True), _Frame("d"), _Frame("e")
        assert [w.put(f) for f in (b, c, d)] == [None] * 3
        assert w.put(e) is b  # full: the oldest is pushed out (dropped)
        gate.set()
        _until(lambda: done == ["a", "c"])  # the newest with its depth frame, not d or e
        assert w.pending() == [d, e] and not dropped  # waits (patience) for d or e
        e.ready = True
        w.wake()  # e's depth frame arrived
        _until(lambda: done == ["a", "c", "e"])
        assert dropped == [d] and not errors  # d's depth frame never came: passed over
    finally:
        assert w.stop() == []
    assert not w.is_alive()


def test_worker_waits_for_a_ready_frame_at_most_its_patience():
    taken = []
    w = FrameWorker(lambda f: taken.append((f.name, time.monotonic())), print, capacity=4,
                    ready=lambda f: f.ready, patience=lambda: 0.3)
    w.start()
    try:
        t0 = time.monotonic()
        w.put(_Frame("no depth"))
        _until(lambda: taken)
        assert taken[0][0] == "no depth" and taken[0][1] - t0 >= 0.3
    finally:
        w.stop()


def test_a_pairing_is_final_with_its_own_stamp_or_a_newer_one_within_the_tolerance():
    s = StampedInput("depth frame")
    p = s.open(T0)
    s.add(_msg(T0 - 10 * MS))
    assert not p.final(0.05)  # the exact one may still come
    s.add(_msg(T0 + 20 * MS))
    assert p.final(0.05)  # unsynchronised streams: a newer one settles it (nearest: 10 ms)
    q = s.open(T0 + 500 * MS)
    s.add(_msg(T0 + 700 * MS))
    assert q.settled and not q.final(0.05)  # never: its own depth frame was lost
    r = s.open(T0 + 1000 * MS)
    s.add(_msg(T0 + 1000 * MS))
    assert r.final(0.0) and r.exact


def test_streams_out_of_step_stop_costing_a_wait_and_a_lost_frame_does_not():
    """Stamps that never match (nearest always outside the tolerance once a newer message came):
    after give_up_after such frames the stream is out of step (the worker stops waiting for
    ready frames); one lost depth frame between pairing ones never makes it so."""
    s = StampedInput("depth frame", give_up_after=2)
    for k in range(2):
        p = s.open(T0 + k * 1000 * MS)
        s.add(_msg(T0 + (k * 1000 + 300) * MS))
        assert s.resolve(p, 0.05, _deadline(5.0)).msg is None
    assert s.out_of_step
    p = s.open(T0 + 3000 * MS)
    s.add(_msg(T0 + 3000 * MS))
    assert s.resolve(p, 0.05, _deadline(5.0)).exact and not s.out_of_step
    for k in range(4, 10):  # every other depth frame lost: the frames with theirs pair
        p = s.open(T0 + k * 1000 * MS)
        if k % 2 == 0:
            s.add(_msg(T0 + k * 1000 * MS))
        else:
            s.add(_msg(T0 + (k + 1) * 1000 * MS))  # the next frame's: this one's was lost
        s.resolve(p, 0.05, _deadline(5.0))
        assert not s.out_of_step
    for k in range(10, 14):  # only frames whose depth frame was lost are taken up (the model
        p = s.open(T0 + k * 1000 * MS + 500 * MS)  # was busy): the next frame, waiting, gets
        q = s.open(T0 + k * 1000 * MS + 600 * MS)  # its own
        s.add(_msg(T0 + k * 1000 * MS + 600 * MS))
        assert s.resolve(p, 0.05, _deadline(5.0)).msg is None
        s.close(q)
        assert not s.out_of_step


def test_a_frame_that_comes_after_stale_ones_gets_its_full_wait():
    """Frames whose depth frames were lost have had their wait when a fresh frame comes (the
    first frame of the next pick, say): the fresh one is not taken before its own wait is over
    (its depth frame may still come); the stale one is, or is passed over."""
    taken = []
    w = FrameWorker(lambda f: taken.append((f.name, time.monotonic())), print, capacity=4,
                    ready=lambda f: f.ready, patience=lambda: 0.6)
    w.start()
    try:
        w.put(_Frame("stale"))
        time.sleep(0.4)  # the camera's next frame comes a while later
        t1 = time.monotonic()
        w.put(_Frame("fresh"))
        _until(lambda: any(name == "fresh" for name, _ in taken))
        assert dict(taken)["fresh"] - t1 >= 0.6
    finally:
        w.stop()
