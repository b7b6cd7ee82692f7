"""``vita-grasp export``: the command line of :mod:`.export` (ONNX export + check)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..bounds import Range, check_bounds, count
from ..choices import FP16, FP32, INT8, ONNXRUNTIME_ENGINE
from ..cli_errors import CommandError, one_line_errors, output_file
from ..export import DEFAULT_OPSET, ExportError, export_checkpoint, file_sha256
from ..fileio import os_error_text


def _human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="vita-grasp export",
        description="Export a checkpoint's whole network (frozen encoder + decoder, normalised "
                    "pixel_values -> the 5 activated maps) to ONNX with its config, decoding "
                    "settings and mean/std as metadata, then check the exported maps against "
                    "PyTorch. Exit status: 0 exported and checked, 1 the check failed (the file "
                    "is removed), 2 bad arguments, checkpoint or environment.")
    p.add_argument("--checkpoint", required=True, help="training checkpoint (best_model.pt) or a "
                   "shipped model name (`vita-grasp weights list`)")
    p.add_argument("--out", default=None, help="output .onnx path (weights over 1 GiB go to "
                   "OUT.data beside it); default: the cache file that GraspPredictor."
                   f"from_checkpoint(engine='{ONNXRUNTIME_ENGINE}') and the node use, next to the "
                   "checkpoint (pre-export before starting a robot)")
    p.add_argument("--pretrained-model", "--pretrained_model", dest="pretrained_model",
                   default=None, help="local encoder directory overriding the checkpoint's "
                   "reference (offline machines)")
    prec = p.add_mutually_exclusive_group()
    prec.add_argument("--fp16", action="store_true",
                      help="compute in float16 inside the graph (GPU / TensorRT; fp32 I/O)")
    prec.add_argument("--int8", action="store_true",
                      help="dynamic int8 quantisation of the encoder's MatMul/Gemm weights (CPU)")
    p.add_argument("--opset", type=int, default=DEFAULT_OPSET,
                   help=f"ONNX opset (default {DEFAULT_OPSET})")
    p.add_argument("--batch", type=int, default=None,
                   help="fixed batch size (default: dynamic; Qwen2-VL is always fixed, 1)")
    p.add_argument("--external-data", action="store_true",
                   help="always write the weights to OUT.data (default: only above 1 GiB)")
    p.add_argument("--check-frames", type=int, default=3,
                   help="generated frames compared with PyTorch (0 = skip the check)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="max abs map difference allowed (default: fp32 1e-3, fp16 2e-2, "
                        "int8 0.25)")
    return p


#: Ranges of the numeric options (torch's exporter knows opsets 7 to about 20).
ARG_BOUNDS = {"opset": count(7, 30), "batch": count(1, 1024, none=True),
              "check_frames": count(0, 1000), "tolerance": Range(0, 10, none=True)}


@one_line_errors("vita-grasp export", known=(ValueError,))
def main(argv: list[str] | None = None) -> int:
    """Exit status: 0 exported and checked, 1 the check failed, 2 bad input (one line)."""
    args = build_parser().parse_args(argv)
    try:
        check_bounds(args, ARG_BOUNDS, "-", sep="-")
    except ValueError as e:  # --check-frames 99999999999 took minutes and 1.4 GB
        print(f"vita-grasp export: {str(e).replace('_', '-')}", file=sys.stderr)
        return 2
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as e:
        print(f"vita-grasp export: needs the {e.name} package (installed by `make setup`)",
              file=sys.stderr)
        return 2
    precision = FP16 if args.fp16 else INT8 if args.int8 else FP32
    from ..zoo import ZooError, resolve_checkpoint

    try:  # a shipped model's short name or a path
        args.checkpoint = resolve_checkpoint(args.checkpoint)
    except ZooError as e:
        print(f"vita-grasp export: {e}", file=sys.stderr)
        return 2
    if args.out is None:
        from ..onnx_cache import cache_path

        if not Path(args.checkpoint).is_file():
            print(f"vita-grasp export: checkpoint not found: {args.checkpoint}", file=sys.stderr)
            return 2
        if args.batch is not None or args.external_data:
            print("vita-grasp export: --batch / --external-data need --out (the cache file "
                  "always uses the defaults)", file=sys.stderr)
            return 2
        args.out = cache_path(args.checkpoint, file_sha256(args.checkpoint),
                              pretrained_model=args.pretrained_model, precision=precision,
                              opset=args.opset)
    try:
        output_file(args.out)
    except CommandError as e:
        print(f"vita-grasp export: {e}", file=sys.stderr)
        return 2
    print(f"exporting {args.checkpoint} -> {args.out} "
          f"({precision}, opset {args.opset})")
    try:
        res, chk = export_checkpoint(
            args.checkpoint, args.out, pretrained_model=args.pretrained_model,
            precision=precision, opset=args.opset, batch=args.batch,
            external_data=True if args.external_data else None, check=args.check_frames,
            tolerance=args.tolerance)
    except ExportError as e:
        print(f"vita-grasp export: FAILED: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # missing/unwritable paths, a full disk
        print(f"vita-grasp export: {os_error_text(e)}", file=sys.stderr)
        return 2
    except (ValueError, RuntimeError) as e:  # bad files
        print(f"vita-grasp export: {e}", file=sys.stderr)
        return 2
    data = f" + {res.data_path.name} (external data)" if res.data_path else ""
    print(f"wrote {res.path}{data}: {_human_bytes(res.size_bytes)}, {res.precision}, batch "
          f"{res.batch}, {res.seconds:.1f} s")
    if chk is not None:
        print(f"check: {chk.summary()}")
    else:
        print("check: skipped (--check-frames 0)")
    return 0
