"""The dashboard's small charts, drawn on the server as inline SVG: no script, nothing from
another origin (the page's CSP allows neither). Two shapes: bars per time slot (a connection's
deliveries per hour, stacked; its answer times per hour, overlaid) and a line over time (the
backlog samples).

Made to be read by people and by tests: the SVG is a group named by its title and a one-line
summary; every bar or point is an image named by its ``<title>``, with its time and values (a
tooltip on hover; a screen reader reads them one by one), and has its values in ``data-*``
attributes; both axes are labelled; a chart with nothing to show says so in words instead.
Every text is escaped here. Colours come from ``dashboard.css`` (classes ``tone-*``); the
legend says in words what each colour is.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape

from markupsafe import Markup

from journeyhub.gateway.dashboard.formatting import millis

# The drawing's coordinate system (viewBox); the page scales it to the card's width.
WIDTH = 640
HEIGHT = 190
LEFT, RIGHT, TOP, BOTTOM = 66, 14, 14, 40
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
GAP_FACTOR = 2.5  # a line breaks where two samples are further apart than this many intervals

Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    key: str  # its data attribute (``data-<key>``)
    label: str  # in the legend and the titles
    tone: str  # its colour: the CSS class ``tone-<tone>``


@dataclass(frozen=True)
class Slot:
    """One bar's time span and its values by series key (None: nothing measured)."""

    start: datetime
    end: datetime
    values: Mapping[str, float | None]


@dataclass(frozen=True)
class Sample:
    at: datetime
    values: Mapping[str, float | None]


def count_text(value: float) -> str:
    return f"{value:,.0f}"


def ms_text(value: float) -> str:
    return "0" if value == 0 else millis(value)


def nice_ticks(top: float, *, integer: bool = True, count: int = 4) -> list[float]:
    """Evenly spaced ticks from 0 to a round number at or above ``top`` (steps of 1, 2, 2.5 or
    5 times a power of ten, about ``count`` of them; whole steps when ``integer``); [0, 1] when
    there is nothing above 0."""
    if not top > 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    steps_of = [m * magnitude for m in (1, 2, 2.5, 5, 10)]
    if integer:
        steps_of = [max(1.0, s) for s in steps_of if s >= 1 and float(s).is_integer()] or [1.0]
    step = next((s for s in steps_of if s >= raw), steps_of[-1])
    steps = math.ceil(top / step - 1e-9)
    return [i * step for i in range(steps + 1)]


def _hhmm(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%H:%M")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: float | None) -> str:
    """A value as a data attribute: plain digits, empty for none."""
    if value is None:
        return ""
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def _y(value: float, top: float) -> float:
    return TOP + PLOT_H - (value / top) * PLOT_H


def _frame(
    name: str, title: str, summary: str, y_label: str, x_label: str, ticks: list[float], fmt: Format
) -> list[str]:
    """The SVG's opening, its title and summary, the y grid with its labels, the axis names."""
    top = ticks[-1]
    ref = _attr(f"chart-{name}")
    parts = [
        f'<svg class="chart-svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="group" '
        f'aria-labelledby="{ref}-title" aria-describedby="{ref}-desc" focusable="false">',
        f'<title id="{ref}-title">{escape(title)}</title>',
        f'<desc id="{ref}-desc">{escape(summary)}</desc>',
        '<g class="grid" aria-hidden="true">',
    ]
    for tick in ticks:
        y = _y(tick, top)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(fmt(tick))}</text>"
        )
    parts.append("</g>")
    parts.append(
        f'<text class="axis-label" transform="translate(9 {TOP + PLOT_H / 2:.1f}) rotate(-90)" '
        f'text-anchor="middle" data-axis="y">{escape(y_label)}</text>'
    )
    parts.append(
        f'<text class="axis-label" x="{LEFT + PLOT_W / 2:.1f}" y="{HEIGHT - 4}" '
        f'text-anchor="middle" data-axis="x">{escape(x_label)}</text>'
    )
    return parts


def _x_ticks(moments: list[tuple[float, datetime]]) -> list[str]:
    baseline = TOP + PLOT_H
    parts = [
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{baseline}" y2="{baseline}" '
        'aria-hidden="true"/>'
    ]
    for x, moment in moments:
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{baseline + 15}" text-anchor="middle" '
            f'aria-hidden="true">{_hhmm(moment)}</text>'
        )
    return parts


