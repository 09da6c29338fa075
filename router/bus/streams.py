"""The bus's own streams (events, outcomes, dead letters), created and kept as configured.

``bus.replicas`` applies to every one of them, as to the runs stream and the KV buckets: on a
3-node cluster each is replicated to all three (docs/cluster.md).
"""

from __future__ import annotations

import logging

import nats.js.errors
from nats.js import JetStreamContext, api

from router.config.settings import BusSettings

__all__ = ["ensure_streams", "stream_configs"]

log = logging.getLogger(__name__)


def stream_configs(bus: BusSettings) -> list[api.StreamConfig]:
    def config(name: str, subject: str, description: str) -> api.StreamConfig:
        return api.StreamConfig(
            name=name, description=description, subjects=[f"{subject}.>"], retention=api.RetentionPolicy.LIMITS,
            storage=api.StorageType.FILE, max_age=bus.max_age, max_bytes=bus.max_bytes, num_replicas=bus.replicas,
            duplicate_window=min(bus.duplicate_window, bus.max_age) if bus.max_age else bus.duplicate_window)

    return [
        config(bus.events_stream, bus.events_subject, "trigger-router: ingested CloudEvents"),
        config(bus.outcomes_stream, bus.outcomes_subject, "trigger-router: run outcomes (CDEvents)"),
        config(bus.deadletter_stream, bus.deadletter_subject, "trigger-router: undeliverable events"),
    ]


async def ensure_streams(js: JetStreamContext, bus: BusSettings,
                         extra: list[api.StreamConfig] = ()) -> list[str]:
    """Create missing streams, update drifted ones (idempotent); what it created: ``stream <name>``."""
    created = []
    for config in [*stream_configs(bus), *extra]:
        try:
            info = await js.stream_info(config.name)
        except nats.js.errors.NotFoundError:
            await js.add_stream(config)
            log.info("created stream %s (%s)", config.name, config.subjects[0])
            created.append(f"stream {config.name}")
            continue
        current = info.config
        if (current.subjects, current.max_age, current.duplicate_window, current.max_bytes,
                current.num_replicas) != (config.subjects, config.max_age, config.duplicate_window,
                                          config.max_bytes, config.num_replicas):
            await js.update_stream(config)
            log.info("updated stream %s", config.name)
    return created
