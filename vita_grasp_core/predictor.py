"""GraspPredictor: numpy RGB frames in, grasps (source pixels) and maps out.

Owns pre-processing (letterbox + normalisation from the model config), the forward pass on the
chosen device/dtype and decoding (CONVENTIONS §4), like segment-anything's ``SamPredictor``.
"""
from __future__ import annotations

import os
import pickle
import time
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from .checkpoint import CheckpointError
from .choices import DEFAULT_ENGINE, DEFAULT_ONNX_PRECISION
from .decoding import decode_maps
from .decoding_settings import DecodeConfig, setting_sources
from .engines import TorchEngine, get_engine_factory
from .geometry import Letterbox
from .grasp import Grasp, grasps_to_array
from .preprocess import image_to_input


@dataclass
class Prediction:
    """Result for one frame.

    Attributes:
        grasps: best first, in source-image pixels (CONVENTIONS §1) with ``object_score``.
        maps: ``(5, H_out, W_out)`` float32 maps (CONVENTIONS §3) on the model's output canvas.
        letterbox: the mapping from source pixels to ``maps`` pixels.
        timings: seconds per stage (``preprocess``, ``model``, ``decode``).
        target_note: with a target, why there are no grasps on it ("" otherwise).
        features: the encoder's ``(C, h, w)`` feature maps of the frame (list, one per layer),
            when they were asked for (``keep_features``) or needed (an example target).
        poses: with ``depth`` and ``K`` given to :meth:`GraspPredictor.predict`, the 3-D pose
            of each grasp (:class:`~.grasp3d.GraspPose` or None), else None.
        depth_check: the :class:`~.grasp_depth.DepthCheck` that refined and ordered
            ``grasps`` (its notes say what changed per grasp), or None.
        approach_note: with poses, along what they approach: ``camera axis`` (CONVENTIONS
            §1), ``table normal N deg`` (``approach="table"``) or why the table normal was
            not used (then the camera axis).
        fallback_note: with ``fallback`` given to :meth:`GraspPredictor.predict` and no
            grasp of the model above its threshold, what the depth fallback found
            (:mod:`.depth_fallback`; its grasps have quality 0), else "".
    """

    grasps: list[Grasp]
    maps: np.ndarray
    letterbox: Letterbox
    timings: dict[str, float] = field(default_factory=dict)
    target_note: str = ""
    features: list | None = field(default=None, repr=False)
    poses: list | None = None
    depth_check: object | None = field(default=None, repr=False)
    approach_note: str = ""
    fallback_note: str = ""

    def frame(self):
        """What target selection sees of this frame (:class:`~.target_select.FrameMaps`)."""
        from .target_select import FrameMaps

        return FrameMaps(self.maps, self.letterbox, self.features)

    @property
    def image_size(self) -> tuple[int, int]:
        return self.letterbox.src_size

    def grasp_array(self) -> np.ndarray:
        """``(N, 7)`` float32: x, y, angle, width, height, quality, object_score."""
        return grasps_to_array(self.grasps)

    def to_dict(self) -> dict:
        h, w = self.image_size
        return {"image_height": h, "image_width": w, "grasps": [g.to_dict() for g in self.grasps]}


