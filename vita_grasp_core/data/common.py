"""What every data format shares: frame records, faults, image readers, grasp-row checks.

Units and frames: grasps are ``(N, 7)`` float32 rows ``(x, y, angle, width, height, score,
obj_id)`` in *source* pixels (x = column, y = row, y down, pixel centres at integers), angle in
radians from +x towards +y wrapped to [-pi/2, pi/2) (the gripper OPENING direction), width = the
opening, height = the jaw size (docs/CONVENTIONS.md section 1).

Faults come in two sizes:

- a frame fault (:class:`FrameFault`, e.g. ``corrupt_rgb``): the frame cannot be used;
- a row fault (``nonfinite_rect``, ``absurd_width_rect``, ``absurd_height_rect``): single
  rectangles are skipped and counted, the frame stays usable (:func:`clean_grasp_rows`).

:class:`FaultLog` keeps both: kind -> paths (each path once), plus the number of rows skipped per
kind and path.
"""
from __future__ import annotations

import contextlib
import math
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..image_decode import DEFAULT_MAX_PIXELS, PNG_IEND, PNG_SIGNATURE

#: Rectangles wider (or with larger jaws) than this many image diagonals are absurd.
MAX_DIAGONALS = 2.0
#: Images with more pixels are refused before decoding (``refused_<file>`` faults).
MAX_PIXELS = DEFAULT_MAX_PIXELS
#: Row-fault kinds of :func:`clean_grasp_rows`.
ROW_FAULTS = ("nonfinite_rect", "absurd_width_rect", "absurd_height_rect")



class DataWarning(UserWarning):
    """Problems found in a data set (files skipped); emitted once per kind of check and process."""


class NoUsableFrames(RuntimeError, ValueError):
    """A data set in which no frame can be used (all removed or unreadable): a ``ValueError``
    (command lines print it in one line, exit 2) and, as before, a ``RuntimeError``."""


class FrameFault(Exception):
    """A file of a frame cannot be used: ``kind`` (e.g. ``corrupt_rgb``) and ``path``."""

    def __init__(self, kind: str, path, detail: str = ""):
        super().__init__(f"{kind}: {path}" + (f" ({detail})" if detail else ""))
        self.kind, self.path, self.detail = kind, str(path), detail


# --------------------------------------------------------------------------- fault bookkeeping
class FaultLog:
    """Kind -> list of paths (each once), plus rows skipped per kind and path (row faults)."""

    def __init__(self):
        self.paths: dict[str, list[str]] = {}
        self.rows: dict[str, dict[str, int]] = {}

    def add(self, kind: str, path, rows: int | None = None) -> None:
        """Record ``path`` under ``kind``; ``rows`` = rectangles of that file skipped (row
        faults). Re-adding the same file (a later epoch) does not count its rows twice."""
        lst = self.paths.setdefault(kind, [])
        if str(path) not in lst:
            lst.append(str(path))
        if rows is not None:
            self.rows.setdefault(kind, {})[str(path)] = int(rows)

    def merge(self, other) -> None:
        """Add another log, a ``{kind: paths}`` dict or ``(kind, path[, rows])`` tuples."""
        if isinstance(other, FaultLog):
            for kind, paths in other.paths.items():
                for p in paths:
                    self.add(kind, p, other.rows.get(kind, {}).get(p))
            return
        items = other.items() if isinstance(other, dict) else other
        for item in items:
            kind, paths = item[0], item[1]
            rows = item[2] if len(item) > 2 else None
            for p in ([paths] if isinstance(paths, str) else paths):
                self.add(kind, p, rows)

    def counts(self) -> dict[str, int]:
        """Kind -> number of files."""
        return {k: len(v) for k, v in sorted(self.paths.items())}

    def row_counts(self) -> dict[str, int]:
        """Row-fault kind -> number of rectangles skipped (over all files)."""
        return {k: sum(v.values()) for k, v in sorted(self.rows.items())}

    def __len__(self) -> int:
        return sum(len(v) for v in self.paths.values())

    def summary(self, examples: int = 3) -> str:
        parts = []
        for kind, paths in sorted(self.paths.items()):
            ex = ", ".join(paths[:examples]) + (", ..." if len(paths) > examples else "")
            rows = f"{sum(self.rows[kind].values())} rows in " if kind in self.rows else ""
            parts.append(f"{kind}: {rows}{len(paths)} (e.g. {ex})")
        return "; ".join(parts) if parts else "none"


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class FrameRecord:
    """Where one frame's files are (strings; optional files ``None``).

    Attributes:
        key: unique within a data set and stable across runs (cache file names):
            ``"kinect/s0003/f0012"`` (GraspNet), ``"pcd0100"`` (Cornell), ``"<object>/<k>_<id>"``
            (Jacquard).
        group: what an object-wise split keeps together: the GraspNet scene
            (``"scene_0003"``), the Jacquard object folder, the Cornell frame itself.
        rgb: colour image. label: instance / object mask png (0 = background) or ``None``.
        depth: depth image (GraspNet png in mm, Cornell / Jacquard tiff) or ``None``.
        grasps: the positive grasp file (GraspNet ``rect/NNNN.npy``, Cornell ``cpos.txt``,
            Jacquard ``_grasps.txt``).
        negatives: Cornell ``cneg.txt`` (never used as positives) or ``None``.
        format: the registered format that scanned it (``vita_grasp_core.data.get_format``).
        scene, frame: GraspNet scene / frame ids; Cornell: frame = NNNN, Jacquard: frame = k;
            -1 where a format has none.
        camera: GraspNet camera folder, else ``""``.
    """

    key: str
    group: str
    rgb: str
    label: str | None = None
    depth: str | None = None
    grasps: str | None = None
    negatives: str | None = None
    format: str = ""
    scene: int = -1
    frame: int = -1
    camera: str = ""

    @property
    def rect(self) -> str | None:
        """The grasp file (GraspNet's historical name)."""
        return self.grasps


