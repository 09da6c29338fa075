"""The run-policy part of a rule as users write it (``spec.policy``, ``spec.correlate``), compiled.

What a rule *says* lives here, with the rules; what the engine *does* with it (slots, debounce,
rate limits, joins in the policy bucket) lives in ``router.engine.policy``.

Keys are ``{{ <CEL> }}`` templates rendered against the triggering event (a constant string is a
valid template: one key for the whole rule). They are compiled when the rule loads, like action
parameters, so a typo in a key expression is a load error naming the field, not a 3 a.m. surprise.

Limits are checked here too, where they are configured (``check_limits``): a run that waits (delay,
debounce, a rate-limit backlog of ``maxWaiting`` runs) lives as a message on the runs stream, and
a message older than ``bus.max_age`` is deleted by JetStream. A rule whose wait could outlive it
would lose runs without a trace, so it does not load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from router import errors
from router.config.base import Duration
from router.model.events import CloudEvent
from router.rules import filters, templates
from router.rules.filters.logical import AllOf


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Concurrency(_Model):
    key: str = ""
    """Runs with the same rendered key are one "slot"; empty: one slot for the whole rule."""
    mode: Literal["allow", "forbid", "replace", "queue"] = "allow"


class Dedupe(_Model):
    key: str
    window: Duration = 600.0


class RateLimit(_Model):
    rate: int = Field(ge=1)
    """Runs started per ``per``."""
    per: Duration = 60.0
    burst: int = Field(1, ge=1)
    """Runs that may start at once before the rate applies."""
    key: str = ""


class Requirement(_Model):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    filters: list[Any] = Field(min_length=1)
    key: str | None = None
    """This requirement's join key, when its events carry it elsewhere than ``correlate.key`` says."""


class Correlate(_Model):
    key: str
    within: Duration
    require: list[Requirement] = Field(min_length=2)
    on_expiry: Literal["publish", "drop"] = Field("publish", alias="onExpiry")
    """``publish``: an ``event_types.CORRELATION_EXPIRED`` event names what never arrived."""


class RetryPolicy(_Model):
    limit: int = Field(0, ge=0, le=100)
    """Extra attempts after a temporary error (0: none)."""
    backoff: Duration = 1.0
    """First delay; doubled per attempt, with full jitter."""
    max_backoff: Duration = Field(60.0, alias="maxBackoff")


class Policy(_Model):
    timeout: Duration = 300.0
    """Seconds one attempt of the action may take; then it is cancelled and the run ends in error."""
    retry: RetryPolicy = RetryPolicy()
    concurrency: Concurrency | None = None
    """Runs with the same key: ``allow`` all, ``forbid`` new ones, ``replace`` the active one, ``queue``."""
    debounce: Duration | None = None
    """Run once for the latest event of a key after no newer one arrived for this long."""
    delay: Duration | None = None
    """Start no run earlier than this after its event."""
    dedupe: Dedupe | None = None
    rate_limit: RateLimit | None = Field(None, alias="rateLimit")
    max_waiting: int = Field(1000, ge=1, le=100_000, alias="maxWaiting")
    """Runs of this rule that may wait at once (delay, debounce, rate limit, their turn in a queue);
    one more is recorded as finished ``error``, ``backlog full``, instead of piling up."""


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.3g}{unit}"
    return f"{seconds:.3g}s"


def longest_waits(policy: Policy) -> list[tuple[str, str, float]]:
    """(field, what, seconds): the longest a run of this policy can wait for each of its timers."""
    waits = []
    if policy.delay is not None:
        waits.append(("spec.policy.delay", "a delay", policy.delay))
    if policy.debounce is not None:
        waits.append(("spec.policy.debounce", "a debounce", policy.debounce))
    if policy.rate_limit is not None:
        limit = policy.rate_limit
        what = f"a backlog of policy.maxWaiting ({policy.max_waiting}) runs at {limit.rate} per {_span(limit.per)}"
        waits.append(("spec.policy.rateLimit", what, policy.max_waiting * limit.per / limit.rate))
    return waits


