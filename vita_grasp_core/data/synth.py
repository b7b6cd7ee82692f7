"""A synthetic GraspNet-1Billion look-alike: tabletop scenes, depth, labels and grasp rectangles.

Writes exactly the layout of CONVENTIONS §2 for one camera::

    OUT/scenes/scene_XXXX/<camera>/{rgb,depth,label}/NNNN.png, rect/NNNN.npy, camK.npy

Model. A pinhole camera (the camera's 1280x720 intrinsics) looks straight down at a table plane
``H`` = 0.6-0.75 m away. Each scene holds 3-8 extruded objects standing on the table (box, bar,
cylinder, oval, L-shape) with a random colour, size, height and pose. A frame is one view: the
camera yaws, shifts and changes height a little and the objects jitter slightly (GraspNet's 256
views play the same role). Everything is drawn from its 3-D description, so rgb, depth, label and
rectangles agree: object pixels are the convex hull of the projected base and top (perspective
sides), the top face is drawn over its side, a blurred shadow lies under each object, the table
carries a texture fixed in world coordinates, and sensor noise is added.

Grasps. On each convex part, candidate closing lines through a grid of points at 18 directions are
intersected with the part's outline (the chord). A candidate is kept when ``chord + margin`` fits a
0.10 m gripper. Its centre is the chord's midpoint and its score follows GraspNet's
``1.1 - mu``: ``mu`` is the friction coefficient needed by the worse of the two contacts
(``tan`` of the angle between the closing direction and the contact normal), rounded up to 0.1
steps; candidates needing ``mu > 1`` are dropped. So a bar is grasped across its short side all
along it (score 1.0 square to the sides, lower when tilted), a cylinder in any direction through
its centre, a box across both sides when they fit. Candidates whose fingertips land on another
object are dropped. The rectangle is projected at the top face: centre and opening point in pixels,
jaw size (height) 1-2.5 cm in pixels, object id from the scene's GraspNet-style ids (0-87).

Deterministic for a given seed: scene ``s`` uses ``(seed, s)``, frame ``f`` ``(seed, s, f)``.
Scene numbering starts at ``first_scene`` (or use ``scene_ids``), so a small synthetic set can be
spread over GraspNet's splits (e.g. scenes 0, 1 for ``train`` and 100 for ``test_seen``).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..choices import DEFAULT_CAMERA
from ..conventions import CAMERA_SIZE, CAMERA_INTRINSICS_1280x720, camera_matrix
from ..fileio import save_npy
from ..image_decode import write_image

#: 1280x720 intrinsics (CONVENTIONS §2).
INTRINSICS = {cam: camera_matrix(cam) for cam in CAMERA_INTRINSICS_1280x720}
IMAGE_SIZE = CAMERA_SIZE
MAX_OPENING = 0.10  # m
KINDS = ("box", "bar", "cylinder", "oval", "lshape")


# --------------------------------------------------------------------------- objects
@dataclass
class Part:
    """A convex polygon (object frame, metres) and the box where grasp points may lie."""

    poly: np.ndarray
    sample_box: tuple[float, float, float, float]  # x0, y0, x1, y1 of allowed grasp points


@dataclass
class SynthObject:
    kind: str
    obj_id: int
    parts: list[Part]
    height: float
    color: tuple[int, int, int]
    x: float
    y: float
    theta: float
    extra: dict = field(default_factory=dict)

    @property
    def radius(self) -> float:
        return float(max(np.hypot(p.poly[:, 0], p.poly[:, 1]).max() for p in self.parts))


def _rect(x0, y0, x1, y1) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float64)


def _ellipse(a, b, n=48) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([a * np.cos(t), b * np.sin(t)], axis=1)


def make_object(kind: str, obj_id: int, rng: np.random.Generator) -> SynthObject:
    """Random shape of ``kind`` centred at its origin (metres)."""
    hsv = np.array([[[rng.integers(0, 180), rng.integers(90, 256), rng.integers(90, 246)]]],
                   np.uint8)
    import cv2

    color = tuple(int(v) for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])
    m = 0.004  # keep grasp points this far from a part's ends
    if kind in ("box", "bar"):
        if kind == "box":
            L, W, h = rng.uniform(0.045, 0.13), rng.uniform(0.03, 0.075), rng.uniform(0.03, 0.12)
        else:
            L, W, h = rng.uniform(0.12, 0.22), rng.uniform(0.014, 0.03), rng.uniform(0.015, 0.04)
        parts = [Part(_rect(-L / 2, -W / 2, L / 2, W / 2), (-L / 2 + m, -W / 2 + m, L / 2 - m,
                                                             W / 2 - m))]
    elif kind == "cylinder":
        r, h = rng.uniform(0.02, 0.042), rng.uniform(0.05, 0.15)
        parts = [Part(_ellipse(r, r), (-0.25 * r, -0.25 * r, 0.25 * r, 0.25 * r))]
    elif kind == "oval":
        a, b, h = rng.uniform(0.035, 0.06), rng.uniform(0.02, 0.034), rng.uniform(0.03, 0.09)
        parts = [Part(_ellipse(a, b), (-0.6 * a, -0.25 * b, 0.6 * a, 0.25 * b))]
    elif kind == "lshape":
        la, lb, t, h = (rng.uniform(0.07, 0.13), rng.uniform(0.06, 0.11),
                        rng.uniform(0.016, 0.03), rng.uniform(0.02, 0.05))
        cx, cy = (la * t * la / 2 + lb * t * t / 2) / (la * t + lb * t), \
            (la * t * t / 2 + lb * t * lb / 2) / (la * t + lb * t)
        parts = [Part(_rect(-cx, -cy, la - cx, t - cy), (t - cx + 0.008, -cy + m, la - cx - m,
                                                         t - cy - m)),
                 Part(_rect(-cx, t - cy, t - cx, lb - cy), (-cx + m, t - cy + 0.008, t - cx - m,
                                                            lb - cy - m))]
    else:
        raise ValueError(f"unknown object kind {kind!r}; choose from {KINDS}")
    return SynthObject(kind, obj_id, parts, float(h), color, 0.0, 0.0, 0.0)


def place_objects(n: int, rng: np.random.Generator, half_extent=(0.3, 0.17)) -> list[SynthObject]:
    """``n`` non-overlapping objects (bounding circles + 3 cm clearance) near the table centre."""
    ids = rng.choice(88, size=n, replace=False)
    objs: list[SynthObject] = []
    for k in range(n):
        kind = KINDS[int(rng.integers(len(KINDS)))]
        for _ in range(200):
            o = make_object(kind, int(ids[k]), rng)
            o.x, o.y = rng.uniform(-half_extent[0], half_extent[0]), rng.uniform(-half_extent[1],
                                                                                 half_extent[1])
            o.theta = rng.uniform(-np.pi, np.pi)
            if all(math.hypot(o.x - p.x, o.y - p.y) > o.radius + p.radius + 0.03 for p in objs):
                objs.append(o)
                break
    return objs


# --------------------------------------------------------------------------- grasp candidates
def chords(poly: np.ndarray, centres: np.ndarray, dirs: np.ndarray):
    """Intersect lines ``c + t d`` with a convex polygon.

    Returns ``(t_min, t_max, n_min, n_max, ok)``: the entry/exit parameters, the outward unit
    normals of the edges hit there (G, 2) and whether the line crosses the polygon.
    """
    v0 = poly
    e = np.roll(poly, -1, axis=0) - poly  # (E, 2)
    nrm = np.stack([e[:, 1], -e[:, 0]], axis=1)
    nrm /= np.linalg.norm(nrm, axis=1, keepdims=True)
    mid = v0 + e / 2 - poly.mean(axis=0)
    nrm *= np.sign((nrm * mid).sum(axis=1))[:, None]  # outward
    d = dirs[:, None, :]
    q = v0[None] - centres[:, None, :]  # (G, E, 2)
    den = d[..., 0] * e[None, :, 1] - d[..., 1] * e[None, :, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (q[..., 0] * e[None, :, 1] - q[..., 1] * e[None, :, 0]) / den
        u = (q[..., 0] * d[..., 1] - q[..., 1] * d[..., 0]) / den
    hit = (np.abs(den) > 1e-12) & (u >= -1e-9) & (u <= 1 + 1e-9)
    tmax = np.where(hit, t, -np.inf)
    tmin = np.where(hit, t, np.inf)
    imax, imin = tmax.argmax(axis=1), tmin.argmin(axis=1)
    g = np.arange(len(centres))
    t1, t0 = tmax[g, imax], tmin[g, imin]
    ok = np.isfinite(t1) & np.isfinite(t0) & (t1 > t0)
    return t0, t1, nrm[imin], nrm[imax], ok


def object_grasps(obj: SynthObject, rng: np.random.Generator, spacing: float = 0.006,
                  n_angles: int = 18, max_per_object: int = 400) -> np.ndarray:
    """Grasps of one object in its own frame: ``(G, 6)`` = cx, cy, angle, width, jaw, score (m)."""
    out = []
    ang = np.arange(n_angles) * np.pi / n_angles
    for part in obj.parts:
        x0, y0, x1, y1 = part.sample_box
        xs = np.arange(x0, x1 + 1e-9, spacing) if x1 > x0 else np.array([(x0 + x1) / 2])
        ys = np.arange(y0, y1 + 1e-9, spacing) if y1 > y0 else np.array([(y0 + y1) / 2])
        gx, gy, ga = np.meshgrid(xs, ys, ang, indexing="ij")
        c = np.stack([gx.ravel(), gy.ravel()], axis=1)
        a = ga.ravel()
        d = np.stack([np.cos(a), np.sin(a)], axis=1)
        t0, t1, n0, n1, ok = chords(part.poly, c, d)
        chord = t1 - t0
        margin = rng.uniform(0.008, 0.02, len(a))
        width = chord + margin
        cos0 = np.clip(-(n0 * d).sum(axis=1), -1, 1)
        cos1 = np.clip((n1 * d).sum(axis=1), -1, 1)
        worst = np.arccos(np.minimum(cos0, cos1))
        with np.errstate(invalid="ignore"):
            mu = np.maximum(0.1, np.ceil(np.round(np.tan(worst) * 10, 6)) / 10)
        ok &= (width <= MAX_OPENING) & (worst < np.pi / 2 - 1e-6) & (mu <= 1.0 + 1e-9)
        mid = c + d * ((t0 + t1) / 2)[:, None]
        jaw = rng.uniform(0.01, 0.025, len(a))
        rows = np.stack([mid[:, 0], mid[:, 1], a, width, jaw, 1.1 - mu], axis=1)[ok]
        # identical midpoints and angles arise from grid points on one closing line: keep one
        _, uniq = np.unique(np.round(rows[:, :3], 4), axis=0, return_index=True)
        out.append(rows[np.sort(uniq)])
    g = np.concatenate(out) if out else np.zeros((0, 6))
    if len(g) > max_per_object:
        g = g[np.sort(rng.choice(len(g), max_per_object, replace=False))]
    return g


# --------------------------------------------------------------------------- camera
@dataclass
class View:
    """Camera pose over the table: yaw (rad), position (m, table frame) and height H (m)."""

    yaw: float
    tx: float
    ty: float
    height: float

    def project(self, xy: np.ndarray, z, K: np.ndarray) -> np.ndarray:
        """Table-frame points (..., 2) at height ``z`` above the table -> pixels (..., 2)."""
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        px = xy[..., 0] - self.tx
        py = xy[..., 1] - self.ty
        xc, yc = c * px + s * py, -s * px + c * py
        zc = self.height - np.asarray(z, dtype=np.float64)
        return np.stack([K[0, 0] * xc / zc + K[0, 2], K[1, 1] * yc / zc + K[1, 2]], axis=-1)

    def table_affine(self, K: np.ndarray, mpp: float, origin) -> np.ndarray:
        """2x3 affine: table texture (pixel (i, j) = world origin + mpp * (j, i)) -> image."""
        ox, oy = origin
        p0 = self.project(np.array([ox, oy]), 0.0, K)
        px = self.project(np.array([ox + mpp, oy]), 0.0, K) - p0
        py = self.project(np.array([ox, oy + mpp]), 0.0, K) - p0
        return np.array([[px[0], py[0], p0[0]], [px[1], py[1], p0[1]]])


def _to_world(obj: SynthObject, pts: np.ndarray, dx=0.0, dy=0.0, dth=0.0) -> np.ndarray:
    th = obj.theta + dth
    c, s = math.cos(th), math.sin(th)
    return np.stack([obj.x + dx + c * pts[..., 0] - s * pts[..., 1],
                     obj.y + dy + s * pts[..., 0] + c * pts[..., 1]], axis=-1)


# --------------------------------------------------------------------------- scene rendering
@dataclass
class SynthScene:
    scene_id: int
    objects: list[SynthObject]
    grasps: list[np.ndarray]  # per object, object frame
    table: np.ndarray  # HxWx3 uint8 texture in world coordinates
    table_origin: tuple[float, float]
    table_mpp: float
    base_height: float
    light: tuple[float, float]


def make_scene(scene_id: int, seed: int, rng=None) -> SynthScene:
    import cv2

    rng = np.random.default_rng([seed, scene_id]) if rng is None else rng
    n = int(rng.integers(3, 9))
    objs = place_objects(n, rng)
    grasps = [object_grasps(o, rng) for o in objs]
    # table texture: 1.8 x 1.2 m at 2 mm per pixel, base colour + low-frequency blotches + grain
    mpp, tw, th = 0.002, 900, 600
    base = np.array(rng.choice([[150, 115, 80], [190, 190, 185], [95, 110, 95], [200, 175, 140],
                                [120, 120, 130]]), np.float32) * rng.uniform(0.85, 1.1)
    low = cv2.resize(rng.normal(0, 1, (th // 60, tw // 60)).astype(np.float32), (tw, th),
                     interpolation=cv2.INTER_CUBIC)
    yy, xx = np.mgrid[0:th, 0:tw].astype(np.float32)
    ga = rng.uniform(0, np.pi)
    grain = np.sin((xx * math.cos(ga) + yy * math.sin(ga)) * rng.uniform(0.05, 0.25)
                   + 3 * low) * rng.uniform(0, 8)
    tex = base[None, None, :] * (1 + 0.06 * low[..., None]) + grain[..., None]
    tex += rng.normal(0, 3, (th, tw, 3)).astype(np.float32)
    table = np.clip(tex, 0, 255).astype(np.uint8)
    return SynthScene(scene_id, objs, grasps, table, (-0.9, -0.6), mpp,
                      float(rng.uniform(0.6, 0.75)), tuple(rng.uniform(-1, 1, 2)))


def render_frame(scene: SynthScene, frame: int, seed: int, K: np.ndarray,
                 image_size=IMAGE_SIZE):
    """One view of ``scene``: ``(rgb HxWx3 uint8 RGB, depth uint16 mm, label uint8, rect)``.

    ``rect`` is the GraspNet ``(N, 7)`` float32 array of the frame.
    """
    import cv2

    rng = np.random.default_rng([seed, scene.scene_id, frame])
    h, w = image_size
    sweep = 2 * np.pi * frame / 64.0
    view = View(yaw=0.12 * math.sin(sweep) + rng.normal(0, 0.03),
                tx=0.03 * math.cos(sweep) + rng.normal(0, 0.005),
                ty=0.02 * math.sin(sweep) + rng.normal(0, 0.005),
                height=scene.base_height + 0.02 * math.sin(0.5 * sweep) + rng.normal(0, 0.004))
    a_tab = view.table_affine(K, scene.table_mpp, scene.table_origin)
    img = cv2.warpAffine(scene.table, a_tab, (w, h), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT).astype(np.float32)
    depth = np.full((h, w), view.height * 1000.0, np.float32)
    label = np.zeros((h, w), np.uint8)
    shadow = np.zeros((h, w), np.float32)
    lx, ly = scene.light
    drawn = []
    for o in scene.objects:
        dx, dy, dth = rng.normal(0, 0.003), rng.normal(0, 0.003), rng.normal(0, 0.03)
        sil, tops = [], []
        for part in o.parts:
            world = _to_world(o, part.poly, dx, dy, dth)
            bot = view.project(world, 0.0, K)
            top = view.project(world, o.height, K)
            hull = cv2.convexHull(np.round(np.concatenate([bot, top]) * 16).astype(np.int32))
            sil.append(hull)
            tops.append(np.round(top * 16).astype(np.int32))
            sh = view.project(world + np.array([lx, ly]) * o.height * 0.35, 0.0, K)
            cv2.fillConvexPoly(shadow, np.round(sh * 16).astype(np.int32), 1.0, cv2.LINE_AA, 4)
        drawn.append((o, dx, dy, dth, sil, tops))
    shadow = cv2.GaussianBlur(shadow, (0, 0), 9)
    img *= (1 - 0.45 * np.clip(shadow, 0, 1))[..., None]
    for o, dx, dy, dth, sil, tops in drawn:
        col = np.array(o.color, np.float64)
        side = tuple(float(v) for v in col * 0.62)
        topc = tuple(float(v) for v in col)
        for hull, top in zip(sil, tops):
            cv2.fillConvexPoly(img, hull, side, cv2.LINE_AA, 4)
            cv2.fillConvexPoly(label, hull, o.obj_id + 1, cv2.LINE_8, 4)
            cv2.fillConvexPoly(depth, hull, (view.height - 0.5 * o.height) * 1000.0, cv2.LINE_8, 4)
        for top in tops:
            cv2.fillConvexPoly(img, top, topc, cv2.LINE_AA, 4)
            cv2.fillConvexPoly(depth, top, (view.height - o.height) * 1000.0, cv2.LINE_8, 4)
            cv2.polylines(img, [top], True, tuple(float(v) for v in col * 0.8), 2, cv2.LINE_AA, 4)
        if o.kind in ("cylinder", "oval"):  # a soft highlight on round tops
            ctr = view.project(_to_world(o, np.zeros((1, 2)), dx, dy, dth), o.height, K)[0]
            rad = 0.35 * o.radius * K[0, 0] / (view.height - o.height)
            hl = np.zeros((h, w), np.float32)
            cv2.circle(hl, (int(ctr[0] - 0.3 * rad), int(ctr[1] - 0.3 * rad)), max(2, int(rad)),
                       1.0, -1, cv2.LINE_AA)
            img += 50 * cv2.GaussianBlur(hl, (0, 0), max(1.0, rad / 2))[..., None]
        elif o.kind == "box":  # a printed label on the box top
            lab_poly = _to_world(o, o.parts[0].poly * 0.55, dx, dy, dth)
            p = np.round(view.project(lab_poly, o.height, K) * 16).astype(np.int32)
            lc = tuple(float(v) for v in 255 - col * 0.7)
            cv2.fillConvexPoly(img, p, lc, cv2.LINE_AA, 4)
    # grasps -> pixel rectangles
    rows = []
    fx = K[0, 0]
    for (o, dx, dy, dth, _, _), g in zip(drawn, scene.grasps):
        if not len(g):
            continue
        c = _to_world(o, g[:, :2], dx, dy, dth)
        a = g[:, 2] + o.theta + dth
        ow = c + np.stack([np.cos(a), np.sin(a)], axis=1) * (g[:, 3] / 2)[:, None]
        oo = c - np.stack([np.cos(a), np.sin(a)], axis=1) * (g[:, 3] / 2)[:, None]
        pc = view.project(c, o.height, K)
        po = view.project(ow, o.height, K)
        pf = view.project(oo, o.height, K)
        jaw = g[:, 4] * fx / (view.height - o.height)
        ids = np.full(len(g), float(o.obj_id))
        rows.append((np.column_stack([pc, po, jaw, g[:, 5], ids]), pf, o.obj_id))
    out = []
    for r, pf, oid in rows:
        inside = (r[:, 0] >= 0) & (r[:, 0] <= w - 1) & (r[:, 1] >= 0) & (r[:, 1] <= h - 1)
        ok = inside.copy()
        for tip in (r[:, 2:4], pf):  # fingertips must not land on another object
            tx = np.clip(np.round(tip[:, 0]).astype(int), 0, w - 1)
            ty = np.clip(np.round(tip[:, 1]).astype(int), 0, h - 1)
            lv = label[ty, tx].astype(int)
            ok &= (lv == 0) | (lv == oid + 1)
        out.append(r[ok])
    rect = np.concatenate(out).astype(np.float32) if out else np.zeros((0, 7), np.float32)
    # sensor effects: vignetting, noise, depth noise and dropouts
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vig = 1 - 0.18 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
    img = img * vig[..., None] * rng.uniform(0.9, 1.08)
    img += rng.normal(0, 2.5, img.shape).astype(np.float32)
    rgb = np.clip(img + 0.5, 0, 255).astype(np.uint8)
    depth += rng.normal(0, 1.5, depth.shape).astype(np.float32)
    depth[rng.random(depth.shape) < 0.004] = 0
    return rgb, np.clip(depth, 0, 65535).astype(np.uint16), label, rect


def synthesize(out, scenes: int = 2, frames: int = 8, seed: int = 0, camera: str = DEFAULT_CAMERA,
               first_scene: int = 0, scene_ids=None, progress: bool = False) -> dict:
    """Write a synthetic GraspNet-layout data set under ``out`` (see the module docstring).

    Args:
        out: data set root (``out/scenes/...`` is created; other scenes there are left alone).
        scenes: number of scenes, numbered ``first_scene, first_scene + 1, ...``.
        frames: frames (views) per scene, ``0000 ... frames-1``.
        seed: random seed (the output is a pure function of the arguments).
        camera: ``kinect`` or ``realsense`` (intrinsics of CONVENTIONS §2).
        scene_ids: explicit scene ids (overrides ``scenes`` and ``first_scene``).
    Returns:
        summary dict: ``root``, ``camera``, ``scenes`` (ids), ``frames`` per scene, ``rects``
        total, ``rects_per_frame`` (min, median, max), ``seconds``.
    """
    import cv2

    if camera not in INTRINSICS:
        raise ValueError(f"camera must be one of {sorted(INTRINSICS)}, got {camera!r}")
    ids = list(range(first_scene, first_scene + int(scenes))) if scene_ids is None else \
        [int(s) for s in scene_ids]
    if not ids or frames < 1 or min(ids) < 0 or max(ids) > 9999 or frames > 10000:
        raise ValueError(f"need >= 1 scene with ids in 0..9999 and 1..10000 frames, got "
                         f"scenes={ids} frames={frames}")
    K = INTRINSICS[camera]
    t0 = time.perf_counter()
    counts = []
    root = Path(out)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(ids) * frames, desc="synth", unit="frame")
    for sid in ids:
        scene = make_scene(sid, seed)
        cam = root / "scenes" / f"scene_{sid:04d}" / camera
        for sub in ("rgb", "depth", "label", "rect"):
            (cam / sub).mkdir(parents=True, exist_ok=True)
        save_npy(cam / "camK.npy", K.astype(np.float64))
        for f in range(frames):
            rgb, depth, label, rect = render_frame(scene, f, seed, K)
            name = f"{f:04d}"
            png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
            write_image(cam / "rgb" / f"{name}.png", rgb, png, rgb=True)
            write_image(cam / "depth" / f"{name}.png", depth, png)
            write_image(cam / "label" / f"{name}.png", label, png)
            save_npy(cam / "rect" / f"{name}.npy", rect)
            counts.append(len(rect))
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    c = np.array(counts)
    return {"root": str(root), "camera": camera, "scenes": ids, "frames": int(frames),
            "rects": int(c.sum()), "rects_per_frame": (int(c.min()), float(np.median(c)),
                                                         int(c.max())),
            "seconds": round(time.perf_counter() - t0, 2)}
