"""The run-policy runtime: what happens to a run between "an event matched a rule" and "the action runs".

Real pipelines send bursts, duplicates and superseded work, and several router processes share the
work. Every decision here therefore keeps its state in JetStream (the ``TR_POLICY`` key-value
bucket, written with optimistic concurrency), never in process memory, so it holds across replicas
and restarts. What a rule says (``policy.concurrency/debounce/delay/dedupe/rateLimit``,
``correlate``) is part of the rules (``router.rules.policy``); this package enforces it:

- ``store``: the bucket (through ``router.bus.kv``'s compare-and-set), one writer per key per
  process (``queueing``, a kopf-style per-key queue);
- ``backlog``: how many runs of a rule may wait at once (``policy.maxWaiting``);
- ``admission``: the router side, deciding when a run is recorded (dedupe, concurrency, timing);
- ``gate``: the executor side, deciding when a recorded run may start, and cancelling it;
- ``concurrency``, ``debounce``, ``dedupe``, ``ratelimit``, ``correlation``: one concept each.
"""
