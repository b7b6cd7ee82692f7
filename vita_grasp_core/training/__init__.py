"""Training: configuration, losses, feature cache and the training loop (``vita-grasp train``).

Public API::

    load_config(path, overrides) -> FullConfig      (config.py; sections model, data, train)
    train(cfg, output_dir, resume=None, device="auto") -> summary dict      (train.py)
    main(argv) -> int                                (scripts/train.py, vita-grasp train)
    GraspLoss, LossConfig                            (losses.py)
    FeatureCache, CachedFeatureDataset, build_cache  (feature_cache.py)

See docs/training.md.
"""
from .config import ConfigError, DataConfig, EvalConfig, FullConfig, TrainConfig, load_config
from .losses import GraspLoss, LossConfig


def train(*args, **kwargs):
    """See :func:`vita_grasp_core.training.train.train` (imported lazily)."""
    from .train import train as _train

    return _train(*args, **kwargs)


def main(argv=None) -> int:
    from .train import main as _main

    return _main(argv)


__all__ = ["ConfigError", "DataConfig", "EvalConfig", "FullConfig", "GraspLoss", "LossConfig",
           "TrainConfig", "load_config", "main", "train"]
