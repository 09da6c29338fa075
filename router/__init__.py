"""trigger-router: CI, registry and cluster events in; verified deployments out.

The core is laid out by concern, one folder each, and its imports point one way, top to bottom
(``tests/unit/test_layering.py`` enforces it):

- ``cli``: the command line; ``serve`` is the composition root, the other commands are clients;
- ``edge``: the HTTP edge (webhook and CloudEvents ingest, health, readiness);
- ``engine``: routing events to runs, executing runs under their policies, dead letters;
- ``plugins``: the catalog of sources and actions, and the public surface plug-ins import;
- ``rules``: rule documents, filters (CESQL, CEL), templates, matching, reload;
- ``bus``: NATS JetStream (connection, consumers, key-value state, embedded server);
- ``model``: CloudEvents, event types, CDEvents, artifacts, outcomes, protocol bindings;
- ``config``: settings and logging; ``errors``: the typed error family.

Plug-ins in ``handlers`` (sources, actions) import only :mod:`router.plugins` and register
themselves there; the core never imports them except through the catalog's ``load()``.
"""
