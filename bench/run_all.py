"""Run every benchmark and write one report, ``docs/benchmarks.md`` (what ``make bench`` runs).

Each ``bench/bench_<name>.py`` runs in its own process (``--json PATH`` when the script accepts
it, ``--quick`` with ``--quick``); its tables go into the report. A missing script, a failure or a
time-out is written into the report as such; it does not stop the other benchmarks. The contract
of a sub-benchmark is described in ``bench/common.py``.

    .venv/bin/python bench/run_all.py                 # everything, writes docs/benchmarks.md
    .venv/bin/python bench/run_all.py --quick         # a faster pass
    .venv/bin/python bench/run_all.py --only model,decoding
    .venv/bin/python bench/run_all.py --args model="--backbones internvit --repeats 2"
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from common import ROOT, machine_info, machine_table, markdown_table  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
#: Known sub-benchmarks, in report order, with what they measure. Other bench_*.py files found in
#: bench/ are run after these.
KNOWN = {
    "model": "model cost per backbone: parameters, forward time per frame (fp32 / bf16)",
    "decoding": "decode_maps vs a GR-ConvNet-style reference: time per frame, peak agreement",
    "targets": "training-target rendering per frame",
    "train": "decoder training steps/s with and without the feature cache",
    "node": "ROS node cost per stage and latency at 30 Hz",
    "engines": "torch fp32 / bf16 vs ONNX Runtime fp32 / int8 per frame; large-model export",
    "service": "get_grasps answer time vs the node's inference time (a node process)",
}


def discover() -> list[str]:
    found = sorted(p.stem[len("bench_"):] for p in BENCH_DIR.glob("bench_*.py"))
    return list(KNOWN) + [n for n in found if n not in KNOWN]


def script_path(name: str) -> Path:
    return BENCH_DIR / f"bench_{name}.py"


def supported_flags(script: Path, env: dict) -> set[str]:
    """Which of --json / --quick the script's argparse --help mentions."""
    try:
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                             text=True, timeout=120, env=env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return set()
    text = out.stdout + out.stderr
    return {f for f in ("--json", "--quick") if f in text}


def _pump(stream, sink: list[str], echo: bool, prefix: str):
    for line in iter(stream.readline, ""):
        sink.append(line)
        if echo:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()
    stream.close()


