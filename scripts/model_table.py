#!/usr/bin/env python3
"""Print the README's model table from the code (parameter counts on the meta device, no weights).

    .venv/bin/python scripts/model_table.py            # prints the markdown table
    .venv/bin/python scripts/model_table.py --check README.md   # exit 1 if README's copy is stale
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

BEGIN, END = "<!-- model-table:begin -->", "<!-- model-table:end -->"


def table() -> str:
    import torch

    from vita_grasp_core import ModelConfig, build_model
    from vita_grasp_core.backbones import get_spec, list_backbones
    from vita_grasp_core.conventions import IMAGENET_MEAN

    rows = ["| backbone | encoder (frozen) | decoder (trainable) | input canvas (H x W) "
            "| patch unit "
            "| feature maps fed to the decoder | normalisation | default weights |",
            "|---|---|---|---|---|---|---|---|"]
    for bb in list_backbones():
        cfg = ModelConfig(backbone=bb)
        with torch.device("meta"):
            m = build_model(cfg)
        enc = sum(p.numel() for p in m.backbone.parameters())
        dec = m.trainable_parameters()
        h, w = cfg.input_size
        s = m.backbone.stride
        feats = f"{len(cfg.feature_layers)} x {m.backbone.out_channels[0]} ch at " \
                f"{h // s}x{w // s} " \
                f"(layers {', '.join(map(str, cfg.feature_layers))})"
        norm = "ImageNet" if tuple(m.backbone.mean) == IMAGENET_MEAN else "CLIP"
        rows.append(f"| `{bb}` | {enc / 1e6:.1f} M | {dec / 1e6:.2f} M | {h} x {w} | "
                    f"{m.backbone.size_multiple} px | {feats} | {norm} | "
                    f"`{get_spec(bb).hub_id}` |")
    oh, ow = ModelConfig().output_size
    rows.append("")
    rows.append(f"Output: 5 maps at {oh} x {ow} for every backbone. Counts from "
                "`scripts/model_table.py` (the Qwen2-VL encoder count excludes its 44.6 M merger, "
                "which VITA-Grasp does not use).")
    return "\n".join(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", type=Path,
                    help="compare with the table between the markers in FILE")
    ap.add_argument("--write", type=Path, help="replace the table between the markers in FILE")
    args = ap.parse_args()
    t = table()
    target = args.check or args.write
    if target is None:
        print(t)
        return 0
    text = target.read_text()
    if BEGIN not in text or END not in text:
        print(f"{target}: markers {BEGIN} / {END} not found", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{t}\n{END}{tail}"
    if args.check:
        if new != text:
            print(f"{target}: model table is stale; run scripts/model_table.py --write {target}",
                  file=sys.stderr)
            return 1
        return 0
    target.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
