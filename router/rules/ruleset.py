"""The rules in force: the union of what every rule source contributes (files, TriggerRule CRs...).

Each source replaces its own part whole (``update``); the union is compiled into one ``Matcher``
and handed to routing in one assignment, so an event is matched by one consistent set. Names are
unique across sources by construction: file rules are DNS-style names, TriggerRules are
``<namespace>/<name>`` and ClusterTriggerRules ``_cluster/<name>`` (no file rule name contains
``/``).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping

from router.rules import loading
from router.rules.loading import Rule
from router.rules.matching import Matcher

log = logging.getLogger(__name__)


class RuleSet:
    def __init__(self, apply: Callable[[Matcher], None]) -> None:
        self.apply = apply
        self.parts: dict[str, list[Rule]] = {}

    def update(self, source: str, rules: Iterable[Rule]) -> Matcher:
        """Replace ``source``'s rules and apply the new union; returns its matcher."""
        self.parts[source] = list(rules)
        matcher = Matcher(rule for name in sorted(self.parts) for rule in self.parts[name])
        self.apply(matcher)
        return matcher

    def rules(self, source: str) -> list[Rule]:
        return list(self.parts.get(source, ()))


class Sink:
    """What a rule source (``plugins.rule_source``) is given: how to compile a rule document the
    way rule files are compiled, and where to put the rules it has."""

    def __init__(self, ruleset: RuleSet, source: str, actions: Mapping[str, Any], max_age: float | None,
                 reporters: Mapping[str, Any] | None = None) -> None:
        self.ruleset, self.source, self.actions, self.max_age = ruleset, source, actions, max_age
        self.reporters = reporters

    def compile(self, spec: Any, origin: str, name: str, *, namespace: str | None = None,
                namespaced_actions: frozenset[str] | None = None) -> Rule:
        """A rule from a ``spec`` as a rule file would hold it; ``errors.RuleError`` naming ``origin``."""
        document = {"kind": "TriggerRule", "metadata": {"name": name.rsplit("/", 1)[-1]}, "spec": spec}
        return loading.compile_document(document, origin, 0, self.actions, self.max_age, name=name,
                                        namespace=namespace, namespaced_actions=namespaced_actions,
                                        reporters=self.reporters)

    def publish(self, rules: Iterable[Rule]) -> None:
        """Replace this source's rules (all of them) in the rules in force."""
        self.ruleset.update(self.source, rules)
