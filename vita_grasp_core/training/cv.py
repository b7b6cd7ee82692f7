"""k-fold cross-validation (Cornell / Jacquard protocol); the command line ``vita-grasp cv`` is
:mod:`vita_grasp_core.cli.cv`.

::

    vita-grasp cv --config dinov2_cornell.yaml --dataset_root ../shared/data/cornell \\
        --output_dir runs/cv [--folds 5] [--split_by image|object|block] [--block_size 50]
        [--only 0 2] [--set ...]

For fold k of a seeded k-fold split (image-wise: the Cornell convention; object-wise where object
identity is known): train on the other folds with a seeded validation part held out of them (it
selects the checkpoint and chooses the score threshold and quality calibration), then score fold
k — never seen by training or selection — with the API's defaults (``GraspPredictor`` from the
checkpoint, exactly what the node publishes): top-1 accuracy (IoU > 0.25 and angle difference
< 30 degrees) and precision@k. The frozen encoder's features of every frame's views are computed
once into a cache shared by all folds.

Writes ``<out>/fold_<k>/`` (the fold's training run + ``test_images.json``), ``<out>/cv.json``
(per fold and mean +- std), ``<out>/overlays/`` (the best and worst test frames) and prints a
table.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

from ..image_decode import write_image
from .run_log import console_log
from .scale_check import score_full_frames, width_ratios, width_summary
from .train_config import ConfigError, FullConfig, build_config

#: Full-frame check: the object on the model canvas at half its size in the training crops
#: (the 224x224 Cornell copy shows about 320x320 px of the 640x480 camera frame).
FULL_FRAME_SCALE = 0.5

log = logging.getLogger("vita_grasp.train")


def fold_frames(cfg: FullConfig):
    """``(frames, folds)``: every frame of ``cfg.data.root`` and the k test folds."""
    from ..data import get_format, kfold, scan_dataset

    d = cfg.data
    res = scan_dataset(d.root, d.format)
    fmt = get_format(res.format)
    if fmt.scenes:
        raise ConfigError(f"vita-grasp cv splits frames into folds; a {fmt.name} data set has "
                          "fixed scene splits (use vita-grasp train and vita-grasp eval)")
    by = d.split_by or fmt.split_by
    folds = kfold(res.frames, d.folds, seed=d.split_seed, by=by, block_size=d.block_size)
    return res.frames, folds, by


def prebuild_cache(cfg: FullConfig, frames, device, progress: bool) -> dict:
    """Encoder features of every frame's views, once for all folds (``train.feature_cache``)."""
    from ..data import GraspDataset, Origin, SampleSpec, TargetSpec
    from ..engines import resolve_device
    from ..model import build_model
    from .dist import seed_everything
    from .feature_cache import (
        FeatureCache,
        build_cache,
        cache_tokens_at,
        dataset_signature,
        encoder_fingerprint,
    )

    t = cfg.train
    seed_everything(t.seed)  # as the fold trainers do: the same (random-init) encoder
    device = resolve_device(device)
    model = build_model(cfg.model).to(device)
    ds = GraspDataset(frames, SampleSpec.of(model), TargetSpec(max_rects=cfg.data.max_rects),
                      augment=cfg.data.make_augment(), seed=t.seed,
                      require_label=cfg.data.require_label, origin=Origin(cfg.data.root))
    views = t.cache_views if ds.augment is not None else 1
    cache = FeatureCache(t.feature_cache_dir, model.config, dataset_signature(ds),
                         encoder_fingerprint(model), cache_tokens_at(model.config,
                                                                     t.cache_tokens_at))
    t0 = time.perf_counter()
    n = build_cache(model, ds, cache, views=views, device=device,
                    batch_size=max(t.batch_size, views), progress=progress)
    return {"views_per_frame": views, "views_computed": n, "seconds": time.perf_counter() - t0,
            "dir": str(cache.dir)}


