"""Per-channel training losses on the decoder's logits (CONVENTIONS §3; docs/training.md).

Inputs (all on one device):
    logits: ``(B, 5, H, W)`` raw decoder outputs (:meth:`GraspModel.decode_logits`); activations
        are applied here exactly as :meth:`GraspDecoder.activate` does (sigmoid for ch0, ch3, ch4;
        tanh for ch1, ch2), in float32.
    target: ``(B, 5, H, W)`` maps from :func:`vita_grasp_core.data.targets.render_targets`.
    owned: ``(B, H, W)`` bool, pixels owned by a grasp.

Terms (each a mean, so the weights are comparable across resolutions and batch sizes):

=========  ==========================================================  ===============
channel    loss                                                         pixels
=========  ==========================================================  ===============
0 position ``mse`` (GG-CNN), ``bce`` or ``qfocal`` (quality focal loss:     all
           ``|sigmoid(z) - t|^gamma * BCE(z, t)``, soft targets), the
           positive pixels (``t > pos_threshold``) weighted by ``pos_weight``
1, 2       smooth-L1(tanh(z), cos 2a / sin 2a), summed over the 2 channels  owned
3 width    smooth-L1(sigmoid(z), width), or with ``width: log`` smooth-L1  owned
           of the logs (a relative error: a 10 px opening off by 5 px costs
           what a 60 px one off by 30 px does)
4 semantic BCE-with-logits(z, mask)                                      all
0 peak     ``-log`` of the share of the heat's spatial softmax that lies   positives
           on positive pixels (``t > pos_threshold``), per frame with a   (per frame)
           grasp (off by default: ``w_peak`` 0)
=========  ==========================================================  ===============

The peak term aims at top-1: the decoder returns the heatmap's highest peak, and the term is low
only when the frame's highest logits lie on a labelled grasp, any one of them (several labelled
grasps need not share the mass, so the heat is not pulled to a place between them). It is the
spatial softmax over all pixels of a frame, at temperature ``peak_temperature``, and its gradient
falls mostly on the highest-scoring wrong pixels (hard negatives), where the per-pixel BCE spreads
it over every pixel.

A batch with no owned pixel contributes 0 to the angle and width terms (never NaN).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from ..bounds import Range, check_bounds

POSITION_LOSSES = ("mse", "bce", "qfocal")
WIDTH_LOSSES = ("linear", "log")
#: Floor of the width channel inside the log (0.002 of ``width_scale * W``: well below a pixel).
_LOG_FLOOR = 2e-3


#: Ranges of the numbers of :class:`LossConfig`.
LOSS_BOUNDS = {"pos_weight": Range(0, 1e6), "pos_threshold": Range(0, 1),
               "focal_gamma": Range(0, 100), "beta": Range(0, 100, lo_open=True),
               "peak_temperature": Range(1e-3, 1e3),
               "log_beta": Range(0, 100, lo_open=True),
               **{w: Range(0, 1e6) for w in ("w_position", "w_angle", "w_width", "w_semantic",
                                             "w_peak")}}


@dataclass
class LossConfig:
    """Loss choice and weights (``train.loss`` in the YAML config).

    Attributes:
        position: ``mse``, ``bce`` or ``qfocal`` for the heatmap (channel 0).
        pos_weight: weight of heatmap pixels with target > ``pos_threshold`` (the few pixels
            near grasp centres) relative to the rest; 1 = plain mean.
        pos_threshold: heatmap value above which a pixel counts as positive for ``pos_weight``.
        focal_gamma: exponent of ``qfocal``.
        beta: smooth-L1 transition point for angle and width (in map units).
        width: ``linear`` (smooth-L1 on channel 3) or ``log`` (smooth-L1 on its logarithm, i.e.
            on the relative error of the opening, with ``log_beta`` as transition point).
        log_beta: smooth-L1 transition point of ``width: log`` (log units: 0.1 = 10 %).
        peak_temperature: temperature of the spatial softmax of the peak term (logits divided by
            it; smaller = only the very highest pixels count).
        w_position, w_angle, w_width, w_semantic: term weights.
        w_peak: weight of the peak term (0 = off, the default; see the module docstring).
    """

    position: str = "bce"
    pos_weight: float = 5.0
    pos_threshold: float = 0.05
    focal_gamma: float = 2.0
    beta: float = 0.05
    width: str = "linear"
    log_beta: float = 0.1
    w_position: float = 1.0
    w_angle: float = 1.0
    w_width: float = 1.0
    w_semantic: float = 1.0
    peak_temperature: float = 1.0
    w_peak: float = 0.0

    def __post_init__(self):
        if self.position not in POSITION_LOSSES:
            raise ValueError(f"loss.position must be one of {POSITION_LOSSES}, "
                             f"got {self.position!r}")
        if self.width not in WIDTH_LOSSES:
            raise ValueError(f"loss.width must be one of {WIDTH_LOSSES}, got {self.width!r}")
        check_bounds(self, LOSS_BOUNDS, "loss")


def _weighted_mean(per_pixel: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return per_pixel.mean()
    return (per_pixel * weight).sum() / weight.sum().clamp_min(1e-6)


def position_loss(logit: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Heatmap term: ``(B, H, W)`` logits vs targets in [0, 1] -> scalar."""
    weight = None
    if cfg.pos_weight != 1.0:
        weight = torch.where(target > cfg.pos_threshold, cfg.pos_weight, 1.0).to(logit.dtype)
    if cfg.position == "mse":
        per = (torch.sigmoid(logit) - target) ** 2
    elif cfg.position == "bce":
        per = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
    else:  # qfocal: soft-target focal BCE (Li et al., Generalized Focal Loss)
        bce = F.binary_cross_entropy_with_logits(logit, target, reduction="none")
        per = (torch.sigmoid(logit) - target).abs().pow(cfg.focal_gamma) * bce
    return _weighted_mean(per, weight)


