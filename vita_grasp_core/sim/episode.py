"""What the labeller and the benchmark share: a seeded scene description, building it, and the
camera views over it (domain variation of what a real table varies).

A scene is a pure function of ``(seed, scene index)`` (:func:`scene_spec`): its objects, its kind
(singulated: 1 object; clutter: 5-8), tray or not, and its appearance. Views are a pure function of
``(seed, scene, view)`` (:func:`random_view`) or fixed (:class:`ViewSpec`), so a benchmark gives
every grasp source exactly the same scenes and views, and a killed labelling run continues with
the same data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .camera import CameraPose, Lighting
from .scene import Appearance, SimWorld, random_appearance

#: Domain ranges of random views: camera height above the table [m], tilt from straight down
#: [deg], target jitter [m] (yaw and tilt direction are uniform).
HEIGHT_RANGE = (0.35, 0.75)
TILT_RANGE = (0.0, 20.0)
TARGET_JITTER = 0.05


@dataclass(frozen=True)
class SceneSpec:
    """One scene: object names, tray, appearance and the seed of its drop."""

    index: int
    names: tuple[str, ...]
    tray: bool
    appearance: Appearance
    drop_seed: tuple[int, ...]

    @property
    def kind(self) -> str:
        return "singulated" if len(self.names) == 1 else "clutter"

    def build(self, camera) -> SimWorld:
        """The world with the objects dropped and settled (:class:`~vita_grasp_core.sim.SimError`
        ``not_settled`` / ``load_failed`` on failure; the world is closed then)."""
        world = SimWorld(self.appearance, tray=self.tray, camera=camera)
        try:
            world.drop(list(self.names), np.random.default_rng(list(self.drop_seed)))
        except BaseException:
            world.close()
            raise
        return world


def scene_spec(seed: int, index: int, objects, *, kind: str = "mixed", clutter=(5, 8),
               tray: str | bool = "mixed", plain: bool = False) -> SceneSpec:
    """The scene ``index`` of a seeded series.

    Args:
        objects: names to draw from (:func:`~vita_grasp_core.sim.objects.parse_object_set`).
        kind: ``singulated``, ``clutter`` or ``mixed`` (half and half).
        clutter: inclusive range of the object count of a clutter scene.
        tray: True, False or ``"mixed"`` (a third of the scenes).
        plain: a fixed neutral appearance instead of a random one.
    """
    rng = np.random.default_rng([int(seed), int(index), 17])
    if kind == "mixed":
        kind = "singulated" if rng.random() < 0.5 else "clutter"
    if kind not in ("singulated", "clutter"):
        raise ValueError(f"scene kind must be singulated, clutter or mixed, got {kind!r}")
    n = 1 if kind == "singulated" else int(rng.integers(clutter[0], clutter[1] + 1))
    objects = list(objects)
    names = rng.choice(objects, size=n, replace=len(objects) < n)
    in_tray = bool(rng.random() < 1 / 3) if tray == "mixed" else bool(tray)
    appearance = Appearance() if plain else random_appearance(rng)
    return SceneSpec(int(index), tuple(str(s) for s in names), in_tray, appearance,
                     (int(seed), int(index), 29))


@dataclass(frozen=True)
class ViewSpec:
    """A camera over the table: height [m], tilt [deg] towards azimuth [deg], yaw [deg]."""

    height: float = 0.65
    tilt: float = 0.0
    azimuth: float = 0.0
    yaw: float = 0.0
    target: tuple[float, float] = (0.0, 0.0)

    def pose(self, support: float = 0.0) -> CameraPose:
        return CameraPose.look_at([self.target[0], self.target[1], support], self.height,
                                  math.radians(self.tilt), math.radians(self.azimuth),
                                  math.radians(self.yaw))

    def to_dict(self) -> dict:
        return {"height": self.height, "tilt": self.tilt, "azimuth": self.azimuth,
                "yaw": self.yaw, "target": list(self.target)}


def random_view(seed: int, scene: int, view: int, *, height=HEIGHT_RANGE,
                tilt=TILT_RANGE) -> tuple[ViewSpec, Lighting]:
    """A random camera and light for view ``view`` of scene ``scene``."""
    rng = np.random.default_rng([int(seed), int(scene), int(view), 31])
    spec = ViewSpec(height=float(rng.uniform(*height)), tilt=float(rng.uniform(*tilt)),
                    azimuth=float(rng.uniform(0, 360)), yaw=float(rng.uniform(0, 360)),
                    target=tuple(float(v) for v in rng.uniform(-TARGET_JITTER, TARGET_JITTER,
                                                               2)))
    light = random_appearance(rng, n_objects=0).light
    return spec, light
