"""The dashboard's SVG charts (``gateway/dashboard/charts.py``): scales, the empty state, a
single value, gaps, what a reader and a test can read, and escaping. The markup is parsed as
XML, so it is also checked to be well formed."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from journeyhub.gateway.dashboard.charts import (
    PLOT_H,
    TOP,
    Sample,
    Series,
    Slot,
    bar_chart,
    line_chart,
    ms_text,
    nice_ticks,
)
from journeyhub.gateway.dashboard.pictures import DELIVERIES, LATENCY, hour_slots

NOW = datetime(2026, 12, 6, 23, 7, tzinfo=UTC)


def parse(markup: str) -> ET.Element:
    return ET.fromstring(str(markup))


def deliveries(values: dict[int, tuple[int, int]]) -> str:
    """The deliveries chart over the last 24 hours; ``values`` by slot index."""
    slots = [
        Slot(
            start, start + timedelta(hours=1), dict(zip(("delivered", "failed"), pair, strict=True))
        )
        for i, start in enumerate(hour_slots(NOW))
        for pair in [values.get(i, (0, 0))]
    ]
    return bar_chart(
        name="deliveries",
        caption="Deliveries per hour",
        slots=slots,
        series=DELIVERIES,
        stacked=True,
        y_label="calls per hour",
        x_label="hour (UTC)",
        empty="No deliveries in the last 24 h.",
    )


@pytest.mark.parametrize(
    ("top", "integer", "ticks"),
    [
        (0, True, [0, 1]),
        (1, True, [0, 1]),
        (3, True, [0, 1, 2, 3]),
        (7, True, [0, 2, 4, 6, 8]),
        (120, True, [0, 50, 100, 150]),
        (100, True, [0, 25, 50, 75, 100]),
        (900, False, [0, 250, 500, 750, 1000]),
        (0.3, False, [0, 0.1, 0.2, 0.3]),
    ],
)
def test_the_scale_ends_on_a_round_number_at_or_above_the_highest_value(
    top: float, integer: bool, ticks: list[float]
) -> None:
    found = nice_ticks(top, integer=integer)
    assert found == pytest.approx(ticks)
    assert found[-1] >= top and found[0] == 0


def test_nothing_to_show_says_so_in_words() -> None:
    figure = parse(deliveries({}))
    assert figure.get("data-empty") == "yes" and figure.get("data-chart") == "deliveries"
    assert figure.find(".//svg") is None
    assert figure.findtext("p") == "No deliveries in the last 24 h."


def test_every_hour_has_its_values_and_a_title_and_the_axes_are_named() -> None:
    figure = parse(deliveries({23: (12, 3), 20: (1, 0)}))
    assert figure.get("data-empty") == "no"
    svg = figure.find("svg")
    assert svg is not None and svg.get("role") == "group"
    assert svg.findtext("title") == "Deliveries per hour"
    assert svg.findtext("desc") == "In total: 13 delivered, 3 failed."
    bars = svg.findall("g[@class='bar']")
    assert len(bars) == 24 and {bar.get("role") for bar in bars} == {"img"}
    last = bars[-1]
    assert (last.get("data-start"), last.get("data-delivered"), last.get("data-failed")) == (
        "2026-12-06T23:00:00Z",
        "12",
        "3",
    )
    assert last.findtext("title") == "23:00 to 00:00 UTC: 12 delivered, 3 failed"
    assert bars[0].findtext("title") == "00:00 to 01:00 UTC: 0 delivered, 0 failed"
    axes = {t.get("data-axis"): t.text for t in svg.iter("text") if t.get("data-axis")}
    assert axes == {"y": "calls per hour", "x": "hour (UTC)"}
    legend = [li.itertext() for li in figure.iter("li")]
    assert ["".join(words) for words in legend] == ["Delivered", "Failed"]


def test_a_stack_is_as_tall_as_its_total_on_the_scale() -> None:
    svg = parse(deliveries({23: (12, 3)})).find("svg")
    assert svg is not None
    ticks = [float(t.text or 0) for t in svg.iter("text") if t.get("text-anchor") == "end"]
    assert ticks == [0, 5, 10, 15]  # the y axis
    rects = [r for r in svg.findall("g[@class='bar']")[-1].iter("rect") if r.get("class") != "hit"]
    heights = [float(r.get("height") or 0) for r in rects]
    assert heights == pytest.approx([PLOT_H * 12 / 15, PLOT_H * 3 / 15], abs=0.1)
    # The failed part sits on the delivered one.
    delivered, failed = rects
    assert float(failed.get("y") or 0) + heights[1] == pytest.approx(
        float(delivered.get("y") or 0), abs=0.1
    )


def test_one_value_fills_the_scale_to_its_round_top() -> None:
    svg = parse(deliveries({5: (1, 0)})).find("svg")
    assert svg is not None
    [bar] = [r for r in svg.iter("rect") if r.get("class") == "tone-good"]
    assert float(bar.get("y") or 0) == pytest.approx(TOP)  # 1 on a 0..1 scale
    assert float(bar.get("height") or 0) == pytest.approx(PLOT_H)


def test_overlaid_answer_times_with_hours_without_calls() -> None:
    starts = hour_slots(NOW)
    slots = [
        Slot(s, s + timedelta(hours=1), {"p95": None, "p50": None, "calls": None}) for s in starts
    ]
    slots[-1] = Slot(starts[-1], NOW, {"p95": 1500.0, "p50": 120.5, "calls": 7})
    figure = parse(
        bar_chart(
            name="latency",
            caption="Answer time",
            slots=slots,
            series=LATENCY,
            stacked=False,
            y_label="answer time",
            x_label="hour (UTC)",
            empty="none",
            fmt=ms_text,
            integer=False,
        )
    )
    bars = figure.findall(".//g[@class='bar']")
    assert bars[0].get("data-p50") == "" and bars[0].findtext("title", "").endswith("none")
    assert (bars[-1].get("data-p95"), bars[-1].get("data-p50"), bars[-1].get("data-calls")) == (
        "1500",
        "120.5",
        "7",
    )
    assert bars[-1].findtext("title") == "23:00 to 23:07 UTC: p95 1.5 s, Median 120 ms"
    ticks = [t.text for t in figure.iter("text") if t.get("text-anchor") == "end"]
    assert ticks == ["0", "500 ms", "1.0 s", "1.5 s"]


def backlog(samples: list[Sample]) -> ET.Element:
    return parse(
        line_chart(
            name="backlog",
            caption="Waiting",
            samples=samples,
            series=(Series("pending", "Waiting", "accent"),),
            since=NOW - timedelta(hours=1),
            until=NOW,
            interval=timedelta(minutes=1),
            y_label="deliveries",
            x_label="time (UTC)",
            empty="No samples in the last hour.",
        )
    )


def test_a_line_breaks_where_samples_are_missing_and_each_point_is_readable() -> None:
    at = [NOW - timedelta(minutes=m) for m in (30, 29, 28, 10, 9)]
    figure = backlog(
        [Sample(moment, {"pending": n}) for moment, n in zip(at, [0, 4, 2, 1, 0], strict=True)]
    )
    assert len(figure.findall(".//polyline")) == 2  # 28 → 10 min ago: no sampler ran
    points = figure.findall(".//g[@class='point']")
    assert [p.get("data-pending") for p in points] == ["0", "4", "2", "1", "0"]
    assert points[1].get("data-at") == "2026-12-06T22:38:00Z"
    assert points[1].findtext("title") == "22:38 UTC: Waiting 4"
    marks = [t.text for t in figure.iter("text") if t.get("class") == "tick"]
    assert marks[-6:] == ["22:10", "22:20", "22:30", "22:40", "22:50", "23:00"]


def test_one_sample_is_a_point_and_no_sample_says_so() -> None:
    figure = backlog([Sample(NOW, {"pending": 3})])
    assert figure.find(".//polyline") is None and len(figure.findall(".//circle")) == 1
    empty = backlog([])
    assert empty.get("data-empty") == "yes"
    assert empty.findtext("p") == "No samples in the last hour."


def test_every_text_is_escaped() -> None:
    evil = '<script>alert("x")</script> & "quotes"'
    markup = bar_chart(
        name='x" onload="alert(1)',
        caption=evil,
        slots=[Slot(NOW, NOW, {"a": 1.0})],
        series=(Series("a", evil, 'good" onclick="x'),),
        stacked=True,
        y_label=evil,
        x_label=evil,
        empty=evil,
    )
    assert "<script>" not in markup and 'onload="' not in markup and 'onclick="' not in markup
    figure = parse(markup)  # still well formed
    assert figure.findtext("figcaption") == evil
    assert figure.find(".//svg/title").text == evil  # type: ignore[union-attr]
    assert parse(bar_chart(**_empty_with(evil))).findtext("p") == evil


def _empty_with(message: str) -> dict[str, object]:
    return {
        "name": "e",
        "caption": message,
        "slots": [Slot(NOW, NOW, {"a": 0})],
        "series": (Series("a", "A", "good"),),
        "stacked": True,
        "y_label": "y",
        "x_label": "x",
        "empty": message,
    }
