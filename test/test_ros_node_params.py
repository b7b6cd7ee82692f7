"""The node's parameter table in this process: the decoding parameters take their defaults from
the checkpoint's stored decoding (a params file or -p overrides them), their descriptors come
from DECODE_FIELDS, a params file can set `checkpoint` and `use_compressed` (the precedence the
launch file relies on), and one validation path refuses bad values at start-up and at run time.
"""
from __future__ import annotations

import pytest

rclpy = pytest.importorskip("rclpy")
pytest.importorskip("vita_grasp.msg")

from fixtures import REPO  # noqa: E402

from vita_grasp_ros.testing import allocate_domain_id, write_tiny_checkpoint  # noqa: E402

pytestmark = [pytest.mark.ros]

STORED = {"score_threshold": 0.05, "max_grasps": 3, "min_distance": 4, "smooth_sigma": 0.5}


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    """A tiny checkpoint with decoding stored in its meta (as training writes it)."""
    import torch
    from conftest import tiny_config

    from vita_grasp_core import build_model
    from vita_grasp_core.checkpoint import save_checkpoint
    from vita_grasp_core.decoding_settings import DecodeConfig

    tmp = tmp_path_factory.mktemp("params")
    torch.manual_seed(0)
    path = save_checkpoint(tmp / "calibrated.pt", build_model(tiny_config()),
                           meta={"epoch": 0, "decode": DecodeConfig(**STORED).to_dict()})
    return {"calibrated": path, "plain": write_tiny_checkpoint(tmp / "plain.pt")}


class _Ctx:
    """An rclpy context initialised with real command-line ROS arguments (rcl parses them)."""

    def __init__(self, tmp_path, ros_args):
        import os

        os.environ.setdefault("ROS_LOG_DIR", str(tmp_path / "log"))
        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.ctx = rclpy.Context()
        rclpy.init(args=["node", "--ros-args", *ros_args], context=self.ctx,
                   domain_id=allocate_domain_id())
        self.nodes = []

    def node(self, cls_name="GraspNode"):
        from vita_grasp_ros import grasp_node

        n = getattr(grasp_node, cls_name)(context=self.ctx)
        self.nodes.append(n)
        return n

    def close(self):
        for n in self.nodes:
            n.stop()
            n.destroy_node()
        rclpy.try_shutdown(context=self.ctx)


@pytest.fixture
def ros(tmp_path):
    made = []

    def make(*ros_args):
        c = _Ctx(tmp_path, [str(a) for a in ros_args])
        made.append(c)
        return c
    yield make
    for c in made:
        c.close()


def _decoding(node):
    return {k: node.get_parameter(k).value for k in STORED}


def test_decoding_defaults_come_from_the_checkpoint(ros, ckpt):
    from vita_grasp_core.decoding_settings import DECODE_FIELDS
    n = ros("--params-file", REPO / "config" / "vita_grasp.yaml",
            "-p", f"checkpoint:={ckpt['calibrated']}").node()
    assert _decoding(n) == STORED
    p = n.predictor
    assert (p.score_threshold, p.max_grasps, p.min_distance, p.smooth_sigma) == \
        tuple(STORED.values())
    for f in DECODE_FIELDS:  # descriptors generated from the one definition
        d = n.describe_parameter(f.name)
        assert f.description in d.description and not d.read_only
        rng = d.floating_point_range or d.integer_range
        assert (rng[0].from_value, rng[0].to_value) == (f.lo, f.hi)


def test_params_file_and_command_line_override_the_checkpoint(ros, ckpt, tmp_path):
    own = tmp_path / "own.yaml"
    own.write_text("/**:\n  ros__parameters:\n    max_grasps: 7\n    smooth_sigma: 0.0\n")
    n = ros("--params-file", own, "-p", f"checkpoint:={ckpt['calibrated']}",
            "-p", "score_threshold:=0.3").node()
    assert _decoding(n) == {"score_threshold": 0.3, "max_grasps": 7, "min_distance": 4,
                            "smooth_sigma": 0.0}
    assert n.predictor.max_grasps == 7 and n.predictor.score_threshold == 0.3


def test_checkpoint_without_stored_decoding_uses_the_decode_config_defaults(ros, ckpt):
    from vita_grasp_core.decoding_settings import DecodeConfig

    n = ros("-p", f"checkpoint:={ckpt['plain']}").node()
    d = DecodeConfig()
    assert _decoding(n) == {k: getattr(d, k) for k in STORED}


def test_params_file_sets_checkpoint_and_use_compressed(ros, ckpt, tmp_path):
    """What `ros2 launch ... params_file:=my.yaml` passes when no launch argument is given."""
    own = tmp_path / "robot.yaml"
    own.write_text("/**:\n  ros__parameters:\n"
                   f"    checkpoint: \"{ckpt['plain']}\"\n    use_compressed: true\n")
    n = ros("--params-file", own).node()
    assert n.get_parameter("checkpoint").value == str(ckpt["plain"])
    assert n.image_sub.topic_name.endswith("/image/compressed")
    assert n.image_sub.msg_type.__name__ == "CompressedImage"
    # a later -p (the launch argument when given) wins over the file
    n2 = ros("--params-file", own, "-p", "use_compressed:=false").node()
    assert n2.image_sub.topic_name.endswith("/image")


