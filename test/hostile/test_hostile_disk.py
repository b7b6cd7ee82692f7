"""Full and read-only disks under every command that writes (issue 21 items 5 and 8): small
tmpfs file systems (skipped where this process cannot mount). Each command must stop with one
line that says what happened ("disk full", "read-only file system") and a non-zero exit, never
a traceback, never "done" with exit 0; nothing it wrote before may be left half-written."""
from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.small_fs import fill, small_fs

from hostile.harness import Case


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    """``{"ro": read-only fs, "full": 0 bytes free, "almost": ~96 kB free}`` (module-wide)."""
    base = tmp_path_factory.mktemp("disks")
    with small_fs(base / "ro", size_kb=256, read_only=True,
                  files={"note.txt": b"read-only\n"}) as ro, \
            small_fs(base / "full", size_kb=256) as full, \
            small_fs(base / "almost", size_kb=512) as almost:
        fill(full, leave=0)
        fill(almost, leave=96_000)
        yield {"ro": ro, "full": full, "almost": almost}


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy Cornell set and a tiny 1-epoch config for it (feature cache variant too)."""
    from vita_grasp_core.data.toy import write_toy_dataset
    from vita_grasp_core.training.config_files import load_raw
    from vita_grasp_core.training.train_config import build_config

    d = tmp_path_factory.mktemp("disk_toy")
    write_toy_dataset(d / "cornell", "cornell", frames=6, size=(96, 128), seed=3)
    common = [f"data.root={d / 'cornell'}", "data.format=cornell", "data.val_fraction=0.34",
              "data.train_scenes=null", "data.val_scenes=null", "model.input_size=[56,70]",
              "model.output_size=[48,64]", "model.decoder_channels=16", "train.epochs=1",
              "train.batch_size=4", "train.calibrate=false", "data.memory_cache=false"]
    (d / "tiny.yaml").write_text(build_config(load_raw("tiny.yaml"), common).to_yaml())
    return d


def cases(disks, toy, ckpt, photo) -> list[Case]:
    ro, full, almost = disks["ro"], disks["full"], disks["almost"]
    train = ["train", "--config", toy / "tiny.yaml", "--no_progress"]
    c = []
    for name, root, say in (("ro", ro, "read-only"), ("full", full, "disk full"),
                            ("almost_full", almost, "disk full")):
        c += [Case(f"disk:{name}", "train_output", argv=[*train, "--output_dir", root / "run"],
                   must_say=say),
              Case(f"disk:{name}", "feature_cache", must_say=say, argv=[
                  *train, "--output_dir", toy / f"run_fc_{name}", "--set",
                  "train.feature_cache=true", "--set", "model.freeze_vit=true", "--set",
                  f"train.feature_cache_dir={root / 'cache'}"]),
              Case(f"disk:{name}", "infer", must_say=say, argv=[
                  "infer", "--checkpoint", ckpt, "--image_path", photo, "--output_dir",
                  root / "infer", "--device", "cpu"],
                   # a small photo's pictures may fit in what the cases before it left free
                   expect="any" if name == "almost_full" else "fail"),
              Case(f"disk:{name}", "export", must_say=say, timeout=120, argv=[
                  "export", "--checkpoint", ckpt, "--out", root / "m.onnx",
                  "--check-frames", "0"]),
              Case(f"disk:{name}", "synth", must_say=say, argv=[
                  "synth", "--out", root / "synth", "--scenes", "1", "--frames", "2",
                  "--quiet"]),
              Case(f"disk:{name}", "eval_out", must_say=say, argv=[
                  "eval", "--checkpoint", ckpt, "--dataset_root", toy / "cornell", "--device",
                  "cpu", "--out", root / "eval" / "e.json", "--no_progress"],
                   expect="any" if name == "almost_full" else "fail"),  # a small file fits
              Case(f"disk:{name}", "bag_make", must_say=say, argv=[
                  "bag", "make", "--dataset_root", toy / "cornell", "--out", root / "b.mcap",
                  "--quiet"]),
              ]
    return c


CASE_IDS = [c.id for c in cases({k: Path(k) for k in ("ro", "full", "almost")}, Path("t"), "c",
                                "p")]


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_writing_to_a_bad_disk(case_id, disks, toy, tiny_ckpt, photo, hostile):
    case = next(c for c in cases(disks, toy, tiny_ckpt, photo) if c.id == case_id)
    case.argv = [str(a) for a in case.argv]
    hostile(case)
