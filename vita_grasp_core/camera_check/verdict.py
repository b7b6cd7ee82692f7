"""The result of one camera check and how a list of them is printed and turned into an exit
status."""
from __future__ import annotations

from dataclasses import asdict, dataclass

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
#: Severity order (a skip is a check that could not run because an optional input is missing;
#: the input's own check says so).
SEVERITY = {SKIP: 0, PASS: 0, WARN: 1, FAIL: 2}


@dataclass(frozen=True)
class Verdict:
    """One row of the report.

    Attributes:
        check: short name (``depth units``, ``registration``, ...).
        status: ``pass``, ``warn``, ``fail`` or ``skip``.
        finding: what was measured, one line.
        fix: what to do about it, one line (empty when the check passed).
        values: measured numbers for scripts (JSON output).
    """

    check: str
    status: str
    finding: str
    fix: str = ""
    values: dict | None = None

    def __post_init__(self):
        if self.status not in SEVERITY:
            raise ValueError(f"status must be one of {sorted(SEVERITY)}, got {self.status!r}")

    def as_dict(self) -> dict:
        d = asdict(self)
        d["values"] = dict(self.values or {})
        return d


def verdict(check: str, status: str, finding: str, fix: str = "", **values) -> Verdict:
    return Verdict(check, status, finding, fix if status in (WARN, FAIL) else "", values or None)


def worst(verdicts) -> str:
    """The most severe status of ``verdicts`` (``pass`` for an empty list)."""
    out = PASS
    for v in verdicts:
        if SEVERITY[v.status] > SEVERITY[out]:
            out = v.status
    return out


def exit_status(verdicts, fail_on: str = WARN) -> int:
    """0 when no check reached ``fail_on`` (``warn`` or ``fail``), else 1."""
    if fail_on not in (WARN, FAIL):
        raise ValueError(f"fail_on must be 'warn' or 'fail', got {fail_on!r}")
    return int(SEVERITY[worst(verdicts)] >= SEVERITY[fail_on])


def format_table(verdicts) -> str:
    """A plain-text table: status, check, finding, and for warnings and failures an indented
    ``fix:`` line below."""
    name_w = max([len(v.check) for v in verdicts] + [5])
    lines = [f"{'STATUS':<6}  {'CHECK':<{name_w}}  FINDING"]
    pad = " " * (8 + name_w + 2)
    for v in verdicts:
        status = v.status.upper() if v.status in (WARN, FAIL) else v.status
        lines.append(f"{status:<6}  {v.check:<{name_w}}  {v.finding}")
        if v.fix:
            lines.append(f"{pad}fix: {v.fix}")
    return "\n".join(lines)
