"""Training configuration: YAML file -> validated, typed sections ``model``, ``data``, ``train``.

- ``model``: :class:`~vita_grasp_core.model_config.ModelConfig` fields (it travels with
  checkpoints).
- ``data``: :class:`DataConfig` (where the frames are, which scenes, target rendering).
- ``train``: :class:`TrainConfig` (optimisation, schedule, caching, logging) with nested ``loss``
  (:class:`~vita_grasp_core.training.losses.LossConfig`) and ``eval`` (:class:`EvalConfig`).

Every key is checked: an unknown key or a value of the wrong type is a ``ConfigError`` naming the
dotted key and listing the valid ones. ``--set a.b=value`` overrides any key; the value is parsed
as YAML (``--set train.epochs=3``, ``--set data.train_scenes=[0,1,2]``,
``--set model.pretrained_model=null``). Reading files, ``base:`` chains and parsing ``--set``
is :mod:`.config_files`; why this is plain dataclasses and not OmegaConf or pydantic:
docs/training.md section 3.
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..bounds import MAX_SEED, Range, check_bounds, count
from ..choices import CAMERAS, DEFAULT_CAMERA, SPLIT_BY, format_choices
from ..decoding_settings import DecodeConfig
from ..model_config import ModelConfig
from .config_files import (  # noqa: F401  (ConfigError: the error of every config check)
    ConfigError,
    apply_override,
    load_raw,
    parse_override,
)
from .losses import LossConfig

#: Ranges of the numbers of the ``data`` section (finite, with sane upper bounds).
DATA_BOUNDS = {"val_fraction": Range(0, 1, lo_open=True, hi_open=True), "folds": count(2, 1000),
               "test_fold": count(0, 999, none=True), "split_seed": count(0, MAX_SEED),
               "val_max_frames": count(none=True), "train_max_frames": count(none=True),
               "sigma": Range(0, 100, lo_open=True), "max_rects": count(1, 10**6, none=True),
               "score_scale": Range(0, 1e6, lo_open=True, none=True),
               "min_score": Range(0, 1), "owned_floor": Range(0, 1),
               "train_scenes": count(0, 10**6, none=True, many=True),
               "val_scenes": count(0, 10**6, none=True, many=True), "block_size": count(1, 10**6)}
#: ``train.select``: which epoch becomes ``best_model.pt``.
SELECT = ("best", "last")
#: Ranges of the numbers of the ``train`` section.
TRAIN_BOUNDS = {"batch_size": count(1, 4096), "epochs": count(1, 100_000),
                "learning_rate": Range(0, 10, lo_open=True), "weight_decay": Range(0, 100),
                "betas": Range(0, 1, hi_open=True, many=True), "warmup_epochs": Range(0, 100_000),
                "min_lr_ratio": Range(0, 1), "grad_clip": Range(0, 1e9),
                "num_workers": count(0, 256, none=True), "cache_views": count(1, 1000),
                "eval_every": count(1, 100_000), "seed": count(0, MAX_SEED),
                "log_every": count(), "torch_threads": count(1, 4096, none=True),
                "max_nonfinite_steps": count(), "encoder_lr_scale": Range(0, 10, lo_open=True),
                "cache_tokens_at": count(0, 1000, none=True)}


@dataclass
class DataConfig:
    """``data`` section.

    Attributes:
        root: data set root; ``--dataset_root`` sets it.
        format: ``auto`` (detected from the layout), ``graspnet``, ``cornell`` or ``jacquard``.
        require_label: frames without an object mask are faults (default false: channel 4 is
            then the union of the frame's grasp rectangles, see docs/data.md).
        camera: GraspNet camera, ``kinect`` or ``realsense``.
        train_split / train_scenes: GraspNet training frames (split name and/or explicit scene
            ids; both given = intersection; see :data:`vita_grasp_core.data.graspnet.SPLITS`).
        val_split / val_scenes: GraspNet validation frames (never augmented).
        val_fraction: Cornell / Jacquard: the seeded share of the training frames held out for
            validation (model selection and the score threshold).
        split_by: Cornell / Jacquard folds and hold-out: ``image``, ``object`` or ``block``
            (``null`` = ``object`` where object identity is known (Jacquard), else ``image``).
            ``block``: object-wise for Cornell, which has no object ids but numbers its frames
            object by object: whole blocks of ``block_size`` consecutive frame numbers go to
            one fold (see :func:`vita_grasp_core.data.split_groups`).
        block_size: frame numbers per block of ``split_by: block``.
        folds, test_fold: Cornell / Jacquard: with ``test_fold`` set, the frames of that fold of
            a seeded ``folds``-fold split are left out entirely (``vita-grasp cv`` scores them).
        split_seed: seed of the folds and of the hold-out.
        val_max_frames: validate on at most this many frames, evenly spaced (``null`` = all).
        train_max_frames: train on at most this many frames, evenly spaced (``null`` = all).
        sigma: heatmap gaussian sigma in map px.
        augment: ``false``, ``true`` (defaults) or a dict of
            :class:`vita_grasp_core.data.augment.Augment` fields.
        max_rects: keep the best N rectangles per frame (``null`` = all).
        memory_cache: keep decoded samples (input image, targets, rectangles) in RAM after their
            first use, for small un-augmented sets (the tiny config); the validation set is
            cached too, the training set only without augmentation. About 10 MB per frame at
            the real sizes, per data-loader worker: not for GraspNet itself.
        score_scale, min_score, owned_floor: target rendering (see ``render_targets``).
    """

    root: str | None = None
    format: str = "auto"
    require_label: bool = False
    camera: str = DEFAULT_CAMERA
    train_split: str | None = "train"
    train_scenes: list[int] | None = None
    val_split: str | None = "test_seen"
    val_scenes: list[int] | None = None
    val_fraction: float = 0.1
    split_by: str | None = None
    block_size: int = 50
    folds: int = 5
    test_fold: int | None = None
    split_seed: int = 0
    val_max_frames: int | None = 512
    train_max_frames: int | None = None
    sigma: float = 2.0
    augment: bool | dict = True
    max_rects: int | None = None
    memory_cache: bool = False
    score_scale: float | None = 1.0
    min_score: float = 0.05
    owned_floor: float = 0.05

    def __post_init__(self):
        if self.format not in format_choices():
            raise ConfigError(f"data.format must be one of {list(format_choices())}, got "
                              f"{self.format!r}")
        if self.camera not in CAMERAS:
            raise ConfigError(f"data.camera must be one of {list(CAMERAS)}, got {self.camera!r}")
        check_bounds(self, DATA_BOUNDS, "data", ConfigError)
        if self.split_by not in (None, *SPLIT_BY):
            raise ConfigError(f"data.split_by must be one of {list(SPLIT_BY)} or null, got "
                              f"{self.split_by!r}")
        if self.test_fold is not None and not 0 <= self.test_fold < self.folds:
            raise ConfigError(f"data.test_fold must be in [0, {self.folds - 1}] or null, got "
                              f"{self.test_fold}")
        self._check_augment()

    def _check_augment(self) -> None:
        if not isinstance(self.augment, dict):
            return
        from ..data.augment import Augment

        try:
            Augment(**self.augment)
        except TypeError as e:
            names = [f.name for f in dataclasses.fields(Augment)]
            raise ConfigError(f"data.augment: {e}; valid keys: {names}") from None
        except ValueError as e:
            raise ConfigError(f"data.augment: {e}") from None

    def target_spec(self):
        """The dataset's :class:`~vita_grasp_core.data.dataset.TargetSpec` (target rendering)."""
        from ..data.dataset import TargetSpec

        return TargetSpec(sigma=self.sigma, max_rects=self.max_rects,
                          score_scale=self.score_scale, min_score=self.min_score,
                          owned_floor=self.owned_floor)

    def make_augment(self):
        """The dataset's ``augment`` argument (False, True or an ``Augment``)."""
        if isinstance(self.augment, dict):
            from ..data.augment import Augment

            return Augment(**self.augment)
        return bool(self.augment)


@dataclass
class EvalConfig:
    """``train.eval``: decoding used for validation (rectangle metric, CONVENTIONS §5).

    The fields are those of :class:`~vita_grasp_core.decoding_settings.DecodeConfig` (same defaults
    and ranges) except ``score_threshold``, 0 here: the checkpoint is selected on every image's
    best grasp, and the threshold the API then uses is chosen afterwards on the same validation
    frames (``train.calibrate``). ``max_grasps`` should be at least the largest k of
    precision@k (10). ``min_distance``, ``smooth_sigma`` and ``tta`` are stored with the
    checkpoint. With ``tta`` > 1 (test-time views, :mod:`vita_grasp_core.tta`) the checkpoint is
    still selected on single-view validation (cached features cannot be flipped), but the
    calibration and threshold are fitted on the images with those views, as the API predicts.
    """

    score_threshold: float = 0.0
    max_grasps: int = DecodeConfig.max_grasps
    min_distance: int = DecodeConfig.min_distance
    smooth_sigma: float = DecodeConfig.smooth_sigma
    tta: int = DecodeConfig.tta
    batch_size: int | None = None

    def __post_init__(self):
        check_bounds(self, {"batch_size": count(1, 4096, none=True)}, "train.eval", ConfigError)
        try:
            self.decode()
        except ValueError as e:
            raise ConfigError(f"train.eval: {e}") from None

    def decode(self) -> DecodeConfig:
        """The validated decoding settings of validation."""
        return DecodeConfig(score_threshold=self.score_threshold, max_grasps=self.max_grasps,
                            min_distance=self.min_distance, smooth_sigma=self.smooth_sigma,
                            tta=self.tta)


@dataclass
class TrainConfig:
    """``train`` section.

    Attributes:
        batch_size: per process (DDP: the global batch is ``batch_size * world_size``).
        epochs: number of passes over the training frames.
        learning_rate: peak AdamW learning rate (after warmup).
        weight_decay: AdamW decoupled weight decay (not applied to norms and biases).
        encoder_lr_scale: learning rate of trained encoder weights (``model.train_blocks``,
            ``freeze_vit: false``) relative to ``learning_rate`` (pretrained blocks want a
            smaller step than the decoder trained from scratch).
        betas: AdamW betas.
        warmup_epochs: linear warmup length in epochs (fractions allowed); then cosine decay.
        min_lr_ratio: the cosine ends at ``learning_rate * min_lr_ratio``.
        grad_clip: max global gradient norm (0 = off).
        num_workers: DataLoader worker processes per rank (``null`` = what suits this machine:
            0 on 1-2 cores, else a quarter of the cores, at most 4).
        amp: bfloat16 autocast on CUDA (ignored on CPU, where bf16 is slower here).
        feature_cache: store frozen-backbone features on disk and train the decoder from them
            (see :mod:`.feature_cache`): without augmentation one view per frame; with
            augmentation ``cache_views`` views per frame (the first un-augmented, the others
            augmented once, with the grasps moved along), one of which is drawn per frame and
            epoch, so the encoder runs ``cache_views`` times per frame in the whole run instead
            of once per frame and epoch.
        feature_cache_dir: where (default ``<output_dir>/feature_cache``; runs on the same data
            and encoder may share one directory, e.g. the folds of ``vita-grasp cv``).
        cache_views: views per frame of the augmented feature cache (>= 1; 1 = only the frames
            themselves, whose files a later run with more views of the same augmentation
            reuses).
        cache_tokens_at: with ``model.train_blocks``, the encoder block after which the cache
            keeps each view's tokens (``null`` = the first trained block's input); set it to
            share one cache between runs that train different numbers of last blocks (and
            frozen runs, which then keep tokens they do not use).
        select: which epoch's weights become ``best_model.pt``: ``best`` = the best validation
            top-1, ``last`` = the last epoch (the end of the cosine schedule). With a few dozen
            validation frames one frame is 2 points and ``best`` picks noise: on Cornell it
            picked undertrained early epochs, 4.7 points worse on the test folds
            (docs/real_images.md), so the shipped ``dinov2_cornell.yaml`` uses ``last``; the
            validation frames then only calibrate the scores and the threshold.
        calibrate: after training, fit the quality calibration and choose the score threshold
            on the validation frames, and store both with ``best_model.pt`` (the API, the CLIs
            and the node then use them by default).
        eval_every: validate every N epochs (and always after the last).
        seed: seeds torch, numpy, random and the data-loader workers.
        log_every: steps between TensorBoard/console loss logs.
        torch_threads: intra-op CPU threads (``null`` = ``OMP_NUM_THREADS`` when set, else
            cores / processes per node).
        max_nonfinite_steps: abort after this many consecutive NaN/inf losses.
        head_bias_init: at the start of a new run, set the bias of each output head's last
            convolution so that the initial maps equal the training targets' mean values (the
            RetinaNet prior trick): without it the sigmoid outputs start at 0.5 and the first
            few hundred steps only pull them down to the (small) mean heatmap and mask values.
        loss: :class:`LossConfig`.
        eval: :class:`EvalConfig`.
    """

    batch_size: int = 8
    epochs: int = 100
    learning_rate: float = 1.0e-4
    weight_decay: float = 0.05
    encoder_lr_scale: float = 1.0
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    num_workers: int | None = None
    amp: bool = True
    feature_cache: bool = False
    feature_cache_dir: str | None = None
    cache_views: int = 8
    cache_tokens_at: int | None = None
    select: str = "best"
    calibrate: bool = True
    eval_every: int = 1
    seed: int = 42
    log_every: int = 20
    torch_threads: int | None = None
    max_nonfinite_steps: int = 50
    head_bias_init: bool = True
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        check_bounds(self, TRAIN_BOUNDS, "train", ConfigError)
        if len(self.betas) != 2:
            raise ConfigError(f"train.betas must be two numbers, got {self.betas!r}")
        if self.select not in SELECT:
            raise ConfigError(f"train.select must be one of {list(SELECT)}, got {self.select!r}")


@dataclass
class FullConfig:
    """The resolved configuration of one training run."""

    model: ModelConfig
    data: DataConfig
    train: TrainConfig

    def to_dict(self) -> dict:
        return {"model": self.model.to_dict(), "data": _plain(dataclasses.asdict(self.data)),
                "train": _plain(dataclasses.asdict(self.train))}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False, default_flow_style=None)


