"""Builds a syntax tree from CESQL text: a Pratt parser over the grammar of §2 / §3.6.

Precedence, tightest first, as §3.6 lists it: function invocation; unary ``NOT`` and
``-``; ``LIKE``; ``EXISTS``; ``IN``; ``* / %``; ``+ -``; comparisons; ``AND OR XOR``.
Two consequences that surprise SQL users but are what the spec (and CESQLParser.g4)
say: ``NOT a LIKE 'x'`` is ``(NOT a) LIKE 'x'`` (write ``a NOT LIKE 'x'``), and
``a + b LIKE 'x'`` is ``a + (b LIKE 'x')``.

``AND``, ``OR`` and ``XOR`` share one precedence level and associate left to right, as
§3.6 states ("evaluated left to right when the precedence is equal"):
``a OR b AND c`` is ``(a OR b) AND c``. CESQLParser.g4 marks that alternative
``<assoc=right>``; the prose wins here, and the disagreement is noted in the tests.

Parse errors carry the offset, line and column of the offending token and say what was
expected, so a rule author can fix the expression without reading the grammar.
"""

from __future__ import annotations

import re

from router.rules.cesql import errors, syntax, types
from router.rules.cesql.lexer import Token, TokenKind, tokenize

__all__ = ["parse"]

_LOGIC = 10
_COMPARISON = 20
_ADDITIVE = 30
_MULTIPLICATIVE = 40
_IN = 50
_LIKE = 60
_UNARY = 70

_BINARY_POWER = {
    "*": _MULTIPLICATIVE,
    "/": _MULTIPLICATIVE,
    "%": _MULTIPLICATIVE,
    "+": _ADDITIVE,
    "-": _ADDITIVE,
    "=": _COMPARISON,
    "!=": _COMPARISON,
    "<>": _COMPARISON,
    "<": _COMPARISON,
    "<=": _COMPARISON,
    ">": _COMPARISON,
    ">=": _COMPARISON,
}
_LOGIC_KEYWORDS = frozenset({"AND", "OR", "XOR"})

_ATTRIBUTE_NAME = re.compile(r"[a-z0-9]+\Z")  # §2.2 value-identifier
_FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z_]*\Z")  # §2.4 function-identifier


def parse(source: str) -> syntax.Node:
    """Parse a whole expression or raise :class:`~router.rules.cesql.errors.ParseError`."""
    return _Parser(source).parse()


