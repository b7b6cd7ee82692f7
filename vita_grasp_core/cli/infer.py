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

Unreadable images, and images over ``--max_pixels`` (default 4096 x 3072) or too short for the
size their header declares, are reported and skipped (never decoded); the exit code is 1 when no
image worked. A checkpoint that cannot be loaded (missing, a directory, not a checkpoint,
truncated or corrupt, NaN weights, an encoder that is not available offline: pass
``--pretrained_model DIR``), an unknown ``--device``, an ``--output_dir`` that is a file or not
writable, and a failed write (disk full) are one line on stderr, exit 2.
"""
from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

import numpy as np

from ..cli_errors import CommandError, one_line_errors, writable_dir
from ..decoding_settings import DECODE_FIELDS, add_decode_arguments, decode_arguments
from ..fileio import os_error_text
from ..image_decode import DEFAULT_MAX_PIXELS, ImageDecodeError, read_image

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


def read_rgb(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """``HxWx3 uint8 RGB`` (grey and 16-bit images converted, alpha dropped). Images over
    ``max_pixels`` or too short for their declared size are refused before decoding.

    Raises:
        ImageDecodeError, OSError: with a one-line reason.
    """
    return read_image(path, color=True, max_pixels=max_pixels)


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
    p.add_argument("--max_pixels", type=int, default=DEFAULT_MAX_PIXELS,
                   help="refuse images with more pixels, before decoding them (default "
                        f"{DEFAULT_MAX_PIXELS} = 4096 x 3072)")
    return p


def _write_outputs(out: Path, stem: str, record: dict, vis: np.ndarray | None) -> None:
    """``<stem>_grasps.json`` (+ ``<stem>_vis.png``); a failed write (full or read-only disk) is
    a :class:`CommandError`: the run stops instead of reporting pictures it did not write."""
    import cv2

    from ..fileio import atomic_write

    files = {f"{stem}_grasps.json": json.dumps(record, indent=2).encode()}
    if vis is not None:  # encoded in memory: a failed write is an OSError that says why
        ok, png = cv2.imencode(".png", cv2.cvtColor(vis, cv2.COLOR_RGB2BGR))
        if not ok:
            raise CommandError(f"cannot write {out / f'{stem}_vis.png'}: OpenCV could not "
                               "encode it")
        files[f"{stem}_vis.png"] = png.tobytes()
    for name, data in files.items():  # complete or absent, never half-written
        try:
            atomic_write(out / name, lambda p, d=data: p.write_bytes(d), durable=False)
        except OSError as e:
            raise CommandError(f"cannot write {os_error_text(e, out / name)}") from None


def _describe(predictor, pred) -> str:
    best = pred.grasps[0] if pred.grasps else None
    if best is None:
        return f"no grasp above score_threshold {predictor.score_threshold:g}"
    return (f"best ({best.x:.0f}, {best.y:.0f}) {np.degrees(best.angle):+.0f} deg width "
            f"{best.width:.0f} px q {best.quality:.2f}")


@one_line_errors("inference")
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from ..checkpoint import CheckpointError
    from ..image_decode import check_max_pixels
    from ..predictor import load_predictor

    try:
        check_max_pixels(args.max_pixels)
    except ValueError as e:
        raise CommandError(f"--max_pixels: {e}") from None
    if not 0 <= args.top_k_draw <= 1000:  # -1 drew all grasps but the last
        raise CommandError(f"--top_k_draw must be in [0, 1000], got {args.top_k_draw}")
    images = collect_images(args.image_path)
    if not images:
        raise CommandError(f"no image found at {args.image_path!r} (a file, a folder or a glob)")
    out = writable_dir(args.output_dir)
    try:
        predictor = load_predictor(args.checkpoint, device=args.device, dtype=args.dtype,
                                   pretrained_model=args.pretrained_model,
                                   **decode_arguments(args))
    except (CheckpointError, ValueError) as e:  # not found, not a checkpoint, damaged, encoder
        raise CommandError(str(e) or type(e).__name__) from None  # not available, bad device
    print(f"{len(images)} image(s), checkpoint {args.checkpoint}, device {predictor.device}")
    print(decoding_summary(predictor))
    decoding = {**predictor.decode_config.to_dict(),
                "sources": {k: _SOURCE_LABELS[v] for k, v in predictor.decode_sources.items()}}
    ok, failed, used = 0, [], set()
    for path in images:
        try:
            rgb = read_rgb(path, args.max_pixels)
            pred = predictor.predict(rgb)
        except (ImageDecodeError, OSError, ValueError, RuntimeError) as e:
            print(f"  SKIP {path}: {' '.join(str(e).split())}")
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
        _write_outputs(out, stem, record,
                       None if args.no_vis else visualize(rgb, pred, args.top_k_draw))
        t = sum(pred.timings.values())
        print(f"  {path.name}: {w}x{h}, {len(pred.grasps)} grasp(s), "
              f"{_describe(predictor, pred)}, {1000 * t:.0f} ms")
        ok += 1
    print(f"done: {ok} image(s) -> {out}" + (f"; {len(failed)} skipped" if failed else ""))
    if not ok:
        raise CommandError(f"no usable image: {len(failed)} skipped (reasons above)", status=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
