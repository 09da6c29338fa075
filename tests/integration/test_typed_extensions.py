"""Integer and boolean extensions keep their type from the HTTP edge, over the bus, to the router.

Issue #12 point 7: an event accepted with ``myint: 42`` was routed as ``"42"``, so ``event.myint > 10``
never fired live while ``rules test`` said it matched. Here the real edge, a real nats-server, the
real router and executor run rules whose ``exec`` action appends a line to a file, and the runs
actually executed are compared with what ``trigger-router rules test`` says for the same event.

"The same event" is written by hand from the README: a structured request is its own JSON; a
binary-mode request without a type hint is the JSON event with every extension a string (HTTP
binding §3.1.3.2); with ``Trigger-Router-Attribute-Types`` it is the JSON event with the typed values.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import nats.js.errors
import pytest

from router.model import events
from tests.integration.test_routing import start_routing, stop

CLI = [sys.executable, "-m", "router.cli"]
APPEND = "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + chr(10))"

RULES = """
kind: TriggerRule
metadata: {{name: {name}}}
spec:
  filters:
    - exact: {{type: com.example.typed}}
    - cel: '{cel}'
  action:
    exec:
      command: ["{python}", "-c", "{code}", "{log}", "{name}"]
      timeout: 5s
"""
CEL = {
    "int-over-ten": "event.myint > 10",
    "bool-is-true": "event.mybool == true",
    "uri-is-https": 'event.myuri.startsWith("https://")',
}
ATTRIBUTES = {"specversion": "1.0", "id": "typed-1", "source": "/ci/typed", "type": "com.example.typed"}
TYPED = {"myint": 42, "mybool": True, "myuri": "https://example.com/x"}
AS_STRINGS = {"myint": "42", "mybool": "true", "myuri": "https://example.com/x"}
BINARY_HEADERS = {"ce-specversion": "1.0", "ce-id": "typed-1", "ce-source": "/ci/typed",
                  "ce-type": "com.example.typed", "ce-myint": "42", "ce-mybool": "true",
                  "ce-myuri": "https://example.com/x", "Content-Type": "application/json"}

CASES = {
    # mode: (request headers, request body, the same event as JSON, rules expected to run)
    "structured": (
        {"Content-Type": "application/cloudevents+json"},
        json.dumps({**ATTRIBUTES, **TYPED, "data": {"n": 1}}).encode(),
        {**ATTRIBUTES, **TYPED, "data": {"n": 1}},
        {"int-over-ten", "bool-is-true", "uri-is-https"},
    ),
    "binary": (
        BINARY_HEADERS, b'{"n":1}',
        {**ATTRIBUTES, **AS_STRINGS, "datacontenttype": "application/json", "data": {"n": 1}},
        {"uri-is-https"},
    ),
    "binary-with-type-hint": (
        {**BINARY_HEADERS, "Trigger-Router-Attribute-Types": "myint=integer,mybool=boolean"}, b'{"n":1}',
        {**ATTRIBUTES, **TYPED, "datacontenttype": "application/json", "data": {"n": 1}},
        {"int-over-ten", "bool-is-true", "uri-is-https"},
    ),
}


def rules_yaml(log) -> str:
    return "---".join(RULES.format(name=name, cel=cel, python=sys.executable, code=APPEND, log=log)
                      for name, cel in CEL.items())


def dry_run(rules_path, event_json: dict, tmp_path) -> set[str]:
    event_file = tmp_path / "event.json"
    event_file.write_text(json.dumps(event_json))
    result = subprocess.run(CLI + ["rules", "test", str(rules_path), "--event", str(event_file), "--json"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    return {entry["rule"] for entry in json.loads(result.stdout) if entry["matched"]}


async def routed(edge, log) -> set[str]:
    """The rules whose runs actually executed, once the router has acknowledged every event."""
    settings = edge.settings
    stored_seq = (await edge.bus.js.stream_info(settings.bus.events_stream)).state.last_seq
    async with asyncio.timeout(30):
        while True:  # the router acks an event only after every run it produced is recorded
            try:
                info = await edge.bus.js.consumer_info(settings.bus.events_stream, settings.router.durable)
                if info.ack_floor.stream_seq >= stored_seq and not info.num_ack_pending:
                    break
            except nats.js.errors.NotFoundError:  # the router task has not subscribed yet
                pass
            await asyncio.sleep(0.05)
        recorded = (await edge.bus.js.stream_info(settings.router.runs_stream)).state.last_seq
        while len(lines := (log.read_text().splitlines() if log.exists() else [])) < recorded:
            await asyncio.sleep(0.05)
    return set(lines)


@pytest.mark.parametrize("mode", list(CASES))
async def test_live_routing_agrees_with_rules_test(edge, tmp_path, mode):
    headers, body, same_event, expected = CASES[mode]
    log = tmp_path / "runs.log"
    tasks = await start_routing(edge, tmp_path, rules_yaml(log))  # writes tmp_path / "rules.yaml"
    rules_path = tmp_path / "rules.yaml"
    try:
        response = await edge.http.post(f"{edge.url}/events", data=body, headers=headers)
        assert response.status == 202, await response.text()
        ran = await routed(edge, log)
    finally:
        await stop(tasks)
    assert ran == expected
    assert dry_run(rules_path, same_event, tmp_path) == expected
    # What the router read from the bus (what `events tail --json` prints) dry-runs the same way.
    [stored] = await edge.stored()
    assert dry_run(rules_path, events.to_json_object(stored), tmp_path) == expected
