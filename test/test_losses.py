"""Training losses (training/losses.py): the optional peak term aimed at top-1, and that it
leaves the default loss unchanged."""
import math

import pytest
import torch

from vita_grasp_core.training.losses import GraspLoss, LossConfig, peak_loss


def _target(h=32, w=32, centres=((10, 10),), sigma=2.0, b=1):
    """(b, H, W) heatmap targets: a gaussian of ``sigma`` px at each (row, col) centre."""
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32),
                            torch.arange(w, dtype=torch.float32), indexing="ij")
    t = torch.zeros(h, w)
    for r, c in centres:
        t = torch.maximum(t, torch.exp(-((yy - r) ** 2 + (xx - c) ** 2) / (2 * sigma ** 2)))
    return t.expand(b, h, w).clone()


def _blob(h=32, w=32, at=(10, 10), height=8.0):
    """(1, H, W) logits: -4 everywhere, a peak of ``height`` at ``at``."""
    z = torch.full((1, h, w), -4.0)
    z[0, at[0], at[1]] = height
    return z


def test_peak_term_is_low_only_when_the_highest_heat_lies_on_a_labelled_grasp():
    cfg = LossConfig(w_peak=1.0)
    t = _target(centres=((10, 10),))
    on, off = peak_loss(_blob(at=(10, 10)), t, cfg), peak_loss(_blob(at=(25, 25)), t, cfg)
    assert on < 0.1 < 5.0 < off


def test_any_one_labelled_grasp_satisfies_the_peak_term():
    """Two labelled grasps: all the heat on one of them costs as little as on both, so the heat
    is not pulled to a place between them (where a per-pixel loss's blur puts the maximum)."""
    cfg = LossConfig(w_peak=1.0)
    t = _target(centres=((8, 8), (8, 24)))
    one = peak_loss(_blob(at=(8, 8)), t, cfg)
    between = peak_loss(_blob(at=(8, 16)), t, cfg)
    assert one < 0.1 and between > 5.0


def test_peak_gradient_falls_on_the_strongest_wrong_pixels():
    cfg = LossConfig(w_peak=1.0)
    t = _target(centres=((10, 10),))
    z = torch.full((1, 32, 32), -4.0)
    z[0, 10, 10] = 2.0  # the labelled centre
    z[0, 25, 25] = 3.0  # a confident mistake
    z[0, 25, 5] = 0.0  # a weaker one
    z.requires_grad_(True)
    peak_loss(z, t, cfg).backward()
    g = z.grad[0]
    assert g[25, 25] > g[25, 5] > g[0, 31] > 0  # pushed down, the highest the most
    assert g[10, 10] < 0  # the labelled centre is pushed up


def test_frames_without_a_grasp_are_left_out_and_never_nan():
    cfg = LossConfig(w_peak=1.0)
    t = torch.cat([_target(), torch.zeros(1, 32, 32)])
    z = torch.cat([_blob(at=(10, 10)), _blob(at=(3, 3))]).requires_grad_(True)
    loss = peak_loss(z, t, cfg)
    assert float(loss.detach()) == pytest.approx(float(peak_loss(z[:1].detach(), t[:1], cfg)))
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad[1].abs().sum() == 0
    empty = torch.zeros(2, 32, 32)
    z2 = torch.zeros(2, 32, 32, requires_grad=True)
    loss2 = peak_loss(z2, empty, cfg)
    loss2.backward()
    assert float(loss2.detach()) == 0.0 and torch.isfinite(z2.grad).all()


def test_temperature_sharpens_the_softmax():
    t = _target(centres=((10, 10),))
    z = _blob(at=(10, 10), height=1.0)  # a weak peak: the many background pixels hold mass
    warm = peak_loss(z, t, LossConfig(w_peak=1.0, peak_temperature=4.0))
    cold = peak_loss(z, t, LossConfig(w_peak=1.0, peak_temperature=0.25))
    assert cold < warm


def test_the_peak_term_is_off_by_default_and_adds_its_weight_when_on():
    torch.manual_seed(0)
    b, h, w = 2, 16, 16
    logits = torch.randn(b, 5, h, w)
    target = torch.zeros(b, 5, h, w)
    target[:, 0] = _target(h, w, centres=((5, 6),), b=b)
    owned = target[:, 0] > 0.05
    base, parts = GraspLoss()(logits, target, owned)
    assert "peak" not in parts
    assert float(base) == pytest.approx(sum(float(parts[k]) for k in
                                            ("position", "angle", "width", "semantic")))
    on, parts_on = GraspLoss(LossConfig(w_peak=0.5))(logits, target, owned)
    assert float(on) == pytest.approx(float(base) + 0.5 * float(parts_on["peak"]), rel=1e-6)
    assert parts_on["peak"] > 0 and math.isfinite(float(parts_on["peak"]))


def test_peak_settings_are_checked():
    with pytest.raises(ValueError, match="w_peak"):
        LossConfig(w_peak=-1.0)
    with pytest.raises(ValueError, match="peak_temperature"):
        LossConfig(peak_temperature=0.0)


def test_the_epoch_line_shows_the_peak_term_only_when_it_is_on(tmp_path):
    from vita_grasp_core.training.run_log import RunLog

    run = RunLog(tmp_path, True)
    try:
        base = {"total": 1.0, "position": 0.1, "angle": 0.4, "width": 0.3, "semantic": 0.2}
        for ep, train in ((1, base), (2, dict(base, peak=1.25))):
            run.epoch({"epoch": ep, "train": train, "val": None, "lr": 1e-3,
                       "epoch_seconds": 1.0, "best_top1": 0.0, "best_epoch": 0}, 2, 1.0)
    finally:
        run.close()
    lines = [ln for ln in (tmp_path / "train.log").read_text().splitlines() if "epoch " in ln]
    assert "peak" not in lines[0] and "sem 0.2000 peak 1.2500)" in lines[1]
