"""Physics-labelled data (``vita-grasp sim label``): grasps tried in the simulator, successes kept,
written in the GraspNet-1Billion layout (CONVENTIONS §2) so ``data check``, training,
evaluation and ``bag make`` read it unchanged::

    OUT/scenes/scene_XXXX/kinect/
        rgb/NNNN.png     colour (the camera mode's size, 640x480 by default)
        depth/NNNN.png   uint16 millimetres, registered to rgb (0 = no depth)
        label/NNNN.png   instance mask: 0 = background, object index + 1
        rect/NNNN.npy    float32 (N, 7) successful grasps: centre, opening point, jaw, 1.0, object
        rect_neg/NNNN.npy  the failed candidates (score 0), same columns
        meta/NNNN.json   camera pose and view, light, objects, outcome counts per reason
        camK.npy         3x3 intrinsics of the camera mode

A view where no candidate succeeded keeps only its ``meta`` and ``rect_neg`` files (no rgb, so
the data readers never see a frame without a grasp).
    OUT/sim_label.json        the settings (a resumed run must use the same)
    OUT/sim_label_log.jsonl   one line per finished or skipped scene

Per scene (:func:`~vita_grasp_core.sim.episode.scene_spec`: singulated or clutter, tray or not,
random appearance) and per view (random camera height, tilt, yaw and light), candidates from
:func:`~vita_grasp_core.sim.candidates.antipodal_candidates` are converted to 3-D poses with the
node's convention and each is executed from the same saved simulator state. A view is complete
when its ``meta`` file exists (written last, atomically), so a killed run (Ctrl-C, SIGTERM,
SIGKILL) continues where it stopped; scenes run in worker processes.
"""
from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..choices import DEFAULT_CAMERA
from ..cli_errors import sigterm_as_interrupt
from ..grasp import grasps_to_array, grasps_to_graspnet_rects
from . import SimError
from .camera import SimCamera
from .candidates import antipodal_candidates, pixel_to_pose
from .episode import random_view, scene_spec
from .gripper import Gripper, grasp_to_world
from .shortcuts import EXACT, FAST, Shortcuts

CAMERA_DIR = DEFAULT_CAMERA
SETTINGS_FILE = "sim_label.json"
LOG_FILE = "sim_label_log.jsonl"


