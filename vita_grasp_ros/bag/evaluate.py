"""``vita-grasp bag eval``: rectangle-metric accuracy, latency and drops against a bag's GT.

Two modes, one report:

- **online** (``--predictions O.mcap``): the ``vita_grasp/GraspArray`` messages a running node
  published, as recorded by ``vita-grasp bag record``. Each is matched to the ground-truth frame
  with the *same header stamp* (exact, nanoseconds; the node copies the image header). GT frames
  without a prediction are **dropped frames**; predictions whose stamp is not a GT frame are
  counted as ``unmatched_predictions``; repeated stamps (``--loop``) keep the first.
- **offline** (``--checkpoint C``): the predictor runs directly over the bag's image messages (no
  ROS graph). Decoding starts from the checkpoint's stored settings (else the
  :class:`~vita_grasp_core.decoding_settings.DecodeConfig` defaults, which are also the
  node's); given settings override them.

Accuracy uses :mod:`vita_grasp_core.metrics` (CONVENTIONS §5): top-1 and precision@1/5/10. Two
views are reported: ``all_frames`` (every GT frame; a dropped frame scores as an empty
prediction, i.e. a miss - the headline numbers) and ``processed_frames`` (only frames with a
prediction). Offline both are the same.

Latency (online only) per matched frame = receive time of the grasps in the recording minus a
reference time for the same stamp:

- ``input``: the receive time, in the same recording, of the input frame (image or
  camera_info with that stamp). This is what a replay needs, because replayed header stamps are
  the recording's, not "now". Chosen by ``--latency_ref auto`` when such a topic was recorded.
- ``stamp``: the header stamp itself (a live camera stamps with its capture time). Chosen by
  ``auto`` when there is no input topic and the differences look like real latencies (0-60 s).

Outputs (``--out DIR``): ``eval.json`` (summary + per-frame rows), ``latency_hist.png``,
``accuracy_over_time.png``. Unreadable bags and checkpoints that cannot be loaded end with exit
code 2 and a one-line message (:mod:`.cli`).
"""
from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io import open_bag
from .messages import grasp_array_rows, image_from_msg, stamp_to_ns
from .types import (
    COMPRESSED_TYPE,
    GRASP_ARRAY_TYPE,
    GT_TOPIC,
    IMAGE_TOPIC,
    IMAGE_TYPE,
    INFO_TOPIC,
    PRED_TOPIC,
    BagError,
)


@dataclass
class Frame:
    """One GT frame: rows ``(G, 7)`` float32, image size (h, w), bag time [ns]."""

    stamp: int
    rows: np.ndarray
    image_size: tuple[int, int]
    bag_time: int


def _pick_topic(summary, wanted, types, what, bag) -> str:
    if wanted in summary:
        return wanted
    cands = [t for t, i in summary.items() if i.msgtype in types]
    if wanted is None and len(cands) >= 1:
        return cands[0]
    raise BagError(f"{bag}: no {what} topic {wanted!r} (topics: "
                        f"{', '.join(f'{t} [{i.msgtype}]' for t, i in sorted(summary.items()))})")


def read_ground_truth(bag, gt_topic: str = GT_TOPIC) -> dict[int, Frame]:
    """``{stamp_ns: Frame}`` of the GT GraspArray topic of ``bag`` (first of repeated stamps)."""
    out: dict[int, Frame] = {}
    with open_bag(bag) as r:
        summary = r.topics()
        topic = _pick_topic(summary, gt_topic, (GRASP_ARRAY_TYPE,), "ground-truth", bag)
        if summary[topic].msgtype != GRASP_ARRAY_TYPE:
            raise BagError(f"{bag}: {topic} is {summary[topic].msgtype}, expected "
                                f"{GRASP_ARRAY_TYPE}")
        for _, t, msg in r.read([topic]):
            s = stamp_to_ns(msg.header.stamp)
            if s not in out:
                out[s] = Frame(s, grasp_array_rows(msg),
                               (int(msg.image_height), int(msg.image_width)), t)
    if not out:
        raise BagError(f"{bag}: the ground-truth topic {topic} has no messages")
    return out


def read_predictions(bag, pred_topic: str = PRED_TOPIC):
    """Online predictions: ``({stamp: rows}, {stamp: receive_ns}, duplicates)``."""
    preds, recv, dup = {}, {}, 0
    with open_bag(bag) as r:
        summary = r.topics()
        topic = _pick_topic(summary, pred_topic, (GRASP_ARRAY_TYPE,), "prediction", bag)
        for _, t, msg in r.read([topic]):
            s = stamp_to_ns(msg.header.stamp)
            if s in preds:
                dup += 1
                continue
            preds[s] = grasp_array_rows(msg)
            recv[s] = t
    return preds, recv, dup


