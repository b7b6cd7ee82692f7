"""A simulated tabletop world: table, optional tray, objects dropped from random poses and settled,
the appearance a real table varies (colours, textures, light), rendering through the camera.

One :class:`SimWorld` owns one pybullet ``DIRECT`` connection (never a GUI); close it (or use it
as a context manager) to free the engine. World frame: z up, the table top at ``z = 0``, the
workspace centred on the origin.
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import SimError, data_path, pybullet, quiet_native_output
from .camera import CameraPose, Lighting, Observation, SimCamera
from .objects import SIZE_RANGE, SimObject, spawn

#: Physics step [s].
TIME_STEP = 1.0 / 240.0
#: Table top size (x, y) [m]; its surface is the plane z = 0.
TABLE_SIZE = (2.4, 2.4)
#: The tray: pybullet_data's traybox (0.6 x 0.6 m, sloped walls); its floor's top height [m].
TRAY_FLOOR = 0.015
TRAY_INNER = 0.2  # half side [m] of its flat floor
#: Objects settled outside this half extent [m] (or below the table) left the workspace.
WORKSPACE = 0.35
LOST_Z = -0.05


@dataclass
class Appearance:
    """What a real table varies between scenes: table / tray colour and texture, object colours,
    light and sensor noise (RGB sigma in grey levels, depth sigma [m] and dropout fraction)."""

    table_rgba: tuple = (0.75, 0.7, 0.62, 1.0)
    table_texture: str = "plain"
    tray_rgba: tuple = (0.6, 0.6, 0.65, 1.0)
    tray_texture: str = "plain"
    object_rgba: list = field(default_factory=list)
    light: Lighting = field(default_factory=Lighting)
    rgb_noise: float = 0.0
    depth_noise: float = 0.0
    depth_dropout: float = 0.0
    seed: int = 0


TEXTURES = ("plain", "noise", "wood", "checker", "speckle")


def random_appearance(rng: np.random.Generator, n_objects: int = 16) -> Appearance:
    """A random :class:`Appearance` (every field drawn from ``rng``)."""
    def colour(sat=(0.0, 0.5), val=(0.3, 0.95)):
        import colorsys

        r, g, b = colorsys.hsv_to_rgb(rng.uniform(), rng.uniform(*sat), rng.uniform(*val))
        return (r, g, b, 1.0)

    az, el = rng.uniform(0, 2 * np.pi), rng.uniform(0.6, 1.5)
    light = Lighting(direction=(math.cos(az) * math.cos(el), math.sin(az) * math.cos(el),
                                math.sin(el)),
                     color=tuple(float(v) for v in rng.uniform(0.85, 1.0, 3)),
                     ambient=float(rng.uniform(0.45, 0.8)), diffuse=float(rng.uniform(0.3, 0.7)),
                     specular=float(rng.uniform(0.0, 0.3)), shadow=bool(rng.random() < 0.5))
    return Appearance(
        table_rgba=colour(), table_texture=str(rng.choice(TEXTURES)),
        tray_rgba=colour(), tray_texture=str(rng.choice(TEXTURES[:3])),
        object_rgba=[colour(sat=(0.2, 1.0), val=(0.25, 1.0)) for _ in range(n_objects)],
        light=light, rgb_noise=float(rng.uniform(0, 4)), depth_noise=float(rng.uniform(0, 0.002)),
        depth_dropout=float(rng.uniform(0, 0.01)), seed=int(rng.integers(2**31)))


def texture_image(kind: str, rng: np.random.Generator, size: int = 1024) -> np.ndarray:
    """A grey ``size x size`` uint8 RGB texture of ``kind`` (multiplied by the surface colour)."""
    import cv2

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if kind == "noise":
        low = cv2.resize(rng.normal(0, 1, (24, 24)).astype(np.float32), (size, size),
                         interpolation=cv2.INTER_CUBIC)
        g = 0.85 + 0.08 * low + rng.normal(0, 0.03, (size, size))
    elif kind == "wood":
        a = rng.uniform(0, np.pi)
        g = 0.85 + 0.1 * np.sin((xx * math.cos(a) + yy * math.sin(a)) * rng.uniform(20, 60)
                                + 2 * np.sin(yy * 7))
    elif kind == "checker":
        n = int(rng.integers(12, 48))
        g = 0.7 + 0.25 * ((np.floor(xx * n) + np.floor(yy * n)) % 2)
    elif kind == "speckle":
        g = 0.9 - 0.3 * (rng.random((size, size)) < 0.03)
    else:
        g = np.ones((size, size))
    g = np.clip(g, 0, 1)
    return np.repeat((g * 255).astype(np.uint8)[..., None], 3, axis=2)


class SimWorld:
    """One simulated tabletop (a pybullet DIRECT client).

    Args:
        appearance: colours, textures, light and sensor noise (:func:`random_appearance`).
        tray: put the objects in pybullet_data's tray.
        camera: intrinsics of the rendered frames.
    """

    def __init__(self, appearance: Appearance | None = None, *, tray: bool = False,
                 camera: SimCamera | None = None):
        p = pybullet()
        self.appearance = appearance or Appearance()
        self.tray_enabled = bool(tray)
        self.camera = camera or SimCamera()
        with quiet_native_output():
            self.client = p.connect(p.DIRECT)
        if self.client < 0:
            raise SimError("engine", "pybullet could not start a DIRECT physics client")
        self._tmp = tempfile.TemporaryDirectory(prefix="vita_grasp_sim_")
        self._rng = np.random.default_rng(self.appearance.seed)
        p.setGravity(0, 0, -9.81, physicsClientId=self.client)
        p.setTimeStep(TIME_STEP, physicsClientId=self.client)
        self.objects: dict[int, SimObject] = {}
        self.removed: list[SimObject] = []
        self.table = self._make_table()
        self.tray = self._make_tray() if tray else None
        self.static_bodies = {self.table: "table", **({self.tray: "tray"} if tray else {})}

    # ------------------------------------------------------------------ lifetime
    def close(self) -> None:
        if self.client is not None and self.client >= 0:
            pybullet().disconnect(physicsClientId=self.client)
        self.client = None
        self._tmp.cleanup()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ static scene
    def _texture(self, kind: str) -> int:
        import cv2

        path = Path(self._tmp.name) / f"tex_{kind}_{self._rng.integers(1 << 30)}.png"
        cv2.imwrite(str(path), texture_image(kind, self._rng))
        return pybullet().loadTexture(str(path), physicsClientId=self.client)

    def _make_table(self) -> int:
        p, c = pybullet(), self.client
        half = [TABLE_SIZE[0] / 2, TABLE_SIZE[1] / 2, 0.02]
        col = p.createCollisionShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c)
        vis = p.createVisualShape(p.GEOM_BOX, halfExtents=half, physicsClientId=c)
        body = p.createMultiBody(0, col, vis, [0, 0, -0.02], physicsClientId=c)
        a = self.appearance
        p.changeVisualShape(body, -1, rgbaColor=list(a.table_rgba),
                            textureUniqueId=self._texture(a.table_texture), physicsClientId=c)
        p.changeDynamics(body, -1, lateralFriction=0.6, physicsClientId=c)
        return body

    def _make_tray(self) -> int:
        p, c = pybullet(), self.client
        with quiet_native_output():
            body = p.loadURDF(f"{data_path()}/tray/traybox.urdf", [0, 0, 0], useFixedBase=True,
                              physicsClientId=c)
        a = self.appearance
        p.changeVisualShape(body, -1, rgbaColor=list(a.tray_rgba),
                            textureUniqueId=self._texture(a.tray_texture), physicsClientId=c)
        p.changeDynamics(body, -1, lateralFriction=0.6, physicsClientId=c)
        return body

    def support_height(self, x: float, y: float) -> float:
        """Height [m] of the surface objects rest on at (x, y): the tray floor or the table."""
        if self.tray is not None and abs(x) <= TRAY_INNER + 0.05 and abs(y) <= TRAY_INNER + 0.05:
            return TRAY_FLOOR
        return 0.0

    # ------------------------------------------------------------------ objects
    def drop(self, names, rng: np.random.Generator, *, spread: float | None = None,
             size_range=SIZE_RANGE) -> None:
        """Drop ``names`` from random poses over the workspace centre (staggered heights,
        random orientations), then :meth:`settle`. ``spread``: half side [m] of the drop
        area (default 0.07 for one object, 0.12 for more, 0.15 in the tray)."""
        p = pybullet()
        if spread is None:
            spread = 0.07 if len(names) == 1 else (0.15 if self.tray is not None else 0.12)
        base = self.support_height(0, 0)
        for k, name in enumerate(names):
            xy = rng.uniform(-spread, spread, 2)
            obj = spawn(name, self.client, rng, [xy[0], xy[1], base + 0.08 + 0.07 * k],
                        size_range=size_range)
            self._lift_clear(obj.body)
            # resting bodies sleep (about 2x faster steps in clutter); wake() after removals
            p.changeDynamics(obj.body, -1, activationState=p.ACTIVATION_STATE_ENABLE_SLEEPING,
                             physicsClientId=self.client)
            rgba = self.appearance.object_rgba
            if rgba:
                p.changeVisualShape(obj.body, -1, rgbaColor=list(rgba[k % len(rgba)]),
                                    physicsClientId=self.client)
            self.objects[obj.body] = obj
        self.settle()
        if not self.objects:
            raise SimError("empty_scene", "no object stayed in the workspace (all fell off or "
                                          "through the table)")

    def _lift_clear(self, body: int) -> None:
        """Raise a just-spawned body until it touches nothing (no interpenetration)."""
        p, c = pybullet(), self.client
        others = [*self.static_bodies, *self.objects]
        for _ in range(40):
            if not any(p.getClosestPoints(body, o, 0.002, physicsClientId=c) for o in others):
                return
            pos, orn = p.getBasePositionAndOrientation(body, physicsClientId=c)
            p.resetBasePositionAndOrientation(body, [pos[0], pos[1], pos[2] + 0.03], orn,
                                              physicsClientId=c)

    def step(self, n: int = 1) -> None:
        p = pybullet()
        for _ in range(int(n)):
            p.stepSimulation(physicsClientId=self.client)

    def settle(self, max_time: float = 6.0, lin_tol: float = 0.01, ang_tol: float = 0.2,
               calm_time: float = 0.1) -> None:
        """Step until the objects are at rest: every object calm (speed under the tolerances)
        for ``calm_time`` s, or none displaced by more than 1 mm / 2 degrees over 0.25 s (an
        object rocking in place on an edge). Objects that left the workspace are removed.
        :class:`SimError` ``not_settled`` (one line naming the fastest object) after
        ``max_time`` s of simulated time."""
        p, c = pybullet(), self.client
        self.wake()
        calm, need = 0, max(1, int(round(calm_time / TIME_STEP)))
        window = int(round(0.25 / TIME_STEP))
        last, poses = (0.0, ""), self._poses()
        for i in range(1, int(round(max_time / TIME_STEP)) + 1):
            p.stepSimulation(physicsClientId=c)
            moving = self._fastest(lin_tol, ang_tol)
            calm = 0 if moving else calm + 1
            last = moving or last
            if calm >= need:
                break
            if i % window == 0:
                now = self._poses()
                if _displacement(poses, now) < (0.001, math.radians(2.0)):
                    break
                poses = now
        else:
            raise SimError("not_settled", f"the scene did not settle within {max_time:g} s of "
                                          f"simulated time ({last[1]} still moved at "
                                          f"{last[0]:.3f} m/s)")
        self.drop_lost()
        for body, obj in self.objects.items():
            obj.rest_z = float(p.getBasePositionAndOrientation(body, physicsClientId=c)[0][2])

    def _poses(self) -> dict:
        p = pybullet()
        return {b: p.getBasePositionAndOrientation(b, physicsClientId=self.client)
                for b in self.objects}

    def _fastest(self, lin_tol: float, ang_tol: float) -> tuple[float, str] | None:
        """(speed [m/s], name) of the fastest object moving above the tolerances, else None."""
        p, worst = pybullet(), None
        for body, obj in self.objects.items():
            if self.position(body)[2] < LOST_Z:
                continue  # fell off (or through) the table: removed as lost after settling
            lin, ang = p.getBaseVelocity(body, physicsClientId=self.client)
            v, w = float(np.linalg.norm(lin)), float(np.linalg.norm(ang))
            if not (v <= lin_tol and w <= ang_tol) and (worst is None or v > worst[0]):
                worst = (v, obj.name)
        return worst

    def position(self, body: int) -> np.ndarray:
        return np.asarray(pybullet().getBasePositionAndOrientation(
            body, physicsClientId=self.client)[0])

    def drop_lost(self) -> list[SimObject]:
        """Remove objects that left the workspace (fell off the table or out of reach)."""
        lost = []
        for body in list(self.objects):
            x, y, z = self.position(body)
            if abs(x) > WORKSPACE or abs(y) > WORKSPACE or z < LOST_Z:
                lost.append(self.remove(body))
        return lost

    def remove(self, body: int) -> SimObject:
        """Take an object out of the world (picked, or lost); returns it. The others wake up
        (one resting on it must fall, not float)."""
        obj = self.objects.pop(body)
        pybullet().removeBody(body, physicsClientId=self.client)
        self.removed.append(obj)
        self.wake()
        return obj

    def wake(self) -> None:
        self._activate(pybullet().ACTIVATION_STATE_WAKE_UP)

    def sleep(self) -> None:
        """Put every object to sleep: a resting body is not simulated until something touches
        it (the pile it belongs to wakes together), which makes a step in clutter several times
        cheaper. ``restoreState`` does not restore sleeping, so the labeller calls this after
        each restore and every trial starts alike."""
        self._activate(pybullet().ACTIVATION_STATE_SLEEP)

    def _activate(self, state: int) -> None:
        p = pybullet()
        for body in self.objects:
            p.changeDynamics(body, -1, activationState=state, physicsClientId=self.client)

    def body_kind(self, body: int) -> str:
        """``table``, ``tray``, ``object`` or ``other`` for a body id."""
        if body in self.static_bodies:
            return self.static_bodies[body]
        return "object" if body in self.objects else "other"

    # ------------------------------------------------------------------ state and images
    def save(self) -> int:
        """Save the simulator state (restore with :meth:`restore`)."""
        return pybullet().saveState(physicsClientId=self.client)

    def restore(self, state: int) -> None:
        pybullet().restoreState(stateId=state, physicsClientId=self.client)

    def render(self, pose: CameraPose, rng: np.random.Generator | None = None,
               light: Lighting | None = None) -> Observation:
        """Render a frame from ``pose`` with ``light`` (default: this world's); sensor noise
        (RGB, depth, dropouts) from :attr:`appearance` when ``rng`` is given. The frame's
        ``extra["object_ids"]`` lists the body ids of the objects."""
        a = self.appearance
        obs = self.camera.render(self.client, pose, light or a.light)
        obs.extra["object_ids"] = sorted(self.objects)
        if rng is not None:
            add_sensor_noise(obs, rng, a.rgb_noise, a.depth_noise, a.depth_dropout)
        return obs


def _displacement(before: dict, after: dict) -> tuple[float, float]:
    """Largest translation [m] and rotation [rad] of the bodies between two pose snapshots."""
    dmax = amax = 0.0
    for body, (pos, q) in after.items():
        if body not in before:
            return (np.inf, np.inf)
        pos0, q0 = before[body]
        dmax = max(dmax, float(np.linalg.norm(np.subtract(pos, pos0))))
        dot = min(1.0, abs(float(np.dot(q, q0))))
        amax = max(amax, 2.0 * math.acos(dot))
    return dmax, amax


def add_sensor_noise(obs: Observation, rng: np.random.Generator, rgb_sigma: float,
                     depth_sigma: float, dropout: float) -> None:
    """In place: Gaussian RGB noise [grey levels], Gaussian depth noise [m] and a fraction of
    depth pixels dropped to 0 (invalid), as a real RGB-D sensor gives."""
    if rgb_sigma > 0:
        noisy = obs.rgb.astype(np.float32) + rng.normal(0, rgb_sigma, obs.rgb.shape)
        obs.rgb = np.clip(noisy + 0.5, 0, 255).astype(np.uint8)
    valid = obs.depth > 0
    if depth_sigma > 0:
        obs.depth = np.where(valid, obs.depth + rng.normal(0, depth_sigma, obs.depth.shape),
                             0).astype(np.float32)
    if dropout > 0:
        obs.depth[rng.random(obs.depth.shape) < dropout] = 0.0
