"""Is the depth image registered to the colour image? Depth discontinuities (object outlines)
must lie on colour edges.

Method (pure numpy + OpenCV, both images at a working width of :data:`WORK_WIDTH` px):

1. *Depth edges*: jumps of the inverse depth that a plane cannot explain. The inverse depth of
   any plane is affine in the pixel coordinates, so its second difference is zero on a table
   seen from any angle; an occlusion boundary gives a second difference of about the relative
   depth jump. Threshold: :data:`REL_JUMP` or 6 robust noise sigmas, whichever is larger; the
   noise of depth cameras grows with distance (relative noise about proportional to z), so the
   sigma is estimated as ``c * z`` from the image itself.
   Pixels next to missing depth are never edges (the border of a hole is not an outline).
2. *Colour edges*: Canny on the grey image (thresholds from the image's own gradient
   distribution), turned into a closeness map ``exp(-d^2 / 2 sigma^2)`` of the distance ``d`` to
   the nearest colour edge.
3. *Alignment search*: the mean closeness under the depth edges after moving them by a
   similarity (scale ``s`` about the image centre, then shift ``t``), for scales
   :data:`SCALES` and every shift up to :data:`MAX_SHIFT` of the width (FFT correlation, all
   shifts at once), each outline weighted as one vote (:func:`outline_weights`: long straight
   borders fit many placements and must not outvote the objects). Frames are pooled.

A registered depth image scores best at (or next to) the identity. A depth image from another
viewpoint (a depth camera beside the colour camera: parallax), another field of view (the depth
camera's own image resized to the colour size) or a shifted one scores best elsewhere, and the
identity scores near the background level. A scene without outlines (an empty table) cannot be
judged: the search has no clear peak and the check says so instead of guessing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Working width [px] of both images.
WORK_WIDTH = 320
#: Smallest relative inverse-depth jump counted as a depth edge.
REL_JUMP = 0.015
#: Scales searched (depth content size relative to colour content): 0.65-1.55 in steps of 3 %,
#: 1 included.
SCALES = tuple(float(s) for s in np.exp(np.arange(-14, 15) * 0.03))
#: Largest shift searched, as a fraction of the working width.
MAX_SHIFT = 0.15
#: Colour-edge closeness falls off with this sigma [working px].
EDGE_SIGMA = 1.5
#: Fewest depth-edge pixels (at the working size, all frames) needed for a verdict.
MIN_EDGE_PIXELS = 150
#: Fraction of the depth-edge weight that must stay inside the image for a fit to be scored.
MIN_INSIDE = 0.25
#: Local check: shifts up to LOCAL_RADIUS working px around each outline of LOCAL_MIN_PX px or
#: more; a clear peak stands LOCAL_PEAK above the outline's median score; shifts within LOCAL_EPS
#: of the best count as ties; LOCAL_MIN_OUTLINES outlines with a peak are needed.
LOCAL_RADIUS, LOCAL_MIN_PX, LOCAL_PEAK, LOCAL_EPS, LOCAL_MIN_OUTLINES = 8, 30, 0.25, 0.05, 3
#: Outlines (connected depth edges) shorter than MIN_OUTLINE px are noise; each outline has one
#: vote, spread over its pixels, shorter than OUTLINE_VOTE px: a share of a vote.
MIN_OUTLINE, OUTLINE_VOTE = 8, 30


def work_size(shape) -> tuple[int, int]:
    """(h, w) of an image of ``shape`` scaled to :data:`WORK_WIDTH` columns (never upscaled)."""
    h, w = int(shape[0]), int(shape[1])
    s = min(1.0, WORK_WIDTH / w)
    return max(8, int(round(h * s))), max(8, int(round(w * s)))


def resize_depth(depth_m: np.ndarray, size) -> np.ndarray:
    """Nearest-neighbour resize of an HxW float depth (NaN stays NaN) to ``size`` (h, w)."""
    import cv2

    h, w = size
    if depth_m.shape[:2] == (h, w):
        return np.asarray(depth_m, np.float32)
    return cv2.resize(np.asarray(depth_m, np.float32), (w, h), interpolation=cv2.INTER_NEAREST)


def depth_edges(depth_m: np.ndarray, rel_jump: float = REL_JUMP) -> np.ndarray:
    """Depth discontinuities of an HxW float depth [m] (NaN / <= 0 invalid) -> HxW bool."""
    import cv2

    valid = np.isfinite(depth_m) & (depth_m > 0)
    z = cv2.medianBlur(np.where(valid, depth_m, 0).astype(np.float32), 3)
    ok = z > 0
    inv = np.where(ok, 1.0 / np.where(ok, z, 1.0), 0.0)
    r = np.zeros(z.shape, np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        for a, b, c, sl in ((inv[:, 2:], inv[:, 1:-1], inv[:, :-2], np.s_[:, 1:-1]),
                            (inv[2:, :], inv[1:-1, :], inv[:-2, :], np.s_[1:-1, :])):
            r[sl] = np.maximum(r[sl], np.abs(a - 2 * b + c) / np.maximum(b, 1e-9))
    near_hole = cv2.dilate((~ok).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    usable = ok & ~near_hole
    if not usable.any():
        return np.zeros(z.shape, bool)
    c = 1.4826 * float(np.median(r[usable] / z[usable]))  # relative noise per metre
    return usable & (r > np.maximum(rel_jump, 6.0 * c * z))


def outline_weights(edges: np.ndarray) -> np.ndarray:
    """Per-pixel weights of a depth-edge map that give every outline (8-connected component)
    one vote: ``1 / max(size, OUTLINE_VOTE)``; fragments under :data:`MIN_OUTLINE` px (noise)
    get 0. So a long straight border (a table edge, which fits many placements along itself)
    counts as much as one object's outline, not as much as all of them."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(edges.astype(np.uint8), 8)
    size = stats[:, cv2.CC_STAT_AREA].astype(np.float32)
    w = np.where(size >= MIN_OUTLINE, 1.0 / np.maximum(size, OUTLINE_VOTE), 0.0)
    w[0] = 0.0  # background
    return w[labels].astype(np.float32)