class GraspPredictor:
    """Predict planar grasps from ``HxWx3 uint8 RGB`` numpy frames.

    Args:
        model: a :class:`~vita_grasp_core.model.GraspModel` (run by a
            :class:`~vita_grasp_core.engines.TorchEngine` on ``device`` in ``dtype``), or an
            engine (:mod:`vita_grasp_core.engines`, e.g. an ``OnnxRuntimeEngine`` from
            :meth:`from_onnx`), which brings its own device and dtype: leave those ``auto``.
        device: ``auto``, ``cpu``, ``cuda``, ``cuda:1`` ...
        dtype: ``auto`` (bf16 on CUDA, fp32 on CPU), ``float32``, ``bfloat16``, ``float16``.
        decode: the decoding settings (:class:`~vita_grasp_core.decoding_settings.DecodeConfig`,
            a dict of its fields, or ``None`` = its defaults); ``from_checkpoint`` starts from
            the settings stored with the checkpoint.
        **decode_overrides: single settings (``score_threshold=0.3``) applied on top.
    """

    def __init__(self, model, device: str = "auto", dtype: str | None = "auto", *,
                 decode: DecodeConfig | dict | None = None, **decode_overrides):
        if hasattr(model, "run") and hasattr(model, "config"):  # an engine
            if str(device) not in ("auto", str(model.device)) or dtype not in (
                    None, "auto", model.dtype, str(model.dtype).replace("torch.", "")):
                raise ValueError(f"the {model.name} engine brings its own device and dtype "
                                 f"({model.device}, {model.dtype}); leave device/dtype auto")
            self.engine = model
        else:
            self.engine = TorchEngine(model, device, dtype)
        self.device, self.dtype = self.engine.device, self.engine.dtype
        self.mean, self.std = self.engine.mean, self.engine.std
        self.config = self.engine.config
        #: where each decoding setting came from: "default", "given" (``decode``), "checkpoint"
        #: (``from_checkpoint``: stored with it) or "override" (``decode_overrides``)
        self.decode_sources = setting_sources(decode, decode_overrides)
        if not isinstance(decode, DecodeConfig):
            decode = DecodeConfig.from_dict(decode)
        self.decode_config = decode.replace(**decode_overrides)

    @classmethod
    def from_checkpoint(cls, path, device: str = "auto", dtype: str | None = "auto", *,
                        pretrained_model: str | None = None, engine: str = DEFAULT_ENGINE,
                        providers=None, onnx_path=None,
                        onnx_precision: str = DEFAULT_ONNX_PRECISION,
                        intra_op_threads: int | None = None, **decode_overrides
                        ) -> "GraspPredictor":
        """Load a checkpoint written by training (see :mod:`.checkpoint`).

        Decoding starts from the checkpoint's stored settings (``meta["decode"]``: threshold and
        quality calibration chosen on validation data), else the :class:`DecodeConfig` defaults;
        ``decode_overrides`` (``score_threshold=...``; ``None`` values ignored) go on top.

        ``engine`` names a registered engine (:data:`vita_grasp_core.choices.ENGINES`), made by
        its factory. ``onnxruntime`` runs the exported network in ONNX Runtime instead of
        PyTorch: ``onnx_path`` when given (exported there if missing), else a cache file next
        to the checkpoint exported and checked on first use
        (:func:`~.onnx_cache.onnx_for_checkpoint`); ``onnx_precision`` fp32 / fp16 / int8
        (dynamic, encoder MatMul weights); ``providers`` (default CPU) and
        ``intra_op_threads`` configure the session. Same pre-processing, same decoding, same
        grasps (within the export tolerance). ``torch`` ignores the ONNX Runtime options.
        """
        factory = get_engine_factory(engine)
        eng, stored = factory(path, device=device, dtype=dtype, pretrained_model=pretrained_model,
                              providers=providers, onnx_path=onnx_path,
                              onnx_precision=onnx_precision, intra_op_threads=intra_op_threads)
        pred = cls(eng, decode=stored, **decode_overrides)
        pred.decode_sources = setting_sources(stored, decode_overrides, "checkpoint")
        return pred

    @classmethod
    def from_onnx(cls, path, providers=None, *, intra_op_threads: int | None = None,
                  **decode_overrides) -> "GraspPredictor":
        """Predictor on an exported file alone (``vita-grasp export``; no checkpoint, no torch
        model): config, mean/std and decoding settings come from its metadata."""
        from .engines import OnnxRuntimeEngine

        ort_engine = OnnxRuntimeEngine(path, providers, intra_op_threads=intra_op_threads)
        return cls(ort_engine, decode=ort_engine.info.decode, **decode_overrides)

    @property
    def engine_name(self) -> str:
        """The registered name of the engine (``torch``, ``onnxruntime`` ...)."""
        return self.engine.name

    @property
    def model(self):
        """The :class:`~vita_grasp_core.model.GraspModel` of a PyTorch engine, else ``None``."""
        return getattr(self.engine, "model", None)

    def set_decoding(self, **changes) -> None:
        """Change decoding settings (validated as a whole; ``None`` keeps the current value)."""
        self.decode_config = self.decode_config.replace(**changes)
        self.decode_sources.update({k: "override" for k, v in changes.items() if v is not None})

    @property
    def score_threshold(self) -> float:
        return self.decode_config.score_threshold

    @property
    def max_grasps(self) -> int:
        return self.decode_config.max_grasps

    @property
    def min_distance(self) -> int:
        return self.decode_config.min_distance

    @property
    def smooth_sigma(self) -> float:
        return self.decode_config.smooth_sigma

    @property
    def input_size(self) -> tuple[int, int]:
        """The input canvas: the model's ``input_size`` times ``input_scale`` (rounded to the
        encoder's patch unit)."""
        c, k = self.config, self.decode_config.input_scale
        if k == 1.0:
            return tuple(c.input_size)
        if self.model is None:
            raise ValueError("input_scale needs the PyTorch engine (an exported network has a "
                             "fixed input size)")
        m = self.model.backbone.size_multiple
        return tuple(max(m, int(round(v * k / m)) * m) for v in c.input_size)

    def preprocess(self, images) -> tuple[torch.Tensor, list[Letterbox]]:
        """List of frames -> ``(B, 3, H_in, W_in)`` normalised tensor on the device, and the
        letterboxes (onto the output maps; the input canvas has the same layout at
        :attr:`input_size`)."""
        c, size = self.config, self.input_size
        xs, lbs = zip(*(image_to_input(im, size, c.output_size, self.mean, self.std)
                        for im in images))
        return torch.stack(xs).to(self.device, self.dtype, non_blocking=True), list(lbs)

    @torch.inference_mode()
    def forward_maps(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Torch-level call: ``(B, 3, H_in, W_in)`` -> ``(B, 5, H_out, W_out)`` float32 maps
        (averaged over the views of ``decode_config.tta``: :mod:`.tta`)."""
        from .tta import tta_maps

        return tta_maps(self.engine.run, pixel_values, self.decode_config.tta,
                        self.config.output_size)

    @torch.inference_mode()
    def forward_features(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Like :meth:`forward_maps`, also returning the encoder's feature maps (one forward;
        ``list[(B, C, h, w)]`` float32). PyTorch engine only (an exported network gives maps)."""
        model = self.model
        if model is None:
            from .target_select import TargetError

            raise TargetError(f"example targets need the encoder's features: use the torch "
                              f"engine (the {self.engine_name} engine gives maps only)")
        from .fpn_decoder import GraspDecoder

        x = pixel_values.to(self.device, self.dtype)
        feats = model.backbone_features(x)
        maps = GraspDecoder.activate(model.decode_logits(feats, x)).float()
        return maps, [f.float() for f in feats]

    def decode(self, maps: torch.Tensor, letterboxes, *, max_grasps: int | None = None,
               regions=None) -> list[list[Grasp]]:
        """Maps -> grasps. With ``input_scale`` k the network saw objects k times larger than
        the maps show them, so its openings (learned in canvas pixels) are read k times
        smaller."""
        c = self.config
        cfg = self.decode_config if max_grasps is None else self.decode_config.replace(
            max_grasps=max_grasps)
        width_scale = c.width_scale * c.input_size[1] / self.input_size[1]
        return decode_maps(maps, letterboxes, width_scale=width_scale,
                           height_ratio=c.height_ratio, decode=cfg, regions=regions)

    def decode_target(self, maps: torch.Tensor, frame, target, *,
                      max_grasps: int | None = None) -> tuple[list[Grasp], str]:
        """Grasps of one frame's ``(5, H, W)`` maps on ``target`` (see :mod:`.target_select`):
        each target region decoded on its own, the grasps tagged with its id, merged best first
        and cut to ``max_grasps``. Returns ``(grasps, note)``; ``note`` says why there are none.
        """
        from .target_select import select

        sel = select(target, frame)
        if not sel.regions:
            return [], sel.note
        n = len(sel.regions)
        per = self.decode(maps.unsqueeze(0).expand(n, -1, -1, -1), [frame.letterbox] * n,
                          max_grasps=max_grasps, regions=[r.mask for r in sel.regions])
        grasps = [replace(g, target=r.target_id) for r, gs in zip(sel.regions, per) for g in gs]
        grasps.sort(key=lambda g: -g.quality)  # stable: equal qualities keep the target order
        grasps = grasps[:max_grasps or self.max_grasps]
        return grasps, "" if grasps else "no grasp above score_threshold on the target"

    def _grasps(self, maps: torch.Tensor, pred: Prediction, target, max_grasps
                ) -> tuple[list[Grasp], str]:
        """One frame's ``(5, H, W)`` maps -> (grasps, note), on ``target`` when given."""
        if target is None:
            return self.decode(maps.unsqueeze(0), [pred.letterbox], max_grasps=max_grasps)[0], ""
        return self.decode_target(maps, pred.frame(), target, max_grasps=max_grasps)

    def predict_batch(self, images, target=None, *, max_grasps: int | None = None,
                      keep_features: bool = False) -> list[Prediction]:
        """Predict for a list of frames (any sizes). See :meth:`predict`; ``target`` is one
        target for every frame or a list with one per frame."""
        if isinstance(images, np.ndarray):
            raise ValueError("predict_batch takes a list of HxWx3 arrays; use predict() for one")
        images = list(images)
        if not images:
            return []
        n = len(images)
        targets = list(target) if isinstance(target, (list, tuple)) else [target] * n
        if len(targets) != n:
            raise ValueError(f"got {len(targets)} targets for {n} frames")
        need = keep_features or any(getattr(t, "needs_features", False) for t in targets)
        t0 = time.perf_counter()
        x, lbs = self.preprocess(images)
        t1 = time.perf_counter()
        maps, feats = self.forward_features(x) if need else (self.forward_maps(x), None)
        if maps.is_cuda:
            torch.cuda.synchronize(maps.device)
        t2 = time.perf_counter()
        maps_np = maps.cpu().numpy()
        preds = [Prediction([], m, lb, features=None if feats is None else [f[i] for f in feats])
                 for i, (m, lb) in enumerate(zip(maps_np, lbs))]
        if all(t is None for t in targets):  # one batched decoding
            for p, g in zip(preds, self.decode(maps, lbs, max_grasps=max_grasps)):
                p.grasps = g
        else:
            for i, (p, t) in enumerate(zip(preds, targets)):
                p.grasps, p.target_note = self._grasps(maps[i], p, t, max_grasps)
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) / n, "model": (t2 - t1) / n, "decode": (t3 - t2) / n}
        for p in preds:
            p.timings = dict(timings)
        return preds

    def predict(self, image: np.ndarray, target=None, *, max_grasps: int | None = None,
                keep_features: bool = False, depth: np.ndarray | None = None, K=None,
                depth_check=True, approach: str = "camera", fallback=False) -> Prediction:
        """One ``HxWx3 uint8 RGB`` frame -> :class:`Prediction` (grasps in its pixels).

        ``target`` (optional, :mod:`.target_select`: a ``BoxTarget``, ``MaskTarget``,
        ``PointTarget`` or :class:`~.example_match.ExampleMatcher`): grasps only on that object,
        its own best first, each tagged with the target's id (``Grasp.target``);
        ``Prediction.target_note`` says why there are none. ``max_grasps`` overrides the
        decoding setting for this call; ``keep_features`` keeps the encoder's feature maps in
        the result (for :meth:`select` with an example target later).

        With ``depth`` (HxW metres, registered to ``image``; any size of its aspect ratio) and
        ``K`` (3x3 intrinsics of ``image``), ``Prediction.poses`` holds the 3-D poses
        (CONVENTIONS §1), and ``depth_check`` (True = the default
        :class:`~.grasp_depth.DepthCheckSettings`, or settings; False = off) first refines the
        grasps with :func:`~.grasp_depth.check_grasps`: openings that clear the object, fingers
        that land on free space, failing grasps demoted, too-wide ones dropped
        (``Prediction.depth_check`` says what changed per grasp). ``approach``: ``camera``
        (the poses approach along the optical axis, CONVENTIONS §1) or ``table`` (along the
        normal of the table plane fitted to ``depth``: a tilted camera's grasps still come
        straight down onto the table; the camera axis where no plane is found,
        ``Prediction.approach_note`` says which). ``fallback`` (True = the default
        :class:`~.depth_fallback.FallbackSettings`, or settings; False = off): when the model
        has no grasp above its threshold, grasps from depth alone (the analytic grasp on the
        highest objects standing above the surface, quality 0; ``Prediction.fallback_note``);
        never with a ``target``.

        Raises ``ValueError`` for anything else (wrong dtype, shape, channels, empty, strided,
        intrinsics or a depth image that do not fit the image).
        """
        pred = self.predict_batch([image], target, max_grasps=max_grasps,
                                  keep_features=keep_features)[0]
        if depth is not None or K is not None:
            add_poses(pred, depth, K, depth_check, approach,
                      fallback=fallback if target is None else False)
        return pred

    def select(self, pred: Prediction, target=None, *, max_grasps: int | None = None
               ) -> Prediction:
        """The grasps of an earlier prediction's maps on another ``target`` (decoding only:
        milliseconds, no forward pass). An example target needs ``pred.features``."""
        t0 = time.perf_counter()
        grasps, note = self._grasps(torch.from_numpy(pred.maps), pred, target, max_grasps)
        timings = dict(pred.timings, decode=time.perf_counter() - t0)
        return Prediction(grasps, pred.maps, pred.letterbox, timings, note, pred.features)

    def example_target(self, image: np.ndarray, **kw):
        """An :class:`~.example_match.ExampleMatcher` from a picture of the object (``HxWx3
        uint8 RGB``): its encoder features and the model's object mask on it."""
        from .example_match import ExampleMatcher

        return ExampleMatcher.from_frame(self.predict(image, keep_features=True).frame(), **kw)