def read_input_times(bag, topics) -> tuple[dict[int, int], str | None]:
    """``{stamp: receive_ns}`` of the first of ``topics`` recorded in ``bag`` (input frames)."""
    with open_bag(bag) as r:
        summary = r.topics()
        for topic in topics:
            if topic in summary and summary[topic].count:
                out: dict[int, int] = {}
                for _, t, msg in r.read([topic]):
                    out.setdefault(stamp_to_ns(msg.header.stamp), t)
                return out, topic
    return {}, None


def image_topic_of(bag, image_topic: str | None) -> str:
    with open_bag(bag) as r:
        summary = r.topics()
    if image_topic and image_topic not in summary and f"{image_topic}/compressed" in summary:
        return f"{image_topic}/compressed"
    return _pick_topic(summary, image_topic, (IMAGE_TYPE, COMPRESSED_TYPE), "image",
                       bag)


def predict_offline(bag, checkpoint=None, *, image_topic: str | None = IMAGE_TOPIC,
                    decode: dict | None = None, predictor=None, load_options: dict | None = None,
                    stamps=None, progress: bool = True):
    """Run the predictor over the image messages of ``bag``.

    Returns ``({stamp: (N, 7) float32 rows}, seconds per frame list, topic)``. ``stamps``
    restricts to those header stamps (e.g. the GT frames). ``predictor`` reuses a loaded
    :class:`~vita_grasp_core.predictor.GraspPredictor` as it is (``decode`` and
    ``load_options`` apply only when ``checkpoint`` is loaded here, with
    :func:`vita_grasp_core.predictor.load_predictor`).
    """
    from vita_grasp_core.grasp import grasps_to_array

    topic = image_topic_of(bag, image_topic)
    if predictor is None:
        from vita_grasp_core.predictor import load_predictor

        predictor = load_predictor(checkpoint, **(load_options or {}), **(decode or {}))
    preds, times = {}, []
    with open_bag(bag) as r:
        n = r.topics()[topic].count
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, desc="offline predict", unit="frame", file=sys.stderr)
        for _, _, msg in r.read([topic]):
            if bar is not None:
                bar.update(1)
            s = stamp_to_ns(msg.header.stamp)
            if s in preds or (stamps is not None and s not in stamps):
                continue
            rgb = image_from_msg(msg)
            t0 = time.perf_counter()
            pred = predictor.predict(rgb)
            times.append(time.perf_counter() - t0)
            preds[s] = grasps_to_array(pred.grasps)
        if bar is not None:
            bar.close()
    return preds, times, topic


def _stats_ms(values_ns) -> dict | None:
    if not len(values_ns):
        return None
    v = np.asarray(values_ns, np.float64) / 1e6
    return {"count": int(v.size), "mean_ms": float(v.mean()),
            "p50_ms": float(np.percentile(v, 50)),
            "p95_ms": float(np.percentile(v, 95)), "max_ms": float(v.max()),
            "min_ms": float(v.min())}


def score(gt: dict[int, Frame], preds: dict[int, np.ndarray], ks=(1, 5, 10)) -> dict:
    """Metrics over all GT frames (missing prediction = empty = miss) and over processed ones,
    plus per-frame rows (stamp order)."""
    from vita_grasp_core.metrics import SplitMetrics

    all_m, proc_m = SplitMetrics(ks), SplitMetrics(ks)
    frames = []
    empty = np.zeros((0, 7), np.float32)
    for i, s in enumerate(sorted(gt)):
        f = gt[s]
        p = preds.get(s)
        sc = all_m.add(empty if p is None else p, f.rows)
        if p is not None:
            proc_m.add(p, f.rows)
        row = {"index": i, "stamp_ns": s, "dropped": p is None, "num_gt": int(len(f.rows)),
               "num_predictions": 0 if p is None else int(len(p))}
        if sc is not None:
            row.update({"top1": bool(sc["top1"]),
                        **{f"precision@{k}": sc[f"precision@{k}"] for k in ks}})
        frames.append(row)
    return {"all_frames": all_m.as_dict(), "processed_frames": proc_m.as_dict(), "frames": frames}


@dataclass(frozen=True)
class BagTopics:
    """The topics :func:`evaluate_bag` reads: ground truth, the node's predictions, the input
    image (``None``: the bag's only image topic) and CameraInfo (latency reference)."""

    gt: str = GT_TOPIC
    pred: str = PRED_TOPIC
    image: str | None = IMAGE_TOPIC
    info: str = INFO_TOPIC