def check_limits(policy: Policy, max_age: float | None) -> None:
    """Refuse a wait as long as ``bus.max_age`` (0 or ``None``: messages never expire, nothing to check)."""
    if not max_age:
        return
    for path, what, seconds in longest_waits(policy):
        if seconds >= max_age:
            hint = "lower policy.maxWaiting or raise the rate" if path.endswith("rateLimit") else "shorten it"
            raise errors.RuleError(f"{what} can keep a run waiting {_span(seconds)}, and bus.max_age "
                                   f"({_span(max_age)}) deletes its message sooner: the run would be lost; {hint}",
                                   field=path)


def check_correlation(correlate: "Correlate | None", max_age: float | None) -> None:
    """Refuse a join window as long as ``bus.max_age``: a joined event is kept as a reference to
    its stored message, which the stream deletes after ``max_age``; the run would find it gone."""
    if not max_age or correlate is None or correlate.within < max_age:
        return
    raise errors.RuleError(f"a join waits up to {_span(correlate.within)} for its events, and bus.max_age "
                           f"({_span(max_age)}) deletes the first of them sooner: the run could not read it; "
                           "shorten it", field="spec.correlate.within")


def render_key(template: templates.Template | None, event: CloudEvent) -> str:
    """The key as text; an evaluation failure is a ``PermanentError`` (the run ends in error)."""
    if template is None:
        return ""
    value = template.render(event)
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


@dataclass(frozen=True)
class CompiledRequirement:
    name: str
    filter: AllOf
    key: templates.Template


@dataclass(frozen=True)
class CompiledCorrelation:
    within: float
    require: tuple[CompiledRequirement, ...]
    publish_expiry: bool

    def any_of(self) -> list[AllOf]:
        return [requirement.filter for requirement in self.require]


@dataclass(frozen=True)
class Keys:
    """The compiled key templates of a rule's policies (None: that policy is not set)."""

    concurrency: templates.Template | None = None
    dedupe: templates.Template | None = None
    rate: templates.Template | None = None
    per_rule: frozenset[str] = frozenset({"concurrency", "rate"})
    """The policies whose key has no ``{{ }}``: one key, so one backlog, for the whole rule."""


def compile_keys(policy: Any) -> Keys:
    def key(value: str | None, path: str) -> templates.Template | None:
        return None if value is None else templates.Template(value, path)

    sources = {"concurrency": policy.concurrency.key if policy.concurrency else None,
               "rate": policy.rate_limit.key if policy.rate_limit else None}
    return Keys(
        concurrency=key(sources["concurrency"], "spec.policy.concurrency.key"),
        dedupe=key(policy.dedupe.key if policy.dedupe else None, "spec.policy.dedupe.key"),
        rate=key(sources["rate"], "spec.policy.rateLimit.key"),
        per_rule=frozenset(kind for kind, source in sources.items() if "{{" not in (source or "")),
    )


def compile_correlation(correlate: Correlate | None) -> CompiledCorrelation | None:
    if correlate is None:
        return None
    names = [r.name for r in correlate.require]
    if len(set(names)) != len(names):
        raise errors.RuleError("requirement names must be unique", field="spec.correlate.require")
    compiled = []
    for i, requirement in enumerate(correlate.require):
        path = f"spec.correlate.require[{i}]"
        members = [filters.compile(f, f"{path}.filters[{j}]") for j, f in enumerate(requirement.filters)]
        key = templates.Template(requirement.key, f"{path}.key") if requirement.key is not None \
            else templates.Template(correlate.key, "spec.correlate.key")
        compiled.append(CompiledRequirement(requirement.name, AllOf(members), key))
    return CompiledCorrelation(correlate.within, tuple(compiled), correlate.on_expiry == "publish")