def peak_loss(logit: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Peak term: ``(B, H, W)`` heat logits vs targets -> scalar, the mean over the frames that
    have a positive pixel of ``-log(sum of softmax(logit / T) over the positive pixels)``; 0
    (with a graph) when no frame has one."""
    b = logit.shape[0]
    pos = (target > cfg.pos_threshold).reshape(b, -1)
    has = pos.any(1)
    if not bool(has.any()):
        return logit.sum() * 0.0
    z = logit.reshape(b, -1)[has] / cfg.peak_temperature
    on = z.masked_fill(~pos[has], float("-inf"))
    return (torch.logsumexp(z, 1) - torch.logsumexp(on, 1)).mean()


def width_loss(logit: torch.Tensor, target: torch.Tensor, cfg: LossConfig) -> torch.Tensor:
    """Per-pixel width term (channel 3): on the value, or on its log (``cfg.width``)."""
    if cfg.width == "log":
        pred = F.logsigmoid(logit).clamp_min(math.log(_LOG_FLOOR))
        return F.smooth_l1_loss(pred, target.clamp_min(_LOG_FLOOR).log(), beta=cfg.log_beta,
                                reduction="none")
    return F.smooth_l1_loss(torch.sigmoid(logit), target, beta=cfg.beta, reduction="none")


def _masked_mean(per_pixel: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    n = mask.sum()
    if n == 0:
        return per_pixel.sum() * 0.0  # keeps the graph, never NaN
    return (per_pixel * mask).sum() / n


class GraspLoss(torch.nn.Module):
    """Weighted sum of the per-channel terms; ``forward`` returns ``(total, parts)``.

    ``parts`` holds detached float32 scalars ``position``, ``angle``, ``width``, ``semantic``,
    ``total`` (for logging), and ``peak`` when ``w_peak`` > 0.
    """

    def __init__(self, cfg: LossConfig | None = None):
        super().__init__()
        self.cfg = cfg or LossConfig()

    def forward(self, logits: torch.Tensor, target: torch.Tensor, owned: torch.Tensor):
        if logits.shape != target.shape or logits.ndim != 4 or logits.shape[1] != 5:
            raise ValueError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must "
                             "both be (B, 5, H, W)")
        if owned.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(f"owned must be (B, H, W) = {(logits.shape[0], *logits.shape[2:])}, "
                             f"got {tuple(owned.shape)}")
        c = self.cfg
        z, t = logits.float(), target.float()
        m = owned.to(z.dtype)
        l_pos = position_loss(z[:, 0], t[:, 0], c)
        ang = F.smooth_l1_loss(torch.tanh(z[:, 1:3]), t[:, 1:3], beta=c.beta,
                               reduction="none").sum(1)
        l_ang = _masked_mean(ang, m)
        l_wid = _masked_mean(width_loss(z[:, 3], t[:, 3], c), m)
        l_sem = F.binary_cross_entropy_with_logits(z[:, 4], t[:, 4])
        total = (c.w_position * l_pos + c.w_angle * l_ang + c.w_width * l_wid
                 + c.w_semantic * l_sem)
        parts = {"position": l_pos.detach(), "angle": l_ang.detach(), "width": l_wid.detach(),
                 "semantic": l_sem.detach()}
        if c.w_peak > 0:
            l_peak = peak_loss(z[:, 0], t[:, 0], c)
            total = total + c.w_peak * l_peak
            parts["peak"] = l_peak.detach()
        parts["total"] = total.detach()
        return total, parts
