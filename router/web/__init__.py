"""The run-history web view: read-only HTML pages of runs, their timelines and rules' standings.

Served under ``/ui/`` of the HTTP edge when ``web.enabled`` (off by default): ``views`` is an
aiohttp sub-application the edge mounts (``views.mount``), so the edge's error middleware still
turns every refusal into a status (this folder raises ``router.errors``, it never picks statuses).
It reads the engine only through ``engine.queries``, so a page can never change a run.
Server-rendered (Jinja2, autoescaped: event data is attacker-controlled), no JavaScript, no asset
from outside the package.
"""
