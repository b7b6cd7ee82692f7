"""Functions the fuzzing suite calls in its case runner (``Case(kind="call", target=...)``):
small wrappers that turn one hostile input into one call of the project's API."""
from __future__ import annotations


def tiny_config(override: str) -> str:
    """The tiny training config with one ``--set`` style override."""
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train_config import build_config

    build_config(load_raw("tiny.yaml"), [override])
    return "accepted"


def read_every_frame(root: str) -> str:
    """Scan a data set and load each frame as training does. A frame must load with finite
    values or be refused with a ``FrameFault``; anything else escapes as a traceback."""
    import numpy as np

    from vita_grasp_core.data import FrameFault, load_frame, scan_dataset

    loaded = refused = 0
    for rec in scan_dataset(root).frames:
        try:
            fr = load_frame(rec)
        except FrameFault:
            refused += 1
            continue
        if not (np.isfinite(fr.grasps).all() and fr.rgb.ndim == 3 and fr.rgb.shape[2] == 3):
            raise AssertionError(f"{rec.key}: loaded with non-finite grasps or a bad image")
        loaded += 1
    return f"{loaded} loaded, {refused} refused"
