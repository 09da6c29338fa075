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

Numbers are checked by the parser's own hooks as they are read (a webhook has few); strings are
walked only when the text holds a ``\\uD8..``-``\\uDF..`` escape, the only way JSON text that is valid
UTF-8 can spell a surrogate. Only a refused document is parsed a second time, to name the member.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from router import errors

__all__ = ["MAX_DEPTH", "check_depth", "loads"]

MAX_DEPTH = 512
"""Arrays and objects nested in one document, as a backstop: far below the interpreter's recursion
limit (about 1,000), and the ceiling of ``http.max_json_depth``, the operative limit the edge checks
on every request body first (default 64; real webhooks nest about 8 deep). This one also covers what
the edge does not see as a body: documents inside one (a Pub/Sub message's ``data``, a JWT) and
event data read back from the bus."""

# A string (whose brackets do not nest) or one bracket: the tokens depth is counted on.
_NESTING_TEXT = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_NESTING_BYTES = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)
_OPENING = frozenset(("[", "{", b"[", b"{"))
_CLOSING = frozenset(("]", "}", b"]", b"}"))
# Text that may spell a surrogate (a false positive only costs the walk).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
_INT_MIN, _INT_END = -(2**63), 2**64


class _Unfit(Exception):
    """A number the hooks refuse; the document is parsed again to say where it is."""


class _Mark:
    """Stands for a refused number in the second parse, so the walk can find its member."""

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _int(text: str) -> int:
    value = int(text)
    if not _INT_MIN <= value < _INT_END:
        raise _Unfit
    return value


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Unfit
    return value


def _constant(text: str) -> float:
    raise _Unfit


def _marked_int(text: str) -> int | _Mark:
    value = int(text)
    return value if _INT_MIN <= value < _INT_END else _Mark("is an integer outside the 64-bit range")


def _marked_float(text: str) -> float | _Mark:
    value = float(text)
    return value if math.isfinite(value) else _Mark("is not a finite number")


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
    check_depth(text, max_depth, what=what, field=field)
    try:
        value = json.loads(text, parse_int=_int, parse_float=_float, parse_constant=_constant)
    except _Unfit:
        marked = json.loads(text, parse_int=_marked_int, parse_float=_marked_float,
                            parse_constant=lambda _: _Mark("is not a finite number (NaN and Infinity are not JSON)"))
        _check_values(marked, what, field)
        raise AssertionError("a refused number was not found again")  # pragma: no cover
    except RecursionError as exc:  # unreachable after the depth check; kept so it can never be a 500
        raise errors.BadRequest(f"{what} nests deeper than {max_depth} levels", field=field) from exc
    except ValueError as exc:
        raise errors.BadRequest(f"{what} is not valid JSON: {exc}", field=field) from exc
    if _SURROGATE_ESCAPE.search(text):
        _check_values(value, what, field)
    return value


def check_depth(data: bytes | str, max_depth: int, *, what: str = "body", field: str | None = None,
                limit: str | None = None) -> None:
    """``BadRequest`` when ``data`` nests arrays and objects deeper than ``max_depth``.

    Checked on the raw text or bytes, before parsing: the parser recurses per level, so a deep
    document would cost a ``RecursionError`` (a 500) instead of a 400. Brackets inside strings do
    not count. The edge calls it with ``http.max_json_depth`` (``limit`` names that setting);
    :func:`loads` calls it with ``MAX_DEPTH`` as a backstop for every other reader.
    """
    text = isinstance(data, str)
    if data.count("[" if text else b"[") + data.count("{" if text else b"{") <= max_depth:
        return  # the common small document: two scans in C
    tokens = _NESTING_TEXT if text else _NESTING_BYTES
    depth = 0
    for match in tokens.finditer(data):
        token = match.group()
        if token in _OPENING:
            depth += 1
            if depth > max_depth:
                suffix = f" ({limit})" if limit else ""
                raise errors.BadRequest(f"{what} nests deeper than {max_depth} levels of arrays and objects{suffix}",
                                        field=field, limit=limit)
        elif token in _CLOSING:
            depth -= 1


def _check_values(value: Any, what: str, field: str | None) -> None:
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(value, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, str):
            if _SURROGATE.search(node):
                _refuse(what, field, path, "holds a lone UTF-16 surrogate (not a Unicode character)")
        elif isinstance(node, _Mark):
            _refuse(what, field, path, node.problem)
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
