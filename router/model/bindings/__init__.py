"""CloudEvents protocol bindings: how an event maps to an HTTP request and to a NATS message."""
