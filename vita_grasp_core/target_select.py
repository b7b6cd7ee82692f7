"""Target selection: grasps on the object the user wants, not the best grasps of the scene.

A *target* says where the wanted object is - boxes of a 2-D detector, a segmentation mask, a
pixel (a click in a GUI), or an example picture (:mod:`.example_match`). With the model's maps of
the frame it becomes one :class:`TargetRegion` per object: a boolean mask on the maps' canvas.
Decoding restricted to a region (:func:`~vita_grasp_core.decoding.decode_maps` ``regions=``)
finds that object's own local maxima, so the best grasp on the object comes first even when
other objects' grasps fill the scene's top-k. ROS-free; the node only converts messages into
these records (docs/ros.md, "Target selection").

Units: source-image pixels (x = column, y = row, pixel centres at integers) for everything a
user gives; map-canvas pixels for the regions. The model's semantic mask (channel 4) >=
:data:`OBJECT_THRESHOLD` is "object".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .conventions import CH_SEMANTIC
from .geometry import Letterbox

#: Semantic-mask value (channel 4) from which a map pixel counts as object.
OBJECT_THRESHOLD = 0.5
#: At most this many target regions per frame (the best-scored detections first): a message
#: with thousands of boxes costs no more than this many decodings.
MAX_TARGETS = 16
#: A point this close [map px] to an object's mask still selects that object.
POINT_RADIUS = 8
#: In a detection box, object-mask components smaller than this fraction of the largest one are
#: taken for parts of neighbouring objects and left out.
COMPONENT_FRACTION = 0.25
#: Fewer object pixels than this in a box: the model missed the object, the whole box is used.
MIN_OBJECT_PIXELS = 12
#: Largest side of a user mask or example picture [px] (a small message cannot cost much).
MAX_IMAGE_SIDE = 16384


class TargetError(ValueError):
    """A target that cannot be used (one line naming the problem)."""


@dataclass
class FrameMaps:
    """What target selection sees of one frame.

    Attributes:
        maps: ``(5, H, W)`` float maps on the model's output canvas (CONVENTIONS §3).
        letterbox: source pixels -> map canvas.
        features: optional ``(C, h, w)`` encoder patch features of the frame (example matching).
    """

    maps: np.ndarray
    letterbox: Letterbox
    features: object = None

    def object_mask(self) -> np.ndarray:
        """``(H, W)`` bool: semantic mask >= :data:`OBJECT_THRESHOLD` inside the content."""
        return (np.asarray(self.maps[CH_SEMANTIC]) >= OBJECT_THRESHOLD) & content_mask(
            self.letterbox)


@dataclass
class TargetRegion:
    """Where one target object is: ``mask`` ``(H, W)`` bool on the map canvas."""

    target_id: str
    mask: np.ndarray

    @property
    def pixels(self) -> int:
        return int(self.mask.sum())


@dataclass
class Selection:
    """The regions of one frame (possibly none) and, when there is none, why (``note``)."""

    regions: list[TargetRegion]
    note: str = ""


def content_mask(lb: Letterbox) -> np.ndarray:
    """``(H, W)`` bool: the map pixels holding image content (not letterbox padding)."""
    out = np.zeros(lb.dst_size, bool)
    x0, y0, x1, y1 = lb.content_box
    out[max(y0, 0):y1, max(x0, 0):x1] = True
    return out


def _pixel_centres_src(lb: Letterbox) -> tuple[np.ndarray, np.ndarray]:
    """Source coordinates of the map pixels' centres: ``(xs (W,), ys (H,))``."""
    h, w = lb.dst_size
    xs = lb.to_src(np.stack([np.arange(w), np.zeros(w)], axis=1))[:, 0]
    ys = lb.to_src(np.stack([np.zeros(h), np.arange(h)], axis=1))[:, 1]
    return xs, ys


