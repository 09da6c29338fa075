"""Reading one stored event back by its stream sequence.

Run records and correlation joins refer to large events by ``[stream, sequence]`` instead of
copying them (``router.engine.runs``), so the executor and the correlator fetch them. Both need
the same three answers, decided here once: the event, ``None`` when retention has removed it (a
permanent answer the caller reports), or ``errors.BusUnavailable`` when NATS cannot answer now.
"""

from __future__ import annotations

import asyncio

import nats.errors
import nats.js.errors
from nats.js import JetStreamContext

from router import errors
from router.model import events
from router.model.bindings import nats as nats_binding

__all__ = ["event"]


async def event(js: JetStreamContext, stream: str, sequence: int) -> events.CloudEvent | None:
    try:
        raw = await js.get_msg(stream, sequence)
    except nats.js.errors.NotFoundError:
        return None
    except (nats.errors.Error, nats.js.errors.Error, asyncio.TimeoutError) as exc:
        raise errors.BusUnavailable(f"cannot read event {stream}#{sequence}: {exc.__class__.__name__}") from exc
    return nats_binding.from_message(raw.headers, raw.data)
