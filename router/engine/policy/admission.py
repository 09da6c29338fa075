"""The router's side of run policies: decide, when an event matched a rule, what its run becomes.

Called once per (event, rule) before the run is recorded. It applies, in this order: ``dedupe`` (a
duplicate is recorded as ``deduped`` and never executed), the timers (``debounce`` / ``delay`` /
``rateLimit`` give the run a ``not_before`` time the executor respects), the rule's waiting-run
bound (``backlog``), ``concurrency`` (``forbidden`` or ``replaced`` runs are recorded and never
executed; ``replace`` asks the holder to cancel), and last the debounce "latest" mark. Whatever
others rely on (the latest mark, a replaced run's cancellation) is written only once the run is sure
to be admitted, so a run refused as ``backlog full`` takes no one's place; what it had claimed
before (its dedupe window, its count in the ledger) is given back.

Every decision is a compare-and-set in the policy bucket, keyed by the event's stream sequence, so
two routers deciding at once agree. Inside one process, admissions for one policy key (the rule and
its rendered concurrency key, else its rate or dedupe key) take turns in stream-sequence order
(``queueing``), so a batch of events on one key is decided one after another instead of racing
itself. The decision travels in the run record (the router's one write per run); the executor
records it in the run's state and carries out a "never executed" decision. Deciding again for a
redelivered event finds its own entries (same run id) and changes nothing; if the first run message
was stored, JetStream drops the second as a duplicate anyway.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Awaitable, Callable

from router import errors
from router.engine import runs
from router.engine.policy import backlog, concurrency, debounce, dedupe, queueing, ratelimit
from router.engine.policy.store import PolicyStore, slot
from router.rules import policy as spec
from router.rules.loading import Rule

DUE = 0.01
"""A ``not_before`` less than this ahead is not a wait (the executor's threshold too)."""


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


@dataclass(frozen=True)
class _Keys:
    concurrency: str = ""
    rate: str = ""
    dedupe: str = ""

    def turn(self, rule: Rule) -> str:
        """The policy key admissions take turns on: the one most of the rule's writes go to."""
        policy = rule.policy
        key = self.concurrency if policy.concurrency or policy.debounce else self.rate if policy.rate_limit \
            else self.dedupe
        return f"{rule.name}\x00{key}"


class Admission:
    def __init__(self, store: PolicyStore, states: runs.RunStates, nc: Any, control_subject: str) -> None:
        self.store = store
        self.states = states
        self.nc = nc
        self.control_subject = control_subject
        self.turns = queueing.KeyedQueue()

    @staticmethod
    def applies(rule: Rule) -> bool:
        policy = rule.policy
        return bool(policy.dedupe or (policy.concurrency and policy.concurrency.mode != "allow")
                    or policy.debounce or policy.delay or policy.rate_limit)

    async def admit(self, rule: Rule, record: runs.RunRecord, event, seq: int) -> Decision:
        """Decide, and write the decision into ``record`` (``decision``, ``policy``, ``not_before``)."""
        record.seq = seq
        try:
            policy = rule.policy
            keys = _Keys(spec.render_key(rule.keys.concurrency, event) if policy.concurrency else "",
                         spec.render_key(rule.keys.rate, event) if policy.rate_limit else "",
                         spec.render_key(rule.keys.dedupe, event) if policy.dedupe else "")
            async with self.turns.turn(keys.turn(rule), seq):
                decision = await self._decide(rule, record, keys, seq)
        except errors.PermanentError as exc:
            decision = Decision(False, "error", f"policy key: {exc}", "error")
        record.decision = asdict(decision)
        return decision

    async def _decide(self, rule: Rule, record: runs.RunRecord, keys: _Keys, seq: int) -> Decision:
        policy, now, store, run_id = rule.policy, time.time(), self.store, record.run_id
        give_back: list[Callable[[], Awaitable[None]]] = []
        """What this run claimed, undone (newest first) if it is refused as ``backlog full``."""
        uncount: Callable[[], Awaitable[None]] | None = None
        """Its count in the ledger, undone as well if it is forbidden or replaced."""
        if policy.dedupe:
            where = slot("dedupe", rule.name, keys.dedupe)
            original = await dedupe.claim(store, where, run_id, policy.dedupe.window, now)
            if original:
                reason = f"duplicate of run {original} (dedupe key {keys.dedupe!r} within {policy.dedupe.window:g}s)"
                return Decision(False, "deduped", reason, fields={"dedupeKey": keys.dedupe, "duplicateOf": original})
            give_back.append(lambda: dedupe.give_back(store, where, run_id))
        decision = Decision()

        not_before = max(now + (policy.debounce or 0), now + (policy.delay or 0))
        rate_limited_until = None
        if policy.rate_limit:
            limit = policy.rate_limit
            start = await ratelimit.reserve(store, slot("rate", rule.name, keys.rate), limit.rate, limit.per,
                                            limit.burst, now, policy.max_waiting if "rate" in rule.keys.per_rule
                                            else None, seq)
            if start is None:
                return await _full(rule, give_back, f"{policy.max_waiting} runs wait for the rate limit"
                                                    f" of key {keys.rate!r}")
            if start > not_before:
                rate_limited_until = start
            not_before = max(not_before, start)

        latest = slot("latest", rule.name, keys.concurrency)
        if not_before - now > DUE and _ledger_counts_time(rule):
            counts = True
            if policy.debounce and "concurrency" not in rule.keys.per_rule:
                current, _ = await store.read(latest)
                counts = not debounce.pending(current, seq, policy.debounce, now)
            if counts:
                width = backlog.step(max(seconds for _, _, seconds in spec.longest_waits(policy)))
                refused = await backlog.add(store, rule.name, not_before, now, width, policy.max_waiting)
                if refused is not None:
                    return await _full(rule, give_back, f"{refused} runs of rule {rule.name} are waiting")
                uncount = lambda: backlog.take_back(store, rule.name, not_before, now, width)  # noqa: E731
                give_back.append(uncount)

        claim = None
        if policy.concurrency and policy.concurrency.mode != "allow":
            mode, where = policy.concurrency.mode, slot("slot", rule.name, keys.concurrency)
            per_rule = "concurrency" in rule.keys.per_rule
            claim = await concurrency.claim(store, self.states, where, mode, run_id, seq,
                                            policy.max_waiting if mode == "queue" and per_rule else None)
            if claim.decision == "backlog-full":
                return await _full(rule, give_back, f"{claim.waiting} runs of rule {rule.name} wait in its queue")
            if not claim.admitted:
                if uncount is not None:
                    await uncount()  # its dedupe window stays: an event forbidden or replaced was handled
                why = "forbidden: run {} is active for key {!r}" if claim.decision == "forbidden" \
                    else "replaced by run {} (a newer event for key {!r})"
                return Decision(False, claim.decision, why.format(claim.holder, keys.concurrency),
                                fields={"concurrencyKey": keys.concurrency, "by": claim.holder})
            if mode == "queue" and not per_rule:
                refused = await _track(store, rule, where, claim.waiting, policy.max_waiting)
                if refused is not None:
                    left = await concurrency.release(store, where, run_id, seq)
                    await _track(store, rule, where, max(len(left or []) - 1, 0))
                    return await _full(rule, give_back, f"{refused} runs of rule {rule.name} wait in its queues")
                record.policy["ledger"] = True
            record.policy.update(slot=where, mode=mode)
            decision.fields.update(concurrencyKey=keys.concurrency)
            if mode == "queue" and claim.position:
                decision.label = f"queued #{claim.position + 1}"

        if policy.debounce:
            await debounce.note(store, latest, run_id, seq)
            record.policy["latest"] = latest
            decision.label = "debouncing"
        if policy.delay and decision.label == "queued":
            decision.label = "delayed"
        if rate_limited_until is not None:
            decision.label = "rate-limited"
            decision.fields["rateLimitedUntil"] = rate_limited_until
        if not_before - now > DUE:
            record.not_before = max(record.not_before, not_before)
        if claim is not None and claim.victims:
            for victim in claim.victims:
                await concurrency.request_cancel(store, self.nc, self.control_subject, victim,
                                                 f"replaced by run {run_id}", run_id)
            decision.fields["replaces"] = claim.victims
        return decision


def _ledger_counts_time(rule: Rule) -> bool:
    """Whether the rule's timed waits span keys the policy entries cannot count (``backlog``)."""
    policy, per_rule = rule.policy, rule.keys.per_rule
    return bool(policy.delay or (policy.debounce and "concurrency" not in per_rule)
                or (policy.rate_limit and "rate" not in per_rule))


async def _track(store: PolicyStore, rule: Rule, where: str, waiting: int, limit: int | None = None) -> int | None:
    entry = store.known(where)
    return await backlog.track_queue(store, rule.name, where, waiting, entry.revision if entry else 0, limit)


async def _full(rule: Rule, give_back: list[Callable[[], Awaitable[None]]], why: str) -> Decision:
    for undo in reversed(give_back):
        await undo()
    return Decision(False, "backlog-full", f"backlog full: {why} (policy.maxWaiting {rule.policy.max_waiting})",
                    "error", fields={"maxWaiting": rule.policy.max_waiting})
