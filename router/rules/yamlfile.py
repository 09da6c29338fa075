"""Rule files read as YAML that a broken or hostile file cannot turn into a hang, a crash or a surprise.

PyYAML's safe loader constructs no Python objects from tags, but on its own it still

- recurses once per nesting level, so 20,000 ``[`` end in ``RecursionError`` (a traceback);
- shares one anchored node among its aliases, so 700 bytes of nested aliases describe a document
  of billions of nodes that validation then walks for minutes ("billion laughs");
- keeps the last of two equal mapping keys without a word (a rule with two ``filters:`` keys
  silently loses the first).

So a file is first read as a stream of parse events (libyaml's parser is iterative) and measured:
nesting depth, nodes counted with every alias expanded where it is used, repeated keys. Only a
file within the limits below is composed and constructed. Every error is one line with the line
and column it is about (also as ``RuleError.line`` / ``.column``); ``loading`` adds the file name.

:func:`located` also keeps, per document, where each key and list item was written (the composed
node tree's marks), so that a schema error found later, which knows only a field path such as
``spec.action.httpProbe.checks[0].url``, can still be reported at its line and column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from router import errors

MAX_FILE_BYTES = 4 * 1024 * 1024
"""A rule file larger than this is refused unread (about 10,000 ordinary rules fit)."""
MAX_DEPTH = 64
"""Nesting levels of mappings and sequences; rules need about ten."""
MAX_NODES = 1_000_000
"""Scalars, mappings and sequences in one file, each alias counted as the whole node it stands for."""

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class _Collection:
    anchor: str | None
    mapping: bool
    nodes: int = 1
    keys: set[str] = field(default_factory=set)
    expect_key: bool = True


Positions = dict[str, tuple[int, int]]
"""Field path as ``loading`` spells it (``spec.filters[0].cel``; ``""`` the document) -> (line, column), 1-based."""


def documents(data: bytes) -> list[Any]:
    """The YAML documents of ``data`` (empty ones dropped); ``errors.RuleError`` (no file) if refused."""
    return [doc for doc, _ in located(data)]


def position(positions: Positions, field: str) -> tuple[int, int]:
    """Where ``field`` was written, else its nearest written ancestor (a missing key: its section)."""
    while field not in positions and field:
        field = re.sub(r"(\[\d+\]|\.?[^.\[]*)$", "", field, count=1)
    return positions.get(field, (0, 0))


def located(data: bytes) -> list[tuple[Any, Positions]]:
    """Like :func:`documents`, each document with the positions of its keys and items."""
    if len(data) > MAX_FILE_BYTES:
        raise errors.RuleError(f"file is {len(data):,} bytes, more than the {MAX_FILE_BYTES:,} a rule file may have")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise errors.RuleError(f"not UTF-8: byte 0x{data[exc.start]:02x} at line {line}, column {column}",
                               line=line, column=column) from exc
    try:
        _measure(text)
        return _compose(text)
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        raise errors.RuleError(f"not valid YAML: character U+{code:04X} is not allowed "
                               f"at line {line}, column {column}", line=line, column=column) from exc
    except yaml.YAMLError as exc:
        mark = (exc.problem_mark or exc.context_mark) if isinstance(exc, yaml.MarkedYAMLError) else None
        raise errors.RuleError(f"not valid YAML: {describe(exc)}", line=mark.line + 1 if mark else 0,
                               column=mark.column + 1 if mark else 0) from exc


def _compose(text: str) -> list[tuple[Any, Positions]]:
    """What ``yaml.load_all`` does, keeping each document's node tree long enough to read its marks."""
    loader = _LOADER(text)
    found = []
    try:
        while loader.check_node():
            node = loader.get_node()
            doc = loader.construct_document(node)
            if doc is not None:
                found.append((doc, _positions(node)))
    finally:
        loader.dispose()
    return found


def _positions(root: yaml.Node) -> Positions:
    # Nesting is at most MAX_DEPTH (measured first); an aliased node is walked once, at its anchor.
    positions: Positions = {"": _mark(root)}
    seen: set[int] = set()
    pending: list[tuple[str, yaml.Node]] = [("", root)]
    while pending:
        path, node = pending.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if isinstance(key, yaml.ScalarNode) and key.value != "<<":
                    where = f"{path}.{key.value}" if path else key.value
                    positions.setdefault(where, _mark(key))
                    pending.append((where, value))
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                where = f"{path}[{index}]"
                positions.setdefault(where, _mark(item))
                pending.append((where, item))
    return positions


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def describe(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message (with a source excerpt) as one line with line and column."""
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = ", ".join(part for part in (exc.context, exc.problem) if part)
        return f"{what} at {_at(mark)}" if mark else what
    return " ".join(str(exc).split())


def _at(mark: Any) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def _refuse(message: str, event: yaml.Event) -> errors.RuleError:
    mark = event.start_mark
    return errors.RuleError(f"{message} at {_at(mark)}", line=mark.line + 1, column=mark.column + 1)


def _measure(text: str) -> None:
    """Refuse ``text`` if it nests deeper than ``MAX_DEPTH``, expands beyond ``MAX_NODES`` or repeats a key."""
    stack: list[_Collection] = []
    sizes: dict[str, int] = {}  # anchor -> nodes of the node it names, aliases inside expanded
    total = 0
    for event in yaml.parse(text, Loader=_LOADER):
        if isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()  # anchors are per document
            continue
        if not isinstance(event, (yaml.NodeEvent, yaml.CollectionEndEvent)):
            continue
        if isinstance(event, yaml.CollectionEndEvent):
            done = stack.pop()
            if done.anchor:
                sizes[done.anchor] = done.nodes
            if stack:
                stack[-1].nodes += done.nodes
            continue
        parent = stack[-1] if stack else None
        if parent is not None and parent.mapping:
            if parent.expect_key and isinstance(event, yaml.ScalarEvent):
                if event.value in parent.keys and event.value != "<<":
                    raise _refuse(f"key {event.value[:60]!r} appears twice in one mapping", event)
                parent.keys.add(event.value)
            parent.expect_key = not parent.expect_key
        if isinstance(event, yaml.AliasEvent):
            nodes = sizes.get(event.anchor, 1)  # an undefined alias: the composer names it below
        elif isinstance(event, yaml.CollectionStartEvent):
            stack.append(_Collection(event.anchor, isinstance(event, yaml.MappingStartEvent)))
            if len(stack) > MAX_DEPTH:
                raise _refuse(f"nested more than {MAX_DEPTH} levels deep", event)
            nodes = 1
        else:
            nodes = 1
            if event.anchor:
                sizes[event.anchor] = 1
        if parent is not None and not isinstance(event, yaml.CollectionStartEvent):
            parent.nodes += nodes
        total += nodes
        if total > MAX_NODES:
            raise _refuse(f"more than {MAX_NODES:,} YAML nodes with aliases expanded (an alias bomb?)", event)