def color_edge_closeness(rgb: np.ndarray, sigma: float = EDGE_SIGMA) -> np.ndarray:
    """HxWx3 uint8 RGB -> HxW float32 in [0, 1]: 1 on a colour edge, falling off with distance."""
    import cv2

    grey = cv2.GaussianBlur(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (0, 0), 1.0)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.hypot(gx, gy)
    high = max(float(np.percentile(mag, 90)), 30.0)
    edges = cv2.Canny(grey, 0.4 * high, high, L2gradient=True)
    if not edges.any():
        return np.zeros(grey.shape, np.float32)
    dist = cv2.distanceTransform((edges == 0).astype(np.uint8), cv2.DIST_L2, 3)
    return np.exp(-(dist ** 2) / (2 * sigma ** 2)).astype(np.float32)


def outline_offsets(edges: np.ndarray, closeness: np.ndarray, radius: int = LOCAL_RADIUS
                    ) -> list[float]:
    """How far each outline (a connected depth edge of at least :data:`LOCAL_MIN_PX` px) lies
    from the colour edges it fits best, searching shifts up to ``radius`` px around it: the
    smallest shift scoring within :data:`LOCAL_EPS` of its best (so a straight edge, which fits
    anywhere along itself, reports its distance across, not along). Outlines without a clear
    peak (best minus median score under :data:`LOCAL_PEAK`) say nothing and are left out.
    Registered depth gives about 0 for every outline; parallax, a rotation or another view of
    the scene give several px, wherever the objects are."""
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(edges.astype(np.uint8), 8)
    h, w = edges.shape
    r = np.arange(-radius, radius + 1)
    ty, tx = (a.ravel() for a in np.meshgrid(r, r, indexing="ij"))
    dist = np.hypot(ty, tx)
    out = []
    for k in range(1, n):
        if stats[k, cv2.CC_STAT_AREA] < LOCAL_MIN_PX:
            continue
        ys, xs = np.nonzero(labels == k)
        Y, X = ys[None, :] + ty[:, None], xs[None, :] + tx[:, None]
        inside = (Y >= 0) & (Y < h) & (X >= 0) & (X < w)
        score = np.where(inside, closeness[np.clip(Y, 0, h - 1), np.clip(X, 0, w - 1)],
                         0.0).mean(axis=1)
        best = float(score.max())
        if best - float(np.median(score)) >= LOCAL_PEAK:
            out.append(float(dist[score >= best - LOCAL_EPS].min()))
    return out


def identity_score(closeness: np.ndarray, depth_m: np.ndarray) -> float | None:
    """Mean colour-edge ``closeness`` under the outlines of ``depth_m`` (both at the working
    size, unmoved), each outline one vote; ``None`` without outlines."""
    w = outline_weights(depth_edges(depth_m))
    total = float(w.sum())
    return float((w * closeness).sum()) / total if total > 0 else None


