"""Seeded cross-validation splits: image-wise and object-wise k-fold, and a validation hold-out.

Image-wise k-fold is the Cornell convention (every image is scored once, by the model of the
fold it was held out of); object-wise k-fold keeps every ``group`` (Jacquard object folder,
GraspNet scene) inside one fold, so a fold is scored on objects its model never saw. The
checkpoint of a fold is chosen on a :func:`holdout` part of its training folds, never on the
fold it is scored on.

Block-wise k-fold (``by="block"``) is object-wise for data sets that carry no object ids but
number their frames object by object, as Cornell does (``pcdNNNN``: consecutive numbers mostly
show the same object, about 3.6 frames per object in the original 885): frames are grouped into
blocks of ``block_size`` consecutive frame numbers (``NNNN // block_size``) and whole blocks go
to one fold. An object whose frames straddle a block boundary can still be seen on both sides,
at most one object per boundary, so this is an approximation of object-wise folds from above.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..choices import SPLIT_BY

#: How frames can be split: by image, by known object group, by blocks of frame numbers.
SPLIT_MODES = SPLIT_BY
#: Default block of consecutive frame numbers of ``by="block"`` (Cornell: 50 numbers hold
#: about 14 objects; the 568 shared frames fall into 16 blocks).
DEFAULT_BLOCK_SIZE = 50


def evenly_spaced(n: int, k: int | None) -> list[int]:
    """``k`` indices spread evenly over ``range(n)`` (all of them if ``k`` is None or >= n)."""
    if k is None or k >= n:
        return list(range(n))
    return sorted(set(np.linspace(0, n - 1, int(k)).round().astype(int).tolist()))


def split_groups(frames, by: str = "object", block_size: int = DEFAULT_BLOCK_SIZE) -> list[str]:
    """The group of every frame that a ``by``-wise split keeps together.

    ``object``: the record's ``group`` (Jacquard object folder, GraspNet scene); ``block``:
    ``"<scene>/<frame // block_size>"`` from the frame numbers (Cornell ``pcdNNNN``); ``image``:
    every frame on its own. Raises ``ValueError`` for block-wise splits of frames without
    numbers, ``TypeError`` for anything but frame records.
    """
    frames = getattr(frames, "frames", frames)
    if by not in SPLIT_MODES:
        raise ValueError(f"by must be one of {list(SPLIT_MODES)}, got {by!r}")
    if by == "image":
        return [str(i) for i in range(len(frames))]
    try:
        if by == "object":
            return [str(f.group) for f in frames]
        numbers = [(int(f.scene), int(f.frame)) for f in frames]
    except AttributeError:
        raise TypeError("kfold() takes FrameRecords (or a dataset with .frames)") from None
    if int(block_size) < 1:
        raise ValueError(f"block_size must be >= 1, got {block_size}")
    if any(n < 0 for _, n in numbers):
        raise ValueError("block-wise folds need frame numbers (Cornell pcdNNNN); these frames "
                         "have none: use by='object' or 'image'")
    return [f"{s}/{n // int(block_size)}" for s, n in numbers]


def kfold(frames, k: int, *, seed: int = 0, by: str = "image",
          block_size: int = DEFAULT_BLOCK_SIZE) -> list[list[int]]:
    """``k`` disjoint lists of frame indices that together cover every frame.

    Args:
        frames: a sequence of :class:`~vita_grasp_core.data.common.FrameRecord` (or a dataset
            with ``.frames``).
        k: number of folds, >= 2.
        seed: the shuffle (same seed, same frames -> same folds).
        by: ``"image"`` (frames shuffled and dealt into ``k`` folds whose sizes differ by at
            most 1), ``"object"`` (whole groups are shuffled and each goes to the fold with
            the fewest frames so far, largest groups first) or ``"block"`` (the same with
            blocks of ``block_size`` consecutive frame numbers as the groups).
    Returns:
        ``k`` sorted index lists. Raises ``ValueError`` when there are fewer frames (image) or
        groups (object, block) than folds.
    """
    groups = split_groups(frames, by, block_size)
    k = int(k)
    if k < 2:
        raise ValueError(f"k-fold needs k >= 2 folds, got {k}")
    n = len(groups)
    rng = np.random.default_rng(seed)
    if by == "image":
        if n < k:
            raise ValueError(f"cannot split {n} frames into {k} folds")
        perm = rng.permutation(n)
        return [sorted(int(i) for i in part) for part in np.array_split(perm, k)]
    members: dict[str, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    names = sorted(members)
    if len(names) < k:
        raise ValueError(f"cannot split {len(names)} {by} groups into {k} folds "
                         f"({by}-wise folds need at least one group each)")
    names = [names[i] for i in rng.permutation(len(names))]
    names.sort(key=lambda g: -len(members[g]))  # stable: shuffled order among equal sizes
    folds: list[list[int]] = [[] for _ in range(k)]
    for g in names:
        j = min(range(k), key=lambda f: (len(folds[f]), f))
        folds[j].extend(members[g])
    return [sorted(f) for f in folds]


def holdout(indices: Sequence[int], fraction: float, *, seed: int = 0,
            groups: Sequence | None = None) -> tuple[list[int], list[int]]:
    """Split ``indices`` (e.g. the training folds) into ``(train_idx, val_idx)``, seeded.

    Args:
        indices: frame indices to split.
        fraction: share for validation, in (0, 1); at least one index (one group) goes to each
            side.
        seed: the shuffle.
        groups: optional group of every frame, indexed by frame index (``groups[i]`` for
            ``i in indices``, e.g. ``[f.group for f in frames]``): whole groups go to one side
            (object-wise), chosen until the validation part reaches ``fraction`` of the frames.
    Returns:
        two sorted lists. Raises ``ValueError`` for a bad fraction or fewer than 2 frames /
        groups.
    """
    idx = [int(i) for i in indices]
    if not 0 < fraction < 1:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    if groups is None:
        if len(idx) < 2:
            raise ValueError(f"cannot hold out a validation part from {len(idx)} frame(s)")
        n_val = min(max(1, int(round(fraction * len(idx)))), len(idx) - 1)
        perm = rng.permutation(len(idx))
        val = {idx[i] for i in perm[:n_val]}
        return sorted(set(idx) - val), sorted(val)
    try:
        gl = [str(groups[i]) for i in idx]
    except (IndexError, KeyError):
        raise ValueError(f"groups has {len(groups)} entries; it must give the group of every "
                         "frame index in indices") from None
    members: dict[str, list[int]] = {}
    for i, g in zip(idx, gl):
        members.setdefault(g, []).append(i)
    names = sorted(members)
    if len(names) < 2:
        raise ValueError(f"cannot hold out whole groups: only {len(names)} group(s)")
    target = fraction * len(idx)
    val: list[int] = []
    order = [names[i] for i in rng.permutation(len(names))]
    for g in order[:-1]:  # the last group always stays in training
        if val and len(val) >= target:
            break
        val.extend(members[g])
    return sorted(set(idx) - set(val)), sorted(val)
