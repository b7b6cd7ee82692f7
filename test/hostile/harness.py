"""The fuzzing suite's harness: cases, the fork-server client, verdicts and the summary.

A :class:`Case` is one hostile input: a command line (``kind="cli"``), or a function call
(``kind="call"``: a data reader, a config builder ...) with the exception types that count as a
clean refusal. :class:`Runner` runs cases in children of one fork server (:mod:`runner`), so
every case is isolated (a crash, a leak or a hang costs only that child) and measured (seconds,
peak and extra resident memory). :func:`verdict` turns a result into problems:

- ``traceback``: Python printed one (or an unexpected exception escaped a call case);
- ``death``: killed by a signal or timed out;
- ``exit0_after_failure``: a case that must fail exited 0 (or a call returned);
- ``not_one_line``: a failing command's stderr is not one clear line (argparse's usage + error
  counts as one: the standard);
- ``memory``: more than ``max_extra_mb`` above the server's own memory;
- ``time``: slower than ``max_ratio`` times the group's reference case (a valid input of the
  same size) and slower than ``min_seconds``.

Every result is added to a :class:`Report`; the session prints it as a table and writes
``outputs/hostile/summary.md`` and ``summary.json`` (cases, deaths, tracebacks,
exit-0-after-failure, peak memory, worst time ratio per group).

Add a case: build a :class:`Case` in a ``test_hostile_*.py`` module and pass it to the
``hostile`` fixture (``hostile(case)`` runs it, records it and fails the test on any problem).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
#: Where the summary of a run is written (summary.md, summary.json).
SUMMARY_DIR = REPO / "outputs" / "hostile"
RUNNER = Path(__file__).with_name("runner.py")
#: Modules the fork server imports once (cases then start in milliseconds).
PRELOAD = ("numpy", "cv2", "torch", "yaml", "transformers.modeling_utils",
           "transformers.models.internvl", "vita_grasp_core.cli", "vita_grasp_core.checkpoint",
           "vita_grasp_core.data", "vita_grasp_core.cli.infer", "vita_grasp_core.training.train",
           "vita_grasp_core.cli.export", "vita_grasp_core.cli.train", "vita_grasp_core.cli.eval",
           "vita_grasp_core.evaluation", "vita_grasp_core.model", "vita_grasp_core.predictor",
           "vita_grasp_core.visualize", "vita_grasp_core.engines",
           "vita_grasp_core.backbones.internvit")
#: ``HOSTILE=long`` (``make hostile``): every generated case, not the fast subset.
LONG = os.environ.get("HOSTILE", "") == "long"
#: Defaults of the issue's targets: a bad input costs at most 3x a normal one, 200 MB extra.
MAX_RATIO = 3.0
MAX_EXTRA_MB = 200.0


def pick(cases: list, fast: int) -> list:
    """All ``cases`` with ``HOSTILE=long``, else ``fast`` of them spread evenly (the first and the
    last included)."""
    if LONG or len(cases) <= fast:
        return list(cases)
    step = (len(cases) - 1) / (fast - 1)
    return [cases[round(k * step)] for k in range(fast)]


@dataclass
class Case:
    """One hostile input.

    Attributes:
        group: the summary row (``cli:infer``, ``reader:cornell``, ``disk:train`` ...).
        name: what is hostile about it (unique within the group).
        kind: ``cli`` (``argv`` for ``vita-grasp``) or ``call`` (``target`` + ``args``).
        expect: ``fail`` (must exit non-zero / raise an expected error), ``ok`` (must succeed)
            or ``any`` (either, but cleanly).
        expected: call cases: exception types (``"module:Class"``) that are clean refusals.
        reference: this case is the group's yardstick for time (a valid input).
        must_say: text the error (stderr, or the refusal message) must contain.
        one_line: a failing command prints one line on stderr (usage lines aside).
    """

    group: str
    name: str
    kind: str = "cli"
    argv: list = field(default_factory=list)
    target: str = ""
    args: list = field(default_factory=list)
    expect: str = "fail"
    expected: list = field(default_factory=list)
    reference: bool = False
    must_say: str = ""
    one_line: bool = True
    timeout: float = 60.0
    max_extra_mb: float = MAX_EXTRA_MB
    max_ratio: float = MAX_RATIO
    min_seconds: float = 1.0
    cwd: str = ""
    env: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.group}/{self.name}"


class Runner:
    """Client of one fork server (:mod:`runner`); thread-safe; ``close()`` stops it."""

    def __init__(self, work_dir, preload=PRELOAD):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1",
                   PYTHONPATH=os.pathsep.join([str(REPO), str(REPO / "test")]))
        self.proc = subprocess.Popen([sys.executable, str(RUNNER), *preload],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True, env=env,
                                     cwd=str(REPO), start_new_session=True)
        hello = json.loads(self.proc.stdout.readline() or "{}")
        if not hello.get("ready"):
            raise RuntimeError("the hostile case runner did not start")
        self.base_mb = hello["base_mb"]
        self._lock = threading.Lock()
        self._n = 0

    def run(self, case: Case) -> dict:
        with self._lock:
            self._n += 1
            msg = {"id": case.id, "kind": case.kind, "argv": [str(a) for a in case.argv],
                   "target": case.target, "args": case.args, "expected": case.expected,
                   "timeout": case.timeout, "cwd": case.cwd, "env": case.env,
                   "out_dir": str(self.work_dir / f"case{self._n:05d}")}
            self.proc.stdin.write(json.dumps(msg) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the hostile case runner died")
        return json.loads(line)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


#: A progress log line of the project (``HH:MM:SS LEVEL message``): not an error line.
_LOG_LINE = re.compile(r"^\d\d:\d\d:\d\d (DEBUG|INFO|WARNING) ")


def _stderr_lines(text: str) -> list[str]:
    """Lines of stderr that are not progress logs, argparse's usage block or warnings' source
    lines: what must be exactly one line when a command fails."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip() and not _LOG_LINE.match(ln)]
    if lines and lines[0].startswith("usage:"):
        lines = [ln for ln in lines if ": error:" in ln]
    return [ln for ln in lines if not ln.startswith((" ", "\t"))
            and "Warning:" not in ln and not ln.startswith("warnings.warn")]


