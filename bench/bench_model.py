"""Model cost per backbone: parameters and forward time per frame, random weights, real sizes.

Per backbone (``pretrained_model=None``: the real architecture with random weights, nothing is
downloaded) and per dtype (fp32, bf16; measured interleaved so that their ratio is fair):

- ``forward 448x448``: ``GraspModel(pixel_values (1, 3, 448, 448))`` -> five 480x640 maps
  (encoder + decoder; the encoder runs under no_grad as in inference);
- ``predict 1280x720``: ``GraspPredictor.predict`` on a 1280x720 RGB frame at the default
  ``input_size`` 448x588 (letterbox + normalisation, forward, decoding), with its stage split.

Tiny configs (as in the tests) are timed too, in milliseconds. On CUDA the script also compares
attention implementations (sdpa, eager, flash_attention_2 when flash-attn is installed) and
``torch.compile``; on a CPU-only machine those rows are reported as "needs a GPU", not measured.
"""
from __future__ import annotations

import argparse
import copy
import gc
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from common import (  # noqa: E402
    add_common_args,
    fmt_count,
    fmt_s,
    report,
    time_interleaved,
)

from vita_grasp_core.backbones import get_spec, list_backbones  # noqa: E402
from vita_grasp_core.choices import BF16, FP32  # noqa: E402
from vita_grasp_core.choices import DTYPES as DTYPE_NAMES  # noqa: E402

DTYPES = (FP32, BF16)
FRAME_HW = (720, 1280)
TINY_WARMUP = 1


def _count(module, trainable_only=False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def _build(backbone: str, tiny: bool, attn: str = "sdpa"):
    import torch

    from vita_grasp_core import ModelConfig, build_model

    torch.manual_seed(0)
    spec = get_spec(backbone)
    kw = dict(backbone_config=dict(spec.tiny_config), input_size=spec.tiny_input_size,
              decoder_channels=32) if tiny else {}
    t0 = time.perf_counter()
    model = build_model(ModelConfig(backbone=backbone, attn_implementation=attn, **kw))
    return model.eval(), time.perf_counter() - t0


def _torch_dtype(name):
    import torch

    return getattr(torch, DTYPE_NAMES[name])


def bench_backbone(backbone: str, *, tiny: bool, dtypes, repeats: int, warmup: int,
                   device: str = "cpu") -> dict:
    """Parameters and interleaved timings of one backbone over ``dtypes``."""
    import torch

    from vita_grasp_core import GraspPredictor

    model, build_s = _build(backbone, tiny)
    cfg = model.config
    res = {"backbone": backbone, "tiny": tiny, "build_s": build_s,
           "encoder_params": _count(model.backbone),
           "decoder_trainable_params": _count(model.decoder, trainable_only=True),
           "trainable_params": model.trainable_parameters(),
           "input_size": list(cfg.input_size), "output_size": list(cfg.output_size),
           "feature_layers": list(cfg.feature_layers), "timing": {}}
    side = 112 if tiny else 448
    m = model.backbone.size_multiple
    side = side // m * m
    res["square_input"] = [side, side]
    frame = np.random.default_rng(0).integers(0, 256, (*FRAME_HW, 3), dtype=np.uint8)
    preds, xs = {}, {}
    for i, dt in enumerate(dtypes):
        mdl = model if i == len(dtypes) - 1 else copy.deepcopy(model)
        preds[dt] = GraspPredictor(mdl, device=device, dtype=dt)
        xs[dt] = torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)).to(
            preds[dt].device, _torch_dtype(dt))
    stages = {dt: [] for dt in dtypes}

    def fwd(dt):
        return lambda: preds[dt].forward_maps(xs[dt])

    def pred(dt):
        def f():
            stages[dt].append(preds[dt].predict(frame).timings)
        return f

    fns = {}
    for dt in dtypes:
        fns[f"forward {side}x{side} {dt}"] = fwd(dt)
    for dt in dtypes:
        fns[f"predict 1280x720 {dt}"] = pred(dt)
    t = time_interleaved(fns, warmup=warmup, repeats=repeats)
    for k, v in t.items():
        res["timing"][k] = {kk: v[kk] for kk in ("median", "p95", "min", "n", "times")}
    for dt in dtypes:
        st = stages[dt][warmup:] or stages[dt]
        res["timing"][f"predict 1280x720 {dt}"]["stages_median"] = {
            k: float(np.median([s[k] for s in st])) for k in st[0]}
    preds.clear()  # free the copies before the next backbone (closures still name them)
    xs.clear()
    model = None
    gc.collect()
    return res


