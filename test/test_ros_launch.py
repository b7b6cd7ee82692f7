"""launch/vita_grasp.launch.py: launch arguments reach the node only when given (a params file can
set `checkpoint` and `use_compressed`), `use_rviz:=true` without rviz2 warns and starts the node
alone (decided before anything starts), `lifecycle:=true` starts the managed node.

`launch`/`launch_ros` are not installable here: the file's own logic runs against small stand-ins
of the launch classes it uses (recording what the file asks for) and the real ament index; the
same checks run through the real `launch` API where it is importable. The plain-command twin of
the precedence is tested with the real rcl argument parser in test_ros_node_params.py.
"""
from __future__ import annotations

import importlib.util
import py_compile
import sys
import types

import pytest
from fixtures.ros_helpers import REPO

LAUNCH_FILE = REPO / "launch" / "vita_grasp.launch.py"


class _Recorder:
    """Stand-in for a launch action/substitution: keeps its arguments."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


class _LaunchConfiguration(_Recorder):
    def perform(self, context):
        return context[self.args[0]]


def _stub_modules():
    mods = {name: types.ModuleType(name) for name in (
        "launch", "launch.actions", "launch.substitutions", "launch_ros", "launch_ros.actions",
        "launch_ros.parameter_descriptions", "launch_ros.substitutions")}
    mods["launch"].LaunchDescription = type("LaunchDescription", (_Recorder,), {})
    for name in ("DeclareLaunchArgument", "LogInfo", "OpaqueFunction"):
        setattr(mods["launch.actions"], name, type(name, (_Recorder,), {}))
    mods["launch.substitutions"].LaunchConfiguration = _LaunchConfiguration
    mods["launch.substitutions"].PathJoinSubstitution = type("PathJoinSubstitution",
                                                             (_Recorder,), {})
    mods["launch_ros.actions"].Node = type("Node", (_Recorder,), {})
    mods["launch_ros.parameter_descriptions"].ParameterValue = type("ParameterValue",
                                                                    (_Recorder,), {})
    mods["launch_ros.substitutions"].FindPackageShare = type("FindPackageShare", (_Recorder,),
                                                             {})
    return mods


@pytest.fixture
def stub_launch(monkeypatch):
    for name, mod in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("vita_grasp_launch_stubbed", LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def ament_index(tmp_path, monkeypatch):
    """An ament index under tmp_path (AMENT_PREFIX_PATH); ``add(pkg)`` registers a package."""
    prefix = tmp_path / "prefix"
    (prefix / "share" / "ament_index" / "resource_index" / "packages").mkdir(parents=True)
    monkeypatch.setenv("AMENT_PREFIX_PATH", str(prefix))

    def add(pkg):
        (prefix / "share" / "ament_index" / "resource_index" / "packages" / pkg).touch()
    return add


def _args(**given):
    """Launch arguments as resolved by launch: the declared defaults, then the given ones."""
    args = {"checkpoint": "", "image_topic": "/rgb/image_raw", "namespace": "",
            "params_file": "/share/vita_grasp/config/vita_grasp.yaml", "use_compressed": "",
            "lifecycle": "false", "use_rviz": "false", "rviz_config": "/share/x.rviz"}
    args.update(given)
    return args


def _setup(mod, **given):
    """Run the file's OpaqueFunction: (grasp Node kwargs, other actions)."""
    ld = mod.generate_launch_description()
    entities = ld.args[0]
    declared = {e.args[0]: e.kwargs["default_value"] for e in entities
                if type(e).__name__ == "DeclareLaunchArgument"}
    assert set(declared) == set(_args())
    for name in ("checkpoint", "use_compressed"):  # empty = not given: the params file decides
        assert declared[name] == ""
    opaque = [e for e in entities if type(e).__name__ == "OpaqueFunction"]
    assert len(opaque) == 1 and entities[-1] is opaque[0]  # after every argument
    actions = opaque[0].kwargs["function"](_args(**given))
    nodes = [a for a in actions if type(a).__name__ == "Node"]
    grasp = [n for n in nodes if n.kwargs["package"] == "vita_grasp"]
    assert len(grasp) == 1
    return grasp[0].kwargs, [a for a in actions if a is not grasp[0]]


def test_launch_file_compiles():
    py_compile.compile(str(LAUNCH_FILE), doraise=True)


def test_arguments_reach_the_node_only_when_given(stub_launch, ament_index):
    node, others = _setup(stub_launch)
    assert node["parameters"] == ["/share/vita_grasp/config/vita_grasp.yaml"]
    assert node["name"] == "vita_grasp_node" and node["executable"] == "grasp_node"
    assert node["remappings"] == [("image", "/rgb/image_raw"),
                                  ("image/compressed", "/rgb/image_raw/compressed")]
    assert node["arguments"] == [] and others == []

    node, _ = _setup(stub_launch, checkpoint="/m/best_model.pt", use_compressed="true",
                     params_file="/my.yaml", image_topic="/cam/image")
    params_file, overrides = node["parameters"]
    assert params_file == "/my.yaml"  # the file first, the given arguments after it (they win)
    assert set(overrides) == {"checkpoint", "use_compressed"}
    assert overrides["checkpoint"].args == ("/m/best_model.pt",)
    assert overrides["checkpoint"].kwargs == {"value_type": str}
    assert overrides["use_compressed"] is True
    assert ("image/compressed", "/cam/image/compressed") in node["remappings"]

    node, _ = _setup(stub_launch, use_compressed="False")
    assert node["parameters"][1] == {"use_compressed": False}
    with pytest.raises(ValueError, match="use_compressed:='maybe' is not a boolean"):
        _setup(stub_launch, use_compressed="maybe")


def test_rviz_without_rviz2_warns_and_starts_the_node_alone(stub_launch, ament_index):
    node, others = _setup(stub_launch, use_rviz="true")
    assert [type(a).__name__ for a in others] == ["LogInfo"]
    assert "rviz2 package is not installed" in others[0].kwargs["msg"]
    ament_index("rviz2")
    node, others = _setup(stub_launch, use_rviz="true", namespace="robot")
    assert [type(a).__name__ for a in others] == ["Node"]
    rviz = others[0].kwargs
    assert (rviz["package"], rviz["namespace"]) == ("rviz2", "robot")
    assert rviz["arguments"] == ["-d", "/share/x.rviz"]


def test_lifecycle_argument(stub_launch, ament_index):
    node, _ = _setup(stub_launch, lifecycle="true")
    assert node["arguments"] == ["--lifecycle"]


def test_with_the_real_launch_api(tmp_path, ament_index):
    try:
        import launch_ros.actions

        import launch
    except ImportError:
        pytest.skip("launch/launch_ros are not installable from PyPI here (the logic is tested "
                    "with stand-ins above; run `ros2 launch vita_grasp vita_grasp.launch.py` "
                    "on a ROS install)")
    spec = importlib.util.spec_from_file_location("vita_grasp_launch_real", LAUNCH_FILE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ld = mod.generate_launch_description()
    for given, n_nodes, warned in (({}, 1, False), ({"use_rviz": "true"}, 1, True)):
        context = launch.LaunchContext()
        context.launch_configurations.update(_args(params_file=str(tmp_path / "p.yaml"),
                                                   **given))
        opaque = [e for e in ld.entities if isinstance(e, launch.actions.OpaqueFunction)][0]
        actions = opaque.execute(context)
        assert sum(isinstance(a, launch_ros.actions.Node) for a in actions) == n_nodes
        assert any(isinstance(a, launch.actions.LogInfo) for a in actions) == warned
