"""JSON from senders, decoded so that nothing in it can fail later: the one JSON reader of ingest.

``json.loads`` accepts more than can travel on: it decodes bytes with ``surrogatepass`` and turns
``"\\ud800"`` into a lone surrogate (which no UTF-8 encoder, so no NATS header or re-serialized
body, can take); it reads ``1e400`` and ``Infinity`` as ``inf``; it recurses once per nesting level,
so a deep document is a ``RecursionError`` here or in whatever walks the value later (rules, the
JSON encoder). Every one of those used to surface as a 500 somewhere downstream. :func:`loads`
refuses them up front with ``errors.BadRequest`` naming the offending member (``head_commit.id``,
``[2].data.n``), which the edge answers 400:

- text must be valid UTF-8 (or UTF-16/32, as RFC 8259 detection allows), decoded strictly;
- nesting at most ``MAX_DEPTH`` arrays/objects, checked on the text before parsing;
- strings (member names too) must not hold lone surrogates;
- numbers must be finite, and integers must fit 64 bits (CEL's ``int``/``uint``, what rules see).

The value checks walk the parsed document only when the text could hold such a value (a
``\\uD8..`` escape, a long run of digits, a 3-digit exponent, ``NaN``/``Infinity``), so the common
webhook costs one regular-expression scan on top of the parse.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from router import errors

__all__ = ["MAX_DEPTH", "loads"]

MAX_DEPTH = 128
"""Arrays and objects nested in one document: deeper than any real webhook or event (GitHub's go to
about 8), and far below the interpreter's recursion limit (about 1,000)."""

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
# Text that may hold a value the walk must look at (false positives only cost the walk).
_SUSPICIOUS = re.compile(r"\\u[dD][89a-fA-F]|[0-9]{19}|[eE][+-]?[0-9]{3}|NaN|Infinity")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_MIN, _INT_END = -(2**63), 2**64


def loads(data: bytes | str, *, what: str = "body", field: str | None = None,
          max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``data``, or ``BadRequest``; ``field`` prefixes member paths (``data``)."""
    if isinstance(data, bytes):
        try:
            text = data.decode(json.detect_encoding(data))
        except UnicodeDecodeError as exc:
            raise errors.BadRequest(f"{what} is not valid UTF-8 (byte {exc.start})", field=field) from exc
    else:
        text = data
    _check_depth(text, what, field, max_depth)
    try:
        value = json.loads(text)
    except RecursionError as exc:  # unreachable after the depth check; kept so it can never be a 500
        raise errors.BadRequest(f"{what} nests deeper than {max_depth} levels", field=field) from exc
    except ValueError as exc:
        raise errors.BadRequest(f"{what} is not valid JSON: {exc}", field=field) from exc
    if _SUSPICIOUS.search(text):
        _check_values(value, what, field)
    return value


def _check_depth(text: str, what: str, field: str | None, max_depth: int) -> None:
    if text.count("[") + text.count("{") <= max_depth:  # the common small document: two scans in C
        return
    # Strings out (brackets in them do not nest), then all but brackets; each round peels the
    # innermost level, so whatever is left after max_depth rounds nests deeper than that.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    for _ in range(max_depth):
        peeled = brackets.replace("[]", "").replace("{}", "")
        if peeled == brackets:
            break
        brackets = peeled
    else:
        if brackets:
            raise errors.BadRequest(f"{what} nests deeper than {max_depth} levels of arrays and objects",
                                    field=field)
        return
    if brackets:  # no innermost pair left, yet not empty: "[}" or "[[[" (which the parser would recurse on)
        raise errors.BadRequest(f"{what} is not valid JSON: its brackets do not balance", field=field)


def _check_values(value: Any, what: str, field: str | None) -> None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                _refuse(what, field, path, "holds a lone UTF-16 surrogate (not a Unicode character)")
        elif isinstance(node, bool):
            continue
        elif isinstance(node, float):
            if not math.isfinite(node):
                _refuse(what, field, path, "is not a finite number")
        elif isinstance(node, int):
            if not _INT_MIN <= node < _INT_END:
                _refuse(what, field, path, "is an integer outside the 64-bit range")
        elif isinstance(node, dict):
            for key, member in node.items():
                if _SURROGATE.search(key):
                    _refuse(what, field, path, "has a member name holding a lone UTF-16 surrogate")
                stack.append((member, (*path, key)))
        elif isinstance(node, list):
            stack.extend((member, (*path, index)) for index, member in enumerate(node))


def _refuse(what: str, field: str | None, path: tuple[str | int, ...], problem: str) -> None:
    name = path_name(path, field)
    where = name or what
    raise errors.BadRequest(f"{where} {problem}", field=name or field)


def path_name(path: tuple[str | int, ...], prefix: str | None = None) -> str:
    """``("a", 0, "b")`` as ``a[0].b`` (after ``prefix.``), the way refusals name fields."""
    out = prefix or ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out