def bench_cuda_variants(backbone: str, repeats: int, warmup: int) -> dict:
    """GPU only: attention implementations and torch.compile at 448x448, bf16."""
    import torch

    out = {}
    impls = ["sdpa", "eager"]
    try:
        import flash_attn  # noqa: F401

        impls.append("flash_attention_2")
    except ImportError:
        out["flash_attention_2"] = {"skipped": "flash-attn is not installed"}
    x = torch.randn(1, 3, 448, 448, device="cuda", dtype=torch.bfloat16)
    for impl in impls:
        try:
            model, _ = _build(backbone, tiny=False, attn=impl)
            model = model.to("cuda", torch.bfloat16)
            with torch.inference_mode():
                s = time_interleaved({impl: lambda: model(x)}, warmup=warmup,
                                     repeats=repeats)[impl]
            out[impl] = {k: s[k] for k in ("median", "p95", "n")}
            if impl == "sdpa":
                cm = torch.compile(model)
                t0 = time.perf_counter()
                with torch.inference_mode():
                    cm(x)
                    torch.cuda.synchronize()
                    compile_s = time.perf_counter() - t0
                    s = time_interleaved({"c": lambda: cm(x)}, warmup=warmup, repeats=repeats)["c"]
                out["sdpa + torch.compile"] = {k: s[k] for k in ("median", "p95", "n")}
                out["sdpa + torch.compile"]["compile_s"] = compile_s
            model = None
            torch.cuda.empty_cache()
        except Exception as e:  # report, do not crash the whole benchmark
            out[impl] = {"error": f"{type(e).__name__}: {e}"}
    return out


def run(backbones, dtypes, repeats: int, warmup: int, tiny_only: bool, tiny_repeats: int) -> dict:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    res = {"device": device, "repeats": repeats, "warmup": warmup, "real": {}, "tiny": {},
           "cuda_variants": None}
    for bb in backbones:
        print(f"[bench_model] tiny {bb} ...", flush=True)
        res["tiny"][bb] = bench_backbone(bb, tiny=True, dtypes=dtypes, repeats=tiny_repeats,
                                         warmup=TINY_WARMUP, device=device)
    if not tiny_only:
        for bb in backbones:
            print(f"[bench_model] real-size {bb} (random weights), {dtypes}, "
                  f"{warmup} warm-up + {repeats} runs ...", flush=True)
            res["real"][bb] = bench_backbone(bb, tiny=False, dtypes=dtypes, repeats=repeats,
                                             warmup=warmup, device=device)
        if device == "cuda":
            res["cuda_variants"] = {bb: bench_cuda_variants(bb, repeats, warmup)
                                    for bb in backbones}
    res["title"] = f"Model cost per backbone ({device}, random weights)"
    res["tables"] = tables(res)
    res["notes"] = notes(res)
    return res