def test_one_validation_path_at_start_up_and_run_time(ros, ckpt):
    from rclpy.parameter import Parameter

    from vita_grasp_ros.node_outputs import parameter_table
    from vita_grasp_ros.node_params import StartupError

    PARAMETERS = parameter_table()
    with pytest.raises(StartupError, match=r"'depth_window' is 99; it must be in \[1, 51\]"):
        ros("-p", f"checkpoint:={ckpt['plain']}", "-p", "depth_window:=99").node()
    with pytest.raises(StartupError, match="'depth_tolerance' must be a double"):
        ros("-p", f"checkpoint:={ckpt['plain']}", "-p", "depth_tolerance:=1").node()
    n = ros("-p", f"checkpoint:={ckpt['plain']}").node()
    # at run time the descriptor (built from the same spec) refuses it first
    res = n.set_parameters([Parameter("depth_window", value=99)])[0]
    assert not res.successful and "depth_window" in res.reason and n.settings.depth_window == 5
    # what the descriptor cannot express goes through the same check as at start-up
    assert n._on_set_parameters([Parameter("depth_tolerance", value=float("nan"))]).reason == \
        PARAMETERS["depth_tolerance"].check(float("nan"))
    # run-time settings: a new Settings object, the rest unchanged
    before = n.settings
    assert n.set_parameters([Parameter("depth_window", value=9),
                             Parameter("frame_id", value="tool0")])[1].successful
    assert (n.settings.depth_window, n.settings.frame_id) == (9, "tool0")
    assert n.settings.debug_every_n == before.debug_every_n and n.settings is not before


@pytest.mark.parametrize("value,reason", [
    (float("nan"), "must be a finite number"), (-0.1, "must be in [0, 1]"),
    (1, "must be a double (write 0.0, not 0)")])
def test_param_spec_check(value, reason):
    from vita_grasp_ros.node_outputs import parameter_table

    PARAMETERS = parameter_table()
    assert reason in PARAMETERS["score_threshold"].check(value)
    assert PARAMETERS["score_threshold"].check(0.5) is None
    assert "use one of" in PARAMETERS["input_reliability"].check("sometimes")
    assert PARAMETERS["max_grasps"].check(True) is not None  # a bool is not an integer here


def test_engine_parameter_choices_are_the_core_engines():
    from vita_grasp_core.choices import ENGINES
    from vita_grasp_ros.node_outputs import parameter_table

    table = parameter_table()
    assert table["engine"].choices == tuple(ENGINES)
    assert table["engine"].read_only and table["providers"].read_only
    assert "add -p engine:=onnxruntime" in table.check({"engine": "torch",
                                                        "providers": "CUDAExecutionProvider"})


def test_onnxruntime_engine_gives_the_same_grasps(ros, ckpt, tmp_path):
    """engine:=onnxruntime exports the checkpoint on first use and answers like torch."""
    pytest.importorskip("onnxruntime")
    import numpy as np

    from vita_grasp_ros.node_params import StartupError

    base = ["-p", f"checkpoint:={ckpt['calibrated']}", "-p", "score_threshold:=0.0"]
    with pytest.raises(StartupError, match="providers.*engine is torch"):
        ros(*base, "-p", "providers:=CPUExecutionProvider").node()
    with pytest.raises(StartupError, match="not available"):
        ros(*base, "-p", "engine:=onnxruntime", "-p", "providers:=NoSuchExecutionProvider").node()
    ort = ros(*base, "-p", "engine:=onnxruntime", "-p", "providers:=CPUExecutionProvider").node()
    assert ort.predictor.engine_name == "onnxruntime"
    assert ort._diagnostics_extra()["engine"] == "onnxruntime"
    torch_node = ros(*base).node()
    assert torch_node.predictor.engine_name == "torch"
    rgb = np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)
    a = ort.predictor.predict(rgb).grasp_array()
    b = torch_node.predictor.predict(rgb).grasp_array()
    assert a.shape == b.shape and len(a) > 0
    np.testing.assert_allclose(a[:, :2], b[:, :2], atol=0.5)  # centres [px]
    np.testing.assert_allclose(a[:, 5], b[:, 5], atol=1e-3)  # quality
    int8 = ros(*base, "-p", "engine:=onnxruntime", "-p", "onnx_precision:=int8").node()
    assert int8.predictor.engine.precision == "int8"
    with pytest.raises(StartupError, match="onnx_precision"):
        ros(*base, "-p", "engine:=onnxruntime", "-p", "onnx_precision:=int4").node()


def test_depth_inputs_keep_a_deeper_queue_than_the_image(ros, ckpt):
    """The image keeps the newest 2 (latest wins); depth and camera_info keep depth_queue (10),
    so that the depth frame of the image in progress is not overwritten while the node is busy
    (with 2, half the frames of a 10 Hz stream had no pose in the simulator)."""
    n = ros("-p", f"checkpoint:={ckpt['plain']}", "-p", "use_depth:=true").node()
    depths = {s.topic_name: s.qos_profile.depth for s in n._subs}
    from vita_grasp_ros.detections import load_vision_msgs

    targets = {t: 2 for t in ("/target/mask", "/target/point", "/target/example")  # as image
               + (("/target/detections",) if load_vision_msgs() is not None else ())}
    assert depths == {"/image": 2, "/depth": 10, "/camera_info": 10, **targets}
    n = ros("-p", f"checkpoint:={ckpt['plain']}", "-p", "use_depth:=true",
            "-p", "depth_queue:=4", "-p", "input_depth:=1").node()
    assert {s.topic_name: s.qos_profile.depth for s in n._subs} == \
        {"/image": 1, "/depth": 4, "/camera_info": 4, **{t: 1 for t in targets}}