def run_one(name: str, *, quick: bool, extra: list[str], timeout: float, workdir: Path,
            env: dict) -> dict:
    """Run ``bench_<name>.py``; returns a record with status, seconds, command, output, data."""
    script = script_path(name)
    rec = {"name": name, "script": str(script.relative_to(ROOT)), "status": "missing",
           "seconds": 0.0, "command": None, "returncode": None, "data": None, "stdout": "",
           "stderr": "", "flags": []}
    if not script.is_file():
        return rec
    flags = supported_flags(script, env)
    rec["flags"] = sorted(flags)
    cmd = [sys.executable, str(script.relative_to(ROOT))]
    if quick and "--quick" in flags:
        cmd.append("--quick")
    json_path = workdir / f"{name}.json"
    if "--json" in flags:
        cmd += ["--json", str(json_path)]
    cmd += extra
    rec["command"] = " ".join(["python"] + [f"<tmp>/{json_path.name}" if c == str(json_path)
                                            else shlex.quote(c) for c in cmd[1:]])
    print(f"\n=== bench_{name}: {rec['command']}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=ROOT)
    out, err = [], []
    threads = [threading.Thread(target=_pump, args=(proc.stdout, out, True, "  "), daemon=True),
               threading.Thread(target=_pump, args=(proc.stderr, err, False, ""), daemon=True)]
    for t in threads:
        t.start()
    try:
        rc = proc.wait(timeout=timeout)
        rec["status"] = "ok" if rc == 0 else "failed"
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
        rec["status"] = "timeout"
    for t in threads:
        t.join(timeout=10)
    rec["seconds"] = time.perf_counter() - t0
    rec["returncode"] = rc
    rec["stdout"], rec["stderr"] = "".join(out), "".join(err)
    if rec["status"] == "ok" and "--json" in flags:
        try:
            rec["data"] = json.loads(json_path.read_text())
        except (OSError, ValueError) as e:
            rec["status"] = "failed"
            rec["stderr"] += f"\n[run_all] no readable JSON at {json_path}: {e}"
    print(f"=== bench_{name}: {rec['status']} in {rec['seconds']:.0f} s", flush=True)
    return rec


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------
def _code(text: str, limit: int = 12000) -> str:
    text = text.rstrip()
    if len(text) > limit:
        text = "... (truncated)\n" + text[-limit:]
    return "```\n" + text.replace("```", "'''") + "\n```"


def _tail(text: str, n: int = 30) -> str:
    return "\n".join(text.rstrip().splitlines()[-n:])


def _is_scalar(v) -> bool:
    return v is None or isinstance(v, (str, int, float, bool))


def render_data(data: dict) -> list[str]:
    """Markdown for one sub-benchmark's JSON (tables > markdown > flat key/values > raw JSON).

    Per-benchmark "Machine" tables are left out (the report has one machine section); the load
    average when the benchmark started is kept, since it varies between benchmarks.
    """
    parts = []
    load = (data.get("machine") or {}).get("load_average_1_5_15")
    if load is not None:
        parts += [f"Load average when it started (1/5/15 min): {load}.", ""]
    tables = [t for t in data.get("tables") or [] if t.get("title") != "Machine"]
    if tables:
        for t in tables:
            if t.get("title"):
                parts.append(f"**{t['title']}**\n")
            parts.append(markdown_table(t["headers"], t["rows"]) + "\n")
            parts += [f"- {n}" for n in t.get("notes", [])]
            if t.get("notes"):
                parts.append("")
    elif data.get("markdown"):
        parts.append(str(data["markdown"]).rstrip() + "\n")
    else:
        body = {k: v for k, v in data.items() if k not in ("machine", "title", "notes", "tables")}
        if body and all(_is_flat(v) for v in body.values()):
            parts.append(markdown_table(["quantity", "value"],
                                        [[k, _fmt_scalar(v)] for k, v in body.items()]) + "\n")
        else:
            parts.append(_code(json.dumps(body, indent=2, default=str)) + "\n")
    if data.get("notes"):
        parts += [f"- {n}" for n in data["notes"]] + [""]
    return parts


def _is_flat(v) -> bool:
    return _is_scalar(v) or (isinstance(v, list) and len(v) <= 8 and all(map(_is_scalar, v)))


def _fmt_scalar(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_fmt_scalar(x) for x in v)
    return str(v)


def render(records: list[dict], info: dict, args, load_end) -> str:
    when = info["date"]
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `make bench` (`bench/run_all.py{' --quick' if args.quick else ''}"
        f"{' --only ' + args.only if args.only else ''}`) on {when}. Do not edit by hand: "
        "run `make bench` (or `.venv/bin/python bench/run_all.py`) to regenerate.",
        "",
        "Every number is from the machine below, with other jobs sharing its cores: compare "
        "variants through the ratios measured in the same run (variants are interleaved), not "
        "across runs or machines. Times are medians unless marked p95.",
        "",
        "## Machine",
        "",
    ]
    mt = machine_table(info)
    mt["rows"].append(["load average at end (1/5/15 min)", load_end])
    lines += [markdown_table(["", ""], mt["rows"]), ""]
    lines += ["## Summary", ""]
    rows = []
    for r in records:
        what = KNOWN.get(r["name"], "")
        status = {"ok": "ok", "missing": "not present",
                  "failed": f"FAILED (exit {r['returncode']})",
                  "timeout": f"TIMED OUT after {r['seconds']:.0f} s"}[r["status"]]
        rows.append([f"`{r['script']}`", what, status,
                     f"{r['seconds']:.0f} s" if r["status"] != "missing" else "-"])
    lines += [markdown_table(["benchmark", "measures", "status", "wall time"], rows), ""]
    for r in records:
        data = r.get("data") or {}
        title = data.get("title") or KNOWN.get(r["name"]) or r["name"]
        lines += [f"## {r['name']}: {title}", ""]
        if r["status"] == "missing":
            lines += [f"Not present: `{r['script']}` does not exist in this tree yet.", ""]
            continue
        lines += [f"Command: `{r['command']}` ({r['seconds']:.0f} s)", ""]
        if r["status"] != "ok":
            lines += [f"**{r['status'].upper()}** (exit code {r['returncode']}). Last lines of "
                      "its output:", "", _code(_tail(r["stderr"] or r["stdout"])), ""]
            continue
        if r["data"] is not None:
            lines += render_data(r["data"])
        else:
            lines += ["The script has no `--json` option; its output:", "", _code(r["stdout"]), ""]
    design = BENCH_DIR / "design_measurements.md"  # kept here, not in docstrings (issue 19)
    if design.is_file():
        lines += ["", design.read_text().rstrip()]
    return "\n".join(lines).rstrip() + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    p.add_argument("--only", default="", help="comma-separated names, e.g. model,decoding "
                   f"(known: {','.join(KNOWN)})")
    p.add_argument("--out", default=str(ROOT / "docs" / "benchmarks.md"),
                   help="report path (default docs/benchmarks.md)")
    p.add_argument("--json-dir", default=None,
                   help="keep the per-benchmark JSON here (default: a temporary directory)")
    p.add_argument("--args", action="append", default=[], metavar="NAME=ARGS",
                   help='extra arguments for one benchmark, e.g. model="--backbones internvit"')
    p.add_argument("--timeout", type=float, default=1800, help="seconds per benchmark")
    args = p.parse_args(argv)

    names = discover()
    if args.only:
        wanted = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            p.error(f"unknown benchmarks {unknown}; known: {names}")
        names = wanted
    extra = {}
    for a in args.args:
        name, _, rest = a.partition("=")
        if not rest and "=" not in a:
            p.error(f"--args expects NAME=ARGS, got {a!r}")
        extra[name.strip()] = shlex.split(rest)

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [v for v in [env.get("PYTHONPATH")] if v])
    env.setdefault("PYTHONUNBUFFERED", "1")
    info = machine_info()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vita_bench_") as tmp:
        workdir = Path(args.json_dir) if args.json_dir else Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        records = [run_one(n, quick=args.quick, extra=extra.get(n, []), timeout=args.timeout,
                           workdir=workdir, env=env) for n in names]
    load_end = [round(v, 2) for v in os.getloadavg()] if hasattr(os, "getloadavg") else None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(records, info, args, load_end))
    print(f"\nwrote {out} ({time.perf_counter() - t0:.0f} s); "
          + ", ".join(f"{r['name']}: {r['status']}" for r in records))
    return 0 if all(r["status"] in ("ok", "missing") for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
