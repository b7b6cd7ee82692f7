"""GraspNet-1Billion data: scanning + fault handling, targets, augmentation, synthetic data.

Public API::

    GraspNetDataset, collate_fn, scan, load_frame, SPLITS, DataWarning   (graspnet.py)
    render_targets, Targets                                              (targets.py)
    Augment                                                              (augment.py)
    synthesize                                                           (synth.py)

The command line lives in :mod:`vita_grasp_core.data.cli` (``vita-grasp synth`` and
``vita-grasp data check|show``). See docs/data.md.
"""
from .augment import Augment
from .graspnet import (SPLITS, DataWarning, FaultLog, FrameFault, FrameRecord, GraspNetDataset,
                       collate_fn, load_frame, scan)
from .synth import synthesize
from .targets import CHANNELS, Targets, render_targets

__all__ = ["Augment", "CHANNELS", "DataWarning", "FaultLog", "FrameFault", "FrameRecord",
           "GraspNetDataset", "SPLITS", "Targets", "collate_fn", "load_frame", "render_targets",
           "scan", "synthesize"]
