"""Pages escape what senders control: a ``<script>`` in an event stays text on every page."""

from __future__ import annotations

import re
import time

import pytest

from router.model import events
from router.web import history, pages, standings, timeline

HOSTILE = '<script>alert("x")</script>'
NOW = time.time()
STATE = {"runId": "a" * 32, "rule": "smoke", "state": "finished", "outcome": "failure", "queuedAt": NOW - 5,
         "finishedAt": NOW, "reason": f"body was {HOSTILE}", "event": {"id": HOSTILE, "type": "t", "source": "/s"},
         "checks": [{"name": HOSTILE, "passed": False, "error": HOSTILE}], "joined": {"deploy": {"id": HOSTILE}}}
JOIN = {"id": "j", "rule": "smoke", "key": HOSTILE, "events": {"build": {}}, "missing": ["deploy"], "started": NOW,
        "expires": NOW + 60}
TRIGGER = events.make({"id": HOSTILE, "source": "/s", "type": "t", "subject": HOSTILE}, {"note": HOSTILE})


def rendered() -> dict[str, str]:
    found, span = standings.summarize([STATE, {**STATE, "rule": HOSTILE, "runId": "b" * 32}], NOW)
    return {
        "runs": pages.render("runs.html", root="/ui", page="runs", filters=history.Filters.parse({"rule": HOSTILE}),
                             rows=[history.row(STATE)], admitted=1, read=1, total=1, max_runs=10, rules=[HOSTILE],
                             outcomes=history.OUTCOMES, joins=[JOIN]),
        "run": pages.render("run.html", root="/ui", page="runs", run_id="a" * 32, state=STATE,
                            steps=timeline.build(STATE, TRIGGER), chain=HOSTILE, joined=sorted(STATE["joined"].items()),
                            event_text=history.event_json(TRIGGER)[0], event_cut=0, event_limit=1),
        "rules": pages.render("rules.html", root="/ui", page="rules", standings=found, span=span, read=2, total=2,
                              max_runs=10),
    }


@pytest.mark.parametrize("page", ["runs", "run", "rules"])
def test_script_in_event_data_is_escaped(page):
    html = rendered()[page]
    assert "<script" not in html.lower()
    assert "&lt;script&gt;" in html


def test_the_pages_load_nothing_from_elsewhere():
    for html in rendered().values():
        links = re.findall(r'(?:src|href|action)="([^"]*)"', html)
        assert links and all(link.startswith("/ui/") for link in links), links
        assert 'href="/ui/static/web.css"' in html and "style=" not in html and "<img" not in html


@pytest.mark.parametrize("value,shown", [(None, "-"), (0.0421, "0.042 s"), (12.54, "12.5 s"), (200, "3 min 20 s"),
                                         (7500, "2 h 5 min")])
def test_seconds(value, shown):
    assert pages.seconds(value) == shown


def test_waiting_joins_are_listed_with_what_they_miss():
    html = rendered()["runs"]
    row = html[html.index('<table id="joins">'):]
    assert "<td>build</td>" in row and "<td>deploy</td>" in row and "&lt;script&gt;" in row