def verdict(case: Case, res: dict, reference_seconds: float | None = None) -> list[str]:
    """The problems of one result (empty: the case behaved)."""
    if "runner_error" in res:
        return [f"runner: {res['runner_error']}"]
    problems = []
    failed = res["exit"] != 0 or res.get("outcome") == "refused"
    if "Traceback (most recent call last)" in res["stderr"]:
        problems.append("traceback")
    if "weights_only=False" in res["stderr"] + res.get("stdout", ""):
        problems.append("relays torch's advice to load with weights_only=False (runs code)")
    if res["timed_out"] or res["exit"] < 0:
        problems.append("death" + (" (timeout)" if res["timed_out"] else f" (signal "
                                   f"{-res['exit']})"))
    elif case.expect == "fail" and not failed:
        problems.append("exit0_after_failure")
    elif case.expect == "ok" and failed:
        problems.append(f"failed on a valid input (exit {res['exit']}): "
                        f"{res['stderr'].strip()[-300:] or res.get('message', '')}")
    if failed and case.kind == "cli" and case.one_line and res["exit"] > 0 \
            and "traceback" not in problems and len(_stderr_lines(res["stderr"])) != 1:
        problems.append(f"not_one_line: {res['stderr'].strip()[-300:]!r}")
    said = res["stderr"] + res["stdout"] + str(res.get("message", ""))
    if case.must_say and failed and case.must_say.lower() not in said.lower():
        problems.append(f"does not say {case.must_say!r}: {said.strip()[-300:]!r}")
    if res["extra_mb"] > case.max_extra_mb:
        problems.append(f"memory: +{res['extra_mb']:.0f} MB > {case.max_extra_mb:.0f} MB")
    ratio = time_ratio(res, reference_seconds)
    # time is a benchmark figure: `make hostile` (a run of its own) fails on it; inside
    # `make test` (two test processes, a shared machine) the ratio is reported, not judged
    if LONG and ratio is not None and ratio > case.max_ratio \
            and res["seconds"] > case.min_seconds:
        problems.append(f"time: {ratio:.1f}x the reference case ({res['seconds']:.2f} s)")
    return problems


