"""The labeller's shortcuts (vita_grasp_core.sim.shortcuts) skip physics, never change a verdict:
on tiny seeded scenes (one singulated, one clutter) every candidate gets the same success verdict
(and failure reason, but for 'missed' vs 'slipped') with and without them, in far fewer physics
steps. A few seconds; skipped
without pybullet."""
from __future__ import annotations

import numpy as np
import pytest

pybullet = pytest.importorskip("pybullet")

from vita_grasp_core.sim.camera import SimCamera  # noqa: E402
from vita_grasp_core.sim.episode import random_view, scene_spec  # noqa: E402
from vita_grasp_core.sim.gripper import Gripper  # noqa: E402
from vita_grasp_core.sim.label import label_view  # noqa: E402
from vita_grasp_core.sim.objects import parse_object_set  # noqa: E402
from vita_grasp_core.sim.shortcuts import EXACT, FAST  # noqa: E402

OBJECTS = parse_object_set("random:000-099")


def _verdicts(shortcuts, seed, scene, kind, n, monkeypatch):
    """(per-candidate (success, object) rows in candidate order, reasons, physics steps) of
    view 0 of a scene, labelled in a fresh world as ``sim label`` does."""
    steps = [0]
    real_step = pybullet.stepSimulation

    def counting(*a, **k):
        steps[0] += 1
        return real_step(*a, **k)

    spec = scene_spec(seed, scene, OBJECTS, kind=kind, tray=False)
    with spec.build(SimCamera()) as world:
        gripper = Gripper(world)
        state = world.save()
        view, light = random_view(seed, scene, 0)
        rng = np.random.default_rng([seed, scene, 0, 37])
        obs = world.render(view.pose(world.support_height(*view.target)), rng, light)
        index_of = {b: k for k, b in enumerate(sorted(world.objects))}
        monkeypatch.setattr(pybullet, "stepSimulation", counting)
        pos, neg, reasons = label_view(world, gripper, state, obs, rng, n, index_of, shortcuts)
        monkeypatch.setattr(pybullet, "stepSimulation", real_step)
    rows = {tuple(np.round(r[:5], 4)): bool(r[5]) for r in (*pos, *neg)}
    return rows, dict(reasons), steps[0]


@pytest.mark.parametrize("seed,scene,kind,n", [(3, 4, "singulated", 10), (0, 1, "clutter", 8)])
def test_the_shortcuts_give_the_same_verdicts_in_fewer_steps(seed, scene, kind, n,
                                                             monkeypatch):
    exact, exact_reasons, exact_steps = _verdicts(EXACT, seed, scene, kind, n, monkeypatch)
    fast, fast_reasons, fast_steps = _verdicts(FAST, seed, scene, kind, n, monkeypatch)
    assert fast.keys() == exact.keys() and len(exact) >= n - 2  # the same candidates
    assert fast == exact
    # the reasons too, except that a failed grasp may trade 'missed' (nothing held when the
    # full close ended) for 'slipped' (held when the settled grip ended the close, lost later)
    for reasons in (exact_reasons, fast_reasons):
        reasons["missed_or_slipped"] = reasons.pop("missed", 0) + reasons.pop("slipped", 0)
    assert fast_reasons == exact_reasons
    assert 0 < sum(exact.values()) < len(exact)  # both verdicts occur: the check has teeth
    print(f"{kind}: {len(exact)} candidates, {sum(exact.values())} lifted, {exact_reasons}; "
          f"physics steps {exact_steps} -> {fast_steps}")
    assert fast_steps < 0.7 * exact_steps