def score_fold(checkpoint: Path, frames, device, *, time_frames: int = 20,
               full_frame_scale: float | None = FULL_FRAME_SCALE, calibrate_on=None,
               **predictor_kwargs) -> dict:
    """Score frames with the checkpoint's API defaults; per-image rows; CPU predict time; width
    errors, and top-1 and width errors at a camera's scale (``full_frame_scale``: the object's
    size on the canvas relative to the crop, :mod:`.scale_check`; ``None``: skipped).
    ``predictor_kwargs`` go to ``GraspPredictor.from_checkpoint`` (``dtype``, ``engine``,
    ``onnx_precision``, ``tta``, ...): the same protocol for another inference variant;
    ``calibrate_on`` (the fold's validation frames) fits calibration and threshold again for it
    first (:func:`.fit_decoding.recalibrate`: a variant that changes the maps, e.g. ``tta``)."""
    from ..data import GraspDataset, SampleSpec, load_frame
    from ..evaluation import EvalOptions, evaluate
    from ..predictor import GraspPredictor

    pred = GraspPredictor.from_checkpoint(checkpoint, device=device, **predictor_kwargs)
    if calibrate_on:
        from .fit_decoding import recalibrate

        recalibrate(pred, GraspDataset(calibrate_on, SampleSpec.of(pred)))
    ds = GraspDataset(frames, SampleSpec.of(pred))
    res = evaluate(pred, ds, {}, EvalOptions(batch_size=8, progress=False, per_image=True,
                                             keep_predictions=True))  # the API's settings
    times = []
    for rec in frames[:time_frames]:
        rgb = load_frame(rec).rgb
        t0 = time.perf_counter()
        pred.predict(rgb)
        times.append(time.perf_counter() - t0)
    res["predict_ms_median"] = 1000 * float(np.median(times[1:] or times))
    res["decode"] = pred.decode_config.to_dict()
    res["width"] = width_summary(width_ratios((p, gt) for _, p, gt in res["predictions"]))
    if full_frame_scale:  # as the API predicts, and with the canvas enlarged to the crops' scale
        res["full_frame"] = score_full_frames(pred, frames, full_frame_scale,
                                              (None, round(1 / full_frame_scale, 3)))
    return res


def _frame_rows(res: dict) -> list[dict]:
    rows = []
    for img, (key, p, gt) in zip(res["images"], res["predictions"]):
        rows.append({**img, "key": key, "num_predictions": int(len(p)),
                     "best_quality": float(p[0, 5]) if len(p) else None,
                     "predictions": np.round(np.asarray(p)[:5, :6], 3).tolist()})
    return rows


def overlays(rows: list[dict], frames_by_key: dict, out: Path, n: int = 6) -> dict:
    """Pictures of the ``n`` best (correct, most confident) and ``n`` worst (missed, most
    confident) test frames: predicted grasps (best in green) over the ground truth (thin grey)."""
    import cv2

    from ..data import load_frame
    from ..visualize import draw_grasps

    out.mkdir(parents=True, exist_ok=True)
    ok = sorted((r for r in rows if r.get("top1")), key=lambda r: -(r["best_quality"] or 0))
    bad = sorted((r for r in rows if not r.get("top1")), key=lambda r: -(r["best_quality"] or 0))
    written = {}
    for name, sel in (("best", ok[:n]), ("worst", bad[:n])):
        tiles = []
        for r in sel:
            fr = load_frame(frames_by_key[r["key"]])
            img = draw_grasps(fr.rgb, fr.grasps, jaw_color=(150, 150, 150),
                              open_color=(150, 150, 150), highlight_best=False, thickness=1)
            img = draw_grasps(img, np.asarray(r["predictions"]).reshape(-1, 6), max_grasps=5)
            tiles.append(cv2.resize(img, (224, 224), interpolation=cv2.INTER_AREA))
        if tiles:
            grid = np.concatenate(tiles, axis=1)
            path = out / f"{name}.png"
            write_image(path, grid, rgb=True)
            written[name] = {"path": str(path), "keys": [r["key"] for r in sel]}
    return written


#: Per fold: what ``run_cv`` keeps of a scored fold (its row of the report and per-image rows).
FOLD_RESULT = "fold_result.json"