def time_ratio(res: dict, reference_seconds: float | None) -> float | None:
    if not reference_seconds or "seconds" not in res:
        return None
    return res["seconds"] / max(reference_seconds, 1e-3)


@dataclass
class Row:
    group: str
    cases: int = 0
    deaths: int = 0
    tracebacks: int = 0
    exit0_after_failure: int = 0
    other_problems: int = 0
    peak_mb: float = 0.0
    extra_mb: float = 0.0
    worst_ratio: float = 0.0
    worst_case: str = ""


class Report:
    """Results of a session, summarised per group (thread-safe)."""

    def __init__(self):
        self.results: list[dict] = []
        self._lock = threading.Lock()

    def add(self, case: Case, res: dict, problems: list[str], ratio: float | None) -> None:
        with self._lock:
            self.results.append({"case": asdict(case), "result": {
                k: v for k, v in res.items() if k not in ("stdout",)}, "problems": problems,
                "ratio": ratio})

    def rows(self) -> list[Row]:
        rows: dict[str, Row] = {}
        for r in self.results:
            c, res = r["case"], r["result"]
            row = rows.setdefault(c["group"], Row(c["group"]))
            row.cases += 1
            probs = r["problems"]
            row.deaths += any(p.startswith("death") for p in probs)
            row.tracebacks += "traceback" in probs
            row.exit0_after_failure += "exit0_after_failure" in probs
            row.other_problems += any(not p.startswith(("death", "traceback", "exit0"))
                                      for p in probs)
            row.peak_mb = max(row.peak_mb, res.get("peak_mb", 0.0))
            row.extra_mb = max(row.extra_mb, res.get("extra_mb", 0.0))
            if r["ratio"] is not None and r["ratio"] > row.worst_ratio:
                row.worst_ratio, row.worst_case = r["ratio"], c["name"]
        return sorted(rows.values(), key=lambda r: r.group)

    def table(self) -> str:
        head = ("| group | cases | deaths | tracebacks | exit 0 after failure | other problems | "
                "peak MB | extra MB | worst time ratio |")
        lines = [head, "|" + "---|" * 9]
        total = Row("**all**")
        for r in self.rows():
            ratio = f"{r.worst_ratio:.2f} ({r.worst_case})" if r.worst_ratio else "-"
            lines.append(f"| {r.group} | {r.cases} | {r.deaths} | {r.tracebacks} | "
                         f"{r.exit0_after_failure} | {r.other_problems} | {r.peak_mb:.0f} | "
                         f"{r.extra_mb:.0f} | {ratio} |")
            for k in ("cases", "deaths", "tracebacks", "exit0_after_failure", "other_problems"):
                setattr(total, k, getattr(total, k) + getattr(r, k))
            total.peak_mb, total.extra_mb = max(total.peak_mb, r.peak_mb), max(total.extra_mb,
                                                                                r.extra_mb)
            total.worst_ratio = max(total.worst_ratio, r.worst_ratio)
        lines.append(f"| {total.group} | {total.cases} | {total.deaths} | {total.tracebacks} | "
                     f"{total.exit0_after_failure} | {total.other_problems} | "
                     f"{total.peak_mb:.0f} | {total.extra_mb:.0f} | "
                     f"{total.worst_ratio:.2f} |")
        return "\n".join(lines)

    def problems(self) -> list[str]:
        return [f"{r['case']['group']}/{r['case']['name']}: {p}" for r in self.results
                for p in r["problems"]]

    def write(self, out_dir) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "summary.json").write_text(json.dumps(
            {"rows": [asdict(r) for r in self.rows()], "results": self.results}, indent=1))
        probs = self.problems()
        md = ["# Hostile-input suite (test/hostile)", "",
              f"{len(self.results)} cases; extra MB = peak resident memory of the case above the "
              "case runner's own; time ratio = seconds / the group's reference case (a valid "
              "input).", "", self.table(), "",
              "## Problems", "", *([f"- {p}" for p in probs] or ["none"])]
        (out / "summary.md").write_text("\n".join(md) + "\n")
        return out / "summary.md"
