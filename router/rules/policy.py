"""The run-policy part of a rule as users write it (``spec.policy``, ``spec.correlate``), compiled.

What a rule *says* lives here, with the rules; what the engine *does* with it (slots, debounce,
rate limits, joins in the policy bucket) lives in ``router.engine.policy``.

Keys are ``{{ <CEL> }}`` templates rendered against the triggering event (a constant string is a
valid template: one key for the whole rule). They are compiled when the rule loads, like action
parameters, so a typo in a key expression is a load error naming the field, not a 3 a.m. surprise.
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


def compile_keys(policy: Any) -> Keys:
    def key(value: str | None, path: str) -> templates.Template | None:
        return None if value is None else templates.Template(value, path)

    return Keys(
        concurrency=key(policy.concurrency.key if policy.concurrency else None, "spec.policy.concurrency.key"),
        dedupe=key(policy.dedupe.key if policy.dedupe else None, "spec.policy.dedupe.key"),
        rate=key(policy.rate_limit.key if policy.rate_limit else None, "spec.policy.rateLimit.key"),
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