def _legend(series: Sequence[Series], notes: Mapping[str, str] | None = None) -> str:
    """The colours' names, each followed by its note (a line's latest and highest value)."""
    notes = notes or {}
    items = "".join(
        f'<li><span class="swatch tone-{_attr(s.tone)}" aria-hidden="true"></span>'
        f"{escape(s.label)}"
        + (f'<span class="legend-note">{escape(notes[s.key])}</span>' if s.key in notes else "")
        + "</li>"
        for s in series
    )
    return f'<ul class="chart-legend">{items}</ul>'


def _figure(name: str, caption: str, body: str, *, empty: bool, extra: str = "") -> Markup:
    return Markup(  # noqa: S704 (every text in it was escaped above)
        f'<figure class="chart" data-chart="{_attr(name)}" data-empty="{"yes" if empty else "no"}"'
        f"{extra}><figcaption>{escape(caption)}</figcaption>{body}</figure>"
    )


def _empty(name: str, caption: str, message: str) -> Markup:
    body = f'<p class="chart-empty">{escape(message)}</p>'
    return _figure(name, caption, body, empty=True)


def bar_chart(
    *,
    name: str,
    caption: str,
    slots: Sequence[Slot],
    series: Sequence[Series],
    stacked: bool,
    y_label: str,
    x_label: str,
    empty: str,
    fmt: Format = count_text,
    integer: bool = True,
    describe: Callable[[Slot], str] | None = None,
) -> Markup:
    """One bar (or a stack, or overlaid bars, the first series widest) per slot. Every slot
    gets a group with all its values (drawn or not) and a title, even an empty one, so each
    hour can be read; ``describe`` writes a slot's values for its title."""
    values = [[slot.values.get(s.key) for s in series] for slot in slots]
    if not any(v for row in values for v in row):
        return _empty(name, caption, empty)
    heights = [sum(v or 0 for v in row) if stacked else max(v or 0 for v in row) for row in values]
    ticks = nice_ticks(max(heights), integer=integer)
    top = ticks[-1]
    band = PLOT_W / len(slots)
    parts = _frame(name, caption, _bar_summary(slots, series, fmt), y_label, x_label, ticks, fmt)
    for index, (slot, row) in enumerate(zip(slots, values, strict=True)):
        x = LEFT + index * band
        data = "".join(f' data-{_attr(key)}="{_num(v)}"' for key, v in slot.values.items())
        said = describe(slot) if describe else _said(series, row, fmt)
        title = f"{_hhmm(slot.start)} to {_hhmm(slot.end)} UTC: {said}"
        parts.append(f'<g class="bar" role="img" data-start="{_iso(slot.start)}"{data}>')
        parts.append(f"<title>{escape(title)}</title>")
        # The whole column answers the hover, however short its bar.
        parts.append(
            f'<rect class="hit" x="{x:.1f}" y="{TOP}" width="{band:.1f}" height="{PLOT_H}"/>'
        )
        base = 0.0
        for position, (s, v) in enumerate(zip(series, row, strict=True)):
            if not v:
                continue
            width = band * (0.72 if stacked or position == 0 else 0.4)
            left = x + (band - width) / 2
            low, high = (base, base + v) if stacked else (0.0, v)
            y_top, y_low = _y(high, top), _y(low, top)
            parts.append(
                f'<rect class="tone-{_attr(s.tone)}" x="{left:.1f}" y="{y_top:.1f}" '
                f'width="{width:.1f}" height="{max(y_low - y_top, 1.0):.1f}"/>'
            )
            if stacked:
                base += v
        parts.append("</g>")
    every = max(1, math.ceil(len(slots) / 8))
    marks = [
        (LEFT + i * band + band / 2, slot.start)
        for i, slot in enumerate(slots)
        if (len(slots) - 1 - i) % every == 0
    ]
    parts += _x_ticks(marks)
    parts.append("</svg>")
    return _figure(name, caption, "".join(parts) + _legend(series), empty=False)