@dataclass(frozen=True)
class LabelSettings:
    """What defines a labelled data set (stored in ``sim_label.json``)."""

    objects: tuple[str, ...]
    object_spec: str
    seed: int = 0
    views: int = 4
    candidates: int = 24
    kind: str = "mixed"
    tray: str = "mixed"
    image_size: tuple[int, int] = (480, 640)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("objects")
        d["image_size"] = list(self.image_size)
        return d


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def _png(path: Path, image) -> None:
    import cv2

    def write(tmp):
        if not cv2.imwrite(str(tmp) + ".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
            raise OSError(f"cannot write {path}")
        os.replace(str(tmp) + ".png", tmp)

    _atomic_write(path, write)


def _npy(path: Path, arr) -> None:
    def write(tmp):
        with open(tmp, "wb") as f:
            np.save(f, arr)

    _atomic_write(path, write)


def frame_done(cam: Path, view: int) -> bool:
    """A view is complete when its meta file (written last) exists."""
    return (cam / "meta" / f"{view:04d}.json").is_file()


def _rect_rows(grasps, objs) -> np.ndarray:
    if not grasps:
        return np.zeros((0, 7), np.float32)
    rows = grasps_to_array(grasps)
    rows[:, 6] = objs
    return grasps_to_graspnet_rects(rows)


def label_view(world, gripper, state, obs, rng, n: int, index_of: dict,
               shortcuts: Shortcuts = FAST) -> tuple:
    """Try ``n`` candidates on one rendered view; returns (positives (N, 7), negatives,
    reasons Counter). ``shortcuts``: physics skipped where the outcome is decided."""
    cands = antipodal_candidates(obs, obs.extra["object_ids"], rng, n)
    pos, pos_obj, neg, neg_obj, reasons = [], [], [], [], Counter()
    for g, body in cands:
        pose = pixel_to_pose(g, obs.depth, obs.K)
        if pose is None:
            reasons["no_pose"] += 1
            continue
        world.restore(state)
        if shortcuts.asleep:
            world.sleep()
        gripper.park()
        pw, Rw = grasp_to_world(obs.pose, pose.position, pose.quaternion)
        out = gripper.execute(pw, Rw, pose.width_m, shortcuts=shortcuts)
        reasons[out.reason] += 1
        (pos if out.success else neg).append(g.__class__(g.x, g.y, g.angle, g.width, g.height,
                                                         1.0 if out.success else 0.0, 0.0))
        (pos_obj if out.success else neg_obj).append(index_of[body])
    world.restore(state)
    gripper.park()
    return _rect_rows(pos, pos_obj), _rect_rows(neg, neg_obj), reasons


def label_scene(root: str, settings: LabelSettings, index: int,
                shortcuts: Shortcuts = FAST) -> dict:
    """Label every missing view of scene ``index`` under ``root``; returns its log entry."""
    t0, c0 = time.perf_counter(), time.process_time()
    cam = Path(root) / "scenes" / f"scene_{index:04d}" / CAMERA_DIR
    todo = [v for v in range(settings.views) if not frame_done(cam, v)]
    entry = {"scene": index, "frames": 0, "positives": 0, "negatives": 0, "status": "done"}
    if not todo:
        return entry
    spec = scene_spec(settings.seed, index, settings.objects, kind=settings.kind,
                      tray={"mixed": "mixed", "yes": True, "no": False}[settings.tray])
    entry.update(kind=spec.kind, tray=spec.tray, objects=list(spec.names))
    camera = SimCamera(tuple(settings.image_size))
    try:
        world = spec.build(camera)
    except SimError as e:
        entry.update(status="skipped", reason=e.reason, detail=str(e))
        return entry
    try:
        gripper = Gripper(world)
        state = world.save()
        index_of = {b: k for k, b in enumerate(sorted(world.objects))}
        for sub in ("rgb", "depth", "label", "rect", "rect_neg", "meta"):
            (cam / sub).mkdir(parents=True, exist_ok=True)
        _npy(cam / "camK.npy", camera.K)
        reasons = Counter()
        for v in todo:
            view, light = random_view(settings.seed, index, v)
            rng = np.random.default_rng([settings.seed, index, v, 37])
            obs = world.render(view.pose(world.support_height(*view.target)), rng, light)
            pos, neg, r = label_view(world, gripper, state, obs, rng, settings.candidates,
                                     index_of, shortcuts)
            reasons.update(r)
            _write_frame(cam, v, obs, pos, neg, index_of, view, light, spec, r)
            entry["views"] = entry.get("views", 0) + 1
            entry["frames"] += int(len(pos) > 0)
            entry["positives"] += len(pos)
            entry["negatives"] += len(neg)
        entry["reasons"] = dict(reasons)
    finally:
        world.close()
    entry["seconds"] = round(time.perf_counter() - t0, 2)
    entry["cpu_seconds"] = round(time.process_time() - c0, 2)
    return entry


def _write_frame(cam: Path, v: int, obs, pos, neg, index_of, view, light, spec, reasons):
    import cv2

    name = f"{v:04d}"
    label = np.zeros(obs.segmentation.shape, np.uint8)
    for body, k in index_of.items():
        label[obs.segmentation == body] = k + 1
    depth_mm = np.clip(np.round(obs.depth * 1000.0), 0, 65535).astype(np.uint16)
    _npy(cam / "rect_neg" / f"{name}.npy", neg)
    if len(pos):
        _png(cam / "rgb" / f"{name}.png", cv2.cvtColor(obs.rgb, cv2.COLOR_RGB2BGR))
        _png(cam / "depth" / f"{name}.png", depth_mm)
        _png(cam / "label" / f"{name}.png", label)
        _npy(cam / "rect" / f"{name}.npy", pos)
    meta = {"view": view.to_dict(), "camera_to_world": obs.pose.matrix.round(6).tolist(),
            "light": asdict(light), "objects": list(spec.names), "kind": spec.kind,
            "tray": spec.tray, "positives": int(len(pos)), "negatives": int(len(neg)),
            "reasons": dict(reasons), "K": obs.K.round(4).tolist()}
    _atomic_write(cam / "meta" / f"{name}.json",  # last: marks the view complete
                  lambda tmp: Path(tmp).write_text(json.dumps(meta, indent=1)))


# ---------------------------------------------------------------------------------- the run
def _check_settings(root: Path, settings: LabelSettings) -> None:
    """Write ``sim_label.json`` on the first run; a resumed run must match it."""
    path = root / SETTINGS_FILE
    want = settings.to_json()
    if path.is_file():
        try:
            have = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path} is unreadable ({e}); remove it or use another --out") \
                from None
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            what = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
            raise ValueError(f"{root} was labelled with other settings ({what}); resume with "
                             "the same settings or use another --out")
        return
    root.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(want, indent=1)))


