"""OpenTelemetry export of runs as spans over OTLP: off by default, and then free.

Trace context always travels (``model.tracecontext``): events, outcomes, probe requests and Jobs
carry the trigger's trace whether or not anything is exported. With ``tracing.otlp_endpoint`` set,
each executed run also becomes a span ``run <rule>`` in that trace (its parent: the triggering
event's ``traceparent``), exported in batches over OTLP/HTTP to a collector; the action's
``traceparent`` is then that span's, so the probe's or the Job's own spans hang under the run.

Off, the OpenTelemetry SDK is never imported and a run costs one ``tracecontext.child`` call.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from router.config.telemetry import TracingSettings
from router.model import tracecontext

__all__ = ["RunSpan", "configure", "run_span", "shutdown"]

log = logging.getLogger(__name__)

_exporting: dict[str, Any] = {}
"""``provider`` and ``tracer`` while export is configured."""


def configure(settings: TracingSettings) -> None:
    """Start exporting if ``settings.otlp_endpoint`` is set (imports the SDK only then)."""
    shutdown()
    if not settings.otlp_endpoint:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    headers = {name: value.get_secret_value() for name, value in settings.headers.items()}
    exporter = OTLPSpanExporter(endpoint=settings.otlp_endpoint, headers=headers, timeout=settings.timeout)
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=settings.export_interval * 1000))
    _exporting.update(provider=provider, tracer=provider.get_tracer("trigger-router"))
    log.info("exporting run spans over OTLP to %s", settings.otlp_endpoint)


def shutdown() -> None:
    """Flush what is batched and stop exporting (blocking: call it from a worker thread in async code)."""
    provider = _exporting.pop("provider", None)
    _exporting.pop("tracer", None)
    if provider is not None:
        provider.shutdown()


@dataclass
class RunSpan:
    traceparent: str | None
    """What the action sends on: the run span's context, or a child span id of the trigger's trace."""
    span: Any = None

    def end(self, outcome: str, reason: str, attempts: int) -> None:
        if self.span is None:
            return
        from opentelemetry.trace import Status, StatusCode

        self.span.set_attribute("trigger_router.outcome", outcome)
        self.span.set_attribute("trigger_router.attempts", attempts)
        if outcome in ("failure", "error"):
            self.span.set_status(Status(StatusCode.ERROR, reason[:500]))
        self.span.end()


def run_span(run_id: str, rule: str, action: str, event: dict[str, str], parent: str | None) -> RunSpan:
    """The span of one run attempt sequence, started now (a no-op one when nothing is exported)."""
    tracer = _exporting.get("tracer")
    if tracer is None:
        return RunSpan(tracecontext.child(parent) if parent else None)
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    context = propagator.extract({"traceparent": parent}) if parent else None
    span = tracer.start_span(f"run {rule}", context=context, start_time=time.time_ns(), attributes={
        "trigger_router.run_id": run_id, "trigger_router.rule": rule, "trigger_router.action": action,
        "cloudevents.event_id": event.get("id") or "", "cloudevents.event_type": event.get("type") or "",
        "cloudevents.event_source": event.get("source") or ""})
    carrier: dict[str, str] = {}
    propagator.inject(carrier, context=trace.set_span_in_context(span))
    return RunSpan(carrier.get("traceparent"), span)
