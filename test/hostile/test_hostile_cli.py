"""Bad command lines for every core command: unusable paths for every file argument, numbers
that are not numbers (NaN, inf, huge, negative), unknown choices. Each must end with one clear
line and a non-zero exit (2 for bad arguments), never a traceback, never exit 0."""
from __future__ import annotations

import pytest

from hostile.harness import Case, pick

#: Numbers no option of these commands accepts.
BAD_NUMBERS = ("nan", "inf", "-inf", "-1", "1e308", "banana", "")
#: name -> the bad_paths key used in place of an input file.
FILE_FAULTS = ("missing", "directory", "empty", "random_bytes", "text", "fifo", "dev_null",
               "through_a_file", "name_too_long", "pickle")


def _infer(ckpt, image, out, *extra):
    return ["infer", "--checkpoint", ckpt, "--image_path", image, "--output_dir", out,
            "--device", "cpu", *extra]


def _eval(ckpt, root, *extra):
    return ["eval", "--checkpoint", ckpt, "--dataset_root", root, "--device", "cpu", *extra]


def infer_cases(p, ckpt, photo, out):
    cases = [Case("cli:infer", "valid", argv=_infer(ckpt, photo, out), expect="ok",
                  reference=True)]
    cases += [Case("cli:infer", f"checkpoint_{k}", argv=_infer(p[k], photo, out))
              for k in FILE_FAULTS]
    cases += [Case("cli:infer", f"image_{k}", argv=_infer(ckpt, p[k], out))
              for k in FILE_FAULTS]
    cases += [Case("cli:infer", f"output_dir_{k}", argv=_infer(ckpt, photo, p[k]))
              for k in ("empty", "dev_null", "through_a_file", "fifo", "name_too_long")]
    for opt in ("--score_threshold", "--max_grasps", "--min_distance", "--smooth_sigma",
                "--top_k_draw", "--max_pixels"):
        cases += [Case("cli:infer", f"{opt[2:]}_{v or 'empty'}", argv=_infer(ckpt, photo, out,
                                                                            opt, v))
                  for v in BAD_NUMBERS if not (opt == "--top_k_draw" and v == "1e308")]
    cases += [Case("cli:infer", f"device_{d}", argv=_infer(ckpt, photo, out, "--device", d),
                   must_say="device") for d in ("banana", "cuda:99", "meta", "mps", "cpu:x")]
    cases += [Case("cli:infer", f"dtype_{d}", argv=_infer(ckpt, photo, out, "--dtype", d))
              for d in ("banana", "int8")]
    cases += [Case("cli:infer", f"pretrained_model_{k}", argv=_infer(ckpt, photo, out,
                                                                    "--pretrained_model", p[k]))
              for k in ("missing", "empty", "dev_null", "directory")]
    return cases


def eval_cases(p, ckpt, out, root="root"):
    cases = [Case("cli:eval", f"checkpoint_{k}", argv=_eval(p[k], out)) for k in FILE_FAULTS]
    cases += [Case("cli:eval", f"dataset_root_{k}", argv=_eval(ckpt, p[k])) for k in FILE_FAULTS]
    cases += [Case("cli:eval", f"score_threshold_{v or 'empty'}",
                   argv=_eval(ckpt, p["directory"], "--score_threshold", v))
              for v in BAD_NUMBERS]
    # found from outside: 99999999999 loader workers hung, -1 / 0 folds or seeds exited 0
    for opt in ("--batch_size", "--num_workers", "--max_frames", "--fold", "--folds", "--seed",
                "--block_size"):
        cases += [Case("cli:eval", f"{opt[2:]}_{v or 'empty'}", must_say=opt,
                       argv=_eval(ckpt, root, opt, v), timeout=60)
                  for v in (*BAD_NUMBERS, "99999999999") if (opt, v) != ("--seed", "99999999999")]
    return cases


def export_cases(p, ckpt, out):
    base = ["export", "--checkpoint"]
    cases = [Case("cli:export", f"checkpoint_{k}", argv=[*base, p[k], "--out", f"{out}/m.onnx"])
             for k in FILE_FAULTS]
    cases += [Case("cli:export", f"out_{k}", argv=[*base, ckpt, "--out", p[k]], timeout=120)
              for k in ("directory", "fifo", "dev_null", "through_a_file", "name_too_long")]
    # found from outside: --check-frames 99999999999 took minutes and 1.4 GB, --opset 99999999999
    # a traceback, --tolerance inf passed any check
    for opt in ("--opset", "--batch", "--check-frames", "--tolerance"):
        cases += [Case("cli:export", f"{opt[2:]}_{v or 'empty'}", timeout=60, must_say=opt,
                       argv=[*base, ckpt, "--out", f"{out}/m.onnx", opt, v])
                  for v in (*BAD_NUMBERS, "99999999999")]
    return cases