# ------------------------------------------------------------------------------- building
def _plain(x):
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    return x


def _type_ok(value, tp) -> bool:
    """Loose runtime check of YAML values against a dataclass field annotation."""
    if tp is Any:
        return True
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is bool:
        return isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return isinstance(value, (list, tuple)) and (
            not args or all(_type_ok(v, args[0]) for v in value))
    if origin is dict or tp is dict:
        return isinstance(value, dict)
    return True


def _build(cls, d, where: str):
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(d) - set(names))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                          f"valid keys in {where}: {names}")
    kw = {}
    for name in names:
        if name not in d:
            continue
        v, tp = d[name], hints[name]
        if dataclasses.is_dataclass(tp):
            kw[name] = _build(tp, v, f"{where}.{name}")
            continue
        if not _type_ok(v, tp):
            raise ConfigError(f"{where}.{name} = {v!r} has the wrong type (expected "
                              f"{getattr(tp, '__name__', str(tp))})")
        if tp is float or (typing.get_origin(tp) in (typing.Union, types.UnionType)
                           and float in typing.get_args(tp) and isinstance(v, int)
                           and not isinstance(v, bool)):
            v = float(v)
        kw[name] = v
    try:
        return cls(**kw)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: {e}") from None


def build_config(raw: dict, overrides=()) -> FullConfig:
    """Validate a raw dict (+ ``key=value`` overrides) into a :class:`FullConfig`."""
    import copy

    raw = copy.deepcopy(raw)
    if "training" in raw:  # the seed README's section name
        if "train" in raw:
            raise ConfigError("both 'train' and its alias 'training' are given: use one section")
        raw["train"] = raw.pop("training")
    for o in overrides:
        apply_override(raw, *parse_override(o))
    unknown = sorted(set(raw) - {"model", "data", "train"})
    if unknown:
        raise ConfigError(f"unknown config section(s) {unknown}; valid: model, data, train "
                          "('training' is accepted for train)")
    try:
        model = ModelConfig.from_dict(raw.get("model") or {})
    except (TypeError, ValueError) as e:
        raise ConfigError(f"model: {e}") from None
    if model.freeze_vit and "pretrained_model" not in (raw.get("model") or {}):
        raise ConfigError("model.pretrained_model is not given and model.freeze_vit is true: the "
                          "decoder would train on a frozen encoder with random weights (what an "
                          "empty config asks for); give model.pretrained_model (a hub id or "
                          "folder; null = random weights on purpose) or model.freeze_vit: false")
    if model.decoders != 1:
        raise ConfigError(f"model.decoders = {model.decoders}: an ensemble is not trained as one; "
                          "train each member (other train.seed) with model.decoders: 1 and join "
                          "them with `vita-grasp weights ensemble`")
    return FullConfig(model=model, data=_build(DataConfig, raw.get("data"), "data"),
                      train=_build(TrainConfig, raw.get("train"), "train"))


def load_config(path, overrides=()) -> FullConfig:
    """Read a YAML config file, apply ``key=value`` overrides, validate."""
    return build_config(load_raw(path), overrides)


def resolve_run_config(model_type: str | None, config: str | None, dataset_root: str | None,
                       seed: int | None, overrides) -> FullConfig:
    """The run's config from the CLI arguments (``--config`` or the shipped
    ``<model_type>_grasp.yaml``, then ``--set`` overrides, then ``--dataset_root`` /
    ``--seed``)."""
    if config is None:
        config = f"{model_type or 'internvit'}_grasp.yaml"
    raw = load_raw(config)
    ovr = list(overrides or [])
    if dataset_root is not None:
        ovr.append(f"data.root={json.dumps(str(dataset_root))}")
    if seed is not None:
        ovr.append(f"train.seed={int(seed)}")
    cfg = build_config(raw, ovr)
    if model_type is not None and cfg.model.backbone != model_type:
        raise ConfigError(f"--model_type {model_type} but {config} has model.backbone "
                          f"{cfg.model.backbone!r}: pass the matching --config "
                          f"({model_type}_grasp.yaml) or omit --model_type")
    return cfg
