"""Grasp prediction for image files: ``scripts/inference.py`` / ``vita-grasp infer``.

::

    python scripts/inference.py --checkpoint runs/x/best_model.pt --image_path 'photos/*.png' \\
        --output_dir out [--device auto] [--score_threshold T] [--max_grasps 10] [--top_k_draw 5]

``--image_path`` is a file, a folder (every image in it, sorted) or a glob. Per image:

- ``<stem>_grasps.json``: ``image``, ``image_width``, ``image_height``, ``grasps`` (best first;
  CONVENTIONS §1 fields ``x, y, angle, width, height, quality`` in source pixels / radians, plus
  ``object_score``), ``timings`` (seconds) and the checkpoint;
- ``<stem>_vis.png``: left, the image with the best ``top_k_draw`` grasps (jaw edges red, opening
  edges blue, the best one green); right, the position heatmap over the image.

The first lines say which decoding settings are used and where each comes from (the
checkpoint's stored settings, the defaults, or the command line); the JSON records them too.

Unreadable images are reported and skipped; the exit code is 1 when no image worked. A checkpoint
that cannot be loaded (missing, a directory, not a checkpoint, truncated, NaN weights, an encoder
that is not available offline: pass ``--pretrained_model DIR``) is one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

from ..decoding_settings import DECODE_FIELDS, add_decode_arguments, decode_arguments

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def collect_images(path: str) -> list[Path]:
    """A file, every image file in a folder (sorted), or the matches of a glob (sorted)."""
    p = Path(path)
    if p.is_dir():
        return sorted(q for q in p.iterdir()
                      if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
    if p.is_file():
        return [p]
    if any(ch in path for ch in "*?["):
        return sorted(Path(q) for q in glob.glob(path, recursive=True) if Path(q).is_file())
    return []


def read_rgb(path: Path) -> np.ndarray | None:
    """``HxWx3 uint8 RGB`` or ``None`` when OpenCV cannot decode the file (grey and 16-bit images
    are converted; alpha is dropped)."""
    import cv2

    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    img = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if img is None or img.size == 0:
        return None
    return np.ascontiguousarray(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))


def visualize(rgb: np.ndarray, prediction, top_k_draw: int = 5) -> np.ndarray:
    """``HxWx3`` RGB | heatmap overlay side by side (``Hx2Wx3 uint8 RGB``)."""
    from ..visualize import draw_grasps, heatmap_overlay

    left = draw_grasps(rgb, prediction.grasps, max_grasps=top_k_draw)
    right = heatmap_overlay(rgb, prediction.maps, prediction.letterbox, alpha=0.6)
    return np.concatenate([left, right], axis=1)


def _unique_stem(path: Path, used: set) -> str:
    stem = path.stem
    out, k = stem, 1
    while out in used:
        out = f"{stem}_{k}"
        k += 1
    used.add(out)
    return out


#: How :attr:`GraspPredictor.decode_sources` labels read on this command line.
_SOURCE_LABELS = {"override": "command line", "checkpoint": "checkpoint", "default": "default",
                  "given": "given"}


def decoding_summary(predictor) -> str:
    """One line: every decoding setting, the calibration, and where each comes from."""
    cfg, src = predictor.decode_config, predictor.decode_sources
    parts = [f"{f.name} {getattr(cfg, f.name):g} ({_SOURCE_LABELS[src[f.name]]})"
             for f in DECODE_FIELDS]
    knots = cfg.quality_knots
    parts.append("quality calibration " + (f"{len(knots)} knots ("
                                           f"{_SOURCE_LABELS[src['quality_knots']]})"
                                           if knots else "none (quality = raw heat)"))
    return "decoding: " + ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vita-grasp infer | scripts/inference.py",
        description="Predict planar grasps for image files with a VITA-Grasp checkpoint; writes "
                    "<stem>_grasps.json and <stem>_vis.png per image.")
    p.add_argument("--checkpoint", required=True,
                   help="best_model.pt / last.pt / .safetensors, or the name of a shipped model "
                        "(cornell, realtime, sim: `vita-grasp weights list`)")
    p.add_argument("--image_path", required=True, help="an image file, a folder or a glob")
    p.add_argument("--output_dir", required=True)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--dtype", default="auto",
                   help="auto (bf16 on CUDA, fp32 on CPU), float32, ...")
    add_decode_arguments(p)
    p.add_argument("--top_k_draw", type=int, default=5, help="draw the best K grasps")
    p.add_argument("--pretrained_model", default=None,
                   help="override the encoder reference stored in the checkpoint (local copy)")
    p.add_argument("--no_vis", action="store_true", help="only write the JSON files")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import cv2

    from ..checkpoint import CheckpointError
    from ..predictor import load_predictor

    images = collect_images(args.image_path)
    if not images:
        print(f"inference: no image found at {args.image_path!r} (a file, a folder or a glob)",
              file=sys.stderr)
        return 2
    try:
        predictor = load_predictor(args.checkpoint, device=args.device, dtype=args.dtype,
                                   pretrained_model=args.pretrained_model,
                                   **decode_arguments(args))
    except CheckpointError as e:  # not found, not a checkpoint, encoder not available ...
        print(f"inference: {e}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    print(f"{len(images)} image(s), checkpoint {args.checkpoint}, device {predictor.device}")
    print(decoding_summary(predictor))
    decoding = {**predictor.decode_config.to_dict(),
                "sources": {k: _SOURCE_LABELS[v] for k, v in predictor.decode_sources.items()}}
    ok, failed, used = 0, [], set()
    for path in images:
        rgb = read_rgb(path)
        if rgb is None:
            print(f"  SKIP {path}: unreadable or not an image")
            failed.append(str(path))
            continue
        try:
            pred = predictor.predict(rgb)
        except (ValueError, RuntimeError) as e:
            print(f"  SKIP {path}: {e}")
            failed.append(str(path))
            continue
        stem = _unique_stem(path, used)
        h, w = rgb.shape[:2]
        record = {"image": str(path), "image_width": w, "image_height": h,
                  "grasps": [g.to_dict() for g in pred.grasps],
                  "timings": {k: round(v, 5) for k, v in pred.timings.items()},
                  "checkpoint": str(args.checkpoint), "decoding": decoding,
                  "units": "x, y, width, height in source pixels (y down); angle in radians in "
                           "[-pi/2, pi/2) from +x towards +y; quality, object_score in [0, 1]"}
        (out / f"{stem}_grasps.json").write_text(json.dumps(record, indent=2))
        if not args.no_vis:
            vis = visualize(rgb, pred, args.top_k_draw)
            cv2.imwrite(str(out / f"{stem}_vis.png"), cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
        best = pred.grasps[0] if pred.grasps else None
        desc = f"no grasp above score_threshold {predictor.score_threshold:g}"
        if best is not None:
            desc = (f"best ({best.x:.0f}, {best.y:.0f}) {np.degrees(best.angle):+.0f} deg width "
                    f"{best.width:.0f} px q {best.quality:.2f}")
        t = sum(pred.timings.values())
        print(f"  {path.name}: {w}x{h}, {len(pred.grasps)} grasp(s), {desc}, {1000 * t:.0f} ms")
        ok += 1
    print(f"done: {ok} image(s) -> {out}" + (f"; {len(failed)} skipped" if failed else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
