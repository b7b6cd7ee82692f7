"""Data: GraspNet-1Billion, Cornell, Jacquard and OCID-grasp behind one interface (a registry of
formats); targets, augmentation, splits, summaries, synthetic data.

Public API::

    detect_format, scan_dataset, load_frame, check_frame                   (formats.py)
    DataFormat, get_format, format_names, register_format  (formats.py: the registry)
    FrameRecord, Frame, ScanResult, FaultLog, FrameFault, DataWarning      (common.py)
    GraspDataset, GraspNetDataset, open_dataset, collate_fn                (dataset.py)
    SampleSpec, TargetSpec, Origin         (dataset.py: GraspDataset's parameter objects)
    kfold, holdout, evenly_spaced, split_groups, SPLIT_MODES               (splits.py)
    summarize                                                              (summary.py)
    scan, SPLITS                                                           (graspnet.py)
    CAMERAS                                              (vita_grasp_core.choices)
    render_targets, Targets                                                (targets.py)
    Augment                                                                (augment.py)
    synthesize                                                             (synth.py)

The command line lives in :mod:`vita_grasp_core.cli.data` (``vita-grasp synth`` and
``vita-grasp data check|show``). See docs/data.md.
"""
from ..choices import CAMERAS
from .augment import Augment
from .common import DataWarning, FaultLog, Frame, FrameFault, FrameRecord, ScanResult
from .dataset import (
    GraspDataset,
    GraspNetDataset,
    Origin,
    SampleSpec,
    TargetSpec,
    collate_fn,
    open_dataset,
)
from .formats import (
    DataFormat,
    check_frame,
    detect_format,
    format_names,
    get_format,
    load_frame,
    register_format,
    scan_dataset,
)
from .graspnet import SPLITS, scan
from .splits import SPLIT_MODES, evenly_spaced, holdout, kfold, split_groups
from .summary import summarize
from .synth import synthesize
from .targets import CHANNELS, Targets, render_targets

__all__ = ["Augment", "CAMERAS", "CHANNELS", "DataFormat", "DataWarning", "FaultLog", "Frame",
           "FrameFault", "FrameRecord", "GraspDataset", "GraspNetDataset", "Origin", "SPLITS",
           "SPLIT_MODES", "SampleSpec", "ScanResult", "TargetSpec", "Targets", "check_frame",
           "collate_fn", "detect_format", "evenly_spaced", "format_names", "get_format",
           "holdout", "kfold", "load_frame", "open_dataset", "register_format", "render_targets",
           "scan", "scan_dataset", "split_groups", "summarize", "synthesize"]
