"""trigger-router: CI, registry and cluster events in; verified deployments out.

The package is layered one way: the HTTP edge and CLI call into ingest and routing, which use the
bus and event model, which rest on settings and errors. Plug-ins in ``handlers`` reach the core only
through the registries in :mod:`router.registry`.
"""
