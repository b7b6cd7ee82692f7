"""Training: configuration, losses, feature cache and the training loop (``vita-grasp train``).

Public API::

    load_config(path, overrides) -> FullConfig      (train_config.py; sections model, data, train)
    train(cfg, output_dir, resume=None, device="auto") -> summary dict      (train.py)
    GraspLoss, LossConfig                            (losses.py)
    FeatureCache, CachedFeatureDataset, build_cache  (feature_cache.py)

The command line is :mod:`vita_grasp_core.cli.train`. See docs/training.md.
"""
from .losses import GraspLoss, LossConfig
from .train_config import ConfigError, DataConfig, EvalConfig, FullConfig, TrainConfig, load_config


def train(*args, **kwargs):
    """See :func:`vita_grasp_core.training.train.train` (imported lazily)."""
    from .train import train as _train

    return _train(*args, **kwargs)


__all__ = ["ConfigError", "DataConfig", "EvalConfig", "FullConfig", "GraspLoss", "LossConfig",
           "TrainConfig", "load_config", "train"]