def _online(predictions, gt: dict, topics: BagTopics, latency_ref: str):
    """``(predictions by stamp, latencies by stamp, result fields)`` of a recorded node run."""
    preds, recv, dup = read_predictions(predictions, topics.pred)
    out = {"mode": "online", "predictions": str(predictions), "pred_topic": topics.pred,
           "duplicates": dup}
    ref_kind, ref_topic, ref = _latency_reference(predictions, topics.image, topics.info,
                                                  latency_ref, recv)
    latencies = {s: t - ref[s] for s, t in recv.items() if s in gt and s in ref}
    out["latency"] = {"reference": ref_kind, "reference_topic": ref_topic,
                      **(_stats_ms(list(latencies.values())) or {"count": 0})}
    if len(recv) >= 2:
        span = (max(recv.values()) - min(recv.values())) / 1e9
        out["output_rate_hz"] = (len(recv) - 1) / span if span > 0 else None
    return preds, latencies, out


def evaluate_bag(bag, predictions=None, checkpoint=None, *, topics: BagTopics | None = None,
                 latency_ref: str = "auto", decode: dict | None = None, predictor=None,
                 load_options: dict | None = None, progress: bool = True,
                 return_predictions: bool = False) -> dict:
    """Evaluate online (``predictions`` bag) or offline (``checkpoint``, or a loaded
    ``predictor``); see the module docstring.

    ``topics``: :class:`BagTopics`. ``decode``: decoding overrides for an offline checkpoint;
    ``load_options``: more :func:`vita_grasp_core.predictor.load_predictor` arguments
    (``device``, ``pretrained_model`` ...).

    Returns a JSON-able dict: ``mode``, ``frames`` (GT frames), ``predicted_frames``,
    ``dropped_frames`` (+ ``dropped_stamps_ns``), ``unmatched_predictions``, ``duplicates``,
    ``metrics`` (= ``all_frames``), ``processed_frames``, ``latency`` (online), ``inference``
    (offline, seconds per frame) and ``decode`` (offline, the decoding settings used),
    ``per_frame``; with ``return_predictions`` also ``_predictions`` (``{stamp: (N, 7) rows}``,
    not written to JSON).
    Raises :class:`~.types.BagError` for unreadable bags and
    :class:`~vita_grasp_core.checkpoint.CheckpointError` when the checkpoint cannot be loaded
    (before any bag is read).
    """
    topics = topics or BagTopics()
    if (predictions is None) == (checkpoint is None and predictor is None):
        raise ValueError("give exactly one of predictions (online) or checkpoint (offline)")
    if predictions is None and predictor is None:
        from vita_grasp_core.predictor import load_predictor

        predictor = load_predictor(checkpoint, **(load_options or {}), **(decode or {}))
    gt = read_ground_truth(bag, topics.gt)
    result = {"bag": str(bag), "gt_topic": topics.gt, "frames": len(gt)}
    latencies: dict[int, int] = {}
    if predictions is not None:
        preds, latencies, fields = _online(predictions, gt, topics, latency_ref)
        result.update(fields)
    else:
        preds, times, topic = predict_offline(bag, image_topic=topics.image,
                                              predictor=predictor, stamps=set(gt),
                                              progress=progress)
        result.update({"mode": "offline", "checkpoint": str(checkpoint) if checkpoint else None,
                       "image_topic": topic, "decode": predictor.decode_config.to_dict(),
                       "inference": _stats_ms([t * 1e9 for t in times])})
    matched = [s for s in preds if s in gt]
    dropped = sorted(s for s in gt if s not in preds)
    result.update({"predicted_frames": len(matched), "dropped_frames": len(dropped),
                   "dropped_stamps_ns": dropped,
                   "unmatched_predictions": len([s for s in preds if s not in gt])})
    sc = score(gt, preds)
    for f in sc["frames"]:
        if f["stamp_ns"] in latencies:
            f["latency_ms"] = latencies[f["stamp_ns"]] / 1e6
    result["metrics"] = sc["all_frames"]
    result["processed_frames"] = sc["processed_frames"]
    result["per_frame"] = sc["frames"]
    if return_predictions:
        result["_predictions"] = preds
    return result


def _latency_reference(pred_bag, image_topic, info_topic, mode, recv):
    """``(kind, topic, {stamp: reference ns})`` for latency (see the module docstring)."""
    if mode == "none":
        return "none", None, {}
    if mode in ("auto", "input"):
        cands = [t for t in (image_topic, f"{image_topic}/compressed" if image_topic else None,
                             info_topic) if t]
        ref, topic = read_input_times(pred_bag, cands)
        if ref:
            return "input", topic, ref
        if mode == "input":
            raise BagError(f"{pred_bag}: --latency_ref input needs one of {cands} recorded "
                                "beside the predictions")
    if mode.startswith("/"):
        ref, topic = read_input_times(pred_bag, [mode])
        if not ref:
            raise BagError(f"{pred_bag}: latency reference topic {mode} is not in the bag")
        return "input", topic, ref
    d = [t - s for s, t in recv.items()]
    if mode == "stamp" or (d and 0 <= float(np.median(d)) <= 60e9):
        return "stamp", None, {s: s for s in recv}
    return "none", None, {}


