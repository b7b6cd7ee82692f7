"""One-shot targets from an example picture of the object: no text encoder, no training.

The frozen encoder's patch features of the example are matched against the frame's. The example's
object patches (the model's own semantic mask on the example; the central patches when it sees no
object) form the *prototype*: their unit feature vectors, from the encoder's second-to-last
feature map by default. Each patch of the frame gets its similarity to the example: the mean
cosine similarity to its ``k`` nearest prototype vectors. Every object of the frame (a connected
component of the model's object mask) is scored by the mean similarity over its pixels; the best
one is the target (when it reaches ``min_similarity``, by default always).

How well this works on real photographs (two views of the same Cornell object among others),
which choices were measured (feature map, a background term) and where it fails:
docs/targets.md, measured by ``scripts/eval_example_targets.py``.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .conventions import CH_SEMANTIC
from .target_select import (
    OBJECT_THRESHOLD,
    FrameMaps,
    Selection,
    TargetError,
    TargetRegion,
    _components,
    content_mask,
)

#: Mean similarity below which the best object of a frame is "not the example". The default
#: accepts the best object always: on Cornell no threshold told absent objects apart reliably
#: (docs/targets.md).
MIN_SIMILARITY = -1.0
#: Which of the encoder's feature maps is matched: the second-to-last one matched best on the
#: Cornell selection trials (the last one was the worst; docs/targets.md).
LAYER = -2
#: Nearest prototype vectors averaged per frame patch.
TOP_K = 3
#: Prototype vectors kept at most (evenly subsampled): bounds the matching cost.
MAX_PROTOTYPE = 512
#: Objects (components) smaller than this many map pixels are not candidates.
MIN_COMPONENT_PIXELS = 30


def unit_features(features) -> np.ndarray:
    """``(C, h, w)`` (torch or numpy) -> ``(h, w, C)`` float32 unit vectors (zero stays zero)."""
    f = features.detach().float().cpu().numpy() if hasattr(features, "detach") else features
    f = np.asarray(f, np.float32)
    if f.ndim != 3:
        raise TargetError(f"patch features must be (C, h, w), got shape {f.shape}")
    f = np.moveaxis(f, 0, -1)
    return f / np.maximum(np.linalg.norm(f, axis=-1, keepdims=True), 1e-6)


def patch_weights(maps: np.ndarray, letterbox, grid: tuple[int, int]) -> np.ndarray:
    """Object and content fractions of each patch: ``(2, h, w)`` = (mean semantic mask >=
    threshold, mean content) over the map pixels a patch covers (the patch grid spans the whole
    map canvas, padding included)."""
    import cv2

    content = content_mask(letterbox).astype(np.float32)
    obj = (np.asarray(maps[CH_SEMANTIC]) >= OBJECT_THRESHOLD).astype(np.float32) * content
    h, w = grid
    return np.stack([cv2.resize(m, (w, h), interpolation=cv2.INTER_AREA) for m in (obj, content)])


def _subsample(v: np.ndarray, n: int) -> np.ndarray:
    if len(v) <= n:
        return v
    return v[np.linspace(0, len(v) - 1, n).round().astype(int)]


@dataclass
class ExampleMatcher:
    """Matches frames against one example (see the module docstring).

    Attributes:
        positive: ``(P, C)`` unit features of the example's object patches.
        negative: ``(N, C)`` unit features of its background patches, subtracted as a
            background term (empty by default: measured worse on Cornell).
        layer: which of the encoder's feature maps is matched (index into the list).
        min_similarity: below this the target is absent.
        target_id: the id given to the grasps of the matched object.
    """

    positive: np.ndarray = field(repr=False)
    negative: np.ndarray = field(repr=False)
    layer: int = LAYER
    min_similarity: float = MIN_SIMILARITY
    target_id: str = "example"
    needs_features = True

    @classmethod
    def from_frame(cls, frame: FrameMaps, *, layer: int = LAYER, background: bool = False,
                   **kw) -> "ExampleMatcher":
        """Prototype from the example's :class:`FrameMaps` (``features``: the encoder's list of
        ``(C, h, w)`` maps, as ``Prediction.frame()`` gives them); ``background`` keeps the
        example's background patches as a background term."""
        feats = _layer(frame.features, layer)
        f = unit_features(feats)
        obj, content = patch_weights(frame.maps, frame.letterbox, f.shape[:2])
        pos = (obj >= 0.5) & (content >= 0.5)
        if pos.sum() < 3:  # the model sees no object: take the central half of the content
            ys, xs = np.nonzero(content >= 0.5)
            if ys.size == 0:
                raise TargetError("the example picture has no content")
            cy, cx = ys.mean(), xs.mean()
            ry, rx = max(1.0, np.ptp(ys) / 4), max(1.0, np.ptp(xs) / 4)
            yy, xx = np.mgrid[:f.shape[0], :f.shape[1]]
            pos = (np.abs(yy - cy) <= ry) & (np.abs(xx - cx) <= rx) & (content >= 0.5)
        neg = (obj < 0.1) & (content >= 0.5) & ~pos & background
        return cls(_subsample(f[pos], MAX_PROTOTYPE), _subsample(f[neg], MAX_PROTOTYPE),
                   layer=layer, **kw)

    def similarity(self, features) -> np.ndarray:
        """``(h, w)`` similarity of each frame patch to the example (see module docstring)."""
        f = unit_features(features)
        h, w, c = f.shape
        if c != self.positive.shape[1]:
            raise TargetError(f"the example's features have {self.positive.shape[1]} channels, "
                              f"the frame's {c}: another encoder or layer")
        flat = f.reshape(-1, c)
        sim = _top_k_mean(flat @ self.positive.T)
        if len(self.negative):
            sim = sim - _top_k_mean(flat @ self.negative.T)
        return sim.reshape(h, w)

    def scores(self, frame: FrameMaps) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(labels (H, W), candidate labels (n,), scores (n,))``: every object of the frame
        (component of the object mask of at least :data:`MIN_COMPONENT_PIXELS`) and its mean
        similarity to the example."""
        import cv2

        if frame.features is None:
            raise TargetError("example targets need the encoder's features of the frame "
                              "(the torch engine; ONNX Runtime gives maps only)")
        sim = self.similarity(_layer(frame.features, self.layer))
        hh, ww = frame.letterbox.dst_size
        sim_map = cv2.resize(sim.astype(np.float32), (ww, hh), interpolation=cv2.INTER_LINEAR)
        n, labels, areas = _components(frame.object_mask())
        cand = np.flatnonzero(areas >= MIN_COMPONENT_PIXELS)
        cand = cand[cand > 0]
        if cand.size == 0:
            return labels, cand, np.zeros(0)
        sums = np.bincount(labels.ravel(), weights=sim_map.ravel(), minlength=n)
        return labels, cand, sums[cand] / areas[cand]

    def select(self, frame: FrameMaps) -> Selection:
        labels, cand, scores = self.scores(frame)
        if cand.size == 0:
            return Selection([], "the model sees no object in the frame to match the example "
                                 "against")
        j = int(np.argmax(scores))
        if scores[j] < self.min_similarity:
            return Selection([], f"the example object is not in the frame (best match "
                                 f"{scores[j]:.3f} < min_similarity {self.min_similarity:g})")
        return Selection([TargetRegion(self.target_id, labels == cand[j])])


def _top_k_mean(sims: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Row-wise mean of the ``k`` largest values of ``(n, m)`` similarities."""
    k = min(k, sims.shape[1])
    if k == 0:
        return np.zeros(sims.shape[0], np.float32)
    return np.partition(sims, sims.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


def _layer(features, layer: int):
    if features is None:
        raise TargetError("no encoder features for example matching")
    if isinstance(features, (list, tuple)):
        try:
            return features[layer]
        except IndexError:
            raise TargetError(f"feature layer {layer} does not exist ({len(features)} "
                              "layers)") from None
    return features
