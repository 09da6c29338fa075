"""In-process functions: the settings, the finding and re-importing of function modules, and what
the router supplies behind a function's ``ctx``. The ``function`` action (``handlers/actions/function.py``)
runs them; authors write against ``router.functions`` only (``docs/functions.md``)."""