# --------------------------------------------------------------------------- reporting
def format_table(result: dict) -> str:
    """Plain-text summary table."""
    m = result["metrics"]
    lines = [f"bag eval ({result['mode']}): {result['bag']}",
             f"  frames: {result['frames']}  predicted: {result['predicted_frames']}  "
             f"dropped: {result['dropped_frames']}  unmatched predictions: "
             f"{result['unmatched_predictions']}"]
    hdr = (f"  {'view':<18}{'images':>7}{'top-1':>8}{'P@1':>8}{'P@5':>8}{'P@10':>8}"
           f"{'grasps/img':>12}")
    lines.append(hdr)
    for name, mm in (("all frames", m), ("processed frames", result["processed_frames"])):
        lines.append(f"  {name:<18}{mm['num_images']:>7}{mm['top1_accuracy']:>8.3f}"
                     f"{mm['precision@1']:>8.3f}{mm['precision@5']:>8.3f}"
                     f"{mm['precision@10']:>8.3f}{mm['mean_predictions']:>12.1f}")
    lat = result.get("latency")
    if lat and lat.get("count"):
        ref = lat["reference"] + (f" {lat['reference_topic']}" if lat.get("reference_topic")
                                  else "")
        lines.append(f"  latency (vs {ref}): p50 {lat['p50_ms']:.1f} ms  p95 {lat['p95_ms']:.1f} "
                     "ms"
                     f"  max {lat['max_ms']:.1f} ms  (n={lat['count']})")
    elif lat is not None:
        lines.append("  latency: not available (no input topic recorded and stamps are not live)")
    inf = result.get("inference")
    if inf:
        lines.append(f"  offline inference: p50 {inf['p50_ms']:.1f} ms  p95 {inf['p95_ms']:.1f} ms"
                     f"  per frame (n={inf['count']})")
    return "\n".join(lines)


def write_outputs(result: dict, out_dir, prefix: str = "") -> dict[str, str]:
    """``eval.json``, ``latency_hist.png`` (online), ``accuracy_over_time.png`` in ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"json": str(out / f"{prefix}eval.json")}
    public = {k: v for k, v in result.items() if not k.startswith("_")}
    Path(files["json"]).write_text(json.dumps(public, indent=2, default=_json_default) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = result["per_frame"]
    lat = [f["latency_ms"] for f in frames if "latency_ms" in f]
    if result["mode"] == "online":
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if lat:
            ax.hist(lat, bins=min(30, max(5, len(lat) // 2)), color="#4c72b0")
            for q, ls in ((50, "-"), (95, "--")):
                v = float(np.percentile(lat, q))
                ax.axvline(v, color="k", ls=ls, lw=1, label=f"p{q} {v:.0f} ms")
            ax.legend()
        else:
            ax.text(0.5, 0.5, "no latency data", ha="center", va="center", transform=ax.transAxes)
        ref = (result.get("latency") or {}).get("reference", "?")
        ax.set(xlabel=f"latency [ms] (grasps received - {ref})", ylabel="frames",
               title="End-to-end latency")
        fig.tight_layout()
        files["latency_hist"] = str(out / f"{prefix}latency_hist.png")
        fig.savefig(files["latency_hist"], dpi=100)
        plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    idx = np.array([f["index"] for f in frames])
    top1 = np.array([float(f.get("top1", 0.0)) for f in frames])
    p5 = np.array([float(f.get("precision@5", 0.0)) for f in frames])
    w = max(1, min(10, len(frames) // 5))
    kern = np.ones(w) / w
    if len(frames):
        ax.plot(idx, np.convolve(top1, kern, mode="same"), label=f"top-1 (mean of {w})")
        ax.plot(idx, np.convolve(p5, kern, mode="same"), label=f"P@5 (mean of {w})")
        ax.scatter(idx, top1, s=8, c="#4c72b0", alpha=0.4)
        drops = [f["index"] for f in frames if f["dropped"]]
        if drops:
            ax.scatter(drops, np.zeros(len(drops)), marker="x", c="r", label="dropped frame")
    ax.set(xlabel="frame", ylabel="score", ylim=(-0.05, 1.05),
           title=f"Accuracy over time ({result['mode']})")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    files["accuracy_over_time"] = str(out / f"{prefix}accuracy_over_time.png")
    fig.savefig(files["accuracy_over_time"], dpi=100)
    plt.close(fig)
    return files


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        v = float(o)
        return None if math.isnan(v) else v
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o)}")

