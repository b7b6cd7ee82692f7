"""Pictures of the simulator: a frame's RGB | depth | segmentation panel, and the benchmark's
strip of executed grasps (green: success, red: failure). Images are ``HxWx3 uint8 RGB``."""
from __future__ import annotations

import numpy as np

from ..grasp import rect_corners

GREEN = (40, 200, 60)
RED = (230, 40, 40)


def depth_to_rgb(depth: np.ndarray) -> np.ndarray:
    """Metric depth -> a colour map (near warm, far cool; invalid black)."""
    import cv2

    valid = depth > 0
    out = np.zeros(depth.shape + (3,), np.uint8)
    if valid.any():
        lo, hi = np.percentile(depth[valid], [1, 99])
        scaled = np.clip((depth - lo) / max(hi - lo, 1e-6), 0, 1)
        cm = cv2.applyColorMap((255 - scaled * 255).astype(np.uint8), cv2.COLORMAP_TURBO)
        out = np.where(valid[..., None], cm[..., ::-1], 0).astype(np.uint8)
    return out


def segmentation_to_rgb(seg: np.ndarray) -> np.ndarray:
    """Body ids -> distinct colours (background -1 black)."""
    rng = np.random.default_rng(7)
    lut = rng.integers(60, 255, (max(int(seg.max()) + 2, 2), 3)).astype(np.uint8)
    out = lut[np.clip(seg, -1, None) + 1]
    out[seg < 0] = 0
    return out


def observation_panel(obs) -> np.ndarray:
    """RGB | depth | segmentation side by side."""
    return np.concatenate([obs.rgb, depth_to_rgb(obs.depth),
                           segmentation_to_rgb(obs.segmentation)], axis=1)


def draw_executed(rgb: np.ndarray, grasp, success: bool, label: str = "") -> np.ndarray:
    """``rgb`` with the executed pixel ``grasp`` (x, y, angle, width, height) drawn: jaws thick,
    green for a success, red for a failure; ``label`` written in the corner."""
    import cv2

    img = np.ascontiguousarray(rgb.copy())
    colour = GREEN if success else RED
    if grasp is not None:
        c = rect_corners(np.array([[grasp.x, grasp.y, grasp.angle, grasp.width,
                                    max(grasp.height, 4.0)]]))[0]
        pts = np.round(c * 16).astype(np.int32)
        for k, thick in ((0, 3), (1, 1), (2, 3), (3, 1)):  # jaw, open, jaw, open edges
            cv2.line(img, tuple(pts[k]), tuple(pts[(k + 1) % 4]), colour, thick, cv2.LINE_AA, 4)
        cv2.circle(img, (int(round(grasp.x)), int(round(grasp.y))), 3, colour, -1, cv2.LINE_AA)
    if label:
        cv2.rectangle(img, (0, 0), (img.shape[1], 22), (0, 0, 0), -1)
        cv2.putText(img, label, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    return img


def crop_around(img: np.ndarray, x: float, y: float, size: int) -> np.ndarray:
    """A ``size x size`` crop centred on (x, y), padded with black at the borders."""
    h, w = img.shape[:2]
    half = size // 2
    pad = np.zeros((h + 2 * size, w + 2 * size, 3), np.uint8)
    pad[size:size + h, size:size + w] = img
    cx = int(round(np.clip(x, 0, w - 1))) + size
    cy = int(round(np.clip(y, 0, h - 1))) + size
    return pad[cy - half: cy - half + size, cx - half: cx - half + size]


def grasp_strip(tiles, columns: int = 8, tile: int = 200) -> np.ndarray:
    """Tiles (``HxWx3``, resized to ``tile`` px) in rows of ``columns``."""
    import cv2

    if not tiles:
        return np.zeros((tile, tile, 3), np.uint8)
    tiles = [cv2.resize(t, (tile, tile), interpolation=cv2.INTER_AREA) for t in tiles]
    rows = []
    for i in range(0, len(tiles), columns):
        row = tiles[i:i + columns]
        row += [np.zeros_like(tiles[0])] * (columns - len(row))
        rows.append(np.concatenate(row, axis=1))
    return np.concatenate(rows, axis=0)
