#!/usr/bin/env python3
"""``make real``: the whole real-photograph experiment, and docs/real_images.md from its numbers.

    .venv/bin/python scripts/real_images.py [--root ../shared/data/cornell] [--out build/real]
        [--config dinov2_cornell.yaml] [--doc docs/real_images.md] [--set key=value ...]
        [--protocols image object] [--only K ...] [--camera_folds K ...] [--resume]
        [--report_only]

Runs ``vita-grasp cv`` twice on the Cornell frames with the Cornell recipe (5-fold image-wise,
then 5-fold object-wise from blocks of consecutive frame numbers, ``--split_by block``), measures
``GraspPredictor.predict`` per frame on this CPU, and rewrites the report (scripts/real_report.py)
with the data summary, protocols, per-fold and mean +- std top-1 / P@5, widths on the frames and
at a camera's scale, times, what each accuracy lever gave (docs/real_images/levers.json), pictures
of the best and worst test frames, and published figures beside ours. The feature cache in
``<out>/feature_cache`` is shared by both protocols and reused by later runs (delete it to measure
the encoder pass again).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # real_report


def predict_timing(checkpoint: Path, frames, n: int = 30) -> dict:
    """Median / p90 ``predict()`` time per 224x224 frame (fp32, torch eager, this CPU)."""
    import numpy as np
    import torch

    from vita_grasp_core import GraspPredictor
    from vita_grasp_core.data import load_frame

    pred = GraspPredictor.from_checkpoint(checkpoint, device="cpu")
    imgs = [load_frame(r).rgb for r in frames[:n]]
    for im in imgs[:3]:
        pred.predict(im)
    ts = []
    for im in imgs:
        t0 = time.perf_counter()
        pred.predict(im)
        ts.append(time.perf_counter() - t0)
    return {"frames": len(ts), "threads": torch.get_num_threads(),
            "median_ms": 1000 * float(np.median(ts)),
            "p90_ms": 1000 * float(np.percentile(ts, 90)),
            "size": list(imgs[0].shape[:2])}


#: Protocol name -> (output folder under --out, vita-grasp cv overrides, camera-frame check,
#: config replacing --config or None). ``realtime``: the shipped real-time recipe, image-wise
#: (not in the default run: ``--protocols image object realtime``).
PROTOCOLS = {"image": ("cv", ["data.split_by=image"], True, None),
             "object": ("cv_object", ["data.split_by=block"], False, None),
             "realtime": ("cv_realtime", ["data.split_by=image"], False, "dinov2_realtime.yaml")}
DEFAULT_PROTOCOLS = ["image", "object"]
#: The same folds scored through ONNX Runtime int8 (the node's engine for ``realtime``), when
#: ``vita-grasp cv --rescore`` wrote it; the report shows it beside the torch scores.
INT8_RESCORE = "rescore_engine-onnxruntime_onnx_precision-int8.json"
#: Wall time of the last run that trained (not --report_only), read by the report.
WALL_FILE = "wall.json"


def add_miss_counts(reps: dict, out: Path, frames) -> None:
    """``rep["misses"]``: why each protocol's wrong best grasps missed (from its cv_images.json
    and the frames' labelled rectangles; the report's table)."""
    import numpy as np
    from real_report import miss_counts

    from vita_grasp_core.data import load_frame

    by_key = {f.key: f for f in frames}

    def gt_of(key):
        return load_frame(by_key[key]).grasps if key in by_key else np.zeros((0, 5))

    for name, rep in reps.items():
        images = out / PROTOCOLS[name][0] / "cv_images.json"
        if images.is_file():
            rep["misses"] = miss_counts(json.loads(images.read_text()), gt_of)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default=str(REPO.parent / "shared" / "data" / "cornell"),
                    help="Cornell-layout data set (default ../shared/data/cornell)")
    ap.add_argument("--out", default=str(REPO / "build" / "real"), help="work directory")
    ap.add_argument("--config", default="dinov2_cornell.yaml", help="training config (default: "
                    "the shipped dinov2_cornell.yaml)")
    ap.add_argument("--doc", default=str(REPO / "docs" / "real_images.md"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--protocols", nargs="+", choices=tuple(PROTOCOLS),
                    default=DEFAULT_PROTOCOLS,
                    help="which cross-validations to run (default image object; realtime: "
                         "the real-time recipe dinov2_realtime.yaml "
                         "instead of --config, image-wise, added to the report)")
    ap.add_argument("--only", type=int, nargs="+", default=None, metavar="K",
                    help="run only these folds (0-based) of each protocol; the report names "
                         "them (for a machine without room for all ten trainings)")
    ap.add_argument("--camera_folds", type=int, nargs="*", default=None, metavar="K",
                    help="the camera-frame width check (image-wise) only on these folds, none "
                         "without K (default every fold; it costs about 4 times a fold's "
                         "scoring)")
    ap.add_argument("--resume", action="store_true",
                    help="keep <out>/cv*: folds scored before are taken as they are, stopped "
                         "trainings continue (several runs of different --only folds end in "
                         "one report)")
    ap.add_argument("--no_progress", action="store_true")
    ap.add_argument("--report_only", action="store_true",
                    help="rewrite the report from <out>/cv*/cv.json (no training; predict() is "
                         "timed again)")
    args = ap.parse_args(argv)
    root = Path(args.root)
    if not root.is_dir():
        print(f"real_images: no data set at {root} (pass --root, or make real CORNELL=DIR)",
              file=sys.stderr)
        return 2
    from real_report import block_neighbours, write_report

    from vita_grasp_core.data import scan_dataset, summarize
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.cv import FULL_FRAME_SCALE, fold_frames, format_report, run_cv
    from vita_grasp_core.training.train_config import build_config

    out = Path(args.out)
    reps, leak = {}, None
    started = time.monotonic()
    for name in args.protocols:
        folder, extra, camera_check, config = PROTOCOLS[name]
        cfg = build_config(load_raw(config or args.config), list(args.overrides) + extra + [
            f"data.root={json.dumps(str(root))}",
            f"train.feature_cache_dir={json.dumps(str(out / 'feature_cache'))}"])
        if args.only and any(not 0 <= f < cfg.data.folds for f in args.only):
            print(f"real_images: --only {args.only}: folds are 0 .. {cfg.data.folds - 1}",
                  file=sys.stderr)
            return 2
        if args.report_only:
            rep = json.loads((out / folder / "cv.json").read_text())
        else:
            if (out / folder).exists() and not args.resume:
                shutil.rmtree(out / folder)  # fold runs start fresh; the feature cache is kept
            rep = run_cv(cfg, out / folder, progress=not args.no_progress, only=args.only,
                         full_frame_scale=FULL_FRAME_SCALE if camera_check else None,
                         camera_folds=args.camera_folds, resume=args.resume)
        print(format_report(rep))
        int8 = out / folder / INT8_RESCORE
        if int8.is_file():  # written by vita-grasp cv --rescore (see INT8_RESCORE)
            rep["int8"] = json.loads(int8.read_text())
        reps[name] = rep
        if name == "object":
            frames, folds, _ = fold_frames(cfg)
            leak = block_neighbours([f.frame for f in frames], folds)
    wall_file = out / WALL_FILE
    if not args.report_only:  # the wall time of this run, for the report (see WALL_FILE)
        wall_file.write_text(json.dumps({
            "seconds": round(time.monotonic() - started, 1), "protocols": args.protocols,
            "resumed": bool(args.resume), "only": args.only, "cores": os.cpu_count(),
            "load_avg": [round(x, 1) for x in os.getloadavg()]}))
    wall = json.loads(wall_file.read_text()) if wall_file.is_file() else None
    frames = scan_dataset(root).frames
    add_miss_counts(reps, out, frames)
    summary = summarize(frames)
    first = PROTOCOLS[args.protocols[0]][0]
    timing = predict_timing(out / first / "fold_0" / "best_model.pt", frames)
    doc = Path(args.doc)
    pic_dir = doc.parent / "real_images"
    pic_dir.mkdir(parents=True, exist_ok=True)
    pictures = {}
    for name, info in next(iter(reps.values()))["overlays"].items():
        shutil.copy(info["path"], pic_dir / f"{name}.png")
        pictures[name] = info
    shown = [Path(sys.argv[0]).name] + list(argv if argv is not None else sys.argv[1:])
    write_report(reps, summary, timing, doc, pictures, shown, leak, wall)
    print(f"wrote {doc} (+ {pic_dir}/)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
