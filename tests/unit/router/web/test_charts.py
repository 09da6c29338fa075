"""Success-rate charts: bucketing by UTC hour or day, gaps for empty buckets, numbers in the titles."""

from __future__ import annotations

import datetime

import pytest

from router.web import charts

NOW = datetime.datetime(2026, 12, 1, 12, 30, tzinfo=datetime.timezone.utc).timestamp()
H, D = charts.HOUR, charts.DAY


@pytest.mark.parametrize("oldest,width,count", [
    (None, H, 24),
    (NOW - 5 * 60, H, 24),
    (NOW - 2 * D, H, 24),
    (NOW - 2 * D - 1, D, 30),
    (NOW - 40 * D, D, 30),
])
def test_span_for(oldest, width, count):
    assert charts.span_for(oldest, NOW) == charts.Span(width, count)


@pytest.mark.parametrize("finished,expected", [
    ([], {}),
    ([(NOW, "success")], {23: (1, 1)}),                                          # the current hour is last
    ([(NOW, "success"), (NOW - 60, "failure"), (NOW - 120, "error")], {23: (1, 3)}),
    ([(NOW - 30 * 60 - 1, "failure")], {22: (0, 1)}),                            # 11:59:59: the hour before
    ([(NOW - 30 * 60, "success")], {23: (1, 1)}),                                # 12:00:00 opens the bucket
    ([(NOW, "cancel")], {}),                                                     # cancel counts as neither
    ([(NOW - 24 * H, "success")], {}),                                           # before the span: left out
    ([(NOW + H, "success")], {}),                                                # after it (clock skew): too
    ([(NOW - 23 * H, "failure"), (NOW - 23 * H + 10, "success")], {0: (1, 2)}),
])
def test_hourly_buckets(finished, expected):
    buckets = charts.bucketize(finished, NOW, charts.Span(H, 24))
    assert len(buckets) == 24 and buckets[-1].start == NOW - 30 * 60
    assert {i: (b.success, b.finished) for i, b in enumerate(buckets) if b.finished} == expected


def test_daily_buckets_align_to_utc_midnight():
    buckets = charts.bucketize([(NOW - D, "success"), (NOW - D, "failure")], NOW, charts.Span(D, 30))
    assert buckets[-1].start == datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc).timestamp()
    assert (buckets[-2].success, buckets[-2].finished, buckets[-2].rate) == (1, 2, 0.5)
    assert buckets[-1].rate is None  # no runs: a gap, not 0 %


def test_svg_bars_classes_and_titles():
    buckets = [charts.Bucket(NOW - 3 * H, H), charts.Bucket(NOW - 2 * H, H, 2, 2), charts.Bucket(NOW - H, H, 0, 3),
               charts.Bucket(NOW, H, 1, 4)]
    drawn = str(charts.svg(buckets, 'r<"1">'))
    assert drawn.count('class="bar none"') == 1 and drawn.count('class="bar ok"') == 1
    assert drawn.count('class="bar bad"') == 1 and drawn.count('class="bar mixed"') == 1
    assert "1 of 4 succeeded (25%)" in drawn and "no finished runs" in drawn
    assert 'aria-label="success rate of r&lt;&#34;1&#34;&gt;"' in drawn  # the rule name is escaped
    assert "style=" not in drawn  # the Content-Security-Policy forbids inline styles
    assert charts.svg([], "r") == ""