@dataclass
class Frame:
    """One decoded frame (:func:`vita_grasp_core.data.load_frame`).

    Attributes:
        rgb: ``HxWx3`` uint8 RGB. label: ``HxW`` integer mask or ``None``.
        grasps: ``(N, 7)`` float32 (x, y, angle, width, height, score, obj_id) in source px:
            every finite rectangle with a plausible width and jaw size, including those whose
            centre lies outside the image (ground truth that cannot be matched; target
            rendering ignores them).
        negatives: ``(M, 7)`` float32 negative rectangles (Cornell ``cneg``), else ``(0, 7)``.
        depth: the depth image as stored (``None`` unless asked for).
        faults: non-fatal problems ``(kind, path, rows)``: rows skipped, unreadable optional
            files (negatives, depth).
        record: the :class:`FrameRecord` it came from.

    ``rgb, label, grasps = frame`` unpacks like the former ``load_frame`` tuple.
    """

    rgb: np.ndarray
    label: np.ndarray | None
    grasps: np.ndarray
    negatives: np.ndarray = field(default_factory=lambda: np.zeros((0, 7), np.float32))
    depth: np.ndarray | None = None
    faults: list = field(default_factory=list)
    record: FrameRecord | None = None

    def __iter__(self):
        return iter((self.rgb, self.label, self.grasps))

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)`` of the image."""
        return int(self.rgb.shape[0]), int(self.rgb.shape[1])


@dataclass
class ScanResult:
    """Output of :func:`vita_grasp_core.data.scan_dataset`.

    ``frames`` sorted by key (GraspNet: scene, frame); ``faults`` found while scanning;
    ``format``; ``root``; ``scene_ids`` (GraspNet: selected scenes found on disk, else ``[]``);
    ``found``: frames seen on disk, usable or not (``None``: ``len(frames)``).
    """

    frames: list[FrameRecord]
    faults: FaultLog
    format: str
    root: str
    scene_ids: list[int] = field(default_factory=list)
    found: int | None = None

    def __post_init__(self):
        if self.found is None:
            self.found = len(self.frames)

    def __iter__(self):  # ``frames, faults, ids = scan(...)`` (the former tuple)
        return iter((self.frames, self.faults, self.scene_ids))


# --------------------------------------------------------------------------- file readers
def png_header(path) -> dict:
    """Read a PNG's signature, IHDR and trailing IEND without decoding it.

    Returns ``{"width", "height", "bit_depth", "color_type"}``; raises :class:`FrameFault`
    (``empty``, ``corrupt``: bad signature, truncated file; ``refused``: more than
    :data:`MAX_PIXELS` pixels) with kind prefix left to the caller.
    """
    path = Path(path)
    size = regular_size(path)
    if size == 0:
        raise FrameFault("empty", path)
    with open(path, "rb") as f:
        head = f.read(33)
        f.seek(max(0, size - 8))
        tail = f.read(8)
    if len(head) < 33 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise FrameFault("corrupt", path, "not a PNG")
    if tail != PNG_IEND:
        raise FrameFault("corrupt", path, "truncated (no IEND)")
    w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if w * h > MAX_PIXELS:
        raise FrameFault("refused", path, f"{w}x{h} = {w * h / 1e6:.1f} MP, more than "
                         f"max_pixels = {MAX_PIXELS}")
    return {"width": w, "height": h, "bit_depth": head[24], "color_type": head[25]}


@contextlib.contextmanager
def _os_faults(path: Path):
    """``FileNotFoundError`` inside -> :class:`FrameFault` ``missing``, another ``OSError`` ->
    ``corrupt``."""
    try:
        yield
    except FileNotFoundError:
        raise FrameFault("missing", path) from None
    except OSError as e:
        raise FrameFault("corrupt", path, str(e)[:80]) from None


def regular_size(path: Path) -> int:
    """The size of a regular file; :class:`FrameFault` ``missing``, or ``not_a_file`` for a
    FIFO, a directory, a device ... (never opened: reading a FIFO blocks)."""
    with _os_faults(path):
        st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise FrameFault("not_a_file", path, "not a regular file")
    return st.st_size


def _read_bytes(path: Path) -> bytes:
    regular_size(path)
    with _os_faults(path):
        data = path.read_bytes()
    if not data:
        raise FrameFault("empty", path)
    return data


def _decode(path: Path, data: bytes, color: bool) -> np.ndarray:
    """:func:`~vita_grasp_core.image_decode.decode_image` with its errors as
    :class:`FrameFault`: ``refused`` (over :data:`MAX_PIXELS`), else ``corrupt``."""
    from ..image_decode import ImageDecodeError, decode_image

    try:
        return decode_image(data, color=color, max_pixels=MAX_PIXELS)
    except ImageDecodeError as e:
        raise FrameFault("refused" if e.kind == "too_large" else "corrupt", path,
                         str(e)) from None


def read_png(path, color: bool) -> np.ndarray:
    """Decode a PNG fully: ``color=True`` -> ``HxWx3 uint8 RGB``; else the stored array (label,
    depth; a multi-channel label is reduced to its first channel). Images over
    :data:`MAX_PIXELS` are refused before decoding. Raises :class:`FrameFault`."""
    path = Path(path)
    data = _read_bytes(path)
    if data[:8] != PNG_SIGNATURE:
        raise FrameFault("corrupt", path, "not a PNG")
    img = _decode(path, data, color)
    return img if color or img.ndim == 2 else img[..., 0]


def read_tiff(path) -> np.ndarray:
    """Decode a single-channel TIFF (depth) as stored (float32 / uint16 ...). Images over
    :data:`MAX_PIXELS` are refused before decoding. Raises :class:`FrameFault` (``missing``,
    ``empty``, ``corrupt``, ``refused``)."""
    path = Path(path)
    data = _read_bytes(path)
    if data[:4] not in (b"II*\x00", b"MM\x00*"):
        raise FrameFault("corrupt", path, "not a TIFF")
    img = _decode(path, data, False)
    return img[..., 0] if img.ndim == 3 else img


def read_depth(path) -> np.ndarray:
    """A depth image as stored: PNG (GraspNet, uint16 mm) or TIFF (Cornell, Jacquard)."""
    return read_tiff(path) if str(path).lower().endswith((".tif", ".tiff")) else \
        read_png(path, color=False)


def tagged(fn, what: str, *args):
    """Call ``fn(*args)``; a :class:`FrameFault` gets ``_<what>`` appended to its kind."""
    try:
        return fn(*args)
    except FrameFault as e:
        raise FrameFault(f"{e.kind}_{what}", e.path, e.detail) from None


# --------------------------------------------------------------------------- grasp rows
def read_number_rows(path, columns: int, sep: str | None, layout: str) -> np.ndarray:
    """A text file of numeric rows (blank lines ignored) -> ``(N, columns)`` float64.

    ``sep`` splits a line (``None`` = whitespace); ``layout`` names the expected line for messages
    (``"x y"``). Raises :class:`FrameFault`: ``missing``, ``empty``, ``corrupt`` (not ASCII, a
    line with another number of fields or a field that is not a number; NaN is a number).
    """
    path = Path(path)
    regular_size(path)
    try:
        text = path.read_text(encoding="ascii", errors="strict")
    except FileNotFoundError:
        raise FrameFault("missing", path) from None
    except (UnicodeDecodeError, OSError) as e:
        raise FrameFault("corrupt", path, str(e)[:80]) from None
    lines = [ln.split(sep) for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise FrameFault("empty", path)
    vals = np.empty((len(lines), columns), np.float64)
    for i, parts in enumerate(lines):
        if len(parts) != columns:
            raise FrameFault("corrupt", path, f"line {i + 1}: expected {layout!r}")
        try:
            vals[i] = [float(p) for p in parts]
        except ValueError:
            raise FrameFault("corrupt", path, f"line {i + 1}: not numbers") from None
    return vals


def corners_to_grasps(corners) -> np.ndarray:
    """Rectangles as 4 corners -> ``(N, 7)`` float64 grasp rows (score 1, obj_id 0).

    ``corners``: ``(N, 4, 2)`` (x, y) in order p0, p1, p2, p3 around the rectangle, with
    p0 -> p1 along the gripper opening (Cornell): ``angle = atan2(p1 - p0)`` wrapped,
    ``width = |p1 - p0|``, ``height = |p2 - p1|``, centre = mean of the 4 corners. Rows with a
    non-finite corner come out non-finite (for :func:`clean_grasp_rows` to count).
    """
    from ..conventions import wrap_angle

    c = np.asarray(corners, dtype=np.float64).reshape(-1, 4, 2)
    out = np.zeros((len(c), 7), np.float64)
    with np.errstate(invalid="ignore"):
        out[:, :2] = c.mean(axis=1)
        d = c[:, 1] - c[:, 0]
        out[:, 2] = wrap_angle(np.arctan2(d[:, 1], d[:, 0]))
        out[:, 3] = np.hypot(d[:, 0], d[:, 1])
        out[:, 4] = np.hypot(*(c[:, 2] - c[:, 1]).T)
    out[:, 5] = 1.0
    bad = ~np.isfinite(c).all(axis=(1, 2))
    out[bad, :5] = np.nan
    return out


def grasps_to_corners(grasps) -> np.ndarray:
    """Inverse of :func:`corners_to_grasps`: ``(N, >=5)`` rows -> ``(N, 4, 2)`` corners with
    p0 -> p1 along the opening (+width direction) and p1 -> p2 along the jaw."""
    from ..grasp import rect_corners

    # rect_corners order (u = half opening, v = half jaw): +u+v, +u-v, -u-v, -u+v.
    # p0 = -u-v, p1 = +u-v (p0 -> p1 = +2u), p2 = +u+v, p3 = -u+v.
    g = np.asarray(grasps, np.float64)
    c = rect_corners(g.reshape(len(g), -1)[:, :5]) if len(g) else np.zeros((0, 4, 2))
    return c[:, [2, 1, 0, 3]]


def inside_image(grasps, size) -> np.ndarray:
    """Bool ``(N,)``: the centre lies in ``[-0.5, w - 0.5) x [-0.5, h - 0.5)``."""
    g = np.asarray(grasps)
    if g.ndim != 2 or len(g) == 0:
        return np.zeros(0, bool)
    h, w = size
    with np.errstate(invalid="ignore"):
        return (g[:, 0] >= -0.5) & (g[:, 0] < w - 0.5) & (g[:, 1] >= -0.5) & (g[:, 1] < h - 0.5)


def clean_grasp_rows(grasps, size, path=None):
    """Keep the plausible rectangles of one file; count the others.

    Args:
        grasps: ``(N, 7)`` rows in source px.
        size: ``(h, w)`` of the image.
        path: the grasp file (for the fault list).
    Returns:
        ``(rows (K, 7) float32, faults [(kind, path, n)])``. Skipped: rows with a non-finite
        value in x, y, angle, width, height, score, also after the cast to float32 (1e39:
        ``nonfinite_rect``), width <= 0 or above
        :data:`MAX_DIAGONALS` image diagonals (``absurd_width_rect``), jaw size likewise
        (``absurd_height_rect``). Nothing is clipped. Centres outside the image are kept.
    """
    g = np.asarray(grasps, dtype=np.float64).reshape(-1, 7)
    h, w = size
    limit = MAX_DIAGONALS * math.hypot(h, w)
    with np.errstate(over="ignore"):  # 1e39 is finite in float64 but inf in the float32 rows
        finite = np.isfinite(g[:, :6]).all(axis=1) & \
            np.isfinite(g[:, :6].astype(np.float32)).all(axis=1)
    with np.errstate(invalid="ignore"):
        bad_w = finite & ((g[:, 3] <= 0) | (g[:, 3] > limit))
        bad_h = finite & ~bad_w & ((g[:, 4] <= 0) | (g[:, 4] > limit))
    faults = []
    for kind, mask in (("nonfinite_rect", ~finite), ("absurd_width_rect", bad_w),
                       ("absurd_height_rect", bad_h)):
        n = int(mask.sum())
        if n:
            faults.append((kind, str(path), n))
    keep = finite & ~bad_w & ~bad_h
    return g[keep].astype(np.float32), faults


def write_png(path: Path, img) -> None:
    """Write an ``HxW`` or ``HxWx3`` RGB image as a png (folders created; complete or absent, a
    full disk an ``OSError`` that says so)."""
    from ..image_decode import write_image

    path.parent.mkdir(parents=True, exist_ok=True)
    write_image(path, img, rgb=True)


def write_tiff(path: Path, img) -> None:
    """Write an ``HxW`` float image as a float32 tiff."""
    from ..image_decode import write_image

    write_image(path, img.astype(np.float32))