def box_region(box, lb: Letterbox) -> np.ndarray:
    """``(H, W)`` bool: map pixels whose centre lies in ``box`` = (x0, y0, x1, y1), the box's
    edges in continuous source coordinates (a box over pixels 10..19 is 9.5..19.5)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    xs, ys = _pixel_centres_src(lb)
    inside = ((ys >= y0) & (ys <= y1))[:, None] & ((xs >= x0) & (xs <= x1))[None, :]
    return inside & content_mask(lb)


def mask_region(mask, lb: Letterbox) -> np.ndarray:
    """A source-image mask (``HxW``, non-zero = object; another size of the same aspect ratio is
    scaled, nearest neighbour) -> ``(H, W)`` bool on the map canvas (a map pixel is in when at
    least half of what it covers is)."""
    import cv2

    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[:, :, 0]
    if m.ndim != 2 or min(m.shape) == 0:
        raise TargetError(f"a target mask must be a non-empty HxW image, got shape {m.shape}")
    if max(m.shape) > MAX_IMAGE_SIDE:
        raise TargetError(f"target mask {m.shape[1]}x{m.shape[0]} is larger than "
                          f"{MAX_IMAGE_SIDE} px per side")
    sh, sw = lb.src_size
    if m.shape != (sh, sw):
        if abs(m.shape[1] / m.shape[0] - sw / sh) > 0.02 * sw / sh:
            raise TargetError(f"target mask is {m.shape[1]}x{m.shape[0]}, the frame "
                              f"{sw}x{sh}: not the same aspect ratio")
        m = cv2.resize(m.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_NEAREST)
    warped = lb.warp_image(((m != 0) * 255).astype(np.uint8))
    return (warped >= 128) & content_mask(lb)


def _components(mask: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """8-connected components: ``(n labels incl. background, labels (H, W), areas (n,))``."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return n, labels, stats[:, cv2.CC_STAT_AREA]


def main_components(mask: np.ndarray, fraction: float = COMPONENT_FRACTION) -> np.ndarray:
    """The largest connected component of ``mask`` and every other one of at least ``fraction``
    of its area (a detected object; small bits are corners of neighbours)."""
    n, labels, areas = _components(mask)
    if n <= 2:
        return mask.astype(bool)
    big = areas[1:].max()
    keep = np.flatnonzero(areas >= fraction * big)
    keep = keep[keep > 0]
    return np.isin(labels, keep)


def component_at(mask: np.ndarray, x: float, y: float, radius: float = POINT_RADIUS
                 ) -> np.ndarray | None:
    """The connected component of ``mask`` under map pixel (x, y), else the one nearest to it
    within ``radius`` map px; ``None`` when there is none."""
    h, w = mask.shape
    c, r = int(round(x)), int(round(y))
    if not (0 <= r < h and 0 <= c < w):
        return None
    n, labels, _ = _components(mask)
    label = labels[r, c]
    if label == 0:
        rad = int(np.ceil(radius))
        r0, r1, c0, c1 = max(r - rad, 0), min(r + rad + 1, h), max(c - rad, 0), min(c + rad + 1, w)
        win = labels[r0:r1, c0:c1]
        yy, xx = np.nonzero(win)
        if yy.size == 0:
            return None
        d2 = (yy + r0 - y) ** 2 + (xx + c0 - x) ** 2
        j = int(np.argmin(d2))
        if d2[j] > radius ** 2:
            return None
        label = win[yy[j], xx[j]]
    return labels == label


# ------------------------------------------------------------------------------ targets
@dataclass(frozen=True)
class Detection:
    """One 2-D detection: axis-aligned box (centre ``cx, cy``, size ``w, h``) in source pixels,
    its class, score and (tracking) id - what a ``vision_msgs/Detection2D`` holds."""

    cx: float
    cy: float
    w: float
    h: float
    class_id: str = ""
    score: float = 1.0
    id: str = ""

    @property
    def box(self) -> tuple[float, float, float, float]:
        return (self.cx - self.w / 2, self.cy - self.h / 2, self.cx + self.w / 2,
                self.cy + self.h / 2)


@dataclass(frozen=True)
class BoxTarget:
    """Objects given by boxes (source pixels, ``(x0, y0, x1, y1)``), one region each.

    With ``use_object_mask`` (default) a region is the box's main object-mask components (the
    model's semantic mask: grasps on the object, not on the table inside its box); a box where
    the model sees (almost) no object is used whole. ``note`` says why there is no box.
    """

    boxes: tuple = ()
    ids: tuple = ()
    use_object_mask: bool = True
    note: str = ""

    def select(self, frame: FrameMaps) -> Selection:
        if not self.boxes:
            return Selection([], self.note or "no target box")
        obj = frame.object_mask() if self.use_object_mask else None
        out = []
        for i, box in enumerate(self.boxes[:MAX_TARGETS]):
            tid = self.ids[i] if i < len(self.ids) else f"box/{i}"
            reg = box_region(box, frame.letterbox)
            if obj is not None:
                on = reg & obj
                if on.sum() >= MIN_OBJECT_PIXELS:
                    reg = main_components(on)
            if reg.any():
                out.append(TargetRegion(tid, reg))
        return Selection(out, "" if out else "the target boxes lie outside the frame")


