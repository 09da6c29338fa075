"""Real servers for the test suite: nats-server now, a registry and a cluster in their own modules."""