class _Parser:
    def __init__(self, source: str) -> None:
        self._source = source
        self._tokens = tokenize(source)
        self._index = 0

    def parse(self) -> syntax.Node:
        node = self._expression(0)
        token = self._peek()
        if token.kind is not TokenKind.END:
            raise self._error("expected an operator or end of input", token)
        return node

    # -- token plumbing -------------------------------------------------------------

    def _peek(self, ahead: int = 0) -> Token:
        return self._tokens[min(self._index + ahead, len(self._tokens) - 1)]

    def _advance(self) -> Token:
        token = self._tokens[self._index]
        self._index += 1
        return token

    def _expect(self, kind: TokenKind) -> Token:
        token = self._peek()
        if token.kind is not kind:
            raise self._error(f"expected {kind.value}", token)
        return self._advance()

    def _error(self, message: str, token: Token, show_found: bool = True) -> errors.ParseError:
        location = errors.locate(self._source, token.position)
        return errors.ParseError(message, location, token.describe() if show_found else None)

    # -- expressions ----------------------------------------------------------------

    def _expression(self, min_power: int) -> syntax.Node:
        left = self._prefix()
        while True:
            token = self._peek()
            power = self._infix_power(token)
            if power <= min_power:
                return left
            left = self._infix(left, power)

    def _infix_power(self, token: Token) -> int:
        if token.kind is TokenKind.OPERATOR:
            return _BINARY_POWER[token.text]
        if token.kind is TokenKind.KEYWORD:
            if token.text in _LOGIC_KEYWORDS:
                return _LOGIC
            if token.text == "LIKE":
                return _LIKE
            if token.text == "IN":
                return _IN
            if token.text == "NOT":
                following = self._peek(1)
                if following.kind is TokenKind.KEYWORD and following.text in ("LIKE", "IN"):
                    return _LIKE if following.text == "LIKE" else _IN
                raise self._error("expected LIKE or IN after NOT", following)
        return 0

    def _infix(self, left: syntax.Node, power: int) -> syntax.Node:
        token = self._advance()
        negated = False
        if token.kind is TokenKind.KEYWORD and token.text == "NOT":
            negated = True
            token = self._advance()
        if token.kind is TokenKind.KEYWORD and token.text == "LIKE":
            pattern = self._peek()
            if pattern.kind is not TokenKind.STRING:
                raise self._error("the LIKE pattern must be a string literal", pattern)
            self._advance()
            return syntax.Like(left, pattern.value, negated, token.position)  # type: ignore[arg-type]
        if token.kind is TokenKind.KEYWORD and token.text == "IN":
            return syntax.In(left, self._set_elements(), negated, token.position)
        operator = "!=" if token.text == "<>" else token.text
        # Every binary level associates to the left: parse the right side one level up.
        right = self._expression(power)
        return syntax.Binary(operator, left, right, token.position)

    def _set_elements(self) -> tuple[syntax.Node, ...]:
        opening = self._peek()
        if opening.kind is not TokenKind.LEFT_PAREN:
            raise self._error("expected '(' to start the IN set", opening)
        self._advance()
        if self._peek().kind is TokenKind.RIGHT_PAREN:
            raise self._error("an IN set needs at least one element", self._peek(), False)
        elements = [self._expression(0)]
        while self._peek().kind is TokenKind.COMMA:
            self._advance()
            elements.append(self._expression(0))
        self._expect_closing()
        return tuple(elements)

    def _expect_closing(self) -> None:
        token = self._peek()
        if token.kind is not TokenKind.RIGHT_PAREN:
            raise self._error("expected ')'", token)
        self._advance()

    def _prefix(self) -> syntax.Node:
        token = self._advance()
        kind = token.kind
        if kind is TokenKind.INTEGER:
            return self._integer(token)
        if kind is TokenKind.STRING:
            return syntax.Literal(token.value, token.position)  # type: ignore[arg-type]
        if kind is TokenKind.LEFT_PAREN:
            node = self._expression(0)
            self._expect_closing()
            return node
        if kind is TokenKind.WORD:
            if self._peek().kind is TokenKind.LEFT_PAREN:
                return self._call(token)
            return syntax.Identifier(self._attribute_name(token), token.position)
        if kind is TokenKind.OPERATOR and token.text == "-":
            return syntax.Unary("-", self._expression(_UNARY), token.position)
        if kind is TokenKind.KEYWORD:
            if token.text in ("TRUE", "FALSE"):
                return syntax.Literal(token.text == "TRUE", token.position)
            if token.text == "NOT":
                return syntax.Unary("NOT", self._expression(_UNARY), token.position)
            if token.text == "EXISTS":
                name = self._peek()
                if name.kind is not TokenKind.WORD:
                    raise self._error("expected an attribute name after EXISTS", name)
                self._advance()
                return syntax.Exists(self._attribute_name(name), token.position)
        self._index -= 1
        raise self._error("expected an expression", token)

    def _integer(self, token: Token) -> syntax.Literal:
        value = token.value
        if not types.INT32_MIN <= value <= types.INT32_MAX:  # type: ignore[operator]
            raise self._error(
                f"integer literal {token.text} is outside the 32-bit range "
                f"[{types.INT32_MIN}, {types.INT32_MAX}]",
                token,
                False,
            )
        return syntax.Literal(value, token.position)  # type: ignore[arg-type]

    def _attribute_name(self, token: Token) -> str:
        name = token.text
        if _ATTRIBUTE_NAME.match(name):
            return name
        if _ATTRIBUTE_NAME.match(name.lower()):
            message = f"attribute names are lowercase: write {name.lower()!r} instead of {name!r}"
        else:
            message = f"invalid attribute name {name!r}: only a-z and 0-9 are allowed"
        raise self._error(message, token, False)

    def _call(self, name_token: Token) -> syntax.Call:
        if not _FUNCTION_NAME.match(name_token.text):
            raise self._error(
                f"invalid function name {name_token.text!r}: only letters and '_' are allowed",
                name_token,
                False,
            )
        self._advance()  # the '('
        arguments: list[syntax.Node] = []
        if self._peek().kind is not TokenKind.RIGHT_PAREN:
            arguments.append(self._expression(0))
            while self._peek().kind is TokenKind.COMMA:
                self._advance()
                arguments.append(self._expression(0))
        self._expect_closing()
        return syntax.Call(name_token.text.upper(), tuple(arguments), name_token.position)
