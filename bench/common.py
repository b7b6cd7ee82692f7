"""Shared helpers of the benchmarks: machine description, timing, tables, the JSON contract.

Contract of a sub-benchmark ``bench/bench_<name>.py`` (what ``bench/run_all.py`` expects):

- ``python bench/bench_<name>.py [--quick] [--json PATH]``; exit code 0 on success.
- It prints a readable table to stdout.
- With ``--json PATH`` it writes one JSON object. ``run_all.py`` renders, in this order of
  preference:
    * ``"tables"``: a list of ``{"title": str, "headers": [str], "rows": [[cell, ...]],
      "notes": [str]}`` (cells already formatted or plain numbers) - rendered as Markdown tables;
    * ``"markdown"``: a ready Markdown string, inserted as is;
    * otherwise the whole JSON object in a code block.
  Optional keys: ``"title"`` (section title), ``"notes"`` (list of str, printed under the tables),
  ``"machine"`` (``machine_info()``); everything else is raw data for machines.
- A script without ``--json`` still works: its stdout goes into the report as a code block.

Timing rules (2 shared CPU cores here, other jobs running): warm up, interleave the variants being
compared (:func:`time_interleaved`), report medians and p95, and compare variants only through
ratios measured in the same run.
"""
from __future__ import annotations

import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------------------------
# Machine
# --------------------------------------------------------------------------------------------
def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(module: str) -> str | None:
    try:
        mod = __import__(module)
    except Exception:
        return None
    return getattr(mod, "__version__", "unknown")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10)
        if out.returncode:
            return None
        return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except Exception:
        return None


def machine_info() -> dict:
    """CPU, cores, threads, GPU, library versions, date and load: the context of every number."""
    import torch

    info = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "torch_threads": torch.get_num_threads(),
        "load_average_1_5_15": [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg")
        else None,
        "memory_gib": _memory_gib(),
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "numpy": _version("numpy"),
        "scipy": _version("scipy"),
        "skimage": _version("skimage"),
        "opencv": _version("cv2"),
        "cuda_available": torch.cuda.is_available(),
        "gpus": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if torch.cuda.is_available() else [],
        "cuda": torch.version.cuda,
        "git_commit": _git_commit(),
    }
    return info


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return None


def machine_table(info: dict) -> dict:
    """``machine_info()`` as a ``tables`` entry."""
    gpu = ", ".join(info.get("gpus") or []) or "none (torch.cuda.is_available() is False)"
    rows = [
        ["CPU", info.get("cpu")],
        ["cores (logical / usable by this process)",
         f"{info.get('logical_cores')} / {info.get('usable_cores')}"],
        ["torch threads (torch.get_num_threads)", info.get("torch_threads")],
        ["memory", f"{info.get('memory_gib')} GiB"],
        ["GPU", gpu],
        ["load average at start (1/5/15 min)", info.get("load_average_1_5_15")],
        ["OS", info.get("os")],
        ["python", info.get("python")],
        ["torch", info.get("torch")],
        ["transformers", info.get("transformers")],
        ["numpy / scipy / scikit-image / opencv",
         " / ".join(str(info.get(k)) for k in ("numpy", "scipy", "skimage", "opencv"))],
        ["git commit", info.get("git_commit")],
        ["date", info.get("date")],
    ]
    return {"title": "Machine", "headers": ["", ""], "rows": rows, "notes": []}


# --------------------------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------------------------
def _sync():
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.synchronize()
    except Exception:
        pass


def summarize(times: list[float]) -> dict:
    """Seconds -> {median, p95, min, mean, n} (p95 by linear interpolation)."""
    xs = sorted(times)
    n = len(xs)
    if n == 0:
        return {"median": float("nan"), "p95": float("nan"), "min": float("nan"),
                "mean": float("nan"), "n": 0}
    pos = 0.95 * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    p95 = xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)
    return {"median": statistics.median(xs), "p95": p95, "min": xs[0],
            "mean": statistics.fmean(xs), "n": n}


def time_fn(fn: Callable[[], object], *, warmup: int = 1, repeats: int = 5) -> dict:
    """Time ``fn()`` ``repeats`` times after ``warmup`` calls (CUDA synchronised). Seconds."""
    for _ in range(warmup):
        fn()
    _sync()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync()
        times.append(time.perf_counter() - t0)
    out = summarize(times)
    out["times"] = times
    return out


def time_interleaved(fns: dict[str, Callable[[], object]], *, warmup: int = 1,
                     repeats: int = 5) -> dict[str, dict]:
    """Time several variants round-robin (A B C A B C ...) so that background load hits them alike.

    Returns ``{name: summarize(times) + {"times": [...]}}`` in seconds.
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    _sync()
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            _sync()
            times[k].append(time.perf_counter() - t0)
    out = {}
    for k, ts in times.items():
        out[k] = summarize(ts)
        out[k]["times"] = ts
    return out


def fmt_s(seconds: float | None) -> str:
    """Human time: '3.52 s', '41.3 ms', '870 us'."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    if seconds >= 1.0:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms" if seconds < 0.1 else f"{seconds * 1e3:.0f} ms"
    return f"{seconds * 1e6:.0f} us"


def fmt_count(n: int | None) -> str:
    if n is None:
        return "-"
    if n >= 1e6:
        return f"{n / 1e6:.1f} M"
    if n >= 1e3:
        return f"{n / 1e3:.1f} k"
    return str(n)


# --------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------
def markdown_table(headers: list, rows: list[list]) -> str:
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |",
             "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def text_table(headers: list, rows: list[list]) -> str:
    """Fixed-width table for stdout."""
    n = len(headers)
    cells = [[str(h) for h in headers]] + [[str(r[i]) if i < len(r) else "" for i in range(n)]
                                           for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(n)]
    fmt = "  ".join(f"{{:{w}}}" for w in widths)
    out = [fmt.format(*cells[0]), fmt.format(*("-" * w for w in widths))]
    out += [fmt.format(*row) for row in cells[1:]]
    return "\n".join(out)


def print_tables(result: dict) -> None:
    if result.get("title"):
        print(f"== {result['title']} ==")
    for t in result.get("tables", []):
        print(f"\n{t.get('title', '')}")
        print(text_table(t["headers"], t["rows"]))
        for n in t.get("notes", []):
            print(f"  note: {n}")
    for n in result.get("notes", []):
        print(f"note: {n}")
    sys.stdout.flush()


def write_json(path: str | os.PathLike | None, obj: dict) -> None:
    if not path:
        return
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2, default=_json_default) + "\n")


def report(result: dict, json_path=None) -> int:
    """The end of every benchmark: attach ``machine_info()``, print the tables, write the JSON
    (when a path is given). Returns 0, the benchmark's exit status."""
    result["machine"] = machine_info()
    print_tables(result)
    write_json(json_path, result)
    return 0


def _json_default(o):
    try:
        import numpy as np

        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:
        pass
    return str(o)


def add_common_args(parser) -> None:
    parser.add_argument("--json", metavar="PATH", help="write the results as JSON to PATH")
    parser.add_argument("--quick", action="store_true", help="fewer repeats / smaller problems")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads (default: torch's default)")