def run_cv(cfg: FullConfig, out, *, device: str = "auto", only=None, progress: bool = True,
           full_frame_scale: float | None = FULL_FRAME_SCALE, camera_folds=None,
           resume: bool = False) -> dict:
    """Train and score every fold (or the ``only`` ones); returns and writes ``cv.json``.
    ``full_frame_scale``: the camera-frame width check (:func:`score_fold`; ``None`` skips
    it), on every fold or the ``camera_folds`` ones. ``resume``: a fold scored before (its
    ``fold_K/fold_result.json``) is taken as it is, a fold whose training stopped continues
    from its ``last.pt`` (a finished one is only scored), so a stopped run, or runs of
    different folds into the same folder, end in one report."""
    with console_log():  # the per-fold lines survive each fold's own run log
        return _run_cv(cfg, out, device=device, only=only, progress=progress,
                       full_frame_scale=full_frame_scale, camera_folds=camera_folds,
                       resume=resume)


def _run_cv(cfg: FullConfig, out, *, device, only, progress, full_frame_scale, camera_folds,
            resume) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    frames, folds, by = fold_frames(cfg)
    k = len(folds)
    if cfg.train.feature_cache and cfg.train.feature_cache_dir is None:
        cfg.train.feature_cache_dir = str(out / "feature_cache")
    t_all = time.perf_counter()
    cache = prebuild_cache(cfg, frames, device, progress) if cfg.train.feature_cache else None
    results, all_rows = [], []
    for f in (range(k) if only is None else only):
        saved = out / f"fold_{f}" / FOLD_RESULT
        if resume and saved.is_file():
            done = json.loads(saved.read_text())
            log.info("fold %d/%d: scored before (%s)", f + 1, k, saved)
        else:
            camera = camera_folds is None or f in camera_folds
            done = _run_fold(cfg, out, f, frames, folds, device=device, progress=progress,
                             full_frame_scale=full_frame_scale if camera else None,
                             resume=resume)
        results.append(done["result"])
        all_rows += [dict(r, fold=f) for r in done["rows"]]
    by_key = {fr.key: fr for fr in frames}
    pictures = overlays(all_rows, by_key, out / "overlays")
    report = {"data_root": str(cfg.data.root), "frames": len(frames), "folds": k,
              "split_by": by, "split_seed": cfg.data.split_seed, "config": cfg.to_dict(),
              "cache": cache, "per_fold": results, "overlays": pictures,
              "seconds_total": round(time.perf_counter() - t_all, 1)}
    for key in ("top1_accuracy", "precision@5", "precision@10", "fold_seconds",
                "predict_ms_median"):
        v = np.array([r[key] for r in results], np.float64)
        report[f"{key}_mean"], report[f"{key}_std"] = float(v.mean()), float(v.std())
    report.update(_scale_means(results))
    (out / "cv.json").write_text(json.dumps(report, indent=1, default=str))
    (out / "cv_images.json").write_text(json.dumps(all_rows, indent=1))
    return report