def _check_box(box) -> tuple[float, float, float, float]:
    try:
        x0, y0, x1, y1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise TargetError(f"a box is (x0, y0, x1, y1), got {box!r}") from None
    if not all(np.isfinite([x0, y0, x1, y1])) or x1 <= x0 or y1 <= y0:
        raise TargetError(f"box ({x0:g}, {y0:g}, {x1:g}, {y1:g}) is empty or not finite")
    return x0, y0, x1, y1


def box_target(boxes, ids: Sequence[str] = ()) -> BoxTarget:
    """A :class:`BoxTarget` from ``(x0, y0, x1, y1)`` boxes (checked: finite, non-empty)."""
    return BoxTarget(tuple(_check_box(b) for b in boxes), tuple(ids))


def detections_target(detections: Sequence[Detection], target_class: str = "",
                      min_score: float = 0.0, max_targets: int = MAX_TARGETS) -> BoxTarget:
    """The detections of ``target_class`` (any class when empty) with ``score >= min_score``,
    best score first, at most ``max_targets``; ids = the detection's id, else
    ``<class>/<rank>``. Detections with a non-finite or empty box are skipped."""
    ok = [d for d in detections
          if (not target_class or d.class_id == target_class) and d.score >= min_score
          and np.isfinite([d.cx, d.cy, d.w, d.h, d.score]).all() and d.w > 0 and d.h > 0]
    ok.sort(key=lambda d: -d.score)
    ok = ok[:max_targets]
    if not ok:
        seen = ", ".join(f"{d.class_id or '?'} {d.score:.2f}" for d in
                         sorted(detections, key=lambda d: -d.score)[:5])
        want = f"class {target_class!r}" if target_class else "any class"
        return BoxTarget(note=f"no detection of {want} with score >= {min_score:g}"
                              + (f" (got: {seen}{', ...' if len(detections) > 5 else ''})"
                                 if seen else " (no detections)"))
    ids = tuple(d.id or f"{d.class_id or 'object'}/{k}" for k, d in enumerate(ok))
    return BoxTarget(tuple(d.box for d in ok), ids)


@dataclass(frozen=True)
class MaskTarget:
    """The object given by a mask of the frame (``HxW``, non-zero = object), e.g. from a
    segmentation node; another size of the same aspect ratio is scaled."""

    mask: np.ndarray = field(repr=False)
    target_id: str = "mask"

    def select(self, frame: FrameMaps) -> Selection:
        reg = mask_region(self.mask, frame.letterbox)
        if not reg.any():
            return Selection([], "the target mask is empty")
        return Selection([TargetRegion(self.target_id, reg)])


@dataclass(frozen=True)
class PointTarget:
    """The object under pixel (x, y) of the frame (source pixels): the connected component of
    the model's object mask there, or the nearest one within :data:`POINT_RADIUS` map px."""

    x: float
    y: float
    target_id: str = "point"

    def select(self, frame: FrameMaps) -> Selection:
        lb = frame.letterbox
        h, w = lb.src_size
        if not (np.isfinite(self.x) and np.isfinite(self.y)
                and -0.5 <= self.x < w - 0.5 and -0.5 <= self.y < h - 0.5):
            return Selection([], f"the target point ({self.x:g}, {self.y:g}) is outside the "
                                 f"{w}x{h} frame")
        mx, my = lb.to_dst((self.x, self.y))
        reg = component_at(frame.object_mask(), mx, my)
        if reg is None:
            return Selection([], f"no object under the target point ({self.x:g}, {self.y:g})")
        return Selection([TargetRegion(self.target_id, reg)])


def select(target, frame: FrameMaps) -> Selection | None:
    """Regions of ``target`` in ``frame``; ``None`` for no target (the whole scene)."""
    if target is None:
        return None
    if not hasattr(target, "select"):
        raise TargetError(f"not a target: {type(target).__name__}")
    return target.select(frame)
