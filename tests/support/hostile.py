"""Hostile input for property-based tests: real payloads with arbitrary JSON values put in them.

The edge and every source are fed what an attacker or a broken sender could send (issue #13, point
3): a real webhook payload (``/work/shared/fixtures``, ``tests/fixtures``) with one to three of its
members replaced by an arbitrary JSON value, or by text no ``json.dumps`` writes (``1e400``, a lone
``\\ud800``, nesting thousands deep), and header values of arbitrary bytes, decoded the way aiohttp
decodes them (UTF-8 with ``surrogateescape``).

Example counts are bounded so the suite stays fast; ``HYPOTHESIS_PROFILE=ci`` runs more of them
(and derandomized, so a CI failure reproduces). No example database is written into the tree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
REGISTRY_FIXTURES = ROOT / "tests" / "fixtures" / "registry"

settings.register_profile("dev", database=None, deadline=None)
settings.register_profile("ci", database=None, deadline=None, derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))
_SCALE = 4 if os.environ.get("HYPOTHESIS_PROFILE") == "ci" else 1


def bounded(examples: int, **extra: Any) -> settings:
    """``settings`` for one property: ``examples`` here, four times as many under the ci profile."""
    return settings(max_examples=examples * _SCALE, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large], **extra)


class Raw(str):
    """JSON text put into a document verbatim (what ``json.dumps`` would never write)."""


RAW_VALUES = [Raw(text) for text in (
    "1e400", "-1e400", "1e308", "1.7976931348623157e309", "NaN", "Infinity", "-Infinity",
    '"\\ud800"', '"a\\udfffb"', '{"\\udc00": 1}', "18446744073709551616", "-9223372036854775809",
    "1" + "0" * 40, "1586922308000", "-1", "0", "1e-400", "[" * 3000 + "]" * 3000,
    '{"a":' * 1500 + "1" + "}" * 1500, "[" * 200 + "]" * 200, '"%ff"', '"\\u0000"', '"' + "x" * 5000 + '"',
)]

# Text as senders may write it, lone surrogates included (json.dumps writes those as \uXXXX escapes).
texts = st.text(max_size=40) | st.text(st.characters(categories=["Cs", "L", "N", "P", "Z"]), max_size=10)
scalars = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | texts)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4), max_leaves=10)
replacements = json_values | st.sampled_from(RAW_VALUES)
header_bytes = st.binary(max_size=64) | st.sampled_from(
    [b"\xff", b"%ff", b"\xed\xa0\x80", b"sha256=\xff\xfe", b"Bearer \x80\x81", b"\xc3", "é".encode()])


def as_header(raw: bytes) -> str:
    """A header value as aiohttp hands it over (CR, LF and NUL cannot be in one; they are dropped)."""
    cleaned = bytes(b for b in raw if b not in b"\r\n\x00").strip(b" \t")
    return cleaned.decode("utf-8", "surrogateescape")


def paths(document: Any, prefix: tuple = ()) -> list[tuple]:
    """Every member path of ``document`` (the root first), for choosing what to replace."""
    found = [prefix]
    if isinstance(document, dict):
        for key, value in document.items():
            found += paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += paths(value, (*prefix, index))
    return found


def substitute(document: Any, replaced: list[tuple[tuple, Any]]) -> bytes:
    """``document`` as JSON bytes with each ``(path, value)`` put in place (``Raw`` verbatim)."""
    raws: list[str] = []
    target = json.loads(json.dumps(document))

    def place(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value)
            return f"\x00raw{len(raws) - 1}\x00"
        return value

    for path, value in replaced:
        if not path:
            target = place(value)
            continue
        node = target
        for key in path[:-1]:
            if isinstance(node, dict) and key in node or isinstance(node, list) and isinstance(key, int) \
                    and key < len(node):
                node = node[key]
            else:
                node = None
                break
        if isinstance(node, dict) or isinstance(node, list) and isinstance(path[-1], int) and path[-1] < len(node):
            node[path[-1]] = place(value)
    text = json.dumps(target)  # ensure_ascii: lone surrogates travel as \\uXXXX escapes
    for index, raw in enumerate(raws):
        text = text.replace(json.dumps(f"\x00raw{index}\x00"), raw)
    return text.encode()


@st.composite
def mutated(draw, document: Any, focus: tuple[tuple, ...] = ()) -> bytes:
    """``document`` with one to three members replaced: any member, or (half the time) one of
    ``focus``, the members the code under test reads (which need not exist in ``document``)."""
    anywhere = st.sampled_from(paths(document))
    where = st.sampled_from(focus) | anywhere if focus else anywhere
    count = draw(st.integers(min_value=1, max_value=3))
    return substitute(document, [(draw(where), draw(replacements)) for _ in range(count)])


def load(path: Path) -> Any:
    return json.loads(path.read_bytes())
