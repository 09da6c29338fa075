"""The release gate recipe (docs/drift-and-gates.md): a clean Harbor scan and a rollout of the same digest.

Harbor's documented scan payloads go through the Harbor webhook source; the rule is read from the
recipe's block on that page. The run must start only once both halves are there for one digest: a
scan with a Critical finding is no half, and a rollout of another digest joins nothing.
"""

from __future__ import annotations

import json
from pathlib import Path

from router.model import events
from tests.integration.test_correlation import rolled_out, settle
from tests.integration.test_policies import start, states_when
from tests.integration.test_routing import stop
from tests.unit.docs.test_drift_and_gates_recipes import recipe
from tests.unit.handlers.sources.registries.test_normalizers import normalize

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "registry" / "harbor"
SCANNED = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"
OTHER = 3
RULE = recipe("release-gate")


async def scan(name: str):
    [event] = await normalize("harbor", json.loads((FIXTURES / name).read_text()))
    return event


def rollout_of(digest: str, event_id: str):
    event = rolled_out(OTHER, event_id)
    data = event.json()
    data["images"][0]["digest"] = digest
    return events.make(dict(event.attributes), data)


async def test_the_gate_fires_only_when_a_clean_scan_and_a_rollout_name_the_same_digest(edge, tmp_path):
    tasks = await start(edge, tmp_path, RULE)
    try:
        await edge.bus.publish(await scan("scanning_completed_critical.json"))  # Critical: not a passing half
        await edge.bus.publish(rollout_of(SCANNED, "r-scanned"))
        await edge.bus.publish(rollout_of(f"sha256:{OTHER:064x}", "r-other"))  # never scanned
        await settle(edge.bus.js)
        assert await states_when(edge, lambda s: True) == {}
        await edge.bus.publish(await scan("scanning_completed.json"))
        states = await states_when(edge, lambda s: any(x.get("state") == "finished" for x in s.values()))
        await settle(edge.bus.js)
        states = await states_when(edge, lambda s: True)
    finally:
        await stop(tasks)
    [run] = states.values()
    assert run["outcome"] == "success"
    assert run["joined"]["deployed"]["id"] == "r-scanned"
    assert run["checks"][0]["stdoutTail"].strip() == f"gate passed for {SCANNED}"
