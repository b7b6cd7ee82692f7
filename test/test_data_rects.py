"""GraspNet rect parsing (CONVENTIONS §1/§2): hand-computed angles, widths, y down, wrapping."""
from __future__ import annotations

import math

import numpy as np
import pytest

from vita_grasp_core.data.graspnet import FrameFault, read_rect
from vita_grasp_core.grasp import graspnet_rects_to_grasps, grasps_to_graspnet_rects


def _rect(cx, cy, ox, oy, h=20.0, score=0.7, obj=3):
    return np.array([[cx, cy, ox, oy, h, score, obj]], np.float32)


@pytest.mark.parametrize("open_xy, angle, width", [
    ((110, 50), 0.0, 20.0),                           # opening along +x
    ((90, 50), 0.0, 20.0),                            # the other fingertip: same grasp
    ((110, 60), math.pi / 4, 2 * math.hypot(10, 10)),  # +y is DOWN: positive angle = clockwise
    ((90, 60), -math.pi / 4, 2 * math.hypot(10, 10)),  # atan2 = 3pi/4 -> wrapped to -pi/4
    ((100, 60), -math.pi / 2, 20.0),                  # pi/2 wraps to -pi/2 ([-pi/2, pi/2))
    ((100, 40), -math.pi / 2, 20.0),
    ((130, 40), math.atan2(-10, 30), 2 * math.hypot(30, 10)),
])
def test_rect_to_grasp_hand_values(open_xy, angle, width):
    g = graspnet_rects_to_grasps(_rect(100, 50, *open_xy))
    assert g.shape == (1, 7) and g.dtype == np.float32
    x, y, a, w, h, s, o = g[0]
    assert (x, y) == (100, 50)
    assert a == pytest.approx(angle, abs=1e-6)
    assert -math.pi / 2 <= a < math.pi / 2
    assert w == pytest.approx(width, rel=1e-6)
    assert (h, s, o) == (20.0, pytest.approx(0.7), 3.0)


def test_round_trip_graspnet_rows():
    rng = np.random.default_rng(1)
    g = np.column_stack([rng.uniform(0, 1280, 50), rng.uniform(0, 720, 50),
                         rng.uniform(-np.pi / 2, np.pi / 2, 50), rng.uniform(10, 200, 50),
                         rng.uniform(5, 50, 50), rng.uniform(0.1, 1, 50),
                         rng.integers(0, 88, 50)]).astype(np.float32)
    back = graspnet_rects_to_grasps(grasps_to_graspnet_rects(g))
    np.testing.assert_allclose(back[:, [0, 1, 3, 4, 5, 6]], g[:, [0, 1, 3, 4, 5, 6]], rtol=1e-4,
                               atol=1e-3)
    d = np.abs(np.mod(back[:, 2] - g[:, 2] + np.pi / 2, np.pi) - np.pi / 2)
    assert d.max() < 1e-4


def test_bad_rect_files(tmp_path):
    np.save(tmp_path / "six.npy", np.zeros((4, 6), np.float32))
    (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY not really")
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))
    kinds = {}
    for name in ("six", "garbage", "empty", "obj", "missing"):
        with pytest.raises(FrameFault) as e:
            read_rect(tmp_path / f"{name}.npy")
        kinds[name] = e.value.kind
    assert kinds == {"six": "bad_shape", "garbage": "corrupt", "empty": "empty", "obj": "corrupt",
                     "missing": "missing"}
    with pytest.raises(ValueError):
        graspnet_rects_to_grasps(np.zeros((3, 6)))
