"""On-disk cache of frozen-encoder features of (augmented) views, for decoder-only training.

With a frozen encoder, the features of a given image never change, so they are computed once:

- without augmentation: one view per frame (the frame itself);
- with augmentation (``train.cache_views = V``): V views per frame, view 0 the frame itself and
  views 1 .. V-1 augmented once (flips, rotation, scale, colour; the grasps and the mask move with
  the image) with a generator seeded by ``(train.seed, view, frame key)``. Each epoch draws one
  view per frame, seeded by ``(seed, epoch, index)``. The encoder thus runs V times per frame for
  the whole run instead of once per frame and epoch.

Trained last blocks (``model.train_blocks = N``): the cache also keeps each view's tokens after
block ``tokens_at`` (default ``max(feature_layers) - N``, the first trained block's input), and
training runs only the blocks after it on them (:meth:`GraspModel.tail_features`): the frozen
part is still paid once per view. Frozen runs and runs that train any number of last blocks
can share one cache by setting the same ``train.cache_tokens_at`` (the blocks between it and the
first trained one then run without gradients at each step).

One ``.safetensors`` file per view::

    <cache_dir>/<key>/<frame key>.v<k>.safetensors
        feat0 ... featN-1  fp16 (C, h, w)  the frozen encoder's maps of the view
        tokens             fp16 (T, C)     with ``tokens_at`` (``model.train_blocks``,
                                           ``train.cache_tokens_at``): the tokens after that
                                           block (CLS + patches), from which training runs the
                                           blocks after it
        canvas             uint8 (H, W, 3) the view's input canvas (for decoders with an
                                           image stem, ``model.image_stem``)
        grasps             fp32 (N, 7)     the view's grasps (source px of the view)
        size               int64 (2,)      (h, w) of the view
        semantic           uint8 (H, W)    object mask on the output canvas (only with a mask)
    <cache_dir>/<key>/meta.json            what the key stands for (human readable)

Targets are rendered from the stored grasps when a view is loaded (cheap), so the target
parameters (sigma, width scale, scores) can change without rebuilding the cache. ``key`` hashes
everything the stored tensors depend on: the encoder recipe (backbone, pretrained_model,
backbone_config, feature_layers, input_size, attention; mean/std follow from the backbone;
where tokens are kept), the output size, the data set (absolute root, camera, format,
max_rects) and the augmentation (its settings and seed). Views are indexed, so runs with
different ``cache_views`` (and the folds of ``vita-grasp cv``, which use the same frames and
seed) share their files.

Files are written atomically, so a killed build leaves only complete files and the next run
fills in the rest. Size per view: 4 x 384 x 16 x 16 fp16 = 0.8 MB for DINOv2-S at 224 x 224;
about 11 MB for InternViT at 448 x 588.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import torch

from ..fileio import atomic_write

log = logging.getLogger(__name__)

ENCODER_KEYS = ("backbone", "pretrained_model", "backbone_config", "feature_layers", "input_size",
                "attn_implementation")
FORMAT = "vita_grasp.feature_cache/3"


def _hash(blob) -> str:
    return hashlib.sha256(json.dumps(blob, sort_keys=True, default=str).encode()).hexdigest()


def _encoder_recipe(model_config, tokens_at: int | None = None) -> dict:
    cfg = model_config.to_dict()
    enc = {k: cfg[k] for k in ENCODER_KEYS}
    if tokens_at is not None:  # (keys of caches without tokens stay as they were)
        enc["tokens_at"] = int(tokens_at)
    return enc


def cache_tokens_at(model_config, tokens_at: int | None = None) -> int | None:
    """After which encoder block the cache keeps the tokens: ``tokens_at`` (``train.
    cache_tokens_at``) or, when the model trains its last blocks, the input of the first one
    (``max(feature_layers) - train_blocks``); ``None``: no tokens. Raises ``ValueError`` when
    the tokens could not feed the trained blocks."""
    layers, n = model_config.feature_layers, model_config.train_blocks
    split = max(layers) - n
    if tokens_at is None:
        return split if n else None
    if not 0 <= int(tokens_at) <= split:
        raise ValueError(f"train.cache_tokens_at {tokens_at}: the tokens must enter a block "
                         f"at or before the first trained one (0 .. {split} with train_blocks "
                         f"{n} and feature_layers {list(layers)})")
    return int(tokens_at)


def cache_key(model_config, data_signature: dict, tokens_at: int | None = None) -> str:
    """16-hex-digit hash of the encoder recipe (and where tokens are kept), the output size and
    the data signature."""
    blob = {"encoder": _encoder_recipe(model_config, tokens_at),
            "output_size": list(model_config.output_size), "data": data_signature,
            "format": FORMAT}
    return _hash(blob)[:16]


def encoder_fingerprint(model) -> str | None:
    """Hash of the encoder's weights when they are not named by ``pretrained_model`` (a random or
    fine-tuned encoder stored in the checkpoint); ``None`` for a referenced pretrained one."""
    if model.config.pretrained_model is not None and model.backbone.frozen:
        return None
    h = hashlib.sha256()
    for k, v in sorted(model.backbone.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()[:16]


def dataset_signature(dataset) -> dict:
    """What the views of a :class:`~vita_grasp_core.data.GraspDataset` depend on."""
    aug = dataset.augment
    if aug is not None:
        aug = dataclasses.asdict(aug)
        if aug.get("pad") == "constant":  # (added later: keys of earlier caches stay valid)
            del aug["pad"]
    return {"root": str(Path(dataset.root).resolve()), "camera": dataset.camera,
            "format": dataset.format, "max_rects": dataset.max_rects,
            "augment": aug,
            "seed": dataset.seed if aug is not None else None}


def _stable_int(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


class FeatureCache:
    """View files under ``directory/<key>/`` (see module docstring). ``tokens_at``: also keep
    the tokens after that encoder block (:func:`cache_tokens_at`)."""

    def __init__(self, directory, model_config, data_signature: dict,
                 fingerprint: str | None = None, tokens_at: int | None = None):
        if fingerprint is not None:  # the encoder's own weights, not a named checkpoint
            data_signature = dict(data_signature, encoder_weights=fingerprint)
        self.tokens_at = tokens_at
        self.key = cache_key(model_config, data_signature, tokens_at)
        self.dir = Path(directory) / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            info = {"encoder": _encoder_recipe(model_config, tokens_at),
                    "output_size": list(model_config.output_size), "data": data_signature}
            atomic_write(meta, lambda p: p.write_text(json.dumps(info, indent=2, default=str)))
        layers, tail = model_config.feature_layers, model_config.train_blocks
        #: maps a run loads: those of the frozen layers (the trained blocks recompute theirs)
        self.num_levels = sum(1 for v in layers if v <= max(layers) - tail)
        self.output_size = tuple(model_config.output_size)

    def path(self, frame_key: str, view: int = 0) -> Path:
        safe = frame_key.replace("/", "__").replace("\\", "__")
        return self.dir / f"{safe}.v{int(view)}.safetensors"

    def has(self, frame_key: str, views: int) -> bool:
        return all(self.path(frame_key, v).is_file() for v in range(views))

    def save(self, path: Path, feats, grasps: np.ndarray, size, semantic=None,
             canvas=None, tokens=None) -> None:
        """Atomically write one view (features and tokens as fp16; ``canvas`` the uint8 input
        canvas)."""
        from safetensors.torch import save_file

        tensors = {f"feat{i}": f.detach().to("cpu", torch.float16).contiguous()
                   for i, f in enumerate(feats)}
        if tokens is not None:
            tensors["tokens"] = tokens.detach().to("cpu", torch.float16).contiguous()
        if canvas is not None:
            tensors["canvas"] = torch.from_numpy(np.ascontiguousarray(canvas, np.uint8))
        tensors["grasps"] = torch.from_numpy(np.ascontiguousarray(grasps, np.float32))
        tensors["size"] = torch.tensor([int(size[0]), int(size[1])], dtype=torch.int64)
        if semantic is not None:
            tensors["semantic"] = torch.from_numpy(np.ascontiguousarray(semantic, np.uint8))
        # atomic (a killed build leaves no partial file) but not fsynced: a cache, recomputable
        atomic_write(path, lambda p: save_file(tensors, str(p)), durable=False)

    def load(self, path: Path) -> dict:
        """``{"features": [fp16 (C, h, w)], "tokens": fp16 (T, C) or None, "grasps": (N, 7),
        "size": (h, w), "semantic": (H, W) uint8 or None, "canvas": (H_in, W_in, 3) uint8 or
        None}``."""
        from safetensors.torch import load_file

        t = load_file(str(path))
        return {"features": [t[f"feat{i}"] for i in range(self.num_levels)],
                "tokens": t.get("tokens"),
                "canvas": t["canvas"].numpy() if "canvas" in t else None,
                "grasps": t["grasps"].numpy(), "size": tuple(int(v) for v in t["size"]),
                "semantic": t["semantic"].numpy() if "semantic" in t else None}


def frame_views(dataset, i: int, views: int) -> list[tuple]:
    """``[(rgb, label, grasps), ...]`` of frame ``i``: the frame itself, then ``views - 1``
    augmentations seeded by ``(dataset.seed, view, frame key)``. Raises ``FrameFault``."""
    from ..data.common import inside_image
    from ..data.formats import load_frame

    rec = dataset.frames[i]
    fr = load_frame(rec, require_label=dataset.require_label)
    g = fr.grasps
    if dataset.max_rects is not None and len(g) > dataset.max_rects:
        g = g[np.sort(np.argsort(-g[:, 5], kind="stable")[: int(dataset.max_rects)])]
    out = [(fr.rgb, fr.label, g)]
    if views > 1:
        if dataset.augment is None:
            raise ValueError("several cached views need an augmenting dataset")
        inside = g[inside_image(g, fr.rgb.shape[:2])]
        for v in range(1, views):
            rng = np.random.default_rng([dataset.seed, v, _stable_int(rec.key)])
            out.append(dataset.augment(fr.rgb, fr.label, inside, rng))
    return out


def _semantic(label, lb) -> np.ndarray | None:
    if label is None:
        return None
    from ..data.targets import warp_label_nearest

    return (warp_label_nearest(np.asarray(label), lb) > 0).astype(np.uint8)


@torch.no_grad()
def _pending_views(dataset, cache: "FeatureCache", i: int, views: int) -> list[tuple]:
    """``(path, image, grasps, size, semantic, canvas)`` of the views of frame ``i`` not cached
    yet (none when the frame cannot be read: the dataset records the fault)."""
    from ..data.common import FrameFault
    from ..preprocess import input_canvas, normalize_canvas

    key = dataset.frames[i].key
    try:
        vs = frame_views(dataset, i, views)
    except FrameFault as e:
        dataset.record_skips([(e.kind, e.path)])
        return []
    out = []
    for v, (rgb, label, g) in enumerate(vs):
        path = cache.path(key, v)
        if path.is_file():
            continue
        canvas, lb = input_canvas(rgb, dataset.input_size, dataset.output_size, dataset.mean)
        image = normalize_canvas(canvas, dataset.mean, dataset.std)
        out.append((path, image, g, rgb.shape[:2], _semantic(label, lb), canvas))
    return out


def build_cache(model, dataset, cache: FeatureCache, *, views: int = 1, device="cpu",
                batch_size: int = 8, rank: int = 0, world_size: int = 1,
                progress: bool = True) -> int:
    """Compute and store the views of every frame of ``dataset`` that is not cached yet.

    With several processes each rank fills the frames ``i % world_size == rank`` (call a barrier
    afterwards). Frames that cannot be read are skipped (the dataset records the fault). Returns
    the number of views computed by this rank.
    """
    if not model.backbone.frozen:
        raise ValueError("the feature cache needs a frozen backbone (model.freeze_vit: true)")
    todo = [i for i in range(len(dataset)) if i % world_size == rank
            and not cache.has(dataset.frames[i].key, views)]
    if not todo:
        return 0
    model.backbone.eval()
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(todo) * views, desc=f"feature cache ({views} view(s) per frame)",
                   unit="view", dynamic_ncols=True)
    pending: list[tuple] = []  # (path, image tensor, grasps, size, semantic, canvas)
    done = 0

    def flush():
        nonlocal done
        x = torch.stack([p[1] for p in pending]).to(device)
        feats, tokens = model.cache_features(x, cache.tokens_at)
        for b, (path, _, g, size, sem, canvas) in enumerate(pending):
            cache.save(path, [f[b] for f in feats], g, size, sem, canvas,
                       None if tokens is None else tokens[b])
        done += len(pending)
        if bar is not None:
            bar.update(len(pending))
        pending.clear()

    for i in todo:
        for item in _pending_views(dataset, cache, i, views):
            pending.append(item)
            if len(pending) >= batch_size:
                flush()
    if pending:
        flush()
    if bar is not None:
        bar.close()
    log.info("feature cache %s: computed %d views", cache.dir, done)
    return done


class CachedFeatureDataset(torch.utils.data.Dataset):
    """Frame ``i`` of ``dataset`` served from the cache: one of its ``views`` (drawn per epoch,
    seeded by ``(seed, epoch, i)``; always view 0 with ``views=1``) as features, rendered targets
    and the owned mask. Frames without all their view files are left out (``missing()``)."""

    def __init__(self, cache: FeatureCache, dataset, views: int = 1, seed: int = 0):
        self.cache, self.dataset = cache, dataset
        self.views, self.seed, self.epoch = int(views), int(seed), 0
        self.index = [i for i in range(len(dataset)) if cache.has(dataset.frames[i].key, views)]
        self.frames = [dataset.frames[i] for i in self.index]

    def __len__(self) -> int:
        return len(self.index)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def missing(self) -> list[int]:
        """Frame indices of ``dataset`` that have no complete set of views in the cache."""
        have = set(self.index)
        return [i for i in range(len(self.dataset)) if i not in have]

    def view_of(self, i: int) -> int:
        if self.views == 1:
            return 0
        return int(np.random.default_rng([self.seed, self.epoch, int(i)]).integers(self.views))

    def load(self, i: int, view: int) -> dict:
        """Features and targets of view ``view`` of item ``i``."""
        from ..data.targets import render_targets
        from ..geometry import Letterbox

        ds = self.dataset
        item = self.cache.load(self.cache.path(self.frames[i].key, view))
        lb = Letterbox.fit(item["size"], ds.output_size)
        t = render_targets(item["grasps"], None, lb, ds.width_scale, ds.sigma, **ds.render_kw)
        if item["semantic"] is not None:
            t.maps[4] = item["semantic"]
        out = {"features": item["features"], "target": torch.from_numpy(t.maps),
               **({} if item["tokens"] is None else {"tokens": item["tokens"]}),
                "owned": torch.from_numpy(t.owned), "rects": torch.from_numpy(item["grasps"]),
                "src_size": item["size"], "index": int(i), "key": self.frames[i].key}
        if item["canvas"] is not None:
            from ..preprocess import normalize_canvas

            out["image"] = normalize_canvas(item["canvas"], ds.mean, ds.std)
        return out

    def __getitem__(self, i: int) -> dict:
        return self.load(i, self.view_of(i))


def cached_collate(batch: list[dict]) -> dict:
    """Stack features level by level, targets and owned masks; ground truth as lists."""
    n = len(batch[0]["features"])
    extra = {k: torch.stack([b[k] for b in batch]) for k in ("image", "tokens") if k in batch[0]}
    return {**extra,
            "features": [torch.stack([b["features"][k] for b in batch]) for k in range(n)],
            "target": torch.stack([b["target"] for b in batch]),
            "owned": torch.stack([b["owned"] for b in batch]),
            "rects": [b["rects"] for b in batch],
            "src_size": [tuple(b["src_size"]) for b in batch],
            "key": [b["key"] for b in batch],
            "index": torch.tensor([b["index"] for b in batch], dtype=torch.int64)}


class MemoryCachedDataset(torch.utils.data.Dataset):
    """Keeps every item of ``dataset`` in RAM after its first load (``data.memory_cache``).

    Only for deterministic items (no augmentation) and small sets; each data-loader worker
    process holds its own copy, so use it with ``num_workers: 0``.
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.items: dict[int, dict] = {}

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = self.items.get(i)
        if item is None:
            item = self.items[i] = self.dataset[i]
        return item


def base_dataset(dataset):
    """The innermost dataset under Subset / cache wrappers."""
    from torch.utils.data import Subset

    while isinstance(dataset, (Subset, MemoryCachedDataset, CachedFeatureDataset)):
        dataset = dataset.dataset
    return dataset


def stored_bytes(cache: FeatureCache) -> int:
    return int(np.sum([p.stat().st_size for p in cache.dir.glob("*.safetensors")] or [0]))
