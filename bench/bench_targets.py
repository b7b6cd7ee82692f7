"""Time render_targets for one frame of random GraspNet-like rectangles (single core).

    python bench/bench_targets.py [--rects 5000] [--runs 7] [--src 720x1280] [--out 480x640]
                                  [--no-label] [--json result.json]

Prints the median (and min/max) per-frame time; writes nothing else unless --json is given.
"""
from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def _size(text):
    h, w = (int(v) for v in text.lower().split("x"))
    return h, w


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rects", type=int, default=5000, help="rectangles per frame (5000)")
    p.add_argument("--runs", type=int, default=7, help="timed runs (median reported; 7)")
    p.add_argument("--src", type=_size, default=(720, 1280), help="source HxW (720x1280)")
    p.add_argument("--out", type=_size, default=(480, 640), help="map HxW (480x640)")
    p.add_argument("--sigma", type=float, default=2.0)
    p.add_argument("--no-label", action="store_true",
                   help="no label mask: channel 4 from the union of rectangles")
    p.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    a = p.parse_args(argv)

    import cv2

    cv2.setNumThreads(1)
    from vita_grasp_core.data.targets import render_targets
    from vita_grasp_core.geometry import Letterbox

    rng = np.random.default_rng(0)
    h, w = a.src
    n = a.rects
    g = np.column_stack([rng.uniform(0, w - 1, n), rng.uniform(0, h - 1, n),
                         rng.uniform(-np.pi / 2, np.pi / 2, n), rng.uniform(10, 200, n),
                         rng.uniform(5, 40, n), rng.uniform(0.1, 1.0, n),
                         rng.integers(0, 88, n)]).astype(np.float32)
    label = None if a.no_label else (rng.random((h, w)) < 0.2).astype(np.uint8)
    lb = Letterbox.fit(a.src, a.out)
    render_targets(g, label, lb, 0.25, a.sigma)  # warm-up
    times, cpu = [], []
    for _ in range(a.runs):
        t0, c0 = time.perf_counter(), time.process_time()
        render_targets(g, label, lb, 0.25, a.sigma)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    ms = np.array(times) * 1000
    cpu_ms = float(np.median(cpu)) * 1000
    res = {"rects": n, "src": list(a.src), "out": list(a.out), "sigma": a.sigma,
           "label": not a.no_label, "runs": a.runs, "median_ms": round(float(np.median(ms)), 2),
           "min_ms": round(float(ms.min()), 2), "max_ms": round(float(ms.max()), 2),
           "cpu_median_ms": round(cpu_ms, 2), "loadavg_1min": round(os.getloadavg()[0], 2)}
    print(f"render_targets: {n} rects, {h}x{w} -> {a.out[0]}x{a.out[1]}, sigma {a.sigma}, "
          f"{'label mask' if res['label'] else 'rect-union fallback'}: median "
          f"{res['median_ms']:.1f} ms/frame (min {res['min_ms']:.1f}, max {res['max_ms']:.1f}, "
          f"{a.runs} runs); CPU time median {cpu_ms:.1f} ms; load average "
          f"{res['loadavg_1min']:.2f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
