"""CEL values written back as CEL: how ``rules test`` shows what a ``cel`` filter evaluated to.

The CEL binding hands results back as Python values, and Python's ``repr`` spells them the way a
rule author never writes them (``False``, ``None``, ``'main'``). A rule author reading "evaluated
to False" next to an expression written as ``x == false`` has to translate; this module prints the
value as a CEL literal instead (``false``, ``null``, ``"main"``, ``timestamp("...")``), so the
explanation can be pasted back into the expression.
"""

from __future__ import annotations

import datetime
import json
import math
from typing import Any

__all__ = ["literal"]


def literal(value: Any) -> str:
    """``value`` (as the CEL binding returns it) spelled as a CEL literal."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return 'double("NaN")'
        if math.isinf(value):
            return 'double("Infinity")' if value > 0 else 'double("-Infinity")'
        return repr(value)  # always has a "." or an exponent: CEL reads it as a double
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # CEL's double-quoted strings share JSON's escapes
    if isinstance(value, (bytes, bytearray)):
        return 'b"' + "".join(_byte(b) for b in bytes(value)) + '"'
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
        text = moment.astimezone(datetime.timezone.utc).isoformat().replace("+00:00", "Z")
        return f'timestamp("{text}")'
    if isinstance(value, datetime.timedelta):
        return f'duration("{value.total_seconds():g}s")'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)  # a type the binding does not return today: shown, not hidden


def _byte(code: int) -> str:
    char = chr(code)
    if char in '"\\':
        return "\\" + char
    return char if 0x20 <= code < 0x7f else f"\\x{code:02x}"
