"""Which rules an event matches, without trying every rule.

Rules whose filters pin ``type`` or ``source`` exactly are found by dictionary lookup, rules with a
``type`` prefix by looking up each prefix length that occurs among rules; only rules that pin
nothing are tried for every event. So the cost of matching grows with the number of rules that
could plausibly match, not with the size of the rule set.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from router.model.events import CloudEvent
from router.rules.loading import Rule


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    matched: bool
    reason: str
    """For a non-match: the first filter that rejected the event, and why."""


class Matcher:
    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = list(rules)
        self._order = {rule.name: i for i, rule in enumerate(self.rules)}
        self._by_type: dict[str, list[Rule]] = defaultdict(list)
        self._by_source: dict[str, list[Rule]] = defaultdict(list)
        self._by_type_prefix: dict[str, list[Rule]] = defaultdict(list)
        self._unindexed: list[Rule] = []
        for rule in self.rules:
            pins = rule.filter.pinned()
            if "type" in pins:
                for value in pins["type"]:
                    self._by_type[value].append(rule)
            elif "source" in pins:
                for value in pins["source"]:
                    self._by_source[value].append(rule)
            elif "type" in rule.filter.prefixes():
                self._by_type_prefix[rule.filter.prefixes()["type"]].append(rule)
            else:
                self._unindexed.append(rule)
        self._prefix_lengths = sorted({len(p) for p in self._by_type_prefix})

    def candidates(self, event: CloudEvent) -> list[Rule]:
        event_type = event.type
        found = self._by_type.get(event_type, []) + self._by_source.get(event.source, [])
        for length in self._prefix_lengths:
            if length > len(event_type):
                break
            found += self._by_type_prefix.get(event_type[:length], [])
        found += self._unindexed
        if len(found) > 1:
            found = sorted(dict.fromkeys(found, None), key=lambda r: self._order[r.name])
        return found

    def match(self, event: CloudEvent) -> list[Rule]:
        return [rule for rule in self.candidates(event) if rule.matches(event)]

    def explain(self, event: CloudEvent) -> list[Verdict]:
        """Every rule's verdict, for ``rules test``: the slow path, on purpose exhaustive."""
        verdicts = []
        for rule in self.rules:
            failed = rule.filter.first_failure(event)
            if failed is None:
                verdicts.append(Verdict(rule, True, "all filters matched"))
            else:
                index, member = failed
                verdicts.append(Verdict(rule, False, f"spec.filters[{index}] {member.why_not(event)}"))
        return verdicts
