"""Per-event cost of CESQL filters, next to the same filters in CEL, measured in one run.

Filters run once per event per rule, so this is the router's hot path. The baseline is
``common-expression-language`` (a Rust CEL engine): both sides compile once, then
evaluate the same attributes in a bounded loop; the table shows ns/event and the
CESQL/CEL ratio (target: CESQL no slower than 3x CEL).

CEL sees the attributes as one ``event`` map because presence tests (``has()``) need a
field selection; converting that map is part of CEL's per-event cost, as converting
the attributes would be for any embedder.

Run: ``.venv/bin/python bench/cesql.py`` (about 12 s). ``--profile`` adds a cProfile of
the CESQL side.
"""

from __future__ import annotations

import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cel  # noqa: E402

from router.rules import cesql  # noqa: E402

EVENTS_PER_ROUND = 10_000
ROUNDS = 5  # the best round counts: it is the least disturbed by the machine

ATTRIBUTES: dict[str, object] = {
    "specversion": "1.0",
    "id": "6f1c9a52-6c43-4b7e-9d0c-1f0e5b8f3a21",
    "source": "github",
    "type": "com.github.push",
    "subject": "refs/heads/main",
    "time": "2024-05-01T12:00:00Z",
    "datacontenttype": "application/json",
    "sequence": 42,
    "repository": "acme/widgets",
}

# (label, CESQL, CEL): each pair must agree on ATTRIBUTES (checked before timing).
CASES: list[tuple[str, str, str]] = [
    ("exact type", "type = 'com.github.push'", "event.type == 'com.github.push'"),
    ("LIKE prefix", "type LIKE 'com.github.%'", "event.type.startsWith('com.github.')"),
    (
        "AND/OR + EXISTS",
        "(type = 'com.github.push' OR type = 'com.github.release') AND EXISTS subject",
        "(event.type == 'com.github.push' || event.type == 'com.github.release')"
        " && has(event.subject)",
    ),
    ("IN set", "source IN ('github', 'gitlab', 'harbor')", "event.source in ['github', 'gitlab', 'harbor']"),
    ("LENGTH call", "LENGTH(subject) > 10", "size(event.subject) > 10"),
    ("int arithmetic", "sequence % 2 = 0 AND sequence + 1 > 10", "event.sequence % 2 == 0 && event.sequence + 1 > 10"),
]


def per_event_ns(evaluate, argument) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        started = time.perf_counter_ns()
        for _ in range(EVENTS_PER_ROUND):
            evaluate(argument)
        best = min(best, (time.perf_counter_ns() - started) / EVENTS_PER_ROUND)
    return best


def main() -> None:
    cel_context = {"event": ATTRIBUTES}
    rows = []
    for label, cesql_text, cel_text in CASES:
        expression = cesql.compile(cesql_text)
        program = cel.compile(cel_text)
        cesql_value = expression.evaluate(ATTRIBUTES)
        cel_value = program.execute(cel_context)
        if cesql_value.errors or cesql_value.value != cel_value:
            raise SystemExit(f"{label}: CESQL {cesql_value} disagrees with CEL {cel_value!r}")
        cesql_ns = per_event_ns(expression.matches, ATTRIBUTES)
        cel_ns = per_event_ns(program.execute, cel_context)
        rows.append((label, cesql_text, cesql_ns, cel_ns))

    width = max(len(text) for _, text, _, _ in rows)
    print(f"{'expression':<{width}}  {'CESQL ns/event':>14}  {'CEL ns/event':>12}  {'ratio':>6}")
    for _, text, cesql_ns, cel_ns in rows:
        print(f"{text:<{width}}  {cesql_ns:>14.0f}  {cel_ns:>12.0f}  {cesql_ns / cel_ns:>6.2f}")
    worst = max(cesql_ns / cel_ns for _, _, cesql_ns, cel_ns in rows)
    verdict = "met" if worst <= 3 else "NOT met"
    print(f"\nworst CESQL/CEL ratio {worst:.2f} (target <= 3: {verdict}); "
          f"{EVENTS_PER_ROUND} events x best of {ROUNDS} rounds per cell")

    if "--profile" in sys.argv:
        profiler = cProfile.Profile()
        expressions = [cesql.compile(text) for _, text, _ in CASES]
        profiler.enable()
        for _ in range(EVENTS_PER_ROUND):
            for expression in expressions:
                expression.matches(ATTRIBUTES)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(12)


if __name__ == "__main__":
    main()
