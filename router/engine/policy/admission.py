"""The router's side of run policies: decide, when an event matched a rule, what its run becomes.

Called once per (event, rule) before the run is recorded. It applies, in this order: ``dedupe`` (a
duplicate is recorded as ``deduped`` and never executed), ``concurrency`` (``forbidden`` or
``replaced`` runs are recorded and never executed; ``replace`` asks the holder to cancel),
``debounce`` / ``delay`` / ``rateLimit`` (the run gets a ``not_before`` time the executor respects).

Every decision is a compare-and-set in the policy bucket, keyed by the event's stream sequence, so
two routers deciding at once agree. The decision travels in the run record (the router's one write
per run); the executor records it in the run's state and carries out a "never executed" decision.
Deciding again for a redelivered event finds its own entries (same run id) and changes nothing; if
the first run message was stored, JetStream drops the second as a duplicate anyway.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from router import errors
from router.engine import runs
from router.engine.policy import concurrency, debounce, dedupe, ratelimit
from router.engine.policy.store import PolicyStore, slot
from router.rules import policy as spec
from router.rules.loading import Rule


@dataclass
class Decision:
    run: bool = True
    """False: the run is recorded as finished with ``outcome`` and ``reason`` and never executed."""
    label: str = "queued"
    """What ``runs list`` shows: queued, delayed, debouncing, rate-limited, forbidden, replaced, ..."""
    reason: str = ""
    outcome: str = "cancel"
    fields: dict[str, Any] = field(default_factory=dict)
    """Extra run-state fields (the keys, the run that replaced or duplicated this one, times)."""


class Admission:
    def __init__(self, store: PolicyStore, states: runs.RunStates, nc: Any, control_subject: str) -> None:
        self.store = store
        self.states = states
        self.nc = nc
        self.control_subject = control_subject

    @staticmethod
    def applies(rule: Rule) -> bool:
        policy = rule.policy
        return bool(policy.dedupe or (policy.concurrency and policy.concurrency.mode != "allow")
                    or policy.debounce or policy.delay or policy.rate_limit)

    async def admit(self, rule: Rule, record: runs.RunRecord, event, seq: int) -> Decision:
        """Decide, and write the decision into ``record`` (``decision``, ``policy``, ``not_before``)."""
        record.seq = seq
        try:
            decision = await self._decide(rule, record, event, seq)
        except errors.PermanentError as exc:
            decision = Decision(False, "error", f"policy key: {exc}", "error")
        record.decision = asdict(decision)
        return decision

    async def _decide(self, rule: Rule, record: runs.RunRecord, event, seq: int) -> Decision:
        policy, now = rule.policy, time.time()
        decision = Decision()
        if policy.dedupe:
            key = spec.render_key(rule.keys.dedupe, event)
            original = await dedupe.claim(self.store, slot("dedupe", rule.name, key), record.run_id,
                                          policy.dedupe.window, now)
            if original:
                reason = f"duplicate of run {original} (dedupe key {key!r} within {policy.dedupe.window:g}s)"
                return Decision(False, "deduped", reason, fields={"dedupeKey": key, "duplicateOf": original})
        key = spec.render_key(rule.keys.concurrency, event) if policy.concurrency else ""
        if policy.concurrency and policy.concurrency.mode != "allow":
            mode, where = policy.concurrency.mode, slot("slot", rule.name, key)
            claim = await concurrency.claim(self.store, self.states, where, mode, record.run_id, seq)
            if not claim.admitted:
                why = "forbidden: run {} is active for key {!r}" if claim.decision == "forbidden" \
                    else "replaced by run {} (a newer event for key {!r})"
                return Decision(False, claim.decision, why.format(claim.holder, key),
                                fields={"concurrencyKey": key, "by": claim.holder})
            record.policy.update(slot=where, mode=mode)
            decision.fields.update(concurrencyKey=key)
            for victim in claim.victims:
                await concurrency.request_cancel(self.store, self.nc, self.control_subject, victim,
                                                 f"replaced by run {record.run_id}", record.run_id)
            if claim.victims:
                decision.fields["replaces"] = claim.victims
            if mode == "queue" and claim.position:
                decision.label = f"queued #{claim.position + 1}"
        if policy.debounce:
            where = slot("latest", rule.name, key)
            await debounce.note(self.store, where, record.run_id, seq)
            record.policy["latest"] = where
            record.not_before = max(record.not_before, now + policy.debounce)
            decision.label = "debouncing"
        if policy.delay:
            record.not_before = max(record.not_before, now + policy.delay)
            decision.label = "delayed" if decision.label == "queued" else decision.label
        if policy.rate_limit:
            limit = policy.rate_limit
            rate_key = spec.render_key(rule.keys.rate, event)
            start = await ratelimit.reserve(self.store, slot("rate", rule.name, rate_key), limit.rate, limit.per,
                                            limit.burst, now)
            if start > max(now, record.not_before):
                decision.label = "rate-limited"
                decision.fields["rateLimitedUntil"] = start
            record.not_before = max(record.not_before, start)
        return decision
