"""The rules page's numbers: last outcome, matches and counts per rule, from run states."""

from __future__ import annotations

from router.web import standings

NOW = 1_764_590_400.0


def run(rule, queued, outcome=None, run_id="r"):
    state = {"runId": run_id, "rule": rule, "queuedAt": NOW - queued, "state": "finished" if outcome else "running"}
    if outcome:
        state.update(outcome=outcome, finishedAt=NOW - queued + 1)
    return state


def test_last_outcome_counts_and_rate_per_rule():
    found, span = standings.summarize([
        run("web", 300, "success", "a"), run("web", 100, "failure", "b"), run("web", 200, "cancel", "c"),
        run("api", 50, None, "d"), run("api", 400, "error", "e"),
    ], NOW)
    web, api = {s.rule: s for s in found}["web"], {s.rule: s for s in found}["api"]
    assert [s.rule for s in found] == ["api", "web"]
    assert (web.matches, web.last_outcome, web.last_run, dict(web.counts)) == (
        3, "failure", "b", {"success": 1, "failure": 1, "cancel": 1})
    assert web.success_rate == 0.5  # the cancelled run is not counted
    assert (api.last_outcome, api.last_run, api.success_rate) == ("unfinished", "d", 0.0)
    assert span.label == "per hour, last 24 hours"
    assert sum(b.finished for b in web.buckets) == 2 and 'class="bar mixed"' in str(web.chart)


def test_no_runs_no_rules():
    assert standings.summarize([], NOW)[0] == []