def _scaled(edges: np.ndarray, s: float) -> np.ndarray:
    """Edge map with its content scaled by ``s`` about the image centre (pixel-centre aware)."""
    import cv2

    h, w = edges.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    M = np.array([[s, 0, (1 - s) * cx], [0, s, (1 - s) * cy]], np.float64)
    return cv2.warpAffine(edges.astype(np.float32), M, (w, h), flags=cv2.INTER_LINEAR)


def _inside_sums(e: np.ndarray, m: int) -> np.ndarray:
    """``out[dy + m, dx + m]`` = the sum of ``e`` over the pixels that stay inside the image when
    moved by (dx, dy), for |dx|, |dy| <= m (an integral image: no FFT needed)."""
    import cv2

    h, w = e.shape
    S = cv2.integral(np.ascontiguousarray(e, np.float32), sdepth=cv2.CV_64F)
    d = np.arange(-m, m + 1)
    r0, r1 = np.clip(-d, 0, h), np.clip(h - d, 0, h)  # rows p with 0 <= p + dy < h
    c0, c1 = np.clip(-d, 0, w), np.clip(w - d, 0, w)
    return (S[np.ix_(r1, c1)] - S[np.ix_(r0, c1)] - S[np.ix_(r1, c0)] + S[np.ix_(r0, c0)])


@dataclass
class AlignmentSearch:
    """Pooled correlation sums over frames: ``corr[s, dy, dx]`` (edge mass times closeness) and
    ``count[s, dy, dx]`` (edge mass inside the image) for scales :attr:`scales` and shifts
    ``-m..m`` (``m = max_shift`` working px)."""

    scales: tuple
    max_shift: int
    corr: np.ndarray
    count: np.ndarray
    mass: np.ndarray
    edge_pixels: int = 0
    frames: int = 0
    local: list = field(default_factory=list)

    @classmethod
    def empty(cls, size, scales=SCALES, max_shift: float = MAX_SHIFT) -> "AlignmentSearch":
        m = max(1, int(round(max_shift * size[1])))
        shape = (len(scales), 2 * m + 1, 2 * m + 1)
        return cls(tuple(scales), m, np.zeros(shape), np.zeros(shape), np.zeros(len(scales)))

    def add(self, edges: np.ndarray, closeness: np.ndarray) -> None:
        """Pool one frame: depth ``edges`` (bool) and colour ``closeness`` of the same size."""
        from scipy import fft

        weights = outline_weights(edges)
        h, w = edges.shape
        m = self.max_shift
        P = (fft.next_fast_len(h + m, real=True), fft.next_fast_len(w + m, real=True))
        fc = fft.rfft2(closeness.astype(np.float32), P)
        idx_y = np.arange(-m, m + 1) % P[0]
        idx_x = np.arange(-m, m + 1) % P[1]
        for i, s in enumerate(self.scales):
            e = _scaled(weights, s)
            corr = fft.irfft2(np.conj(fft.rfft2(e, P)) * fc, P)
            self.corr[i] += corr[np.ix_(idx_y, idx_x)]
            self.count[i] += _inside_sums(e, m)
            self.mass[i] += float(e.sum())
        self.edge_pixels += int(edges.sum())
        self.frames += 1
        self.local += outline_offsets(edges, closeness)

    def scores(self) -> np.ndarray:
        """Mean closeness under the moved depth edges; NaN where less than :data:`MIN_INSIDE`
        of their weight stays in the image. (A depth camera with a wider view sees outlines,
        e.g. the table's border, that leave the colour image at the right scale.)"""
        with np.errstate(invalid="ignore", divide="ignore"):
            out = self.corr / self.count
        keep = self.count >= MIN_INSIDE * self.mass[:, None, None]
        out[~keep] = np.nan
        return out


# --------------------------------------------------------------------------- verdict
#: The best fit's largest corner displacement [fraction of the width] up to which the depth
#: counts as registered (pass), and up to which it is only slightly off (warn).
REGISTERED, SLIGHTLY_OFF = 0.01, 0.02
#: Smallest peak height (best score minus the search's median score) that allows a verdict.
MIN_CONTRAST = 0.2
#: Identity share = (identity score - background) / (best score - background). A best fit
#: within REGISTERED passes when the identity reaches MIN_SHARE; any best fit passes when the
#: identity reaches SAME_AS_BEST (it explains the edges as well); a best fit farther away with
#: the identity at IDENTITY_SHARE or more is ambiguous; under OFF_SHARE the identity is far below
#: the fits elsewhere and the depth is not registered even when the best fit is ambiguous.
IDENTITY_SHARE, MIN_SHARE, SAME_AS_BEST, OFF_SHARE = 0.85, 0.6, 0.95, 0.5
#: Another fit farther than DISTINCT (fraction of the width) from the best one, within
#: AMBIGUOUS of the peak height, makes the best fit ambiguous.
DISTINCT, AMBIGUOUS = 0.03, 0.05


