"""Prometheus metrics: every counter, histogram and gauge the router exposes on ``/metrics``.

All of them are defined here, in one registry, so names and labels are decided in one place and
follow Prometheus conventions (``trigger_router_<what>_total`` for counters, ``_seconds`` for
durations, base units). Labels are bounded: never an id; a rule, event type or source name
is a label, but at most ``MAX_LABEL_VALUES`` distinct values per metric and label are kept and
the rest are counted as ``other`` (event types on ``/events`` are chosen by senders, and a flood
of made-up types must not become a flood of time series).

Call sites use the small functions below rather than the metric objects, so that one module knows
what each number means. ``plugins.metrics`` exposes the ones plug-ins record (watch transitions).
"""

from __future__ import annotations

import threading
from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST

__all__ = ["CONTENT_TYPE", "MAX_LABEL_VALUES", "REGISTRY", "exposition", "bounded"]

REGISTRY = CollectorRegistry(auto_describe=True)
CONTENT_TYPE = CONTENT_TYPE_LATEST
MAX_LABEL_VALUES = 500
"""Distinct values kept per metric and label; later ones are ``other``."""
OTHER = "other"

_seen: dict[tuple[str, str], set[str]] = {}
_lock = threading.Lock()


def bounded(metric: str, label: str, value: str | None) -> str:
    """``value`` as a label value, or ``other`` once ``MAX_LABEL_VALUES`` others were seen."""
    value = value or "unknown"
    key = (metric, label)
    with _lock:
        seen = _seen.setdefault(key, set())
        if value in seen:
            return value
        if len(seen) >= MAX_LABEL_VALUES:
            return OTHER
        seen.add(value)
        return value


def _counter(name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
    return Counter(name, doc, labels, registry=REGISTRY)


INGEST_REQUESTS = _counter("trigger_router_ingest_requests_total",
                           "HTTP requests to /events and /webhooks/<source>, by source and status code",
                           ("source", "code"))
INGEST_REJECTED = _counter("trigger_router_ingest_rejected_total",
                           "Refused ingest requests (nothing stored), by source and reason", ("source", "reason"))
EVENTS_PUBLISHED = _counter("trigger_router_events_published_total",
                            "Events stored in JetStream by the edge and the background sources, by event type",
                            ("type",))
EVENTS_DUPLICATE = _counter("trigger_router_events_duplicate_total",
                            "Publishes JetStream dropped as duplicates (same id within bus.duplicate_window)",
                            ("type",))
EVENTS_ROUTED = _counter("trigger_router_events_routed_total", "Events the router consumed and matched against rules")
RULE_MATCHES = _counter("trigger_router_rule_matches_total", "Events a rule matched (runs recorded)", ("rule",))
RUNS = _counter("trigger_router_runs_total", "Runs finished, by rule, action and outcome",
                ("rule", "action", "outcome"))
RUN_DURATION = Histogram("trigger_router_run_duration_seconds", "Time from a run's start to its stored result",
                         ("rule", "action"), registry=REGISTRY,
                         buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800))
CONSUMER_PENDING = Gauge("trigger_router_consumer_pending_messages",
                         "Messages a durable consumer has not yet been given (JetStream num_pending)",
                         ("consumer",), registry=REGISTRY)
CONSUMER_ACK_PENDING = Gauge("trigger_router_consumer_ack_pending_messages",
                             "Messages given out and not acknowledged: in progress, or naked to wait (policies)",
                             ("consumer",), registry=REGISTRY)
WATCH_TRANSITIONS = _counter("trigger_router_watch_transitions_total",
                             "Kubernetes transitions published, by kind and transition", ("kind", "transition"))
WATCH_RESTARTS = _counter("trigger_router_watch_restarts_total",
                          "Kubernetes watch restarts (410 Gone re-lists, dropped streams), by kind and reason",
                          ("kind", "reason"))
REPORTS = _counter("trigger_router_reports_total", "Reporter calls, by reporter, stage and result "
                   "(ok, skipped, retry, failed, gave-up)", ("reporter", "stage", "result"))
SUBSCRIPTION_DELIVERIES = _counter("trigger_router_subscription_deliveries_total",
                                   "Deliveries to subscription sinks, by result (ok, retry, dead-lettered)",
                                   ("result",))
RULE_RELOADS = _counter("trigger_router_rule_reloads_total", "Rule reloads, by result (applied, rejected)",
                        ("result",))
BUS_CONNECTED = Gauge("trigger_router_bus_connected", "1 while connected to NATS JetStream", registry=REGISTRY)
READY = Gauge("trigger_router_ready", "1 while /readyz answers 200", registry=REGISTRY)


def ingest(source: str, code: int) -> None:
    INGEST_REQUESTS.labels(bounded("ingest", "source", source), str(code)).inc()


def rejected(source: str, reason: str) -> None:
    INGEST_REJECTED.labels(bounded("rejected", "source", source), reason).inc()


def published(event_type: str, duplicate: bool) -> None:
    label = bounded("published", "type", event_type)
    (EVENTS_DUPLICATE if duplicate else EVENTS_PUBLISHED).labels(label).inc()


def published_all(batch: list, stored: list) -> list:
    """Count each of ``batch`` by type (``stored``: their ``Published`` answers); returns ``stored``."""
    for event, result in zip(batch, stored):
        published(event.type, result.duplicate)
    return stored


def routed(count: int) -> None:
    EVENTS_ROUTED.inc(count)


def matched(rule: str) -> None:
    RULE_MATCHES.labels(bounded("matches", "rule", rule)).inc()


def run_finished(rule: str, action: str, outcome: str, duration: float | None) -> None:
    rule_label = bounded("runs", "rule", rule)
    RUNS.labels(rule_label, action, outcome).inc()
    if duration is not None:
        RUN_DURATION.labels(rule_label, action).observe(duration)


def consumer(name: str, pending: int, ack_pending: int) -> None:
    CONSUMER_PENDING.labels(name).set(pending)
    CONSUMER_ACK_PENDING.labels(name).set(ack_pending)


def watch_transition(kind: str, transition: str) -> None:
    WATCH_TRANSITIONS.labels(bounded("transitions", "kind", kind), transition).inc()


def watch_restart(kind: str, reason: str) -> None:
    WATCH_RESTARTS.labels(bounded("restarts", "kind", kind), reason).inc()


def report(reporter: str, stage: str, result: str) -> None:
    REPORTS.labels(bounded("reports", "reporter", reporter), stage, result).inc()


def delivered(result: str) -> None:
    SUBSCRIPTION_DELIVERIES.labels(result).inc()


def reload(applied: bool) -> None:
    RULE_RELOADS.labels("applied" if applied else "rejected").inc()


def initialize(reporters: list[str] = ()) -> None:
    """Create the series alerts watch with a 0, so their first increase is seen: Prometheus'
    ``increase()`` cannot tell a series born at 1 from one that was always 1."""
    for result in ("applied", "rejected"):
        RULE_RELOADS.labels(result)
    for name in reporters:
        for stage in ("queued", "started", "finished"):
            for result in ("failed", "gave-up"):
                REPORTS.labels(bounded("reports", "reporter", name), stage, result)


def watch_gauges(connected: Callable[[], bool], ready: Callable[[], bool]) -> None:
    """Gauges read when scraped: the bus connection and readiness of this process."""
    BUS_CONNECTED.set_function(lambda: 1.0 if connected() else 0.0)
    READY.set_function(lambda: 1.0 if ready() else 0.0)


def exposition() -> bytes:
    return generate_latest(REGISTRY)