def _run_fold(cfg: FullConfig, out: Path, f: int, frames, folds, *, device, progress,
              full_frame_scale, resume) -> dict:
    """Train fold ``f`` (continuing its ``last.pt`` with ``resume``), score it on its test
    frames and keep the result in ``fold_f/fold_result.json``: ``{"result", "rows"}``."""
    from .train import train

    k = len(folds)
    t0 = time.perf_counter()
    cfg_f = build_config(cfg.to_dict(), [f"data.test_fold={f}", f"data.folds={k}"])
    summary = train(cfg_f, out / f"fold_{f}", device=device, progress=progress,
                    resume="auto" if resume else None)
    t_train = time.perf_counter() - t0
    test = [frames[i] for i in folds[f]]
    res = score_fold(out / f"fold_{f}" / "best_model.pt", test, device,
                     full_frame_scale=full_frame_scale)
    rows = _frame_rows(res)
    (out / f"fold_{f}" / "test_images.json").write_text(json.dumps(rows, indent=1))
    result = {"fold": f, "test_frames": len(test), "top1_accuracy": res["top1_accuracy"],
              "precision@1": res["precision@1"], "precision@5": res["precision@5"],
              "precision@10": res["precision@10"], "mean_predictions": res["mean_predictions"],
              "gt_rects_outside": res["gt_rects_outside"], "val_top1": summary["best_top1"],
              "best_epoch": summary["best_epoch"],
              "score_threshold": res["decode"]["score_threshold"],
              "train_seconds": round(t_train, 1),
              "fold_seconds": round(time.perf_counter() - t0, 1),
              "predict_ms_median": round(res["predict_ms_median"], 1),
              "width": res["width"], "full_frame": res.get("full_frame")}
    log.info("fold %d/%d: test top-1 %.1f %%, P@5 %.1f %% (%d frames, threshold %.2f), %.0f s",
             f + 1, k, 100 * res["top1_accuracy"], 100 * res["precision@5"], len(test),
             res["decode"]["score_threshold"], time.perf_counter() - t0)
    done = {"result": result, "rows": rows}
    (out / f"fold_{f}" / FOLD_RESULT).write_text(json.dumps(done, indent=1, default=str))
    return done


def _scale_means(results: list[dict]) -> dict:
    """Means over folds of the width check: on the frames (``width_*``), at the camera's scale
    (``full_frame_*``) and there with an enlarged canvas (``full_frame_input_scale_K_*``)."""
    parts = {"width": [{"width": r.get("width")} for r in results]}
    for r in results:
        ff = r.get("full_frame") or {}
        parts.setdefault("full_frame", []).append(ff)
        for k, v in ff.items():
            if k.startswith("input_scale_"):
                parts.setdefault(f"full_frame_{k}", []).append(v)
    out = {}
    for name, rows in parts.items():
        rows = [row for row in rows if row and (row.get("width") or {}).get("frames")]
        if not rows:
            continue
        if "top1_accuracy" in rows[0]:
            out[f"{name}_top1_accuracy_mean"] = float(np.mean([x["top1_accuracy"]
                                                               for x in rows]))
        for k in ("ratio_median", "within_tolerance", "abs_log_error_median"):
            key = name if name == "width" else f"{name}_width"
            out[f"{key}_{k}_mean"] = float(np.mean([x["width"][k] for x in rows]))
    return out


#: Inference settings that change the maps: rescoring with them fits the calibration again.
MAP_CHANGING = ("tta", "input_scale")


def _read_cv(out: Path):
    """``(report, config)`` of a finished ``run_cv`` in ``out`` (one-line ``ConfigError``)."""
    try:
        rep = json.loads((out / "cv.json").read_text())
        cfg = build_config(rep["config"])
        if not all(isinstance(f["fold"], int) for f in rep["per_fold"]):
            raise TypeError("fold numbers must be integers")
    except (OSError, KeyError, TypeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{out / 'cv.json'} is not the report of a finished vita-grasp cv "
                          f"({type(e).__name__}: {e})") from None
    return rep, cfg


def _ensemble_members(out: Path, members, folds, need) -> list[Path]:
    """The cross-validation directories ``members``, checked once: finished, with the folds of
    ``out`` (``folds``: the same frames in each) and each fold number in ``need``."""
    dirs = []
    for m in map(Path, members):
        rep, cfg = _read_cv(m)
        if fold_frames(cfg)[1] != folds:
            raise ConfigError(f"{m} has other folds than {out} (data.split_seed, folds, "
                              "split_by): an ensemble joins models of the same fold")
        missing = sorted(set(need) - {f["fold"] for f in rep["per_fold"]})
        if missing:
            raise ConfigError(f"{m} has no fold {missing[0]}")
        dirs.append(m)
    return dirs


