"""The pick benchmark (``vita-grasp sim bench``): a grasp source picks objects in seeded scenes.

Protocols:

- ``singulated``: one object per scene, one attempt; success = successes / trials.
- ``clutter``: ``objects_per_scene`` objects (default 6), pick until the table is clear or two
  failures in a row (at most twice as many attempts as objects); clearance = objects removed by
  picking / objects, success = successes / attempts.

Scene ``i`` is a pure function of ``(seed, i)`` and the object set, and the random parts of an
attempt (sensor noise, a random source's draws) of ``(seed, i, attempt)``, so every source meets
the same scenes and views. Per attempt the camera renders RGB, metric depth, segmentation and
CameraInfo; the source answers a 3-D grasp in the camera's optical frame; the gripper executes it
as answered; picked objects leave the world. Output (``out``): ``summary.json``, ``trials.jsonl``
(one line per attempt), ``strip.png`` (executed grasps: green success, red failure) and
``report.md`` (the table).
"""
from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import SimError
from .camera import SimCamera
from .episode import ViewSpec, random_view, scene_spec
from .gripper import Gripper, grasp_to_world
from .report import crop_around, draw_executed, grasp_strip

PROTOCOLS = ("singulated", "clutter")
#: After a failed attempt in a clutter scene: ``same`` = execute the source's best grasp again
#: (the issue's protocol: grasps[0]); ``next`` = the source's first grasp whose position is
#: more than ``retry_distance`` from every failed one of the scene (else its best).
RETRY_POLICIES = ("same", "next")


@dataclass(frozen=True)
class BenchConfig:
    """Settings of one benchmark run (see the module docstring)."""

    objects: tuple[str, ...]
    object_spec: str
    protocol: str = "singulated"
    trials: int = 20
    seed: int = 0
    tray: bool = False
    objects_per_scene: int = 6
    image_size: tuple[int, int] = (480, 640)
    view: ViewSpec | None = field(default_factory=ViewSpec)  # None: a random view per scene
    plain: bool = False
    strip: int = 32
    retry: str = "same"
    retry_distance: float = 0.03

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("objects")
        d["view"] = self.view.to_dict() if self.view else "random"
        return d


def _tile(rgb, grasp, outcome, label: str, size: int = 200) -> np.ndarray:
    """The executed grasp drawn on the frame, cropped around it, with a caption."""
    h, w = rgb.shape[:2]
    x, y = (grasp.x, grasp.y) if grasp is not None else (w / 2, h / 2)
    drawn = draw_executed(rgb, grasp, outcome["success"])
    return draw_executed(crop_around(drawn, x, y, size), None, outcome["success"], label)


def _answer_json(ans) -> dict:
    g = ans.pixel
    return {"pixel": None if g is None else {k: round(float(v), 3) for k, v in
                                             g.to_dict().items()},
            "position": None if ans.position is None else [round(float(v), 5)
                                                           for v in ans.position],
            "quaternion": None if ans.quaternion is None else [round(float(v), 6)
                                                               for v in ans.quaternion],
            "width_m": round(float(ans.width_m), 5), "reason": ans.reason,
            "latency_ms": round(ans.latency * 1e3, 1), **ans.extra}


