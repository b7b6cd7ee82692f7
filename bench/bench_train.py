"""Training steps per second with and without the feature cache (train.feature_cache).

    python bench/bench_train.py [--quick] [--scenarios tiny,real] [--repeats N] [--json out.json]

A *step* is everything one optimisation step costs:

- without the cache: produce the batch (tiny: PNG decode, letterbox, target rendering through
  GraspNetDataset; real: a ready input tensor) -> frozen encoder forward (no_grad) -> decoder
  forward + backward -> AdamW step;
- with the cache: read the frame's .safetensors (fp16 features + targets) -> decoder forward +
  backward -> AdamW step.

Scenarios:

- ``tiny``: the shipped tiny.yaml with ``freeze_vit: true`` (the cache needs a frozen encoder)
  on a small synthetic set generated into a temp directory.
- ``real``: the real InternViT-300M-448px architecture (random weights: nothing is downloaded),
  frozen, input 448x588, and the real 256-channel decoder at 480x640. Data loading is not
  included on either side (the cached side still reads its files).

Variants are timed interleaved (A B A B ...) so background load hits both alike; the ratio of the
medians is the speed-up.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import (  # noqa: E402
    add_common_args,
    fmt_s,
    machine_info,
    machine_table,
    print_tables,
    time_interleaved,
    write_json,
)


def _step_fns(model, optimizer, criterion, get_uncached, get_cached):
    from vita_grasp_core.training.step import TrainStep

    step = TrainStep(model)

    def run(batch, cached: bool):
        if cached:
            logits = step(features=batch["features"])
        else:
            logits = step(pixel_values=batch["image"])
        loss, _ = criterion(logits.float(), batch["target"], batch["owned"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return {"without cache": lambda: run(get_uncached(), False),
            "with cache": lambda: run(get_cached(), True)}


def scenario_tiny(repeats: int, batch_size: int, frames: int, workdir: Path) -> dict:
    import torch

    from vita_grasp_core.data import (
        GraspNetDataset,
        SampleSpec,
        TargetSpec,
        collate_fn,
        synthesize,
    )
    from vita_grasp_core.model import build_model
    from vita_grasp_core.training.feature_cache import (
        CachedFeatureDataset,
        FeatureCache,
        build_cache,
        cached_collate,
        dataset_signature,
    )
    from vita_grasp_core.training.losses import GraspLoss
    from vita_grasp_core.training.train_config import load_config

    root = workdir / "synth"
    t0 = time.perf_counter()
    synthesize(root, scenes=1, frames=frames, seed=0)
    t_synth = time.perf_counter() - t0
    cfg = load_config("tiny.yaml", ["model.freeze_vit=true"])
    torch.manual_seed(0)
    model = build_model(cfg.model).train()
    m = cfg.model
    ds = GraspNetDataset(root, scenes=[0], sample=SampleSpec.of(model),
                         targets=TargetSpec(sigma=cfg.data.sigma))
    cache = FeatureCache(workdir / "cache", m, dataset_signature(ds))
    t0 = time.perf_counter()
    build_cache(model, ds, cache, device="cpu", batch_size=batch_size, progress=False)
    t_build = (time.perf_counter() - t0) / len(ds)
    cds = CachedFeatureDataset(cache, ds)
    state = {"i": 0}

    def indices():
        i = state["i"]
        state["i"] = (i + batch_size) % len(ds)
        return [(i + k) % len(ds) for k in range(batch_size)]

    def get_uncached():
        return collate_fn([ds[i] for i in indices()])

    def get_cached():
        return cached_collate([cds[i] for i in indices()])

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    fns = _step_fns(model, opt, GraspLoss(cfg.train.loss), get_uncached, get_cached)
    res = time_interleaved(fns, warmup=1, repeats=repeats)
    return {"name": "tiny", "batch_size": batch_size, "frames": len(ds),
            "desc": f"tiny.yaml encoder (hidden {m.backbone_config.get('hidden_size')}, "
                    f"{m.backbone_config.get('num_hidden_layers')} layers, frozen) input "
                    f"{m.input_size[0]}x{m.input_size[1]}, decoder {m.decoder_channels} ch -> "
                    f"{m.output_size[0]}x{m.output_size[1]}; batch from GraspNetDataset",
            "times": res, "cache_build_per_frame": t_build, "synth_seconds": t_synth,
            "bytes_per_frame": sum(p.stat().st_size for p in cache.dir.glob("*.safetensors"))
            / len(ds)}


def scenario_real(repeats: int, batch_size: int, workdir: Path) -> dict:
    import numpy as np
    import torch

    from vita_grasp_core.data.targets import render_targets
    from vita_grasp_core.geometry import Letterbox
    from vita_grasp_core.model import build_model
    from vita_grasp_core.model_config import ModelConfig
    from vita_grasp_core.training.feature_cache import FeatureCache
    from vita_grasp_core.training.losses import GraspLoss

    cfg = ModelConfig(backbone="internvit", pretrained_model=None, freeze_vit=True,
                      decoder_channels=256, input_size=(448, 588), output_size=(480, 640))
    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_model(cfg).train()
    t_build_model = time.perf_counter() - t0
    h, w = cfg.input_size
    x = torch.randn(batch_size, 3, h, w)
    oh, ow = cfg.output_size
    # 200 GraspNet-like rectangles per 1280x720 frame; the cache stores them, targets are
    # rendered when a view is loaded (as CachedFeatureDataset does)
    rng = np.random.default_rng(0)
    grasps = np.column_stack([rng.uniform(100, 1180, 200), rng.uniform(100, 620, 200),
                              rng.uniform(-1.5, 1.5, 200), rng.uniform(20, 120, 200),
                              rng.uniform(10, 40, 200), rng.uniform(0.1, 1, 200),
                              np.zeros(200)]).astype(np.float32)
    lb = Letterbox.fit((720, 1280), (oh, ow))
    t = render_targets(grasps, None, lb, cfg.width_scale)
    target = torch.from_numpy(t.maps)[None].repeat(batch_size, 1, 1, 1)
    owned = torch.from_numpy(t.owned)[None].repeat(batch_size, 1, 1)
    t0 = time.perf_counter()
    feats = model.backbone_features(x)
    t_encoder = time.perf_counter() - t0
    cache = FeatureCache(workdir / "cache_real", cfg, {"bench": "real"})
    paths = []
    for b in range(batch_size):
        p = cache.path(f"bench_{b}")
        cache.save(p, [f[b] for f in feats], grasps, (720, 1280))
        paths.append(p)

    def get_uncached():
        return {"image": x, "target": target, "owned": owned}

    def get_cached():
        items = [cache.load(p) for p in paths]
        rendered = [render_targets(it["grasps"], None, lb, cfg.width_scale) for it in items]
        return {"features": [torch.stack([it["features"][k] for it in items])
                             for k in range(len(feats))],
                "target": torch.stack([torch.from_numpy(r.maps) for r in rendered]),
                "owned": torch.stack([torch.from_numpy(r.owned) for r in rendered])}

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    fns = _step_fns(model, opt, GraspLoss(), get_uncached, get_cached)
    res = time_interleaved(fns, warmup=1, repeats=repeats)
    return {"name": "real", "batch_size": batch_size,
            "desc": f"InternViT-300M architecture (random init, frozen, "
                    f"{sum(p.numel() for p in model.backbone.parameters()) / 1e6:.1f} M) at "
                    f"{h}x{w}, decoder 256 ch -> {oh}x{ow} "
                    f"({model.trainable_parameters() / 1e6:.2f} M trainable)",
            "times": res, "encoder_forward_once": t_encoder, "model_build_seconds": t_build_model,
            "bytes_per_frame": sum(p.stat().st_size for p in paths) / batch_size}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--scenarios", default="tiny,real", help="comma list of tiny, real")
    p.add_argument("--repeats", type=int, default=None, help="timed steps per variant")
    p.add_argument("--batch_size", type=int, default=None,
                   help="batch size (default 4 for tiny, 1 for real)")
    a = p.parse_args(argv)
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    names = [s.strip() for s in a.scenarios.split(",") if s.strip()]
    bad = set(names) - {"tiny", "real"}
    if bad:
        p.error(f"unknown scenarios {sorted(bad)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_train_") as tmp:
        tmp = Path(tmp)
        for name in names:
            if name == "tiny":
                reps = a.repeats or (4 if a.quick else 10)
                results.append(scenario_tiny(reps, a.batch_size or 4, 8, tmp))
            else:
                reps = a.repeats or (2 if a.quick else 4)
                results.append(scenario_real(reps, a.batch_size or 1, tmp))
    rows, notes = [], []
    for r in results:
        t0, t1 = r["times"]["without cache"], r["times"]["with cache"]
        ratio = t0["median"] / t1["median"]
        r["speedup"] = ratio
        rows.append([r["name"], r["batch_size"], fmt_s(t0["median"]), f"{1 / t0['median']:.2f}",
                     fmt_s(t1["median"]), f"{1 / t1['median']:.2f}", f"{ratio:.1f}x",
                     f"{r['bytes_per_frame'] / 1e6:.2f} MB"])
        notes.append(f"{r['name']}: {r['desc']}; {t0['n']} timed steps per variant (p95 "
                     f"{fmt_s(t0['p95'])} / {fmt_s(t1['p95'])})")
        if "cache_build_per_frame" in r:
            notes.append(f"{r['name']}: building the cache costs "
                         f"{fmt_s(r['cache_build_per_frame'])} per frame, once")
    result = {
        "title": "Training steps with and without the feature cache",
        "tables": [{"title": "Decoder training step (median) and steps/s",
                    "headers": ["scenario", "batch", "step without cache", "steps/s",
                                "step with cache", "steps/s", "speed-up", "cache / frame"],
                    "rows": rows, "notes": notes}, machine_table(machine_info())],
        "results": results,
    }
    print_tables(result)
    for r in results:
        print(f"speed-up {r['name']}: {r['speedup']:.2f}x")
    write_json(a.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
