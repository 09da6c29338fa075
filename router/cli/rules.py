"""``rules validate`` and ``rules test``: check rule files without running anything.

``rules validate`` reports every problem of every file, one ``file:line:column: rule R, field F:
message`` line each (``router.rules.validation``), then a count, and exits 2 when there is any;
``serve`` and its hot reload still refuse a set on its first problem (``loading.load``).

``rules test`` is the dry run a rule author needs when a rule does not fire: for every rule, whether
it matches the sample event, and if not, the first filter that rejected it and why; for the ones
that match, the action exactly as it would run (templates rendered). The sample is a CloudEvent, or
a raw webhook payload (``--github EVENT``, ``--gitlab``, ``--registry NAME``) converted by the
registered webhook source itself (``plugins.sources.convert``, what the edge calls), so every event
the edge would store for it, derived CDEvents included, is tested; only authentication is skipped.
Both commands check the rules against ``bus.max_age`` and ``rules.allow_empty`` of the ``--config``
given, like ``serve`` does, so a rule that validates here also loads there. For each matching rule
``rules test`` also says which commit the event is about (where a verdict would be reported), or why
none: the event's own (``router.model.commits``), else what the commit finders say (the image's
revision label, read from the registry the ``--config`` configures; without a bus, so nothing is
cached).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys

from router import errors
from router.config import settings as settings_mod
from router.model import events, tracecontext
from router.plugins import catalog
from router.plugins import sources as webhook_sources
from router.rules import loading as rules
from router.rules import validation
from router.rules.matching import Matcher

EXIT_NO_MATCH = 1
EXIT_PROBLEMS = 2


def _load(paths: list[str], settings: settings_mod.Settings) -> list[rules.Rule]:
    """The rules as ``serve`` with these settings would load them (``bus.max_age``, ``rules.allow_empty``)."""
    plugins = catalog.load()
    return rules.load(paths, plugins.actions, settings.bus.max_age, settings.rules.allow_empty, plugins.reporters)


def check(paths: list[str], settings: settings_mod.Settings) -> validation.Checked:
    """Every problem of ``paths``, as ``serve`` with these settings would judge them."""
    plugins = catalog.load()
    return validation.check(paths, plugins.actions, settings.bus.max_age, settings.rules.allow_empty,
                            plugins.reporters)


def report_problems(checked: validation.Checked) -> int:
    """Print each problem on standard error, then their count; the exit status (0 or 2)."""
    for problem in checked.problems:
        print(validation.line(problem), file=sys.stderr)
    if not checked.problems:
        return 0
    files = len({p.file for p in checked.problems})
    print(f"{len(checked.problems)} problem(s) in {files} file(s)", file=sys.stderr)
    return EXIT_PROBLEMS


def validate(paths: list[str], settings: settings_mod.Settings) -> int:
    checked = check(paths, settings)
    if checked.problems:
        return report_problems(checked)
    for rule in checked.rules:
        print(f"ok  {rule.name}  ({rule.file}, action {rule.action.name})")
    print(f"{len(checked.rules)} rule(s) valid")
    return 0


def _read(event_file: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if event_file == "-" else open(event_file, "rb").read()
    except OSError as exc:
        raise errors.ConfigError(f"cannot read {event_file}: {exc.strerror}") from exc


def webhook_events(name: str, headers: dict[str, str], body: bytes, settings: settings_mod.Settings,
                   what: str) -> list[events.CloudEvent]:
    """What the edge would store for this delivery to ``/webhooks/<name>``, authentication skipped."""
    factories = catalog.load().webhook_sources
    if name not in factories:
        raise errors.ConfigError(f"no webhook source {name!r} (known: {', '.join(sorted(factories))})")
    source = factories[name](settings)
    try:
        batch, rejected = asyncio.run(webhook_sources.convert(
            source, webhook_sources.Delivery(headers, body), settings.http.max_json_depth))
    except errors.IngestError as exc:
        field = f" ({exc.field})" if exc.field else ""
        raise errors.ConfigError(f"{what}: the {name} source refuses it (HTTP {exc.status}): {exc.detail}{field}") from exc
    for item in rejected:
        print(f"# item {item.index} would be dead-lettered: {item.reason}"
              f"{f' ({item.field})' if item.field else ''}", file=sys.stderr)
    return [tracecontext.ensure(event) for event in batch]  # as the edge's encode does


def sample_events(event_file: str, settings: settings_mod.Settings, *, github: str | None = None,
                  gitlab: bool = False, registry: str | None = None, delivery: str | None = None) -> list[events.CloudEvent]:
    body = _read(event_file)
    if github is None and not gitlab and registry is None:
        try:
            return [events.parse_structured(body)]
        except errors.BadRequest as exc:
            raise errors.ConfigError(f"{event_file}: {exc.detail}") from exc
    # A stable default id: the same payload tested twice is the same event, like a redelivery.
    delivery = delivery or f"rules-test-{hashlib.sha256(body).hexdigest()[:16]}"
    if github is not None:
        return webhook_events("github", {"X-GitHub-Event": github, "X-GitHub-Delivery": delivery,
                                         "Content-Type": "application/json"}, body, settings, event_file)
    if gitlab:
        return webhook_events("gitlab", {"Idempotency-Key": delivery, "Content-Type": "application/json"},
                              body, settings, event_file)
    if registry in ("github", "gitlab"):
        raise errors.ConfigError(f"--registry {registry}: use --{registry}")
    return webhook_events(registry or "", {"Content-Type": "application/json"}, body, settings, event_file)


def _explain(matcher: Matcher, event: events.CloudEvent) -> list[dict]:
    verdicts = matcher.explain(event)
    # Only a matching rule reports a verdict; a registry event's lookup may cost network round trips.
    commit, why = asyncio.run(catalog.load().find_commit(event, None)) if any(v.matched for v in verdicts) \
        else (None, "")
    report = []
    for verdict in verdicts:
        entry = {"rule": verdict.rule.name, "file": verdict.rule.file, "matched": verdict.matched,
                 "event": {"id": event.id, "type": event.type}}
        if verdict.matched:
            entry["commit"] = ({"provider": commit.provider, "repository": commit.repository, "sha": commit.sha,
                                "from": commit.found} if commit else {"none": why})
            entry["commitText"] = commit.describe() if commit else f"none: {why}"
            try:
                entry["action"] = {verdict.rule.action.name: verdict.rule.render(event)}
                entry["environment"] = verdict.rule.environment_for(event)
                if verdict.rule.reports:
                    entry["report"] = verdict.rule.render_reports(event)
            except errors.PermanentError as exc:
                entry["renderError"] = str(exc)
        else:
            entry["reason"] = verdict.reason
        report.append(entry)
    return report


def test(paths: list[str], event_file: str, as_json: bool, settings: settings_mod.Settings, *,
         expect_match: bool = False, **webhook: object) -> int:
    matcher = Matcher(_load(paths, settings))
    batch = sample_events(event_file, settings, **webhook)  # type: ignore[arg-type]
    report = [entry for event in batch for entry in _explain(matcher, event)]
    matched = sum(1 for e in report if e["matched"])
    if as_json:
        print(json.dumps([{k: v for k, v in e.items() if k != "commitText"} for e in report], indent=2))
    else:
        _print(report, batch, matched)
    if expect_match and not matched:
        print(f"trigger-router: no rule matches {'the event' if len(batch) == 1 else 'any of the events'} "
              f"of {event_file} (--expect-match)", file=sys.stderr)
        return EXIT_NO_MATCH
    return 0


def _print(report: list[dict], batch: list[events.CloudEvent], matched: int) -> None:
    if not batch:
        print("the delivery makes no events (the edge would accept it and store nothing)")
    for event in batch:
        if len(batch) > 1:
            print(f"event {event.id} ({event.type})")
        entries = [e for e in report if e["event"] == {"id": event.id, "type": event.type}]
        for entry in entries:
            if entry["matched"]:
                print(f"MATCH     {entry['rule']}")
                rendered = entry.get("action") or {"renderError": entry.get("renderError")}
                print("          " + json.dumps(rendered, indent=2).replace("\n", "\n          "))
                print(f"          commit: {entry['commitText']}")
                for plan in entry.get("report", []):
                    shown = plan.get("params") if "params" in plan else {"error": plan.get("error")}
                    print(f"          report: {plan['reporter']} {json.dumps(shown, sort_keys=True)}")
            else:
                print(f"no match  {entry['rule']}: {entry['reason']}")
        rules_count = len(entries)
        hits = sum(1 for e in entries if e["matched"])
        print(f"{hits} of {rules_count} rule(s) match event {event.id} ({event.type})")
    if len(batch) > 1:
        print(f"{matched} match(es) over {len(batch)} events")
