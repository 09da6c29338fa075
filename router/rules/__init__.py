"""Trigger rules: what users write, validated and compiled once, and matched against events.

``schema`` is the YAML document model, ``policy`` the run-policy part of a rule (what a rule says;
the engine enforces it), ``loading`` compiles files into ``Rule`` objects, ``matching`` indexes them,
``templates`` and ``celexpr`` render ``{{ }}`` parameters, ``reload`` swaps rule sets at run time.
``filters`` holds one module per filter dialect; ``cesql`` is a self-contained CloudEvents SQL engine.
Rules know actions only as names with parameter models (``loading.ActionSpec``), never the plug-ins.
"""
