"""Augmentation: image, label and grasps move together; flips, rotations, scales, determinism."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vita_grasp_core.data.augment import (
    Augment,
    apply_affine,
    color_jitter,
    compose,
    hflip_matrix,
    rot90_matrix,
    rotation_matrix,
    scale_matrix,
    transform_grasps,
    vflip_matrix,
)
from vita_grasp_core.data.targets import render_targets
from vita_grasp_core.decoding import decode_maps
from vita_grasp_core.geometry import Letterbox
from vita_grasp_core.grasp import angle_difference

H, W = 720, 1280


def _scene(rng):
    rgb = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
    label = rng.integers(0, 5, (H, W), dtype=np.uint8)
    g = np.array([[300.0, 200.0, 0.4, 120, 30, 0.9, 1], [900.0, 500.0, -1.2, 80, 20, 0.5, 2],
                  [640.0, 360.0, 1.5, 200, 40, 1.0, 3]], np.float32)
    return rgb, label, g


def _spot_image(x, y):
    """Dark image with one bright 3x3 spot centred on integer pixel (x, y)."""
    img = np.zeros((H, W, 3), np.uint8)
    img[int(y) - 1:int(y) + 2, int(x) - 1:int(x) + 2] = 255
    return img


def _centroid(img):
    w = img[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:img.shape[0], 0:img.shape[1]]
    return (w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()


def test_hflip_values_and_twice_is_identity():
    rgb, label, g = _scene(np.random.default_rng(0))
    m = hflip_matrix(W)
    r1, l1, g1 = apply_affine(rgb, label, g, m)
    assert (r1 == rgb[:, ::-1]).all() and (l1 == label[:, ::-1]).all()
    np.testing.assert_allclose(g1[:, 0], W - 1 - g[:, 0])
    np.testing.assert_allclose(g1[:, 1], g[:, 1])
    assert angle_difference(g1[:, 2], -g[:, 2]).max() < 1e-6
    np.testing.assert_allclose(g1[:, 3:], g[:, 3:], rtol=1e-6)
    r2, l2, g2 = apply_affine(r1, l1, g1, m)
    assert (r2 == rgb).all() and (l2 == label).all()
    np.testing.assert_allclose(g2[:, [0, 1, 3, 4, 5, 6]], g[:, [0, 1, 3, 4, 5, 6]], atol=1e-4)
    assert angle_difference(g2[:, 2], g[:, 2]).max() < 1e-6


def test_vflip_values():
    rgb, label, g = _scene(np.random.default_rng(1))
    r1, l1, g1 = apply_affine(rgb, label, g, vflip_matrix(H))
    assert (r1 == rgb[::-1]).all() and (l1 == label[::-1]).all()
    np.testing.assert_allclose(g1[:, 1], H - 1 - g[:, 1])
    assert angle_difference(g1[:, 2], -g[:, 2]).max() < 1e-6


def test_rot90_matches_numpy_and_swaps_size():
    rgb, label, g = _scene(np.random.default_rng(2))
    m, dst = rot90_matrix(1, (H, W))
    assert dst == (W, H)
    r1, l1, g1 = apply_affine(rgb, label, g, m, dst)
    assert (r1 == np.rot90(rgb, k=-1)).all() and (l1 == np.rot90(label, k=-1)).all()  # clockwise
    assert angle_difference(g1[:, 2], g[:, 2] + np.pi / 2).max() < 1e-6
    for (x, y), (x1, y1) in zip(g[:, :2], g1[:, :2]):
        assert (x1, y1) == pytest.approx((H - 1 - y, x))


@pytest.mark.parametrize("phi_deg", [30.0, -75.0, 130.0])
def test_rotation_moves_image_and_grasp_together(phi_deg):
    phi = math.radians(phi_deg)
    x, y = 700.0, 300.0
    g = np.array([[x, y, 0.3, 150, 30, 1.0, 0]], np.float32)
    m = rotation_matrix(phi, ((W - 1) / 2, (H - 1) / 2))
    rgb, _, g1 = apply_affine(_spot_image(x, y), None, g, m, pad_rgb=(0, 0, 0))
    assert len(g1) == 1
    # the image content and the grasp centre land on the same pixel
    bx, by = _centroid(rgb)
    assert math.hypot(bx - g1[0, 0], by - g1[0, 1]) < 0.25
    # expected by hand: +phi turns +x towards +y (clockwise on screen)
    cx, cy = (W - 1) / 2, (H - 1) / 2
    ex = cx + math.cos(phi) * (x - cx) - math.sin(phi) * (y - cy)
    ey = cy + math.sin(phi) * (x - cx) + math.cos(phi) * (y - cy)
    assert (g1[0, 0], g1[0, 1]) == pytest.approx((ex, ey), abs=1e-3)
    # render + decode: the peak and the angle moved as expected
    lb = Letterbox.fit((H, W), (480, 640))
    t = render_targets(g1, None, lb, 0.25)
    out = decode_maps(torch.from_numpy(t.maps), lb, width_scale=0.25, score_threshold=0.5,
                      max_grasps=1, min_distance=8, smooth_sigma=0)[0]
    assert math.hypot(out[0].x - ex, out[0].y - ey) < 1.0
    assert math.degrees(angle_difference(out[0].angle, 0.3 + phi)) < 1.0
    assert out[0].width == pytest.approx(150, rel=0.01)


def test_rotation_direction_of_an_oriented_bar():
    """A bar drawn along angle a appears along a + phi after rotating the image by phi."""
    import cv2

    img = np.zeros((H, W, 3), np.uint8)
    a, phi = 0.2, math.radians(50)
    c = np.array([640.0, 360.0])
    d = np.array([math.cos(a), math.sin(a)]) * 200
    cv2.line(img, tuple(int(v) for v in c - d), tuple(int(v) for v in c + d), (255, 255, 255), 3)
    g = np.array([[c[0], c[1], a, 60, 20, 1, 0]], np.float32)
    r1, _, g1 = apply_affine(img, None, g, rotation_matrix(phi, tuple(c)), pad_rgb=(0, 0, 0))
    ys, xs = np.nonzero(r1[..., 0] > 128)
    cov = np.cov(np.stack([xs, ys]))
    evals, evecs = np.linalg.eigh(cov)
    bar_angle = math.atan2(evecs[1, -1], evecs[0, -1])
    assert math.degrees(angle_difference(bar_angle, a + phi)) < 1.0
    assert math.degrees(angle_difference(g1[0, 2], a + phi)) < 1e-3


def test_scale_changes_widths_and_drops_outside():
    g = np.array([[640.0, 360.0, 0.5, 100, 20, 1, 0], [20.0, 20.0, 0.0, 50, 10, 1, 1]], np.float32)
    m = scale_matrix(1.5, ((W - 1) / 2, (H - 1) / 2))
    g1 = transform_grasps(g, m, (H, W))
    assert len(g1) == 1  # the corner grasp left the image
    assert g1[0, 3] == pytest.approx(150) and g1[0, 4] == pytest.approx(30)
    assert g1[0, 2] == pytest.approx(0.5)
    g2 = transform_grasps(g, scale_matrix(0.5, ((W - 1) / 2, (H - 1) / 2)), (H, W))
    assert len(g2) == 2 and g2[0, 3] == pytest.approx(50)


def test_compose_order():
    p = np.array([[100.0, 50.0, 0.0, 10, 5, 1, 0]], np.float32)
    m = compose(vflip_matrix(H), hflip_matrix(W))  # hflip first, then vflip
    q = transform_grasps(p, m)
    assert (q[0, 0], q[0, 1]) == pytest.approx((W - 1 - 100, H - 1 - 50))


def test_augment_is_deterministic_and_keeps_grasps():
    rgb, label, g = _scene(np.random.default_rng(3))
    aug = Augment()
    outs = [aug(rgb, label, g, np.random.default_rng([7, 0, i])) for i in range(6)]
    again = aug(rgb, label, g, np.random.default_rng([7, 0, 0]))
    assert (again[0] == outs[0][0]).all() and (again[2] == outs[0][2]).all()
    assert any(not np.array_equal(o[0], outs[0][0]) for o in outs[1:])
    for r, lab, gg in outs:
        assert r.dtype == np.uint8 and r.shape == (H, W, 3) and lab.shape == (H, W)
        assert len(gg) >= 1
        assert ((gg[:, 0] >= -0.5) & (gg[:, 0] < W - 0.5)).all()
        assert set(np.unique(lab)) <= set(range(5))  # nearest neighbour: no new label values
    a90 = Augment(rotate="90", rotate_p=1.0, hflip=0, vflip=0, scale=(1, 1), translate=0,
                  color_p=0)
    r, lab, gg = a90(rgb, label, g, np.random.default_rng(1))
    assert r.shape[:2] in ((H, W), (W, H)) and lab.shape == r.shape[:2]
    with pytest.raises(ValueError):
        Augment(rotate="45")


def test_color_jitter():
    rgb, _, _ = _scene(np.random.default_rng(4))
    a = color_jitter(rgb, np.random.default_rng(0), 0.3, 0.3, 0.3, 0.05)
    b = color_jitter(rgb, np.random.default_rng(0), 0.3, 0.3, 0.3, 0.05)
    assert a.dtype == np.uint8 and a.shape == rgb.shape
    assert (a == b).all() and not (a == rgb).all()
    assert (color_jitter(rgb, np.random.default_rng(0), 0, 0, 0, 0) == rgb).all()
