"""What travels on the bus: the CloudEvent, its event types, CDEvents, artifacts and run outcomes.

Pure data and pure functions: nothing here does I/O. ``bindings`` maps an event to an HTTP request
and to a NATS message (the CloudEvents protocol bindings).
"""
