"""Small helpers of the grasp node without rclpy imports: log throttling, stamps, model loading
with one-line start-up errors."""
from __future__ import annotations

import os
import signal
import threading
import time

from vita_grasp_core.choices import DEFAULT_ENGINE, DEFAULT_ONNX_PRECISION

from .node_params import StartupError


class Throttle:
    """Log a message at most once per ``period`` seconds per key, counting what it swallowed."""

    def __init__(self, period: float = 5.0):
        self.period = period
        self._last: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def __call__(self, logger, level: str, key: str, message: str) -> None:
        now = time.monotonic()
        with self._lock:
            last, suppressed = self._last.get(key, (-1e18, 0))
            if now - last < self.period:
                self._last[key] = (last, suppressed + 1)
                return
            self._last[key] = (now, 0)
        if suppressed:
            message += f" (+{suppressed} similar in the last {self.period:.0f} s)"
        # One call site per severity: rclpy refuses a call site whose severity changes.
        if level == "error":
            logger.error(message)
        elif level == "warning":
            logger.warning(message)
        else:
            logger.info(message)


class ShutdownSignals:
    """SIGINT / SIGTERM of a node process: the first one requests shutdown (:attr:`requested`;
    while :attr:`interrupt` is true - start-up - it also raises ``KeyboardInterrupt``); once
    shutdown has begun (:meth:`shutting_down`) both are ignored, also while the interpreter
    exits, so nothing interrupts the shutdown (a terminal Ctrl-C under ``ros2 launch`` delivers
    SIGINT twice: the terminal's and launch's)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = threading.Event()
        self.interrupt = True

    def _main_thread(self) -> bool:
        return threading.current_thread() is threading.main_thread()

    def install(self) -> None:
        """Install the handlers (main thread only; elsewhere Python's stay)."""
        if self._main_thread():
            for sig in self.SIGNALS:
                signal.signal(sig, self._handle)

    def shutting_down(self) -> None:
        """Ignore both signals from now on (SIG_IGN survives the interpreter's finalisation,
        which would otherwise restore the default, deadly handler)."""
        self.requested.set()
        if self._main_thread():
            for sig in self.SIGNALS:
                signal.signal(sig, signal.SIG_IGN)

    def _handle(self, signum, frame) -> None:
        if self.requested.is_set():
            return
        self.requested.set()
        if self.interrupt:
            raise KeyboardInterrupt


def stamp_ns(stamp) -> int:
    """``builtin_interfaces/Time`` -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def one_line(text: str, limit: int = 600) -> str:
    """Collapse a (possibly multi-line) error text into one line of at most ``limit`` chars."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


_NODE_FORM = "-p pretrained_model:=DIR (or `pretrained_model: DIR` in the params file)"


def _encoder_hint(message: str) -> str:
    """The node's way to pass a local encoder, in place of the command-line form of the core's
    message, or appended when the message is about an unreachable encoder."""
    if "--pretrained_model DIR" in message:
        return message.replace("--pretrained_model DIR", _NODE_FORM)
    low = message.lower()
    if "pretrained_model" in low or "hub" in low or "huggingface" in low:
        return (message + " The encoder is not available locally: copy it to this machine and "
                f"pass {_NODE_FORM}.")
    return message


def load_predictor(p: dict, logger):
    """:func:`vita_grasp_core.predictor.load_predictor` from the node's start-up parameters ``p``.

    Raises :class:`StartupError` with one line naming the problem (missing or corrupt checkpoint,
    an encoder that is neither local nor downloadable, an unavailable device ...).
    """
    from vita_grasp_core.zoo import ZooError, resolve_checkpoint

    try:  # a shipped model's short name (checkpoint:=cornell) or a path
        path = str(resolve_checkpoint(os.path.expanduser(str(p["checkpoint"]))))
    except ZooError as e:
        raise StartupError(f"cannot load the model: {e}") from None
    if not os.path.isfile(path):  # before importing torch: a fast, clear answer
        what = "is a directory, not a file" if os.path.isdir(path) else "not found"
        raise StartupError(f"cannot load the model: checkpoint {what}: {path}")
    from vita_grasp_core.checkpoint import CheckpointError
    from vita_grasp_core.predictor import load_predictor as load

    t0 = time.perf_counter()
    try:  # providers: "" = CPU, else "A,B" in priority order
        pred = load(path, device=p["device"], dtype=p["dtype"],
                    pretrained_model=str(p["pretrained_model"]) or None,
                    engine=p.get("engine", DEFAULT_ENGINE),
                    providers=str(p.get("providers", "")).strip() or None,
                    onnx_precision=p.get("onnx_precision", DEFAULT_ONNX_PRECISION))
    except CheckpointError as e:
        raise StartupError(_encoder_hint(one_line(f"cannot load the model: {e}"))) from None
    except Exception as e:  # noqa: BLE001 - hub access, runtime errors of the encoder
        raise StartupError(_encoder_hint(one_line(
            f"cannot load the model from {path}: {type(e).__name__}: {e}"))) from None
    logger.info(f"loaded {path} in {time.perf_counter() - t0:.1f} s")
    return pred
