"""The CloudEvents Subscriptions API's manager: subscriptions stored, filtered and delivered to sinks.

A subscription (CloudEvents Subscriptions API 0.1, ``subscriptions-openapi.yaml``) asks for the
events and run outcomes matching its filters to be pushed to an HTTP sink. The HTTP edge
(``router.edge.subscriptions``) creates, lists, updates and deletes them; here live the document and
its validation (``schema``, ``model``), the translation of its filters into the rule engine's
(``filtering``), its storage in a JetStream KV bucket (``store``), the delivery of one subscription
by its own durable consumers (``delivery``), and the part that starts and stops deliverers as the
bucket changes, in every router process (``manager``).

This folder sits between the edge and the engine: the edge serves it, and it uses the engine's
supervisor and dead letters, the rules' filters and CESQL, and the bus.
"""
