"""Object sets of the simulated tabletop, chosen by name, and loading them scaled to a size.

Names (comma-separated, see :func:`parse_object_set`):

- ``random:000-899``, ``random:900-999``, ``random:42``: pybullet_data's 1000 procedural objects
  (``random_urdfs/NNN``); ids inclusive. By the project's split 000-899 train a model and
  900-999 are held out;
- the other pybullet_data objects (:data:`OTHER_OBJECTS`): ``mug``, ``duck``, ``teddy``, ``lego``,
  ``jenga``, ``domino``, ``cube``, ``sphere``, ``block``, ``soccerball``, ``toy_cylinder``,
  ``toy_prism``, ``toy_cube``, ``bunny``; ``others`` is all of them.

Every object is scaled so that its largest side is a size drawn from ``size_range`` (default
3-10 cm, so any closing direction fits the 11 cm gripper), gets a mass from its size (about
500 kg/m^3 of its bounding box, 30-300 g) and a friction coefficient. Unknown names are a
``ValueError`` whose one line lists what exists; a file that fails to load is a
:class:`~vita_grasp_core.sim.SimError` with reason ``load_failed``.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from . import SimError, data_path, pybullet, quiet_native_output

#: Number of procedural objects in pybullet_data/random_urdfs.
N_RANDOM = 1000
#: The other pybullet_data objects: name -> file (URDF, or an .obj mesh loaded as one body).
OTHER_OBJECTS = {
    "mug": "objects/mug.urdf", "duck": "duck_vhacd.urdf", "teddy": "teddy_vhacd.urdf",
    "lego": "lego/lego.urdf", "jenga": "jenga/jenga.urdf", "domino": "domino/domino.urdf",
    "cube": "cube_small.urdf", "sphere": "sphere_small.urdf", "block": "block.urdf",
    "soccerball": "soccerball.urdf", "toy_cylinder": "toys/cylinder.obj",
    "toy_prism": "toys/prism.obj", "toy_cube": "toys/cube.obj", "bunny": "bunny.obj",
}
#: Named groups.
GROUPS = {"others": tuple(OTHER_OBJECTS), "train": ("random:000-899",),
          "heldout": ("random:900-999", "others")}
#: Default size range [m] of an object's largest side.
SIZE_RANGE = (0.03, 0.10)
#: Below this largest side [m] at scale 1 a file loaded as nothing (a bounding-box margin).
MIN_NATIVE_SIZE = 0.01
_RANDOM_RE = re.compile(r"random:(\d{1,3})(?:-(\d{1,3}))?")


def known_names() -> str:
    """One line listing the accepted names (for error messages and ``--help``)."""
    return (f"random:AAA-BBB or random:NNN (ids 000-{N_RANDOM - 1:03d}), "
            + ", ".join(OTHER_OBJECTS) + "; groups: " + ", ".join(GROUPS))


def parse_object_set(text: str) -> list[str]:
    """``"random:900-999,mug,duck"`` -> the object names it selects (``random/NNN`` or an
    :data:`OTHER_OBJECTS` key), sorted and without repeats. ``ValueError`` (one line) for
    an unknown name or an empty or reversed id range."""
    items = [s.strip() for s in str(text).split(",") if s.strip()]
    if not items:
        raise ValueError(f"no objects given; known: {known_names()}")
    out: list[str] = []
    for item in items:
        if item in GROUPS:
            out += parse_object_set(",".join(GROUPS[item]))
            continue
        m = _RANDOM_RE.fullmatch(item)
        if m:
            a = int(m.group(1))
            b = int(m.group(2)) if m.group(2) is not None else a
            if not (0 <= a <= b < N_RANDOM):
                raise ValueError(f"object range {item!r} is empty or outside 000-"
                                 f"{N_RANDOM - 1:03d}")
            out += [f"random/{i:03d}" for i in range(a, b + 1)]
        elif item in OTHER_OBJECTS:
            out.append(item)
        else:
            raise ValueError(f"unknown object {item!r}; known: {known_names()}")
    return sorted(set(out))


def object_file(name: str) -> str:
    """Absolute path of an object's URDF / mesh file."""
    if name.startswith("random/"):
        i = name.split("/", 1)[1]
        rel = f"random_urdfs/{i}/{i}.urdf"
    else:
        rel = OTHER_OBJECTS[name]
    return os.path.join(data_path(), rel)


@dataclass
class SimObject:
    """A loaded object: its name, body id, scale, size [m] and the height [m] of its base
    position when it came to rest (updated after every settle)."""

    name: str
    body: int
    scale: float
    size: float
    rest_z: float = 0.0


_NATIVE: dict[str, tuple[float, np.ndarray]] = {}
_CENTRED_DIR: list = []


def _centred_dir() -> str:
    """A per-process directory for URDF copies whose inertial origin is the geometric centre."""
    if not _CENTRED_DIR:
        import atexit
        import tempfile

        d = tempfile.TemporaryDirectory(prefix="vita_grasp_sim_objects_")
        atexit.register(d.cleanup)
        _CENTRED_DIR.append(d)
    return _CENTRED_DIR[0].name