def line_chart(
    *,
    name: str,
    caption: str,
    samples: Sequence[Sample],
    series: Sequence[Series],
    since: datetime,
    until: datetime,
    interval: timedelta,
    y_label: str,
    x_label: str,
    empty: str,
    fmt: Format = count_text,
) -> Markup:
    """A line per series over ``since``..``until`` through the samples, with a point at each;
    the line breaks where samples are missing (no sampler ran)."""
    if not samples:
        return _empty(name, caption, empty)
    span = (until - since).total_seconds() or 1.0
    highest = max((v or 0) for s in samples for v in s.values.values())
    ticks = nice_ticks(highest)
    top = ticks[-1]

    def x_of(moment: datetime) -> float:
        share = min(max((moment - since).total_seconds() / span, 0.0), 1.0)
        return LEFT + share * PLOT_W

    parts = _frame(name, caption, _line_summary(samples, series, fmt), y_label, x_label, ticks, fmt)
    for s in series:
        runs: list[list[str]] = [[]]
        previous: datetime | None = None
        for sample in samples:
            value = sample.values.get(s.key)
            broken = previous is not None and sample.at - previous > interval * GAP_FACTOR
            if value is None or broken:
                runs.append([])
            if value is not None:
                runs[-1].append(f"{x_of(sample.at):.1f},{_y(value, top):.1f}")
            previous = sample.at
        for run in runs:
            if len(run) > 1:
                parts.append(
                    f'<polyline class="line tone-{_attr(s.tone)}" points="{" ".join(run)}" '
                    'aria-hidden="true"/>'
                )
    radius = 3 if len(samples) <= 30 else 2.2  # a minute's samples of an hour stay apart
    for sample in samples:
        row = [sample.values.get(s.key) for s in series]
        data = "".join(f' data-{_attr(key)}="{_num(v)}"' for key, v in sample.values.items())
        parts.append(f'<g class="point" role="img" data-at="{_iso(sample.at)}"{data}>')
        shown = ", ".join(
            f"{s.label} {fmt(v)}" for s, v in zip(series, row, strict=True) if v is not None
        )
        title = f"{_hhmm(sample.at)} UTC: {shown or 'no value'}"
        parts.append(f"<title>{escape(title)}</title>")
        for s, v in zip(series, row, strict=True):
            if v is not None:
                parts.append(
                    f'<circle class="dot tone-{_attr(s.tone)}" cx="{x_of(sample.at):.1f}" '
                    f'cy="{_y(v, top):.1f}" r="{radius}"/>'
                )
        parts.append("</g>")
    marks = [(x_of(moment), moment) for moment in _round_times(since, until)]
    parts += _x_ticks(marks)
    parts.append("</svg>")
    notes = {}
    for s in series:
        seen = [v for sample in samples if (v := sample.values.get(s.key)) is not None]
        if seen:
            notes[s.key] = f"now {fmt(seen[-1])}, highest {fmt(max(seen))}"
    return _figure(name, caption, "".join(parts) + _legend(series, notes), empty=False)


def _round_times(since: datetime, until: datetime) -> list[datetime]:
    """Round clock times to mark on a time axis: every 10 minutes for an hour, about six."""
    span = (until - since).total_seconds()
    step = next((m for m in (60, 300, 600, 1800, 3600, 21600) if span / m <= 7), 86400)
    first = math.ceil(since.timestamp() / step) * step
    return [
        datetime.fromtimestamp(t, UTC) for t in range(int(first), int(until.timestamp()) + 1, step)
    ]


def _said(series: Sequence[Series], row: list[float | None], fmt: Format) -> str:
    """A slot's values in words: "12 delivered, 3 failed" (counts), "p95 340 ms" (others)."""
    shown = ", ".join(
        f"{fmt(v)} {s.label.lower()}" if fmt is count_text else f"{s.label} {fmt(v)}"
        for s, v in zip(series, row, strict=True)
        if v is not None
    )
    return shown or "none"


def _bar_summary(slots: Sequence[Slot], series: Sequence[Series], fmt: Format) -> str:
    if fmt is count_text:
        totals = ", ".join(
            f"{count_text(sum(slot.values.get(s.key) or 0 for slot in slots))} {s.label.lower()}"
            for s in series
        )
        return f"In total: {totals}."
    peaks = ", ".join(
        f"highest {s.label} {fmt(max(slot.values.get(s.key) or 0 for slot in slots))}"
        for s in series
    )
    return f"Per hour: {peaks}."


def _line_summary(samples: Sequence[Sample], series: Sequence[Series], fmt: Format) -> str:
    last = samples[-1]
    parts = []
    for s in series:
        seen = [v for sample in samples if (v := sample.values.get(s.key)) is not None]
        if seen:
            parts.append(f"{s.label}: now {fmt(seen[-1])}, at most {fmt(max(seen))}")
    return f"{len(samples)} samples, the last at {_hhmm(last.at)} UTC. " + "; ".join(parts) + "."