def tables(res: dict) -> list[dict]:
    out = []
    for kind in ("real", "tiny"):
        if not res[kind]:
            continue
        rows = []
        for bb, r in res[kind].items():
            for key, t in r["timing"].items():
                st = t.get("stages_median")
                split = (f"pre {fmt_s(st['preprocess'])}, model {fmt_s(st['model'])}, "
                         f"decode {fmt_s(st['decode'])}") if st else ""
                rows.append([bb, fmt_count(r["encoder_params"]),
                             fmt_count(r["decoder_trainable_params"]), key, fmt_s(t["median"]),
                             fmt_s(t["p95"]), t["n"], split])
        ratio_rows = []
        for bb, r in res[kind].items():
            tm = r["timing"]
            for what in sorted({k.rsplit(" ", 1)[0] for k in tm}):
                if f"{what} {FP32}" in tm and f"{what} {BF16}" in tm:
                    ratio = tm[f"{what} {BF16}"]["median"] / tm[f"{what} {FP32}"]["median"]
                    ratio_rows.append(f"{bb} {what}: bf16 / fp32 = {ratio:.2f}")
        title = ("Real sizes (random weights): " if kind == "real" else "Tiny test configs: ") + \
            "parameters and time per frame"
        warm = res["warmup"] if kind == "real" else TINY_WARMUP
        notes = [f"median and p95 of n runs after {warm} warm-up run(s); fp32 and bf16 runs "
                 "interleaved in the same process",
                 "predict 1280x720 = GraspPredictor.predict on a 1280x720 RGB frame at input_size "
                 f"{next(iter(res[kind].values()))['input_size']} (preprocess + model + decode)"]
        notes += ratio_rows
        headers = ["backbone", "encoder params", "decoder (trainable)", "measurement", "median",
                   "p95", "n", "predict stages"]
        out.append({"title": title, "headers": headers, "rows": rows, "notes": notes})
    if res["cuda_variants"]:
        rows = []
        for bb, v in res["cuda_variants"].items():
            for impl, s in v.items():
                if "median" in s:
                    rows.append([bb, impl, fmt_s(s["median"]), fmt_s(s["p95"]),
                                 fmt_s(s.get("compile_s")) if "compile_s" in s else ""])
                else:
                    rows.append([bb, impl, s.get("error") or s.get("skipped"), "", ""])
        out.append({"title": "CUDA: attention implementation and torch.compile (448x448, bf16)",
                    "headers": ["backbone", "variant", "median", "p95", "compile time"],
                    "rows": rows, "notes": []})
    else:
        variants = ("sdpa", "eager", "flash_attention_2", "sdpa + torch.compile")
        out.append({"title": "CUDA: attention implementation (sdpa / eager / flash-attn) and "
                             "torch.compile",
                    "headers": ["backbone", "variant", "result"],
                    "rows": [["all", v, "needs a GPU: not measured on this machine"]
                             for v in variants],
                    "notes": ["these rows are filled in by running the same command on a CUDA "
                              "machine"]})
    return out


def notes(res: dict) -> list[str]:
    out = []
    for bb, r in res["real"].items():
        tm = r["timing"]
        f32 = [k for k in tm if k.startswith("forward") and k.endswith(FP32)]
        if f32:
            out.append(f"{bb}: {fmt_count(r['encoder_params'])} encoder parameters, forward "
                       f"{fmt_s(tm[f32[0]]['median'])} per 448x448 frame in fp32 "
                       f"(model build with random init: {fmt_s(r['build_s'])})")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(p)
    p.add_argument("--backbones", default=None,
                   help=f"comma-separated subset of {','.join(list_backbones())} (default: "
                        "all; --quick skips the heavy ones: "
                        f"{','.join(b for b in list_backbones() if get_spec(b).heavy)})")
    p.add_argument("--dtypes", default=",".join(DTYPES),
                   help="comma-separated subset of fp32,bf16")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per measurement at real size (default 3; --quick: 1)")
    p.add_argument("--warmup", type=int, default=1, help="warm-up runs at real size")
    p.add_argument("--tiny-only", action="store_true", help="only the tiny test configs (seconds)")
    p.add_argument("--tiny-repeats", type=int, default=None,
                   help="timed runs per measurement for the tiny configs (default 20; --quick: 5)")
    args = p.parse_args(argv)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.backbones or ",".join(b for b in list_backbones()
                                       if not (args.quick and get_spec(b).heavy))
    backbones = [b.strip() for b in names.split(",") if b.strip()]
    unknown = sorted(set(backbones) - set(list_backbones()))
    if unknown:
        p.error(f"unknown backbones {unknown}; available: {list_backbones()}")
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    if set(dtypes) - set(DTYPES):
        p.error(f"--dtypes must be a subset of {DTYPES}")
    repeats = args.repeats if args.repeats is not None else (1 if args.quick else 3)
    res = run(backbones, dtypes, repeats, args.warmup, args.tiny_only,
              tiny_repeats=args.tiny_repeats or (5 if args.quick else 20))
    return report(res, args.json)


if __name__ == "__main__":
    sys.exit(main())
