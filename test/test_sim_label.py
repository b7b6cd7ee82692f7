"""Physics-labelled data: the GraspNet layout that `data check` and the data loader read
unchanged, labels that replay as successful grasps from the files alone, resuming a killed run,
and refusing to mix settings. One tiny scene (seconds); skipped without pybullet."""
from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("pybullet")

from vita_grasp_core.sim.label import LabelSettings, label_dataset  # noqa: E402
from vita_grasp_core.sim.objects import parse_object_set  # noqa: E402

SETTINGS = LabelSettings(tuple(parse_object_set("random:000-009")), "random:000-009", seed=3,
                         views=2, candidates=10, kind="singulated", tray="no")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim_label")
    s = label_dataset(root, SETTINGS, [0, 1], workers=1, progress=False, log=lambda m: None)
    return root, s


def test_layout_reads_with_data_check_and_the_loader(labelled):
    from vita_grasp_core.cli.data import check_dataset
    from vita_grasp_core.data.formats import load_frame, scan_dataset

    root, s = labelled
    assert s["views_now"] == 4 and s["frames_now"] >= 3 and s["positives"] > 0
    r = check_dataset(root, full=True, progress=False)
    assert r["format"] == "graspnet" and r["problems"] == {}
    assert r["frames_usable"] == s["frames_total"] == s["frames_now"]
    assert r["rects_total"] == s["positives"]
    res = scan_dataset(root)
    frame = load_frame(res.frames[0], depth=True, require_label=True)
    assert frame.rgb.shape == (480, 640, 3) and frame.depth is not None
    assert frame.label.max() >= 1 and len(frame.grasps) > 0
    cam = root / "scenes" / "scene_0000" / "kinect"
    K = np.load(cam / "camK.npy")
    assert K.shape == (3, 3) and K[0, 0] == pytest.approx(421.03, abs=0.01)
    meta = json.loads((cam / "meta" / "0000.json").read_text())
    assert meta["kind"] == "singulated" and meta["positives"] + meta["negatives"] <= 10


def test_positive_labels_replay_as_successful_grasps_from_the_files(labelled):
    """From the written files alone (rgb-registered depth in mm, camK, camera pose): each positive
    rectangle, converted with the node's convention, lifts the object in the rebuilt scene."""
    import cv2

    from vita_grasp_core.grasp import graspnet_rects_to_grasps, grasps_from_array
    from vita_grasp_core.sim.camera import CameraPose, SimCamera
    from vita_grasp_core.sim.candidates import pixel_to_pose
    from vita_grasp_core.sim.episode import scene_spec
    from vita_grasp_core.sim.gripper import Gripper, grasp_to_world

    root, _ = labelled
    cam = root / "scenes" / "scene_0000" / "kinect"
    spec = scene_spec(SETTINGS.seed, 0, SETTINGS.objects, kind="singulated", tray=False)
    ok = tried = 0
    with spec.build(SimCamera()) as world:
        gripper = Gripper(world)
        state = world.save()
        for v in range(2):
            rect = cam / "rect" / f"{v:04d}.npy"
            if not rect.is_file():
                continue
            depth = cv2.imread(str(cam / "depth" / f"{v:04d}.png"), cv2.IMREAD_UNCHANGED)
            depth = depth.astype(np.float32) / 1000.0
            T = np.array(json.loads((cam / "meta" / f"{v:04d}.json").read_text())
                         ["camera_to_world"])
            pose = CameraPose(T[:3, :3], T[:3, 3])
            for g in grasps_from_array(graspnet_rects_to_grasps(np.load(rect))):
                gp = pixel_to_pose(g, depth, np.load(cam / "camK.npy"))
                world.restore(state)
                gripper.park()
                pw, Rw = grasp_to_world(pose, gp.position, gp.quaternion)
                ok += gripper.execute(pw, Rw, gp.width_m).success
                tried += 1
    assert tried >= 3
    print(f"replayed {ok}/{tried} positive labels")
    assert ok >= 0.8 * tried, f"{ok}/{tried} labels replayed"


def test_resume_continues_and_other_settings_are_refused(labelled, tmp_path):
    root, first = labelled
    again = label_dataset(root, SETTINGS, [0, 1], workers=1, progress=False, log=lambda m: None)
    assert again["views_now"] == 0 and again["frames_total"] == first["frames_total"]
    cam = root / "scenes" / "scene_0001" / "kinect"
    (cam / "meta" / "0001.json").unlink()  # as if killed while writing view 1 of scene 1
    rerun = label_dataset(root, SETTINGS, [0, 1], workers=1, progress=False, log=lambda m: None)
    assert rerun["views_now"] == 1 and rerun["frames_total"] == first["frames_total"]
    assert (cam / "meta" / "0001.json").is_file()
    other = LabelSettings(SETTINGS.objects, SETTINGS.object_spec, seed=4, views=2,
                          candidates=10, kind="singulated", tray="no")
    with pytest.raises(ValueError, match="seed: 3 there, 4 now"):
        label_dataset(root, other, [0], workers=1, progress=False, log=lambda m: None)


@pytest.mark.slow
def test_training_evaluation_and_bag_make_read_it_unchanged(labelled, tmp_path, capsys):
    from vita_grasp_core.cli import main

    root, _ = labelled
    out = tmp_path / "run"
    assert main(["train", "--config", "config/tiny.yaml", "--dataset_root", str(root),
                 "--output_dir", str(out), "--no_progress", "--set", "data.train_scenes=[0]",
                 "--set", "data.val_scenes=[1]", "--set", "train.epochs=1"]) == 0
    assert (out / "best_model.pt").is_file()
    assert main(["eval", "--checkpoint", str(out / "best_model.pt"), "--dataset_root",
                 str(root), "--split", "all", "--scenes", "1", "--device", "cpu",
                 "--no_progress"]) == 0
    assert "top-1 accuracy" in capsys.readouterr().out
    pytest.importorskip("rclpy")
    pytest.importorskip("vita_grasp.msg")
    assert main(["bag", "make", "--dataset_root", str(root), "--split", "all", "--out",
                 str(tmp_path / "sim.mcap"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "/depth_to_rgb/image_raw" in printed and "/ground_truth/grasps" in printed
