"""The fuzzing suite's case runner: a fork server that runs each hostile case in its own child.

Started once per test session as ``python runner.py MODULE ...`` (the modules to import before
forking, so a case costs milliseconds instead of a fresh interpreter with torch). It reads one
JSON case per line on stdin and answers one JSON result per line on its original stdout. Each
case runs in a forked child in its own process group with stdout/stderr going to files and a
time limit; the server measures what the child cost (wall time, peak resident memory from
``wait4``) and kills the group afterwards, so nothing a case starts outlives it.

Case kinds:
    ``{"kind": "cli", "argv": [...]}``: ``vita_grasp_core.cli.main(argv)`` as ``vita-grasp``
        runs it (an uncaught exception prints its traceback and exits 1, like Python).
    ``{"kind": "call", "target": "module:function", "args": [...], "expected": ["mod:Exc"]}``:
        call a function; an exception of an ``expected`` type is a clean refusal (its message
        is reported), any other exception a traceback.
Common fields: ``id``, ``timeout`` (s), ``cwd``, ``env`` (added to the environment).

The server is single-threaded and never runs torch itself, so forking it is safe.
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import sys
import time
import traceback


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _resolve(target: str):
    mod, _, name = target.partition(":")
    obj = importlib.import_module(mod)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def _run_cli(case) -> int:
    from vita_grasp_core.cli import main

    return main(list(case["argv"]))


def _run_call(case, out_dir: str) -> int:
    fn = _resolve(case["target"])
    expected = tuple(_resolve(t) for t in case.get("expected", []))
    try:
        value = fn(*case.get("args", []), **case.get("kwargs", {}))
    except expected as e:
        outcome = {"outcome": "refused", "error": type(e).__name__,
                   "message": " ".join(str(e).split())[:500],
                   "kind": getattr(e, "kind", None)}
    else:
        outcome = {"outcome": "returned", "value": repr(value)[:500]}
    with open(os.path.join(out_dir, "outcome.json"), "w") as f:
        json.dump(outcome, f)
    return 0


def _child(case, out_dir: str) -> None:
    """In the forked child: redirect output, run the case, exit with its status."""
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    for fd, name in ((1, "stdout"), (2, "stderr")):
        f = os.open(os.path.join(out_dir, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(f, fd)
        os.close(f)
    if case.get("cwd"):
        os.chdir(case["cwd"])
    os.environ.update({k: str(v) for k, v in case.get("env", {}).items()})
    code = 1
    try:
        code = _run_cli(case) if case["kind"] == "cli" else _run_call(case, out_dir)
        code = 0 if code is None else code
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
        code = 1 if isinstance(e.code, str) else int(e.code or 0)
    except BaseException:  # noqa: BLE001 - what Python itself would print
        traceback.print_exc()
        code = 1
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(int(code) & 0xFF)


def _tail(path: str, n: int = 4000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run_case(case: dict, base_kb: int) -> dict:
    out_dir = case["out_dir"]
    os.makedirs(out_dir, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        _child(case, out_dir)
    deadline = t0 + float(case.get("timeout", 60))
    status, usage, timed_out = None, None, False
    while status is None:
        wpid, st, ru = os.wait4(pid, os.WNOHANG)
        if wpid:
            status, usage = st, ru
        elif time.monotonic() > deadline:
            timed_out = True
            os.killpg(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
        else:
            time.sleep(0.005)
    seconds = time.monotonic() - t0
    try:
        os.killpg(pid, signal.SIGKILL)  # anything the case started
    except ProcessLookupError:
        pass
    res = {"id": case.get("id"), "seconds": round(seconds, 4), "timed_out": timed_out,
           "peak_mb": round(usage.ru_maxrss / 1024, 1),
           "extra_mb": round(max(0, usage.ru_maxrss - base_kb) / 1024, 1),
           "exit": os.waitstatus_to_exitcode(status),
           "stdout": _tail(os.path.join(out_dir, "stdout")),
           "stderr": _tail(os.path.join(out_dir, "stderr"))}
    outcome = os.path.join(out_dir, "outcome.json")
    if os.path.exists(outcome):
        with open(outcome) as f:
            res.update(json.load(f))
    return res


def serve(modules: list[str]) -> None:
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # stray prints of imported modules must not corrupt the protocol
    for m in modules:
        importlib.import_module(m)
    base_kb = _rss_kb()
    proto.write(json.dumps({"ready": True, "base_mb": round(base_kb / 1024, 1)}) + "\n")
    for line in sys.stdin:
        if not line.strip():
            continue
        case = json.loads(line)
        try:
            res = run_case(case, base_kb)
        except Exception as e:  # noqa: BLE001 - report the runner's own failure, keep serving
            res = {"id": case.get("id"), "runner_error": f"{type(e).__name__}: {e}"}
        proto.write(json.dumps(res) + "\n")


if __name__ == "__main__":
    serve(sys.argv[1:])