def _skipped_scenes(root: Path) -> set[int]:
    out = set()
    try:
        for line in (root / LOG_FILE).read_text().splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                continue  # a line cut by a kill
            if e.get("status") == "skipped":
                out.add(int(e["scene"]))
    except OSError:
        pass
    return out


def _worker_init() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool


def _worker(args):
    return label_scene(*args)


def label_dataset(out, settings: LabelSettings, scenes, *, workers: int = 2,
                  progress: bool = True, log=print, exact: bool = False) -> dict:
    """Label the scenes ``scenes`` (ids) into ``out`` with ``workers`` processes, continuing a
    killed run. ``exact``: every trial runs its full course (no :class:`Shortcuts`; slower,
    to check them). Returns totals: frames written now and in all, positives, scenes
    skipped, wall and CPU seconds, frames per hour."""
    import multiprocessing as mp

    root = Path(out)
    _check_settings(root, settings)
    skipped = _skipped_scenes(root) & set(scenes)
    todo = [s for s in scenes if s not in skipped and not all(
        frame_done(root / "scenes" / f"scene_{s:04d}" / CAMERA_DIR, v)
        for v in range(settings.views))]
    total = (len(scenes) - len(skipped)) * settings.views
    done_before = sum(frame_done(root / "scenes" / f"scene_{s:04d}" / CAMERA_DIR, v)
                      for s in scenes if s not in skipped for v in range(settings.views))
    log(f"sim label: {len(scenes)} scenes x {settings.views} views into {root}; "
        f"{len(scenes) - len(todo)} scenes done or skipped before, {len(todo)} to do with "
        f"{workers} worker(s)")
    t0 = time.perf_counter()
    stats = Counter()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=total, initial=done_before, desc="sim label", unit="view")
    jobs = [(str(root), settings, s, EXACT if exact else FAST) for s in todo]
    ctx = mp.get_context("spawn")
    try:
        with sigterm_as_interrupt():  # stop like Ctrl-C
            _run_pool(ctx, workers, jobs, root, settings, stats, bar, log)
    finally:
        if bar is not None:
            bar.close()
    wall = time.perf_counter() - t0
    frames = stats["frames"]
    return {"frames_now": frames, "views_now": stats["views"],
            "frames_total": _frames_written(root, scenes, settings),
            "positives": stats["positives"], "negatives": stats["negatives"],
            "scenes_skipped": stats["skipped"], "seconds": round(wall, 1),
            "cpu_seconds": round(stats["cpu_seconds"], 1),
            "frames_per_hour": round(3600 * frames / wall, 1) if frames and wall > 0 else None}


def _frames_written(root: Path, scenes, settings) -> int:
    return sum((root / "scenes" / f"scene_{s:04d}" / CAMERA_DIR / "rect" / f"{v:04d}.npy")
               .is_file() for s in scenes for v in range(settings.views))


def _run_pool(ctx, workers, jobs, root, settings, stats, bar, log) -> None:
    with ctx.Pool(max(1, int(workers)), initializer=_worker_init) as pool, \
            open(root / LOG_FILE, "a") as logf:
        for entry in pool.imap_unordered(_worker, jobs):
            logf.write(json.dumps(entry) + "\n")
            logf.flush()
            stats["frames"] += entry["frames"]
            stats["views"] += entry.get("views", 0)
            stats["positives"] += entry["positives"]
            stats["negatives"] += entry["negatives"]
            stats["cpu_seconds"] += entry.get("cpu_seconds", 0.0)
            if entry["status"] == "skipped":
                stats["skipped"] += 1
                log(f"sim label: scene {entry['scene']} skipped: {entry['detail']}")
                if bar is not None:
                    bar.total -= settings.views
            if bar is not None:
                bar.update(entry.get("views", 0))
