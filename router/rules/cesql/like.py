"""Compiles a ``LIKE`` pattern (§3.4.3) into a plain ``str -> bool`` predicate.

``%`` matches any run of characters, ``_`` exactly one, and a backslash before ``%`` or
``_`` makes it literal. A backslash before anything else is an ordinary character: the
spec only defines escapes for the two wildcards, and the TCK's ``'ab\\c' LIKE 'ab\\c'``
is true. Matching is case sensitive and works on Unicode code points.

Most filters are exact, prefix, suffix or infix matches (``'com.github.%'``), so those
shapes compile to ``==``, ``startswith``, ``endswith`` and ``in`` instead of a regular
expression; everything else becomes one anchored, DOTALL regular expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["compile_pattern"]

# A pattern is read into these pieces: literal text, or one of the two wildcards.
_ANY_RUN = object()
_ANY_ONE = object()


def compile_pattern(pattern: str) -> Callable[[str], bool]:
    pieces = _split(pattern)
    shape = [piece if isinstance(piece, str) else None for piece in pieces]
    runs = [piece is _ANY_RUN for piece in pieces]
    if _ANY_ONE not in pieces:
        if not any(runs):
            literal = "".join(pieces)  # type: ignore[arg-type]
            return literal.__eq__
        if len(pieces) == 1:  # '%' alone
            return lambda value: True
        if len(pieces) == 2 and runs[1] and shape[0] is not None:
            return _starts_with(shape[0])
        if len(pieces) == 2 and runs[0] and shape[1] is not None:
            return _ends_with(shape[1])
        if len(pieces) == 3 and runs[0] and runs[2] and shape[1] is not None:
            return _contains(shape[1])
    return _regex(pieces)


def _split(pattern: str) -> list[object]:
    pieces: list[object] = []
    literal: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "%_":
            literal.append(pattern[index + 1])
            index += 2
            continue
        if char in "%_":
            if literal:
                pieces.append("".join(literal))
                literal = []
            wildcard = _ANY_RUN if char == "%" else _ANY_ONE
            # '%%' matches what '%' matches; keeping one makes the fast paths apply.
            if not (wildcard is _ANY_RUN and pieces and pieces[-1] is _ANY_RUN):
                pieces.append(wildcard)
        else:
            literal.append(char)
        index += 1
    if literal or not pieces:
        pieces.append("".join(literal))
    return pieces


def _starts_with(prefix: str) -> Callable[[str], bool]:
    return lambda value: value.startswith(prefix)


def _ends_with(suffix: str) -> Callable[[str], bool]:
    return lambda value: value.endswith(suffix)


def _contains(infix: str) -> Callable[[str], bool]:
    return lambda value: infix in value


def _regex(pieces: list[object]) -> Callable[[str], bool]:
    parts = []
    for piece in pieces:
        if piece is _ANY_RUN:
            parts.append(".*")
        elif piece is _ANY_ONE:
            parts.append(".")
        else:
            parts.append(re.escape(piece))  # type: ignore[arg-type]
    matcher = re.compile("".join(parts), re.DOTALL).fullmatch
    return lambda value: matcher(value) is not None
