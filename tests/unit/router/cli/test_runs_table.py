"""``runs list``'s selection and columns, and ``outcomes tail``'s line (README, CLI)."""

from __future__ import annotations

import argparse
import json

import pytest

from router import errors
from router.cli import events as tail_send
from router.cli import runs
from router.model import events


def state(run_id: str, rule: str, outcome: str | None, queued: float) -> dict:
    found = {"runId": run_id, "rule": rule, "state": "finished" if outcome else "running", "queuedAt": queued,
             "event": {"type": "com.example", "id": run_id}}
    return {**found, "outcome": outcome} if outcome else found


STATES = [state("r1", "a", "success", 100), state("r2", "b", "failure", 200), state("r3", "a", None, 300),
          state("r4", "a", "failure", 400)]
JOINS = [{"id": "j1", "rule": "a", "key": "k", "started": 250, "expires": 900, "missing": ["x"], "events": {}}]

SELECT = {
    "everything, in order": (runs.Selection(), ["r1", "r2", "j1", "r3", "r4"]),
    "a rule (its joins too)": (runs.Selection(rule="a"), ["r1", "j1", "r3", "r4"]),
    "an outcome (no joins: they have none)": (runs.Selection(outcome="failure"), ["r2", "r4"]),
    "since": (runs.Selection(since=250), ["j1", "r3", "r4"]),
    "the newest N, oldest first": (runs.Selection(limit=2), ["r3", "r4"]),
    "all at once": (runs.Selection(rule="a", outcome="failure", since=50, limit=5), ["r4"]),
}


@pytest.mark.parametrize(("select", "shown"), SELECT.values(), ids=SELECT.keys())
def test_selection(select, shown):
    assert [row["join"]["id"] if "join" in row else row["runId"] for row in select.rows(STATES, JOINS)] == shown


def test_selection_from_the_command_line():
    args = argparse.Namespace(rule="a", outcome=None, since="1h", limit=3)
    assert runs.Selection.of(args, now=10_000.0) == runs.Selection("a", None, 6400.0, 3)
    with pytest.raises(errors.ConfigError, match="--limit"):
        runs.Selection.of(argparse.Namespace(rule=None, outcome=None, since=None, limit=0))


ROWS = [["f" * 32, "a-rule-whose-name-is-too-long-for-it", "finished", "success", "2026-12-01T16:02:36Z",
         "com.github.push d1", "-"],
        ["0123", "short", "running", "-", "2026-12-01T16:02:37Z", "com.github.push d2", "debouncing until T"]]


def test_narrow_columns_are_cut_and_aligned():
    header, first, second = runs.table(ROWS, wide=False)
    assert first.startswith("fffffffffff…  a-rule-whose-name-is-to…  finished  success  2026-12-01T16:02:36Z")
    assert second.startswith("0123          short                     running   -        2026-12-01T16:02:37Z")
    assert header.index("RULE") == first.index("a-rule") == second.index("short")
    assert second.endswith("debouncing until T") and first.endswith("-")


def test_wide_columns_are_whole_and_aligned():
    header, first, second = runs.table(ROWS, wide=True)
    assert first.startswith("f" * 32 + "  a-rule-whose-name-is-too-long-for-it  finished")
    assert header.index("RULE") == second.index("short") == 34


def outcome(rule: str, run_id: str) -> events.CloudEvent:
    data = {"subject": {"content": {"outcome": "success"}}, "customData": {"rule": rule, "runId": run_id}}
    return events.parse_structured(json.dumps({
        "specversion": "1.0", "id": "o1", "source": "/r", "type": "dev.cdevents.testsuiterun.finished.0.3.0",
        "time": "2026-12-01T16:02:36Z", "datacontenttype": "application/json", "data": data}).encode())


def test_outcomes_tail_cuts_ids_unless_wide():
    event = outcome("smoke", "a" * 32)
    assert tail_send.format_line(event, False) == ("2026-12-01T16:02:36Z  finished  smoke" + " " * 19 +
                                                   "  aaaaaaaaaaa…  success")
    assert tail_send.format_line(event, False, wide=True) == (
        "2026-12-01T16:02:36Z  finished  smoke  " + "a" * 32 + "  success")
