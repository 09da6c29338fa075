"""The ``trigger-router`` command line: the parser and one module per command group.

``serve`` (``serve.py``) is the composition root: the only module here that builds the server out
of the edge and the engine. The other commands are short-lived clients: they reach NATS through
``client.py`` and ask the engine only through its public queries (``router.engine.queries``).
"""
