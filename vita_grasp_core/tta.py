"""Test-time augmentation in map space (``DecodeConfig.tta``; CONVENTIONS §3 for the channels).

The input canvas is flipped / turned, the network runs once on all the views (one batch), each
view's maps are turned back onto the original canvas and the five maps are averaged before
decoding. Channels follow the geometry: a mirror image turns a grasp angle ``a`` into ``-a``
(``sin 2a`` changes sign), a quarter turn into ``a + 90 deg`` (``cos 2a`` and ``sin 2a`` change
sign), a transpose into ``90 deg - a`` (``cos 2a`` changes sign); the position, width and
semantic maps move with the pixels. Averaging ``(cos 2a, sin 2a)`` is the mean of the angle
vectors, which :mod:`.decoding` reads as an angle again.

The views, in the order ``tta=N`` takes the first N of: identity, horizontal flip, vertical flip,
half turn (the four that keep any canvas), quarter turn clockwise, quarter turn anticlockwise,
transpose, anti-transpose (these four need a square input canvas and square maps; on other
canvases ``tta`` is capped at 4). Cost: N network passes per frame (one batch of N).
"""
from __future__ import annotations

import torch

#: (name, quarter turns clockwise k, horizontal flip first) of the 8 symmetries of a square.
VIEWS = (("identity", 0, False), ("hflip", 0, True), ("vflip", 2, True), ("rot180", 2, False),
         ("rot90", 1, False), ("rot270", 3, False), ("transpose", 1, True),
         ("antitranspose", 3, True))
#: Views that keep a non-square canvas (no quarter turns).
RECT_SAFE = 4


def tta_views(n: int, square: bool) -> list[tuple[str, int, bool]]:
    """The first ``n`` views (at most 4 on a non-square canvas)."""
    n = max(1, int(n))
    return list(VIEWS[: n if square else min(n, RECT_SAFE)])


def _forward(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """``(B, C, H, W)``: flip left-right (if ``flip``), then ``k`` quarter turns clockwise (y
    down: torch.rot90 with dims (-1, -2) turns clockwise on screen)."""
    if flip:
        x = x.flip(-1)
    return torch.rot90(x, k, dims=(-1, -2)) if k % 4 else x


def _inverse(x: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    if k % 4:
        x = torch.rot90(x, -k, dims=(-1, -2))
    return x.flip(-1) if flip else x


def _fix_angles(maps: torch.Tensor, k: int, flip: bool) -> torch.Tensor:
    """Angle channels of maps already moved back: undo what the view did to grasp angles.

    The view maps an angle ``a`` to ``-a`` (flip) and then adds ``k * 90 deg``; so
    ``2a_view = s * 2a + k * 180 deg`` with ``s = -1`` for a flip: ``cos 2a = s' cos 2a_view``,
    ``sin 2a = s * s' sin 2a_view`` with ``s' = (-1)^k``.
    """
    sign_k = -1.0 if k % 2 else 1.0
    sign_f = -1.0 if flip else 1.0
    out = maps.clone()
    out[:, 1] = maps[:, 1] * sign_k
    out[:, 2] = maps[:, 2] * sign_k * sign_f
    return out


def tta_maps(run, pixel_values: torch.Tensor, n: int, output_size) -> torch.Tensor:
    """Average the maps of ``n`` views: ``run(x) -> (B, 5, H, W)`` maps in range (float32),
    called once on the ``n * B`` views of ``pixel_values`` ``(B, 3, H_in, W_in)``."""
    h_in, w_in = pixel_values.shape[-2:]
    square = h_in == w_in and output_size[0] == output_size[1]
    views = tta_views(n, square)
    if len(views) == 1:
        return run(pixel_values)
    b = pixel_values.shape[0]
    x = torch.cat([_forward(pixel_values, k, f) for _, k, f in views])
    maps = run(x).float()
    acc = None
    for i, (_, k, f) in enumerate(views):
        m = _fix_angles(_inverse(maps[i * b:(i + 1) * b], k, f), k, f)
        acc = m if acc is None else acc + m
    return acc / len(views)
