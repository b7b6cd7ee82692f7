"""What a training run tells its user: the log (stderr + ``train.log``), TensorBoard,
``metrics.jsonl`` (one line per epoch) and the per-epoch summary line with an ETA."""
from __future__ import annotations

import contextlib
import json
import logging
import sys
import warnings
from pathlib import Path

log = logging.getLogger("vita_grasp.train")

_LOSS_KEYS = ("total", "position", "angle", "width", "semantic")
_VAL_KEYS = ("top1_accuracy", "precision@1", "precision@5", "precision@10")


def fmt_time(s: float) -> str:
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{sec:02d}s"


def _attach_console() -> logging.Handler | None:
    """A handler writing ``vita_grasp.train`` to the current stderr, unless one that writes to
    the console is attached. Handlers that do not print (a ``train.log`` left by another run, a
    test runner's capture) do not count: the lines would otherwise reach only them."""
    consoles = (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)
    if any(isinstance(h, _StderrHandler) or (type(h) is logging.StreamHandler
                                             and getattr(h, "stream", None) in consoles)
           for h in log.handlers):
        return None
    h = _StderrHandler()
    h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    h.previous_propagate = log.propagate
    log.addHandler(h)
    log.propagate = False
    return h


def _detach_console(h: logging.Handler | None) -> None:
    """Undo :func:`_attach_console`: the logger is left as it was found."""
    if h is not None:
        log.removeHandler(h)
        log.propagate = h.previous_propagate


@contextlib.contextmanager
def console_log():
    """INFO lines of ``vita_grasp.train`` on stderr for the duration: a caller that runs several
    trainings (``run_cv``) keeps its own lines between them, since each run then leaves the
    caller's handler in place (a finished :class:`RunLog` removes only a handler it added)."""
    if log.level == logging.NOTSET:
        log.setLevel(logging.INFO)
    h = _attach_console()
    try:
        yield
    finally:
        _detach_console(h)


class RunLog:
    """Logging of one run in ``out`` (rank 0 writes files; other ranks log warnings only)."""

    def __init__(self, out: Path, is_main: bool):
        self.out = Path(out)
        self.is_main = is_main
        self.tb = None
        self._file_handler = None
        self._console_handler = None
        self._setup_logging()

    def _setup_logging(self) -> None:
        """INFO on rank 0 (WARNING elsewhere) to stderr - unless the caller already attached a
        handler to the ``vita_grasp.train`` logger - and to ``<out>/train.log``."""
        if self.is_main:
            log.setLevel(logging.INFO)
        elif log.level in (logging.NOTSET,) or log.level < logging.WARNING:
            log.setLevel(logging.WARNING)
        self._console_handler = _attach_console()
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            fh = _QuietFileHandler(self.out / "train.log")
            fh.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
            log.addHandler(fh)
            self._file_handler = fh

    def start(self, config_yaml: str, epoch: int, global_step: int, resume_record) -> None:
        """Rank 0: write the resolved config, open TensorBoard, align ``metrics.jsonl``."""
        if not self.is_main:
            return
        for stale in self.out.glob(".*.pt.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
        (self.out / "config.yaml").write_text(
            "# Resolved configuration of this run (vita-grasp train).\n" + config_yaml)
        self.tb = _tensorboard(self.out / "tb")
        self._sync_metrics_file(epoch, global_step, resume_record)

    def _sync_metrics_file(self, epoch: int, global_step: int, resume_record) -> None:
        """On resume: keep metrics.jsonl lines of epochs <= the resumed epoch (+ the last one)."""
        path = self.out / "metrics.jsonl"
        if epoch == 0:
            if path.exists() and global_step == 0:
                path.rename(path.with_suffix(".jsonl.old"))
            return
        rows = []
        if path.exists():
            for line in path.read_text().splitlines():
                try:
                    r = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if r.get("epoch", 0) <= epoch:
                    rows.append(r)
        if resume_record and not any(r.get("epoch") == epoch for r in rows):
            rows.append(resume_record)
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def step(self, parts: dict, lr: float, global_step: int, every: int) -> None:
        if self.tb is not None and global_step % every == 0:
            for k, v in parts.items():
                self.tb.add_scalar(f"train/{k}", v, global_step)
            self.tb.add_scalar("train/lr", lr, global_step)

    def epoch(self, record: dict, epochs: int, eta_s: float) -> None:
        """Rank 0: append the record to ``metrics.jsonl``, TensorBoard, one summary line."""
        if not self.is_main:
            return
        with open(self.out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        train, val, ep = record["train"], record["val"], record["epoch"]
        if self.tb is not None:
            for k, v in train.items():
                self.tb.add_scalar(f"epoch/train_{k}", v, ep)
            for k in _VAL_KEYS if val else ():
                self.tb.add_scalar(f"val/{k}", val[k], ep)
            self.tb.flush()
        vs = ("" if val is None else f" | val top-1 {100 * val['top1_accuracy']:.1f} % "
              f"P@5 {100 * val['precision@5']:.1f} % (best {100 * record['best_top1']:.1f} % @ "
              f"epoch {record['best_epoch']})")
        tm = [train.get(k, float("nan")) for k in _LOSS_KEYS]
        peak = f" peak {train['peak']:.4f}" if "peak" in train else ""  # only with loss.w_peak > 0
        n = record.get("replaced_frames", 0)
        faults = f" | {n} frame(s) replaced after read failures" if n else ""
        log.info("epoch %d/%d: loss %.4f (pos %.4f ang %.4f wid %.4f sem %.4f%s) lr %.2e "
                 "%.1f s%s%s | ETA %s", ep, epochs, *tm, peak, record["lr"],
                 record["epoch_seconds"], vs, faults, fmt_time(eta_s))

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
            self.tb = None
        if self._file_handler is not None:
            log.removeHandler(self._file_handler)
            self._file_handler.close()
            self._file_handler = None
        _detach_console(self._console_handler)  # the next run in this process adds its own
        self._console_handler = None


class _StderrHandler(logging.StreamHandler):
    """The console log: writes to whatever ``sys.stderr`` is when a line is logged, so a run
    started while stderr was redirected (a test's capture, a notebook cell) never writes into
    that closed stream later."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


class _QuietFileHandler(logging.FileHandler):
    """``train.log`` that stops writing when the file cannot be written (a full disk) instead of
    printing a traceback per log line; the console log goes on, and the next checkpoint write
    stops the run with one clear line."""

    def handleError(self, record) -> None:  # noqa: N802 - logging's name
        log.removeHandler(self)


def _tensorboard(logdir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError as e:  # tensorboard is in requirements/core.txt; do not fail without it
        warnings.warn(f"TensorBoard logging disabled: {e} (pip install tensorboard, or run "
                      "`make setup`)", RuntimeWarning, stacklevel=2)
        return None
    return SummaryWriter(str(logdir))