def add_poses(pred: Prediction, depth, K, depth_check=True, approach: str = "camera",
              fallback=False) -> Prediction:
    """Give ``pred`` 3-D poses from ``depth`` (HxW metres) and ``K`` (3x3 of its image), after
    the depth fallback and the depth check, approaching along ``approach``
    (:meth:`GraspPredictor.predict`, :func:`~.depth_poses.depth_poses`); ``ValueError`` (one
    line) when they do not fit the image."""
    from .approach import check_approach
    from .grasp3d import check_intrinsics, check_size
    from .grasp_depth import DepthCheckSettings

    if depth is None or K is None:
        raise ValueError("3-D poses need both depth and K")
    check_approach(approach)
    depth = np.asarray(depth)
    size = pred.image_size
    problem = (check_size("depth image", depth.shape[:2], size) if depth.ndim == 2 else
               f"depth must be HxW, got shape {depth.shape}") or check_intrinsics(K, None, size)
    if problem:
        raise ValueError(problem)
    from .depth_fallback import FallbackSettings
    from .depth_poses import depth_poses

    if depth_check is False or depth_check is None:
        check = None
    else:
        check = depth_check if isinstance(depth_check, DepthCheckSettings) else \
            DepthCheckSettings()
    if fallback is False or fallback is None:
        fallback = None
    elif not isinstance(fallback, FallbackSettings):
        fallback = FallbackSettings()
    out = depth_poses(pred.grasps, depth, K, size, check=check, approach=approach,
                      fallback=fallback)
    pred.grasps, pred.poses, pred.depth_check = out.grasps, out.poses, out.check
    pred.fallback_note, pred.approach_note = out.fallback_note, out.approach_note
    return pred


def load_predictor(checkpoint, *, device: str = "auto", dtype: str | None = "auto",
                   pretrained_model: str | None = None, engine: str = DEFAULT_ENGINE,
                   providers=None, onnx_precision: str = DEFAULT_ONNX_PRECISION,
                   **decode_overrides) -> GraspPredictor:
    """:meth:`GraspPredictor.from_checkpoint` for command lines, the bag tools and the node.

    Every reason the predictor cannot be made (no such file, not a usable checkpoint, an
    encoder that is not available offline, an unavailable device or engine) becomes one
    :class:`~vita_grasp_core.checkpoint.CheckpointError` whose one-line message names the file;
    callers print it (command lines exit 2).
    """
    path = os.path.expanduser(str(checkpoint))
    try:
        return GraspPredictor.from_checkpoint(
            path, device, dtype, pretrained_model=pretrained_model, engine=engine,
            providers=providers, onnx_precision=onnx_precision, **decode_overrides)
    except (OSError, ValueError, RuntimeError, KeyError, EOFError, pickle.UnpicklingError) as e:
        text = " ".join(str(e).split()) or type(e).__name__
        raise CheckpointError(text if path in text else f"checkpoint {path}: {text}") from None
