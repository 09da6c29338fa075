"""The syntax tree the parser builds and the compiler consumes (§2).

Nodes are plain frozen dataclasses so the tree can be printed, compared in tests and
walked by the compiler exactly once. Parentheses leave no node behind: ``(x)`` is ``x``.
Every node remembers the offset of its first character (for operators: of the operator
itself) so evaluation errors can point back at the source.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Binary",
    "Call",
    "Exists",
    "Identifier",
    "In",
    "Like",
    "Literal",
    "Node",
    "Unary",
]


@dataclass(frozen=True, slots=True, eq=False)
class Literal:
    """An integer, boolean or string literal, already decoded."""

    value: bool | int | str
    position: int


@dataclass(frozen=True, slots=True, eq=False)
class Identifier:
    """A context attribute or extension, addressed by its lowercase name (§3.2)."""

    name: str
    position: int


@dataclass(frozen=True, slots=True, eq=False)
class Exists:
    """``EXISTS name`` (§3.4.4)."""

    name: str
    position: int


@dataclass(frozen=True, slots=True, eq=False)
class Unary:
    """``NOT x`` or ``-x`` (§3.4.1); ``operator`` is ``"NOT"`` or ``"-"``."""

    operator: str
    operand: Node
    position: int


@dataclass(frozen=True, slots=True, eq=False)
class Binary:
    """Arithmetic, comparison and logic operators (§3.4.2); ``<>`` is stored as ``!=``."""

    operator: str
    left: Node
    right: Node
    position: int


@dataclass(frozen=True, slots=True, eq=False)
class Like:
    """``x [NOT] LIKE 'pattern'`` (§3.4.3); the pattern is always a literal."""

    operand: Node
    pattern: str
    negated: bool
    position: int


@dataclass(frozen=True, slots=True, eq=False)
class In:
    """``x [NOT] IN (y1, y2, ...)`` (§3.4.5); at least one element."""

    operand: Node
    elements: tuple[Node, ...]
    negated: bool
    position: int


@dataclass(frozen=True, slots=True, eq=False)
class Call:
    """A function invocation; ``name`` is upper-cased (names are case-insensitive)."""

    name: str
    arguments: tuple[Node, ...]
    position: int


Node = Literal | Identifier | Exists | Unary | Binary | Like | In | Call


def render(node: Node) -> str:
    """Fully parenthesised text of a tree: shows how precedence grouped it."""
    if isinstance(node, Literal):
        if type(node.value) is bool:
            return "TRUE" if node.value else "FALSE"
        return repr(node.value) if isinstance(node.value, str) else str(node.value)
    if isinstance(node, Identifier):
        return node.name
    if isinstance(node, Exists):
        return f"(EXISTS {node.name})"
    if isinstance(node, Unary):
        return f"({node.operator} {render(node.operand)})"
    if isinstance(node, Binary):
        return f"({render(node.left)} {node.operator} {render(node.right)})"
    if isinstance(node, Like):
        keyword = "NOT LIKE" if node.negated else "LIKE"
        return f"({render(node.operand)} {keyword} {node.pattern!r})"
    if isinstance(node, In):
        keyword = "NOT IN" if node.negated else "IN"
        elements = ", ".join(render(element) for element in node.elements)
        return f"({render(node.operand)} {keyword} ({elements}))"
    arguments = ", ".join(render(argument) for argument in node.arguments)
    return f"{node.name}({arguments})"