@dataclass(frozen=True)
class Alignment:
    """Where the depth edges fit the colour edges best.

    ``scale`` (depth content size / colour content size) and ``shift`` (dx, dy) [colour px] move
    depth pixels onto colour pixels about the image centre; ``displacement`` [colour px] is the
    largest move that fit makes at an image corner. Scores are mean colour-edge closeness under
    the depth edges: at the identity, at the best fit, and the search's median (background).
    ``unique`` is how far the best fit stands above any fit more than :data:`DISTINCT` away from
    it, in units of the peak height."""

    scale: float
    shift: tuple[float, float]
    displacement: float
    identity: float
    best: float
    background: float
    unique: float
    edge_pixels: int
    frames: int
    work_factor: float
    local: tuple = ()

    @property
    def local_offset(self) -> float | None:
        """Median distance [colour px] of the outlines from the colour edges they fit best
        (:func:`outline_offsets`), or ``None`` with fewer than LOCAL_MIN_OUTLINES outlines."""
        if len(self.local) < LOCAL_MIN_OUTLINES:
            return None
        return float(np.median(self.local)) * self.work_factor

    @property
    def contrast(self) -> float:
        return self.best - self.background

    @property
    def identity_share(self) -> float:
        return (self.identity - self.background) / self.contrast if self.contrast > 0 else 0.0


def _corner_moves(size, scales, shifts_x, shifts_y, ref=(1.0, 0.0, 0.0)) -> np.ndarray:
    """Largest corner displacement [working px] between each (scale, dy, dx) transform and
    ``ref`` = (scale, dx, dy)."""
    h, w = size
    cx, cy = (w - 1) / 2, (h - 1) / 2
    s = np.asarray(scales)[:, None, None] - ref[0]
    dx = shifts_x[None, None, :] - ref[1]
    dy = shifts_y[None, :, None] - ref[2]
    out = np.zeros((len(scales), len(shifts_y), len(shifts_x)))
    for px, py in ((-cx, -cy), (cx, -cy), (-cx, cy), (cx, cy)):
        out = np.maximum(out, np.hypot(s * px + dx, s * py + dy))
    return out


def best_alignment(search: AlignmentSearch, size, full_width: int) -> Alignment | None:
    """The best fit of a pooled search over images of working ``size`` (h, w) whose colour
    image is ``full_width`` px wide; ``None`` when nothing could be scored."""
    S = search.scores()
    if not np.isfinite(S).any():
        return None
    m = search.max_shift
    shifts = np.arange(-m, m + 1, dtype=np.float64)
    i1 = int(np.argmin(np.abs(np.log(np.asarray(search.scales)))))
    bi, by, bx = np.unravel_index(int(np.nanargmax(S)), S.shape)
    best_t = (float(search.scales[bi]), float(shifts[bx]), float(shifts[by]))
    far = _corner_moves(size, search.scales, shifts, shifts, best_t) > DISTINCT * size[1]
    far_best = float(np.nanmax(np.where(far, S, np.nan))) if (far & np.isfinite(S)).any() \
        else float("nan")
    best, bg = float(S[bi, by, bx]), float(np.nanmedian(S))
    ident = float(S[i1, m, m]) if np.isfinite(S[i1, m, m]) else bg
    disp = float(_corner_moves(size, [best_t[0]], np.array([best_t[1]]),
                               np.array([best_t[2]]))[0, 0, 0])
    k = full_width / size[1]
    unique = (best - far_best) / (best - bg) if best > bg and np.isfinite(far_best) else 1.0
    return Alignment(best_t[0], (best_t[1] * k, best_t[2] * k), disp * k, ident, best, bg,
                     float(unique), search.edge_pixels, search.frames, k, tuple(search.local))


def search_frames(pairs) -> tuple[AlignmentSearch | None, tuple[int, int]]:
    """Pool ``(rgb, depth_m)`` pairs (same sizes) into one :class:`AlignmentSearch`."""
    import cv2

    search, size = None, (0, 0)
    for rgb, depth_m in pairs:
        size = work_size(rgb.shape)
        rgb_w = cv2.resize(rgb, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        edges = depth_edges(resize_depth(depth_m, size))
        if search is None:
            search = AlignmentSearch.empty(size)
        search.add(edges, color_edge_closeness(rgb_w))
    return search, size
