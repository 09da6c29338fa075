"""``rules validate`` and ``rules test``: check rule files without running anything.

``rules test`` is the dry run a rule author needs when a rule does not fire: for every rule, whether
it matches the sample event, and if not, the first filter that rejected it and why; for the ones
that match, the action exactly as it would run (templates rendered). Both check the rules against
``bus.max_age`` and ``rules.allow_empty`` of the ``--config`` given, like ``serve`` does, so a rule
that validates here also loads there. For each matching rule ``rules test`` also says which commit
the event is about (where a verdict would be reported), or why none: the event's own
(``router.model.commits``), else what the commit finders say (the image's revision label, read
from the registry the ``--config`` configures; without a bus, so nothing is cached).
"""

from __future__ import annotations

import asyncio
import json
import sys

from router import errors
from router.config import settings as settings_mod
from router.model import events
from router.plugins import catalog
from router.rules import loading as rules
from router.rules.matching import Matcher


def _load(paths: list[str], settings: settings_mod.Settings) -> list[rules.Rule]:
    """The rules as ``serve`` with these settings would load them (``bus.max_age``, ``rules.allow_empty``)."""
    plugins = catalog.load()
    return rules.load(paths, plugins.actions, settings.bus.max_age, settings.rules.allow_empty, plugins.reporters)


def validate(paths: list[str], settings: settings_mod.Settings) -> int:
    loaded = _load(paths, settings)
    for rule in loaded:
        print(f"ok  {rule.name}  ({rule.file}, action {rule.action.name})")
    print(f"{len(loaded)} rule(s) valid")
    return 0


def test(paths: list[str], event_file: str, as_json: bool, settings: settings_mod.Settings) -> int:
    try:
        body = sys.stdin.buffer.read() if event_file == "-" else open(event_file, "rb").read()
    except OSError as exc:
        raise errors.ConfigError(f"cannot read {event_file}: {exc.strerror}") from exc
    try:
        event = events.parse_structured(body)
    except errors.BadRequest as exc:
        raise errors.ConfigError(f"{event_file}: {exc.detail}") from exc
    matcher = Matcher(_load(paths, settings))
    commit, why = asyncio.run(catalog.load().find_commit(event, None))
    report = []
    for verdict in matcher.explain(event):
        entry = {"rule": verdict.rule.name, "file": verdict.rule.file, "matched": verdict.matched}
        if verdict.matched:
            try:
                entry["action"] = {verdict.rule.action.name: verdict.rule.render(event)}
                entry["environment"] = verdict.rule.environment_for(event)
                if verdict.rule.reports:
                    entry["report"] = verdict.rule.render_reports(event)
                entry["commit"] = ({"provider": commit.provider, "repository": commit.repository, "sha": commit.sha,
                                    "from": commit.found} if commit else {"none": why})
            except errors.PermanentError as exc:
                entry["renderError"] = str(exc)
        else:
            entry["reason"] = verdict.reason
        report.append(entry)
    if as_json:
        print(json.dumps(report, indent=2))
        return 0
    for entry in report:
        if entry["matched"]:
            print(f"MATCH     {entry['rule']}")
            rendered = entry.get("action") or {"renderError": entry.get("renderError")}
            print("          " + json.dumps(rendered, indent=2).replace("\n", "\n          "))
            print(f"          commit: {commit.describe() if commit else 'none: ' + why}")
            for plan in entry.get("report", []):
                shown = plan.get("params") if "params" in plan else {"error": plan.get("error")}
                print(f"          report: {plan['reporter']} {json.dumps(shown, sort_keys=True)}")
        else:
            print(f"no match  {entry['rule']}: {entry['reason']}")
    matched = sum(1 for e in report if e["matched"])
    print(f"{matched} of {len(report)} rule(s) match event {event.id} ({event.type})")
    return 0
