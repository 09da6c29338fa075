"""``outcomes.chain_id``: what the web view shows as a run's chain is what its outcomes carry."""

from __future__ import annotations

import pytest

from router.model import events, outcomes

CDEVENT = {"context": {"id": "x", "chainId": "chain-from-the-pipeline"}, "subject": {}}


@pytest.mark.parametrize("event_type,data,expected", [
    ("dev.cdevents.pipelinerun.finished.0.2.0", CDEVENT, "chain-from-the-pipeline"),  # the trigger's own chain
    ("com.github.push", {"after": "abc"}, None),                                      # derived from the run id
    ("dev.cdevents.artifact.published.0.2.0", {"context": {}}, None),                # a CDEvent without one
])
def test_chain_id_is_the_one_the_outcomes_carry(event_type, data, expected):
    trigger = events.make({"id": "e-1", "source": "/ci", "type": event_type}, data)
    built = outcomes.build("finished", run_id="r" * 32, rule="smoke", action="exec", environment="staging",
                           trigger=trigger, result=outcomes.Result("success"))
    chain = outcomes.chain_id(trigger, "r" * 32)
    assert built.json()["context"]["chainId"] == chain
    assert chain == expected if expected else len(chain) == 36 and chain != outcomes.chain_id(trigger, "s" * 32)