def rescore_cv(out, *, device: str = "auto", ensemble=(), **predictor_kwargs) -> dict:
    """Score every fold of a finished ``run_cv`` again with another inference variant
    (``dtype="bfloat16"``, ``engine="onnxruntime"``, ``onnx_precision="int8"``, ``tta=4``): the
    same checkpoints and test frames; a variant that changes the maps (:data:`MAP_CHANGING`)
    first fits calibration and threshold again on each fold's own validation frames.
    ``ensemble``: directories of other cross-validations with the same folds (other
    ``train.seed``); each fold's models are joined into one (:mod:`.ensemble`: their maps
    averaged, calibrated on the fold's validation frames, written to
    ``<out>/ensemble_<N>/fold_<k>.pt``) and scored. Writes ``<out>/rescore_<variant>.json``."""
    from .data import split_frames

    out = Path(out)
    rep, cfg = _read_cv(out)
    frames, folds, _ = fold_frames(cfg)
    if ensemble:
        from .ensemble import join_checkpoints

        ensemble = _ensemble_members(out, ensemble, folds, [f["fold"] for f in rep["per_fold"]])
    settings = dict(predictor_kwargs, **({"ensemble": len(ensemble) + 1} if ensemble else {}))
    variant = "_".join(f"{k}-{v}" for k, v in sorted(settings.items())) or "default"
    rows = []
    for f in rep["per_fold"]:
        k = f["fold"]
        val = None
        if any(predictor_kwargs.get(n) not in (None, 1) for n in MAP_CHANGING):
            _, va, _ = split_frames(build_config(rep["config"], [f"data.test_fold={k}"]), frames)
            val = [frames[i] for i in va]
        ckpt = out / f"fold_{k}" / "best_model.pt"
        if ensemble:  # this fold's models joined, calibrated on its validation frames
            members = [ckpt] + [m / f"fold_{k}" / "best_model.pt" for m in ensemble]
            ckpt = out / f"ensemble_{len(members)}" / f"fold_{k}.pt"
            join_checkpoints(members, ckpt, dataset_root=cfg.data.root)
        res = score_fold(ckpt, [frames[i] for i in folds[k]], device, full_frame_scale=None,
                         calibrate_on=val, **predictor_kwargs)
        rows.append({"fold": k, "top1_accuracy": res["top1_accuracy"],
                     "precision@5": res["precision@5"], "reference_top1": f["top1_accuracy"],
                     "score_threshold": res["decode"]["score_threshold"],
                     "recalibrated": val is not None or bool(ensemble),
                     "predict_ms_median": round(res["predict_ms_median"], 1)})
    top1 = np.array([r["top1_accuracy"] for r in rows])
    ref = np.array([r["reference_top1"] for r in rows])
    summary = {"variant": variant, "settings": settings, "per_fold": rows,
               "ensemble_with": [str(m) for m in ensemble],
               "top1_accuracy_mean": float(top1.mean()), "top1_accuracy_std": float(top1.std()),
               "reference_top1_mean": float(ref.mean()),
               "predict_ms_median_mean": float(np.mean([r["predict_ms_median"] for r in rows]))}
    (out / f"rescore_{variant}.json").write_text(json.dumps(summary, indent=1))
    return summary


def format_report(r: dict) -> str:
    lines = [f"{r['folds']}-fold cross-validation ({r['split_by']}-wise) on {r['frames']} frames "
             f"of {r['data_root']}",
             "  fold  frames  top-1    P@5     P@10   threshold  val top-1  fold time"]
    for f in r["per_fold"]:
        lines.append(f"  {f['fold']:>4}  {f['test_frames']:>6}  {100 * f['top1_accuracy']:5.1f} %"
                     f"  {100 * f['precision@5']:5.1f} %  {100 * f['precision@10']:5.1f} %"
                     f"  {f['score_threshold']:9.2f}  {100 * f['val_top1']:7.1f} %"
                     f"  {f['fold_seconds']:7.0f} s")
    lines.append(f"  mean +- std: top-1 {100 * r['top1_accuracy_mean']:.1f} +- "
                 f"{100 * r['top1_accuracy_std']:.1f} %, P@5 {100 * r['precision@5_mean']:.1f} "
                 f"+- {100 * r['precision@5_std']:.1f} %; predict "
                 f"{r['predict_ms_median_mean']:.0f} ms/frame; total "
                 f"{r['seconds_total'] / 60:.1f} min")
    return "\n".join(lines)
