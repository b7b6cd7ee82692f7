"""The pick benchmark: protocols, the source registry, outputs, same scenes for every source,
and the command line's one-line errors. Tiny runs (seconds); skipped without pybullet."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

pytest.importorskip("pybullet")

from vita_grasp_core.sim.bench import BenchConfig, results_table, run_bench  # noqa: E402
from vita_grasp_core.sim.episode import ViewSpec  # noqa: E402
from vita_grasp_core.sim.objects import parse_object_set  # noqa: E402
from vita_grasp_core.sim.sources import (  # noqa: E402
    AnalyticSource,
    GraspAnswer,
    GraspSource,
    SourceOptions,
    available_sources,
    make_source,
)

OBJECTS = tuple(parse_object_set("random:900-909"))


class Recording(GraspSource):
    """Answers nothing, remembers what it saw (hash of every frame)."""

    name = "recording"

    def __init__(self):
        self.seen = []

    def plan(self, obs, rng):
        self.seen.append(hashlib.sha1(obs.rgb.tobytes() + obs.depth.tobytes()).hexdigest())
        return GraspAnswer(reason="no_grasp")


def _cfg(**kw):
    base = dict(objects=OBJECTS, object_spec="random:900-909", trials=3, seed=0, plain=True,
                view=ViewSpec(0.55))
    base.update(kw)
    return BenchConfig(**base)


def test_analytic_picks_singulated_objects_and_writes_the_outputs(tmp_path):
    s = run_bench(_cfg(), AnalyticSource(), tmp_path, progress=False, log=lambda m: None)
    assert s["attempts"] == 3 and s["objects"] == 3
    assert s["successes"] >= 2  # the baseline with the ground-truth mask
    assert s["success_rate"] == pytest.approx(s["successes"] / 3)
    assert s["clearance"] == pytest.approx(s["removed"] / 3)
    lines = [json.loads(x) for x in (tmp_path / "trials.jsonl").read_text().splitlines()]
    assert len(lines) == 3 and {x["trial"] for x in lines} == {0, 1, 2}
    for x in lines:
        a = x["answer"]
        assert a["position"] is not None and len(a["quaternion"]) == 4 and a["width_m"] > 0
        assert x["reason"] == "success" or x["reason"] in s["failures"]
    assert json.loads((tmp_path / "summary.json").read_text())["successes"] == s["successes"]
    assert (tmp_path / "strip.png").stat().st_size > 1000
    assert "| analytic | singulated | 3 | 3 |" in (tmp_path / "report.md").read_text()
    assert "analytic" in results_table([s])


def test_clutter_stops_after_two_failures_in_a_row_and_every_source_sees_the_same_scenes():
    cfg = _cfg(protocol="clutter", trials=2, objects_per_scene=5)
    a, b = Recording(), Recording()
    s = run_bench(cfg, a, progress=False, log=lambda m: None)
    run_bench(cfg, b, progress=False, log=lambda m: None)
    assert s["attempts"] == 4 and s["successes"] == 0  # 2 scenes x 2 failures in a row
    assert s["clearance"] == 0.0 and s["objects"] == 10
    assert s["failures"] == {"no_grasp": 4}
    assert a.seen == b.seen and len(set(a.seen)) >= 2  # same frames, scene by scene


def test_clutter_clears_the_table_with_the_analytic_grasp():
    cfg = _cfg(protocol="clutter", trials=1, objects_per_scene=5)
    s = run_bench(cfg, AnalyticSource(), progress=False, log=lambda m: None)
    assert s["objects"] == 5 and s["removed"] >= 3
    assert s["clearance"] == pytest.approx(s["removed"] / 5)
    assert s["success_rate"] == pytest.approx(s["successes"] / s["attempts"])


class Stubborn(GraspSource):
    """Always the same grasp on the bare table (a miss), with one alternative 5 cm away."""

    name = "stubborn"

    def plan(self, obs, rng):
        alt = GraspAnswer(None, (0.25, 0.2, 0.55), (0, 0, 0, 1), 0.05)
        return GraspAnswer(None, (0.2, 0.2, 0.55), (0, 0, 0, 1), 0.05, alternatives=[alt])


def test_retry_next_takes_the_next_grasp_away_from_the_failed_one(tmp_path):
    for retry, second in (("same", 0.2), ("next", 0.25)):
        cfg = _cfg(protocol="clutter", trials=1, objects_per_scene=5, retry=retry)
        s = run_bench(cfg, Stubborn(), tmp_path / retry, progress=False, log=lambda m: None)
        lines = [json.loads(x) for x in (tmp_path / retry / "trials.jsonl").read_text()
                 .splitlines()]
        assert s["attempts"] == 2 and [x["reason"] for x in lines] == ["missed"] * 2
        assert [x["answer"]["position"][0] for x in lines] == [0.2, second]
        assert lines[1].get("retry_skipped", 0) == (retry == "next")
    with pytest.raises(ValueError, match="retry"):
        run_bench(_cfg(retry="again"), Stubborn(), progress=False)


def test_source_registry():
    sources, problems = available_sources()
    assert {"random", "analytic", "api"} <= set(sources) and problems == []
    with pytest.raises(ValueError) as e:
        make_source("magic")
    assert "magic" in str(e.value) and "analytic" in str(e.value)
    with pytest.raises(ValueError, match="--checkpoint"):
        make_source("api", SourceOptions())
    rng = np.random.default_rng(0)
    src = make_source("random")
    s = run_bench(_cfg(trials=2), src, progress=False, log=lambda m: None)
    assert s["attempts"] == 2
    assert rng is not None


def test_api_source_with_a_tiny_checkpoint(tiny_checkpoint, tmp_path):
    src = make_source("api", SourceOptions(str(tiny_checkpoint), "cpu"))
    s = run_bench(_cfg(trials=1), src, tmp_path, progress=False, log=lambda m: None)
    rec = json.loads((tmp_path / "trials.jsonl").read_text().splitlines()[0])
    assert rec["answer"]["latency_ms"] > 0
    assert rec["reason"] != "no_grasp" or rec["answer"]["pixel"] is None
    assert s["attempts"] == 1
    if rec["answer"]["pixel"] is not None:  # the depth check (default) says what it did
        assert "clear" in rec["answer"]["depth_check"]["summary"]
    off = make_source("api", SourceOptions(str(tiny_checkpoint), "cpu", depth_check=None))
    assert off.describe().endswith("no depth check)") and off.depth_check is False


def test_api_source_takes_decoding_settings(tiny_checkpoint):
    src = make_source("api", SourceOptions(str(tiny_checkpoint), "cpu",
                                           decode=(("score_threshold", 0.0), ("tta", 2))))
    assert src.predictor.decode_config.score_threshold == 0.0
    assert src.predictor.decode_config.tta == 2
    assert src.describe().endswith("score_threshold 0, tta 2)")


def test_api_source_depth_fallback_picks_where_the_model_has_no_grasp(tiny_checkpoint,
                                                                       tmp_path):
    """A model with nothing above its threshold: no_grasp without the fallback; with it the
    analytic grasp found in depth is executed (quality 0) and lifts the object."""
    opts = dict(decode=(("score_threshold", 1.0),))
    off = make_source("api", SourceOptions(str(tiny_checkpoint), "cpu", **opts))
    s_off = run_bench(_cfg(trials=2), off, tmp_path / "off", progress=False, log=lambda m: None)
    assert s_off["failures"] == {"no_grasp": 2}
    on = make_source("api", SourceOptions(str(tiny_checkpoint), "cpu", fallback=True, **opts))
    assert on.describe().endswith("depth fallback)")
    s_on = run_bench(_cfg(trials=2), on, tmp_path / "on", progress=False, log=lambda m: None)
    assert s_on["successes"] >= 1 and "no_grasp" not in s_on["failures"]
    for line in (tmp_path / "on" / "trials.jsonl").read_text().splitlines():
        answer = json.loads(line)["answer"]
        assert answer["pixel"]["quality"] == 0.0 and "above the surface" in answer["fallback"]


@pytest.mark.parametrize("argv, words", [
    (["bench", "--objects", "spoon"], ["unknown object 'spoon'", "mug"]),
    (["bench", "--source", "magic"], ["unknown grasp source 'magic'", "analytic"]),
    (["bench", "--image-size", "640x640"], ["neither 16:9 nor 4:3"]),
    (["bench", "--source", "api"], ["--checkpoint"]),
    (["bench", "--trials", "0"], ["--trials"]),
    (["bench", "--score_threshold", "1.5"], ["score_threshold", "1.5"]),
    (["bench", "--depth-check-set", "margin=-1"], ["depth check", "margin"]),
    (["bench", "--depth-check-set", "magic=1"], ["magic", "margin"]),
    (["bench", "--retry-distance", "-1"], ["--retry-distance"]),
    (["label", "--out", "x", "--objects", "random:5-1"], ["random:5-1"]),
    (["magic"], ["unknown command"]),
])
def test_cli_bad_arguments_are_one_line_and_exit_2(argv, words, capsys, tmp_path):
    from vita_grasp_core.sim.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    for w in words:
        assert w in err


def _approach_tilt_deg(quaternion) -> float:
    """Angle between a pose's approach (+z) and the camera's optical axis [deg]."""
    x, y, z, w = quaternion
    return float(np.degrees(np.arccos(min(1.0, abs(1 - 2 * (x * x + y * y))))))


@pytest.mark.parametrize("approach", ["camera", "table"])
def test_approach_table_comes_straight_down_under_a_tilted_camera(tmp_path, approach):
    """Every source orients its poses as ``--approach`` says: camera = the optical axis
    (CONVENTIONS), table = the table's normal, 18 degrees from the axis of this camera."""
    src = AnalyticSource(SourceOptions(approach=approach))
    s = run_bench(_cfg(view=ViewSpec(0.55, tilt=18.0, azimuth=40.0)), src, tmp_path,
                  progress=False, log=lambda m: None)
    assert s["successes"] >= 2
    for line in (tmp_path / "trials.jsonl").read_text().splitlines():
        tilt = _approach_tilt_deg(json.loads(line)["answer"]["quaternion"])
        assert tilt == pytest.approx(18.0 if approach == "table" else 0.0, abs=1.0)
