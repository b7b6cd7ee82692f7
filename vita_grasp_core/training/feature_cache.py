"""On-disk cache of frozen-backbone features (+ the frame's targets) for decoder-only training.

With a frozen encoder and no augmentation, the encoder's output for a frame never changes, so it is
computed once and every later epoch runs only the decoder. One ``.safetensors`` file per frame:

    <cache_dir>/<key>/<camera>_s<scene>_f<frame>.safetensors
        feat0 ... featN-1   fp16 (C, h, w)  backbone_features() of the frame
        target              fp16 (5, H, W)  the rendered targets (CONVENTIONS §3)
        owned               uint8 (H, W)    owned-pixel mask
    <cache_dir>/<key>/meta.json             what the key stands for (human readable)

``key`` is a hash of everything the stored tensors depend on: the encoder recipe
(backbone, pretrained_model, backbone_config, feature_layers, input_size, attention
implementation; mean/std follow from the backbone), the target rendering (output_size,
width_scale, sigma, score/owned parameters, max_rects) and the data set (absolute root, camera).
Change any of them and a new sub-directory is used; stale ones can simply be deleted.

Files are written atomically (temp + ``os.replace``), so a killed build leaves only complete files
and the next run fills in the rest. Disk use per frame at the real InternViT size (4 layers x 1024
x 32 x 42 fp16 + 5 x 480 x 640 fp16 targets) is about 14 MB; the tiny config needs ~0.3 MB.
"""
from __future__ import annotations

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