def _centred_urdf(path: str, offset: np.ndarray) -> str:
    """A copy of a one-link URDF with its inertial origin moved by ``offset`` (link frame, m)
    to the geometric centre and mesh paths made absolute (the centre of mass of the procedural
    objects sits at their bottom otherwise, which keeps them from ever tipping over)."""
    import xml.etree.ElementTree as ET

    tree = ET.parse(path)
    base = os.path.dirname(path)
    for mesh in tree.iter("mesh"):
        mesh.set("filename", os.path.join(base, mesh.get("filename", "")))
    link = tree.getroot().find("link")
    inertial = link.find("inertial")
    if inertial is None:
        inertial = ET.SubElement(link, "inertial")
        ET.SubElement(inertial, "mass", value="0.1")
    origin = inertial.find("origin")
    if origin is None:
        origin = ET.SubElement(inertial, "origin", rpy="0 0 0", xyz="0 0 0")
    xyz = np.array([float(v) for v in origin.get("xyz", "0 0 0").split()]) + offset
    origin.set("xyz", " ".join(f"{v:.6f}" for v in xyz))
    out = os.path.join(_centred_dir(), os.path.basename(base) + "_" + os.path.basename(path))
    tree.write(out)
    return out


def _load(path: str, client: int, pos, orn, scale: float, centre=None) -> int:
    """Load a URDF or an .obj mesh; ``centre``: the geometric centre in the object's frame at
    scale 1 (meshes: their centre of mass goes there)."""
    p = pybullet()
    with quiet_native_output():
        if path.endswith(".urdf"):
            return p.loadURDF(path, pos, orn, globalScaling=scale, physicsClientId=client)
        col = p.createCollisionShape(p.GEOM_MESH, fileName=path, meshScale=[scale] * 3,
                                     physicsClientId=client)
        vis = p.createVisualShape(p.GEOM_MESH, fileName=path, meshScale=[scale] * 3,
                                  physicsClientId=client)
        if col < 0 or vis < 0:
            raise RuntimeError("mesh not loaded")
        com = [0.0, 0.0, 0.0] if centre is None else (np.asarray(centre) * scale).tolist()
        return p.createMultiBody(0.1, col, vis, pos, orn, baseInertialFramePosition=com,
                                 physicsClientId=client)


def aabb(client: int, body: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = pybullet().getAABB(body, physicsClientId=client)
    return np.asarray(lo), np.asarray(hi)


def _prepare(name: str, client: int) -> tuple[str, float, np.ndarray | None]:
    """(file to load, largest side at scale 1 [m], centre for meshes), measured once per
    process: URDFs get a copy with the centre of mass at their geometric centre."""
    path = object_file(name)
    if name not in _NATIVE:
        body = load_body(name, client, (0, 0, -5), (0, 0, 0, 1), 1.0, path=path)
        lo, hi = aabb(client, body)
        com = np.asarray(pybullet().getBasePositionAndOrientation(
            body, physicsClientId=client)[0])
        pybullet().removeBody(body, physicsClientId=client)
        _NATIVE[name] = (float((hi - lo).max()), (lo + hi) / 2 - com)
    size, offset = _NATIVE[name]
    if size < MIN_NATIVE_SIZE:  # e.g. random_urdfs/168: its mesh loads as nothing
        raise SimError("load_failed", f"object {name!r}: its collision shape is degenerate "
                                      f"(largest side {size * 1e3:.1f} mm in {path})")
    if path.endswith(".urdf"):
        return _centred_urdf(path, offset), size, None
    return path, size, offset


def load_body(name: str, client: int, pos, orn, scale: float, *, path: str | None = None,
              centre=None) -> int:
    """Load one object; :class:`SimError` (``load_failed``) with one line when it fails."""
    path = path or object_file(name)
    if not os.path.isfile(path):
        raise SimError("load_failed", f"object {name!r}: file {path} is missing")
    try:
        body = _load(path, client, pos, orn, scale, centre)
    except Exception as e:  # noqa: BLE001 - pybullet raises pybullet.error or others
        raise SimError("load_failed", f"object {name!r} failed to load from {path}: "
                                      f"{str(e).strip() or type(e).__name__}") from None
    if body is None or body < 0:
        raise SimError("load_failed", f"object {name!r} failed to load from {path}")
    return body


def spawn(name: str, client: int, rng: np.random.Generator, pos, *,
          size_range=SIZE_RANGE, friction: float = 0.9) -> SimObject:
    """Load ``name`` at ``pos`` with a random orientation, scaled to a largest side drawn from
    ``size_range``, with a size-dependent mass and the given lateral friction."""
    p = pybullet()
    size = float(rng.uniform(*size_range))
    try:
        path, native, centre = _prepare(name, client)
    except (OSError, ValueError, AttributeError) as e:  # an unreadable URDF
        raise SimError("load_failed", f"object {name!r}: {e}") from None
    scale = size / max(native, 1e-6)
    orn = p.getQuaternionFromEuler(rng.uniform(-np.pi, np.pi, 3).tolist())
    body = load_body(name, client, pos, orn, scale, path=path, centre=centre)
    lo, hi = aabb(client, body)
    ext = hi - lo
    mass = float(np.clip(500.0 * np.prod(ext), 0.03, 0.3))
    p.changeDynamics(body, -1, mass=mass, lateralFriction=friction, spinningFriction=0.002,
                     rollingFriction=0.002, restitution=0.0, physicsClientId=client)
    return SimObject(name, body, scale, size)
