"""Target regions for decoding (:func:`vita_grasp_core.decoding.decode_maps` ``regions=``): the
per-image masks as one tensor and which window pixels of the peak candidates lie inside them.
See :mod:`vita_grasp_core.target_select` for where regions come from."""
from __future__ import annotations

import numpy as np
import torch


def region_tensor(regions, b: int, h: int, w: int, device) -> torch.Tensor | None:
    """``(B, H, W)`` bool tensor of the per-image regions (``None`` entries: everywhere), or
    ``None`` when no image has a region."""
    if regions is None or all(r is None for r in regions):
        return None
    if len(regions) != b:
        raise ValueError(f"got {len(regions)} regions for {b} map sets")
    out = torch.ones((b, h, w), dtype=torch.bool)
    for i, reg in enumerate(regions):
        if reg is None:
            continue
        reg = torch.as_tensor(np.asarray(reg, dtype=bool))
        if tuple(reg.shape) != (h, w):
            raise ValueError(f"region {i} is {tuple(reg.shape)}, the maps are {(h, w)}")
        out[i] = reg
    return out.to(device)


def window_in_region(region: torch.Tensor | None, flat: torch.Tensor, shape) -> np.ndarray:
    """Which pixels of the candidates' windows (flat indices ``(B, K * 25)``) lie in their
    image's region: ``shape`` bool array (all True without regions)."""
    if region is None:
        return np.ones(shape, bool)
    return torch.gather(region.flatten(1), 1, flat).cpu().numpy().reshape(shape)
