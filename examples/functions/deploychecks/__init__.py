"""Example post-deploy checks written as trigger-router functions (``action: function``).

Put ``examples/functions`` on ``functions.paths`` and refer to them as
``deploychecks.version:serves_commit`` and ``deploychecks.restarts:no_restarts``.
"""