def cache_key(model_config, data_signature: dict) -> str:
    """16-hex-digit hash of the encoder recipe and the data/target signature."""
    cfg = model_config.to_dict()
    blob = {"encoder": {k: cfg[k] for k in ENCODER_KEYS}, "data": data_signature,
            "format": "vita_grasp.feature_cache/1"}
    text = json.dumps(blob, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def dataset_signature(dataset) -> dict:
    """What a :class:`~vita_grasp_core.data.graspnet.GraspNetDataset`'s targets depend on."""
    return {"root": str(Path(dataset.root).resolve()), "camera": dataset.camera,
            "output_size": list(dataset.output_size), "input_size": list(dataset.input_size),
            "width_scale": dataset.width_scale, "sigma": dataset.sigma,
            "max_rects": dataset.max_rects, "render": dict(dataset.render_kw),
            "mean": list(dataset.mean), "std": list(dataset.std)}


class FeatureCache:
    """Per-frame feature files under ``directory/<key>/`` (see module docstring)."""

    def __init__(self, directory, model_config, data_signature: dict):
        self.key = cache_key(model_config, data_signature)
        self.dir = Path(directory) / self.key
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "meta.json"
        if not meta.exists():
            info = {"encoder": {k: model_config.to_dict()[k] for k in ENCODER_KEYS},
                    "data": data_signature}
            atomic_write(meta, lambda p: p.write_text(json.dumps(info, indent=2, default=str)))
        self.num_levels = len(model_config.feature_layers)

    def path(self, camera: str, scene: int, frame: int) -> Path:
        return self.dir / f"{camera}_s{int(scene):04d}_f{int(frame):04d}.safetensors"

    def save(self, path: Path, feats, target: torch.Tensor, owned: torch.Tensor) -> None:
        """Atomically write one frame (features as fp16, targets fp16, owned uint8)."""
        from safetensors.torch import save_file

        tensors = {f"feat{i}": f.detach().to("cpu", torch.float16).contiguous()
                   for i, f in enumerate(feats)}
        tensors["target"] = target.detach().to("cpu", torch.float16).contiguous()
        tensors["owned"] = owned.detach().to("cpu", torch.uint8).contiguous()
        atomic_write(path, lambda p: save_file(tensors, p))

    def load(self, path: Path) -> dict:
        """``{"features": [fp16 (C, h, w)], "target": f32 (5, H, W), "owned": bool (H, W)}``."""
        from safetensors.torch import load_file

        t = load_file(str(path))
        feats = [t[f"feat{i}"] for i in range(self.num_levels)]
        return {"features": feats, "target": t["target"].float(), "owned": t["owned"].bool()}


def _frame_of(dataset, i: int):
    """(base GraspNetDataset, its frame index) for index ``i`` of a dataset wrapped in Subsets
    and :class:`MemoryCachedDataset`."""
    from torch.utils.data import Subset

    while True:
        if isinstance(dataset, Subset):
            i = dataset.indices[i]
            dataset = dataset.dataset
        elif isinstance(dataset, MemoryCachedDataset):
            dataset = dataset.dataset
        else:
            return dataset, int(i)


def base_dataset(dataset):
    """The innermost dataset under Subsets and :class:`MemoryCachedDataset` wrappers."""
    return _frame_of(dataset, 0)[0] if len(dataset) else dataset


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


def frame_path(cache: FeatureCache, dataset, i: int) -> Path:
    base, j = _frame_of(dataset, i)
    rec = base.frames[j]
    return cache.path(base.camera, rec.scene, rec.frame)


class CachedFeatureDataset(torch.utils.data.Dataset):
    """Index ``i`` of ``dataset`` served from the cache: features, target, owned (no image I/O).

    The file of index ``i`` is named after ``dataset``'s frame ``i``. (If that frame is unreadable
    the dataset substitutes the next good one; the cache stores what the dataset returned, so both
    paths train on the same data.)
    """

    def __init__(self, cache: FeatureCache, dataset):
        self.cache = cache
        self.paths = [frame_path(cache, dataset, i) for i in range(len(dataset))]

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict:
        item = self.cache.load(self.paths[i])
        item["index"] = int(i)
        return item

    def missing(self) -> list[int]:
        return [i for i, p in enumerate(self.paths) if not p.is_file()]


def cached_collate(batch: list[dict]) -> dict:
    """Stack features level by level, targets and owned masks."""
    n = len(batch[0]["features"])
    return {"features": [torch.stack([b["features"][k] for b in batch]) for k in range(n)],
            "target": torch.stack([b["target"] for b in batch]),
            "owned": torch.stack([b["owned"] for b in batch]),
            "index": torch.tensor([b["index"] for b in batch], dtype=torch.int64)}


@torch.no_grad()
def build_cache(model, dataset, cache: FeatureCache, *, device, batch_size: int = 8,
                num_workers: int = 0, rank: int = 0, world_size: int = 1,
                progress: bool = True) -> int:
    """Compute and store the features of every frame of ``dataset`` that is not cached yet.

    With several processes each rank fills the indices ``i % world_size == rank`` (call a barrier
    afterwards). Returns the number of frames computed by this rank.
    """
    from torch.utils.data import DataLoader, Subset

    from ..data.graspnet import collate_fn

    todo = [i for i in range(len(dataset)) if i % world_size == rank
            and not frame_path(cache, dataset, i).is_file()]
    if not todo:
        return 0
    if not model.backbone.frozen:
        raise ValueError("the feature cache needs a frozen backbone (model.freeze_vit: true)")
    loader = DataLoader(Subset(dataset, todo), batch_size=batch_size, shuffle=False,
                        num_workers=num_workers, collate_fn=collate_fn)
    it = loader
    if progress:
        from tqdm import tqdm

        it = tqdm(loader, desc="feature cache", unit="batch", dynamic_ncols=True)
    model.backbone.eval()
    done = 0
    pos = 0
    for batch in it:
        x = batch["image"].to(device, non_blocking=True)
        feats = model.backbone_features(x)
        for b in range(x.shape[0]):
            i = todo[pos + b]
            cache.save(frame_path(cache, dataset, i), [f[b] for f in feats], batch["target"][b],
                       batch["owned"][b])
        pos += x.shape[0]
        done += x.shape[0]
    log.info("feature cache %s: computed %d frames", cache.dir, done)
    return done


def stored_bytes(cache: FeatureCache) -> int:
    return int(np.sum([p.stat().st_size for p in cache.dir.glob("*.safetensors")] or [0]))
