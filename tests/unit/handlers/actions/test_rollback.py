"""Which snapshot ``rollback`` restores, and when it refuses (README, Kubernetes actions)."""

from __future__ import annotations

import pytest

from handlers.actions import rollback
from handlers.kubernetes import bundles
from router import errors

TEMPLATE_1, TEMPLATE_2 = {"spec": {"containers": [{"name": "c", "image": "a"}]}}, \
    {"spec": {"containers": [{"name": "c", "image": "b"}]}}


def snapshot(template):
    return {"revision": bundles.revision(template), "template": template, "configMaps": {}, "secrets": {}}


def workload(template, annotations=None):
    return {"metadata": {"annotations": annotations or {}}, "spec": {"template": template}}


def test_the_target_is_the_snapshot_before_the_current_revision():
    snapshots = [snapshot(TEMPLATE_2), snapshot(TEMPLATE_1)]  # newest first
    assert rollback._target(snapshots, workload(TEMPLATE_2), "run", "D n/w") == snapshots[1]


def test_a_run_carried_out_again_verifies_instead_of_rolling_forward():
    # After the rollback, revision 1 was recorded again as the newest snapshot.
    snapshots = [snapshot(TEMPLATE_1), snapshot(TEMPLATE_2)]
    done = workload(TEMPLATE_1, {rollback.RUN: "run", rollback.TARGET: bundles.revision(TEMPLATE_1)})
    assert rollback._target(snapshots, done, "run", "D n/w")["revision"] == bundles.revision(TEMPLATE_1)


@pytest.mark.parametrize("snapshots,message", [
    ([], "no snapshot of the current revision .* \\(snapshots: none;"),
    ([snapshot(TEMPLATE_1)], "no snapshot of the current revision"),
    ([snapshot(TEMPLATE_2)], "no snapshot of the revision before .* \\(the oldest kept is"),
])
def test_a_missing_snapshot_is_refused_with_the_reason(snapshots, message):
    with pytest.raises(errors.PermanentError, match=message):
        rollback._target(snapshots, workload(TEMPLATE_2), "run", "D n/w")


def test_a_restored_revision_is_not_rolled_back_again_by_another_run():
    """After a rollback, a rollout_failed or crashloop rule firing would otherwise roll forward."""
    snapshots = [snapshot(TEMPLATE_1), snapshot(TEMPLATE_2)]
    restored = workload(TEMPLATE_1, {rollback.RUN: "earlier", rollback.TARGET: bundles.revision(TEMPLATE_1)})
    with pytest.raises(errors.PermanentError, match="was restored by rollback run earlier; rolling back again"):
        rollback._target(snapshots, restored, "later", "D n/w")
