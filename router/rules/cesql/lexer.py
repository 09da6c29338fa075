"""Turns CESQL text into tokens, following CESQLLexer.g4 (§2).

Keywords are case-insensitive (§2). String literals use either quote style; inside them
a backslash escapes the next character and a doubled quote stands for one quote, as the
grammar's string fragments allow. Only the escaped *quote* is
decoded: every other backslash pair is kept as written, because ``LIKE`` gives ``\\%``
and ``\\_`` their meaning later (§3.4.3).

One deliberate departure from the ANTLR lexer: a ``+``/``-`` sign only becomes part of
an integer literal where an operand is expected. ANTLR's longest match turns ``4-1``
into ``4`` ``-1`` and then fails to parse; here it means ``4 - 1``. Everything ANTLR
accepts is read the same way.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

from router.rules.cesql import errors

__all__ = ["KEYWORDS", "Token", "TokenKind", "tokenize"]


class TokenKind(enum.Enum):
    INTEGER = "integer literal"
    STRING = "string literal"
    WORD = "name"
    KEYWORD = "keyword"
    OPERATOR = "operator"
    LEFT_PAREN = "'('"
    RIGHT_PAREN = "')'"
    COMMA = "','"
    END = "end of input"


class Token(NamedTuple):
    kind: TokenKind
    text: str  # keywords upper-cased, everything else as written
    value: object  # decoded literal for INTEGER and STRING, else None
    position: int

    def describe(self) -> str:
        if self.kind is TokenKind.END:
            return "end of input"
        return repr(self.text) if self.kind is not TokenKind.STRING else "string literal"


KEYWORDS = frozenset({"AND", "OR", "XOR", "NOT", "LIKE", "EXISTS", "IN", "TRUE", "FALSE"})

_WHITESPACE = frozenset(" \t\r\n")
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_DIGITS = frozenset("0123456789")
# Longest first, so "<=" wins over "<".
_OPERATORS = ("!=", "<>", "<=", ">=", "=", "<", ">", "*", "/", "%", "+", "-")
_SINGLE = {"(": TokenKind.LEFT_PAREN, ")": TokenKind.RIGHT_PAREN, ",": TokenKind.COMMA}
# Tokens after which a sign is a binary operator rather than part of a literal.
_OPERAND_ENDS = (TokenKind.INTEGER, TokenKind.STRING, TokenKind.WORD, TokenKind.RIGHT_PAREN)


def tokenize(source: str) -> list[Token]:
    tokens: list[Token] = []
    length = len(source)
    index = 0
    while index < length:
        char = source[index]
        if char in _WHITESPACE:
            index += 1
            continue
        if char in _SINGLE:
            tokens.append(Token(_SINGLE[char], char, None, index))
            index += 1
            continue
        if char == "'" or char == '"':
            index = _read_string(source, index, tokens)
            continue
        if char in "+-" and _expects_operand(tokens) and _digits_follow(source, index + 1):
            end = _word_end(source, index + 1)
            if all(c in _DIGITS for c in source[index + 1 : end]):
                tokens.append(Token(TokenKind.INTEGER, source[index:end], int(source[index:end]), index))
                index = end
                continue
        if char in _WORD_CHARS:
            end = _word_end(source, index)
            tokens.append(_classify_word(source[index:end], index))
            index = end
            continue
        for operator in _OPERATORS:
            if source.startswith(operator, index):
                tokens.append(Token(TokenKind.OPERATOR, operator, None, index))
                index += len(operator)
                break
        else:
            raise errors.ParseError(f"unexpected character {char!r}", errors.locate(source, index))
    tokens.append(Token(TokenKind.END, "", None, length))
    return tokens


def _expects_operand(tokens: list[Token]) -> bool:
    if not tokens:
        return True
    last = tokens[-1]
    if last.kind in _OPERAND_ENDS:
        return False
    return not (last.kind is TokenKind.KEYWORD and last.text in ("TRUE", "FALSE"))


def _digits_follow(source: str, index: int) -> bool:
    return index < len(source) and source[index] in _DIGITS


def _word_end(source: str, index: int) -> int:
    length = len(source)
    while index < length and source[index] in _WORD_CHARS:
        index += 1
    return index


def _classify_word(word: str, position: int) -> Token:
    if all(c in _DIGITS for c in word):
        return Token(TokenKind.INTEGER, word, int(word), position)
    upper = word.upper()
    if upper in KEYWORDS:
        return Token(TokenKind.KEYWORD, upper, None, position)
    return Token(TokenKind.WORD, word, None, position)


def _read_string(source: str, start: int, tokens: list[Token]) -> int:
    quote = source[start]
    pieces: list[str] = []
    index = start + 1
    length = len(source)
    while index < length:
        char = source[index]
        if char == "\\" and index + 1 < length:
            following = source[index + 1]
            pieces.append(following if following == quote else char + following)
            index += 2
        elif char == quote:
            if index + 1 < length and source[index + 1] == quote:
                pieces.append(quote)
                index += 2
                continue
            tokens.append(Token(TokenKind.STRING, source[start : index + 1], "".join(pieces), start))
            return index + 1
        else:
            pieces.append(char)
            index += 1
    raise errors.ParseError(
        f"unterminated string literal: missing closing {quote}", errors.locate(source, start)
    )
