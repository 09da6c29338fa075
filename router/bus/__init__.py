"""The JetStream bus: connection and streams, pull consumers, key-value state, embedded server.

``connection`` keeps one NATS connection with its streams and publishes durably; ``consumers``
pulls from shared durable consumers; ``kv`` is the only wrapper of JetStream key-value buckets
(open-or-create, read with revision, compare-and-set, delete), used by run state, policy state and
watch state alike; ``embedded`` runs nats-server when no URL is configured.
"""