class _Run:
    """Book-keeping of one benchmark run."""

    def __init__(self, cfg: BenchConfig, source, out: Path | None, log):
        self.cfg, self.source, self.out, self.log = cfg, source, out, log
        self.records: list[dict] = []
        self.tiles: list[np.ndarray] = []
        self.objects_total = self.removed = 0
        self.scene_failures = Counter()
        self.jsonl = None
        self.failed: list[np.ndarray] = []
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            self.jsonl = open(out / "trials.jsonl", "w")

    def attempt(self, world, gripper, view, light, trial: int, k: int) -> dict:
        cfg = self.cfg
        rng = np.random.default_rng([cfg.seed, trial, k, 41])
        obs = world.render(view.pose(world.support_height(*view.target)), rng, light)
        ans = self.source.plan(obs, np.random.default_rng([cfg.seed, trial, k, 43]))
        ans, skipped = self._retry(ans)
        if ans.reason:
            outcome = {"success": False, "reason": ans.reason, "lifted": []}
        else:
            pw, Rw = grasp_to_world(obs.pose, ans.position, ans.quaternion)
            outcome = gripper.execute(pw, Rw, ans.width_m).to_dict()
            gripper.release()
        if not outcome["success"] and ans.position is not None:
            self.failed.append(np.asarray(ans.position, float))
        rec = {"trial": trial, "attempt": k, "objects_left": len(world.objects),
               "answer": _answer_json(ans), **outcome}
        if skipped:
            rec["retry_skipped"] = skipped
        if len(self.tiles) < cfg.strip:
            self.tiles.append(_tile(obs.rgb, ans.pixel, outcome, f"{trial}.{k} "
                                                                 f"{outcome['reason']}"))
        return rec

    def _retry(self, ans):
        """``(answer to execute, grasps passed over)`` under the retry policy: with ``next``,
        the first of the source's grasps (best first) farther than ``retry_distance`` from
        every failed grasp of this scene (camera frame: the camera stays put in a scene)."""
        if self.cfg.retry != "next" or not self.failed or ans.position is None:
            return ans, 0
        for i, cand in enumerate([ans, *ans.alternatives]):
            p = np.asarray(cand.position, float)
            if all(np.linalg.norm(p - f) > self.cfg.retry_distance for f in self.failed):
                if i:
                    cand.latency, cand.extra = ans.latency, {**ans.extra, "retry_rank": i}
                return cand, i
        return ans, 0

    def record(self, rec: dict) -> None:
        self.records.append(rec)
        if self.jsonl is not None:
            self.jsonl.write(json.dumps(rec) + "\n")
            self.jsonl.flush()

    def trial(self, trial: int) -> None:
        cfg = self.cfg
        spec = scene_spec(cfg.seed, trial, cfg.objects, kind=cfg.protocol,
                          clutter=(cfg.objects_per_scene, cfg.objects_per_scene),
                          tray=cfg.tray, plain=cfg.plain)
        try:
            world = spec.build(SimCamera(tuple(cfg.image_size)))
        except SimError as e:
            self.log(f"sim bench: scene {trial}: {e}")
            self.scene_failures[e.reason] += 1
            self.record({"trial": trial, "attempt": 0, "success": False, "reason": e.reason,
                         "detail": str(e), "scene_failed": True})
            return
        with world:
            if cfg.view is None:
                view, light = random_view(cfg.seed, trial, 0)
            else:
                view, light = cfg.view, None
            gripper = Gripper(world)
            self.failed = []  # positions of this scene's failed grasps (retry policy)
            n0 = len(world.objects)
            self.objects_total += n0
            fails, k = 0, 0
            while world.objects and fails < 2 and k < 2 * n0:
                rec = self.attempt(world, gripper, view, light, trial, k)
                rec.update(scene_objects=list(spec.names), tray=spec.tray,
                           view=view.to_dict())
                for body in rec["lifted"]:
                    if body in world.objects:
                        world.remove(body)
                        self.removed += 1
                fails = 0 if rec["success"] else fails + 1
                k += 1
                try:
                    world.settle()
                except SimError as e:
                    rec["after"] = str(e)
                    self.record(rec)
                    break
                self.record(rec)
                if cfg.protocol == "singulated":
                    break

    def summary(self, seconds: float) -> dict:
        attempts = [r for r in self.records if not r.get("scene_failed")]
        ok = sum(r["success"] for r in attempts)
        reasons = Counter(r["reason"] for r in self.records if not r["success"])
        lat = [r["answer"]["latency_ms"] for r in attempts if "answer" in r]
        out = {"source": self.source.describe(), "protocol": self.cfg.protocol,
               "trials": self.cfg.trials, "attempts": len(attempts), "successes": ok,
               "success_rate": ok / len(self.records) if self.records else 0.0,
               "objects": self.objects_total, "removed": self.removed,
               "clearance": self.removed / self.objects_total if self.objects_total else 0.0,
               "failures": dict(reasons.most_common()),
               "latency_ms_p50": float(np.median(lat)) if lat else None,
               "latency_ms_p95": float(np.percentile(lat, 95)) if lat else None,
               "seconds": round(seconds, 1), "config": self.cfg.to_json()}
        checks = [r["answer"]["pose_check"] for r in attempts
                  if "answer" in r and r["answer"].get("pose_check")]
        if checks:
            out["pose_check"] = {k: max(c[k] for c in checks) for k in checks[0]}
            out["pose_check"]["answers"] = len(checks)
        return out


def run_bench(cfg: BenchConfig, source, out=None, *, progress: bool = True, log=print) -> dict:
    """Run the benchmark with ``source`` (a :class:`~vita_grasp_core.sim.sources.GraspSource`);
    writes the outputs into ``out`` when given and returns the summary."""
    if cfg.protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {cfg.protocol!r}")
    if cfg.retry not in RETRY_POLICIES:
        raise ValueError(f"retry must be one of {', '.join(RETRY_POLICIES)}, got {cfg.retry!r}")
    run = _Run(cfg, source, Path(out) if out is not None else None, log)
    t0 = time.perf_counter()
    trials = range(cfg.trials)
    if progress:
        from tqdm import tqdm

        trials = tqdm(trials, desc=f"sim bench {source.describe()}", unit="scene")
    try:
        for i in trials:
            run.trial(i)
    finally:
        if run.jsonl is not None:
            run.jsonl.close()
    summary = run.summary(time.perf_counter() - t0)
    if run.out is not None:
        _write_outputs(run.out, summary, run.tiles)
    return summary


def _write_outputs(out: Path, summary: dict, tiles) -> None:
    import cv2

    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    cv2.imwrite(str(out / "strip.png"), cv2.cvtColor(grasp_strip(tiles), cv2.COLOR_RGB2BGR))
    (out / "report.md").write_text(
        f"# Pick benchmark: {summary['source']}, {summary['protocol']}\n\n"
        + results_table([summary]) + "\n\n![executed grasps](strip.png)\n")


def results_table(summaries) -> str:
    """A markdown table of benchmark summaries (one row each)."""
    rows = ["| source | protocol | scenes | attempts | success | clearance | failures | "
            "latency p50 / p95 [ms] |", "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        fails = ", ".join(f"{k} {v}" for k, v in s["failures"].items()) or "none"
        lat = "-" if s["latency_ms_p50"] is None else \
            f"{s['latency_ms_p50']:.0f} / {s['latency_ms_p95']:.0f}"
        rows.append(f"| {s['source']} | {s['protocol']} | {s['trials']} | {s['attempts']} | "
                    f"{100 * s['success_rate']:.1f} % | {100 * s['clearance']:.1f} % | {fails} | "
                    f"{lat} |")
    return "\n".join(rows)