#: ``bag`` options and the numbers none of them takes (beyond BAD_NUMBERS' NaN, inf, ...).
BAG_NUMBERS = {"make": {"--rate": (), "--jpeg_quality": ("101",), "--max_frames": ("0",),
                        "--start_time": ("1e12",)},
               "play": {"--rate": ("0", "1e6"), "--delay": ("1e9",), "--wait_timeout": (),
                        "--ack_timeout": (), "--qos_depth": ("0",), "--clock": ("1e9",)},
               "record": {"--duration": ("0",), "--max_messages": ("0",),
                          "--idle_timeout": ("0",), "--qos_depth": ("0",),
                          "--flush_interval": ("1e9",)}}


def bag_cases(root, bag, out, env=None):
    """``bag make/play/record`` with numbers that are not numbers, out of range or absurd (a NaN
    play rate or record duration used to hang or record forever): refused before any ROS
    work."""
    base = {"make": ["bag", "make", "--dataset_root", root, "--out", f"{out}/b.mcap",
                     "--compressed", "--quiet"],
            "play": ["bag", "play", bag, "--quiet"],
            "record": ["bag", "record", "--topics", "/x", "--out", f"{out}/r.mcap", "--quiet"]}
    cases = []
    for cmd, opts in BAG_NUMBERS.items():
        for opt, extra in opts.items():
            bad = [v for v in BAD_NUMBERS if not (opt == "--start_time" and v == "")]
            cases += [Case("cli:bag", f"{cmd}_{opt[2:]}_{v or 'empty'}",
                           argv=[*base[cmd], opt, v], env=env or {}) for v in (*bad, *extra)]
    return cases


@pytest.fixture(scope="module")
def all_cases(bad_paths, tiny_ckpt, photo, tmp_path_factory):
    from vita_grasp_core.data.toy import write_toy_dataset

    out = str(tmp_path_factory.mktemp("cli_out"))
    root = tmp_path_factory.mktemp("cli_toy")
    write_toy_dataset(root, "cornell", frames=4, size=(48, 64))
    return (infer_cases(bad_paths, tiny_ckpt, photo, out)
            + eval_cases(bad_paths, tiny_ckpt, out, str(root))
            + export_cases(bad_paths, tiny_ckpt, out))


#: Case ids, known before the fixtures exist (the paths are filled in at run time).
CASE_NAMES = [c.id for c in (
    infer_cases({k: k for k in FILE_FAULTS}, "ck", "ph", "out")
    + eval_cases({k: k for k in FILE_FAULTS}, "ck", "out")
    + export_cases({k: k for k in FILE_FAULTS}, "ck", "out"))]


@pytest.mark.parametrize("case_id", pick(CASE_NAMES, 16))
def test_bad_command_line(case_id, all_cases, hostile):
    by_id = {c.id: c for c in all_cases}
    group = case_id.split("/")[0]
    ref = next((c for c in all_cases if c.group == group and c.reference), None)
    hostile(by_id[case_id], reference=ref)


@pytest.fixture(scope="module")
def bag_setup(tmp_path_factory):
    """A toy data set, a bag made from it and an isolated ROS environment."""
    pytest.importorskip("rclpy")
    from vita_grasp_core.data.toy import write_toy_dataset
    from vita_grasp_ros.bag.make import make_bag
    from vita_grasp_ros.testing import ros_env

    d = tmp_path_factory.mktemp("bag_cli")
    write_toy_dataset(d / "cornell", "cornell", frames=2, size=(48, 64), seed=3)
    make_bag(d / "cornell", d / "ok.mcap", progress=False)
    env = {k: v for k, v in ros_env(d).items() if k.startswith(("ROS_", "RMW_"))}
    return bag_cases(d / "cornell", d / "ok.mcap", d / "out", env)


BAG_CASE_NAMES = [c.id for c in bag_cases("r", "b", "o")]


@pytest.mark.parametrize("case_id", pick(BAG_CASE_NAMES, 8))
def test_bad_bag_option(case_id, bag_setup, hostile):
    case = next(c for c in bag_setup if c.id == case_id)
    case.argv = [str(a) for a in case.argv]
    hostile(case)
