"""Per-rule success rate over time: finished runs bucketed by hour or day, drawn as inline SVG.

Inline SVG rather than a chart library: the page works offline, needs no JavaScript and the
Content-Security-Policy (``default-src 'self'``) allows it; colours come from the stylesheet's
classes, never ``style`` attributes (which that policy forbids). Buckets are aligned to UTC hours
or days so two rules' charts line up, and a bucket without finished runs is drawn as a gap, not
as 0 %: no runs is not the same as all of them failing. ``cancel`` (a run replaced by a newer one)
counts as neither success nor failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable

from markupsafe import Markup, escape

__all__ = ["DAY", "HOUR", "Bucket", "Span", "bucketize", "span_for", "svg"]

HOUR = 3600.0
DAY = 86400.0
COUNTED = ("success", "failure", "error")
"""Outcomes a success rate is made of."""


@dataclass(frozen=True, slots=True)
class Span:
    """How a chart is cut: ``count`` buckets of ``width`` seconds, the last one holding ``now``."""

    width: float
    count: int

    @property
    def label(self) -> str:
        unit = "hour" if self.width == HOUR else "day"
        return f"per {unit}, last {self.count} {unit}s"


@dataclass(frozen=True, slots=True)
class Bucket:
    start: float
    width: float
    success: int = 0
    finished: int = 0
    """Runs that ended ``success``, ``failure`` or ``error`` in this bucket."""

    @property
    def rate(self) -> float | None:
        return self.success / self.finished if self.finished else None


def span_for(oldest: float | None, now: float) -> Span:
    """24 hourly buckets while the history read reaches back at most two days, else 30 daily ones."""
    if oldest is None or now - oldest <= 2 * DAY:
        return Span(HOUR, 24)
    return Span(DAY, 30)


def bucketize(finished: Iterable[tuple[float, str]], now: float, span: Span) -> list[Bucket]:
    """(finish time, outcome) pairs into ``span``'s buckets, oldest first; pairs outside are left out."""
    last_start = now - now % span.width
    first_start = last_start - (span.count - 1) * span.width
    success = [0] * span.count
    total = [0] * span.count
    for at, outcome in finished:
        if outcome not in COUNTED or at < first_start or at >= last_start + span.width:
            continue
        index = int((at - first_start) // span.width)
        total[index] += 1
        success[index] += outcome == "success"
    return [Bucket(first_start + i * span.width, span.width, success[i], total[i]) for i in range(span.count)]


WIDTH, HEIGHT, GAP = 240, 40, 1


def _when(start: float, width: float) -> str:
    layout = "%Y-%m-%dT%H:00Z" if width < DAY else "%Y-%m-%d"
    return time.strftime(layout, time.gmtime(start))


def svg(buckets: list[Bucket], rule: str) -> Markup:
    """A bar per bucket, its height the success rate; each bar's ``<title>`` says the numbers."""
    if not buckets:
        return Markup("")
    bar = WIDTH / len(buckets)
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT + 2}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT + 2}" role="img" aria-label="{escape(f"success rate of {rule}")}">',
             f'<line class="axis" x1="0" y1="{HEIGHT + 1}" x2="{WIDTH}" y2="{HEIGHT + 1}"/>']
    for i, bucket in enumerate(buckets):
        x = round(i * bar + GAP / 2, 2)
        when = _when(bucket.start, bucket.width)
        if bucket.rate is None:
            parts.append(f'<rect class="bar none" x="{x}" y="{HEIGHT - 1}" width="{round(bar - GAP, 2)}" height="1">'
                         f'<title>{escape(when)}: no finished runs</title></rect>')
            continue
        height = max(2.0, round(bucket.rate * HEIGHT, 2))
        kind = "ok" if bucket.success == bucket.finished else "bad" if bucket.success == 0 else "mixed"
        title = f"{when}: {bucket.success} of {bucket.finished} succeeded ({bucket.rate:.0%})"
        parts.append(f'<rect class="bar {kind}" x="{x}" y="{round(HEIGHT - height, 2)}" '
                     f'width="{round(bar - GAP, 2)}" height="{height}"><title>{escape(title)}</title></rect>')
    parts.append("</svg>")
    return Markup("".join(parts))
