"""Charts of a run's report, drawn as SVG on the server: pure functions over plain values.

Each chart is an ``<svg role="img">`` with an ``aria-label`` that says what it shows, a
``<title>`` and a ``<desc>``, a ``<title>`` on every mark (its figure, as a tooltip), and
visible text labels; it holds no script, no style attribute (a strict
Content-Security-Policy applies) and no external reference. Each comes with the same
figures as a table, the text alternative a page shows beside it.

Money is exact minor units until it is drawn: a label formats it with the currency's
exponent (``format_minor``); bar lengths are geometry. Amounts of different currencies
never share a scale: each currency's bars are scaled to that currency's largest.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from shared.runs.history import RunFigures
from shared.values.money import format_minor

SVG_NAMESPACE = "http://www.w3.org/2000/svg"
WIDTH = 640
BAR_HEIGHT = 22
BAR_GAP = 8
LABEL_WIDTH = 210  # the left column of a bar chart: its labels
VALUE_WIDTH = 170  # the right column: its figures
TOP = 36  # room for the visible heading
# Dark enough on white for text and for marks (WCAG contrast above 4.5:1 and 3:1).
INK = "#1f2328"
MUTED = "#57606a"
BAR = "#0b5cad"
GRID = "#d0d7de"


@dataclass(frozen=True)
class Chart:
    """An SVG chart and its text alternative: the same figures as a table."""

    title: str
    svg: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Bar:
    """One bar: its label, its length's value (any unit) and the figure shown beside it."""

    label: str
    value: int | Decimal
    figure: str


def matched_percent_chart(points: Sequence[tuple[str, Decimal]]) -> Chart:
    """A line of the matched percentage of each run, oldest first (``(label, percent)``).

    The vertical axis runs from the nearest ten at or below the lowest point to 100, so
    small differences near 100 % stay visible; its bounds are labelled.
    """
    title = "Matched % over the last runs"
    rows = tuple((label, f"{percent:.2f} %") for label, percent in points)
    if not points:
        summary = "Matched %: no completed run yet."
        return Chart(title, _empty(title, summary), ("Run", "Matched"), rows)
    lowest = min(percent for _, percent in points)
    floor = min(Decimal(90), (lowest // 10) * 10)
    first, last = points[0], points[-1]
    summary = (
        f"Matched % over {len(points)} runs, from {first[1]:.2f} % ({first[0]}) "
        f"to {last[1]:.2f} % ({last[0]}); lowest {lowest:.2f} %."
    )
    height = 240
    left, right, top, bottom = 56, WIDTH - 16, TOP + 8, height - 40
    root = _svg(title, summary, height)
    for percent in (floor, (floor + 100) / 2, Decimal(100)):
        y = _scale(percent, floor, Decimal(100), bottom, top)
        _line(root, left, y, right, y, GRID)
        _text(root, left - 6, y + 4, f"{percent:g} %", anchor="end", fill=MUTED)
    step = (right - left) / max(len(points) - 1, 1)
    xy = [
        (left + index * step, _scale(percent, floor, Decimal(100), bottom, top))
        for index, (_, percent) in enumerate(points)
    ]
    ET.SubElement(
        root,
        "polyline",
        points=" ".join(f"{x:.1f},{y:.1f}" for x, y in xy),
        fill="none",
        stroke=BAR,
        **{"stroke-width": "2"},
    )
    for (x, y), (label, percent) in zip(xy, points, strict=True):
        mark = ET.SubElement(root, "circle", cx=f"{x:.1f}", cy=f"{y:.1f}", r="3.5", fill=BAR)
        ET.SubElement(mark, "title").text = f"{label}: {percent:.2f} %"
    _text(root, left, height - 16, first[0], anchor="start", fill=MUTED)
    if len(points) > 1:
        _text(root, right, height - 16, last[0], anchor="end", fill=MUTED)
    return Chart(title, _serialise(root), ("Run", "Matched"), rows)


def discrepancies_by_type_chart(counts: Mapping[str, int]) -> Chart:
    """A bar per discrepancy type (zeros included, in the given order) with its count."""
    title = "Discrepancies by type"
    bars = [Bar(kind, count, f"{count:,}") for kind, count in counts.items()]
    total = sum(counts.values())
    found = ", ".join(f"{bar.label} {bar.figure}" for bar in bars if bar.value)
    summary = f"{total:,} discrepancies by type" + (f": {found}." if found else ".")
    root = _bar_chart(title, summary, [(None, bars)])
    rows = tuple((bar.label, bar.figure) for bar in bars)
    return Chart(title, _serialise(root), ("Type", "Discrepancies"), rows)


def money_at_stake_chart(stakes: Mapping[str, Mapping[str, int]]) -> Chart:
    """Per currency, a bar per kind of money at stake (``{currency: {kind: minor}}``),
    each currency's bars scaled to its own largest; figures formatted with the exponent."""
    title = "Money at stake by currency"
    groups = [
        (
            currency,
            [
                Bar(kind.replace("_", " "), minor, f"{format_minor(minor, currency)} {currency}")
                for kind, minor in kinds.items()
            ],
        )
        for currency, kinds in stakes.items()
    ]
    if not groups:
        summary = "Money at stake: none."
        return Chart(title, _empty(title, summary), ("Currency", "Kind", "Amount"), ())
    totals = [
        f"{format_minor(sum(kinds.values()), currency)} {currency}"
        for currency, kinds in stakes.items()
    ]
    summary = f"Money at stake by currency, never added across currencies: {', '.join(totals)}."
    root = _bar_chart(title, summary, groups)
    rows = tuple((currency, bar.label, bar.figure) for currency, bars in groups for bar in bars)
    return Chart(title, _serialise(root), ("Currency", "Kind", "Amount"), rows)


def run_report_charts(run: RunFigures, recent: Sequence[RunFigures]) -> tuple[Chart, ...]:
    """A run report page's charts: matched % over ``recent`` runs (oldest first), then
    ``run``'s discrepancies by type and money at stake by currency."""
    return (
        matched_percent_chart([(period_label(f), f.matched_percent) for f in recent]),
        discrepancies_by_type_chart(run.discrepancies_by_type),
        money_at_stake_chart(run.money_at_stake),
    )


def period_label(figures: RunFigures) -> str:
    """A run as a point's label: its day, or its first and last day; a verification run
    says so."""
    start, end = figures.period_start.isoformat(), figures.period_end.isoformat()
    label = start if start == end else f"{start} to {end}"
    return f"{label} (verification)" if figures.is_verification_run else label


# --- drawing ------------------------------------------------------------------------------


def _svg(title: str, summary: str, height: int) -> ET.Element:
    root = ET.Element(
        "svg",
        {
            "xmlns": SVG_NAMESPACE,
            "viewBox": f"0 0 {WIDTH} {height}",
            "width": str(WIDTH),
            "height": str(height),
            "role": "img",
            "aria-label": summary,
            "font-family": "system-ui, sans-serif",
            "font-size": "13",
        },
    )
    ET.SubElement(root, "title").text = title
    ET.SubElement(root, "desc").text = summary
    _text(root, 0, 20, title, anchor="start", fill=INK, weight="600")
    return root


def _empty(title: str, summary: str) -> str:
    root = _svg(title, summary, TOP + 32)
    _text(root, 0, TOP + 18, summary, anchor="start", fill=MUTED)
    return _serialise(root)


def _bar_chart(
    title: str, summary: str, groups: Sequence[tuple[str | None, Sequence[Bar]]]
) -> ET.Element:
    """Horizontal bars, in groups (a heading each when named), each group scaled to its
    own largest value."""
    headings = sum(1 for heading, _ in groups if heading is not None)
    count = sum(len(bars) for _, bars in groups)
    height = TOP + headings * (BAR_HEIGHT + BAR_GAP) + count * (BAR_HEIGHT + BAR_GAP) + 8
    root = _svg(title, summary, height)
    track = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    y = TOP
    for heading, bars in groups:
        if heading is not None:
            _text(root, 0, y + BAR_HEIGHT - 6, heading, anchor="start", fill=INK, weight="600")
            y += BAR_HEIGHT + BAR_GAP
        largest = max((bar.value for bar in bars), default=0)
        for bar in bars:
            length = float(bar.value) / float(largest) * track if largest else 0.0
            _text(root, LABEL_WIDTH - 8, y + BAR_HEIGHT - 6, bar.label, anchor="end", fill=INK)
            mark = ET.SubElement(
                root,
                "rect",
                x=str(LABEL_WIDTH),
                y=str(y),
                width=f"{length:.1f}",
                height=str(BAR_HEIGHT),
                fill=BAR,
            )
            ET.SubElement(mark, "title").text = f"{bar.label}: {bar.figure}"
            _text(root, LABEL_WIDTH + length + 6, y + BAR_HEIGHT - 6, bar.figure, anchor="start",
                  fill=INK)  # fmt: skip
            y += BAR_HEIGHT + BAR_GAP
    return root


def _scale(value: Decimal, low: Decimal, high: Decimal, bottom: float, top: float) -> float:
    return bottom - float((value - low) / (high - low)) * (bottom - top)


def _line(root: ET.Element, x1: float, y1: float, x2: float, y2: float, stroke: str) -> None:
    ET.SubElement(
        root, "line", x1=f"{x1:.1f}", y1=f"{y1:.1f}", x2=f"{x2:.1f}", y2=f"{y2:.1f}", stroke=stroke
    )


def _text(
    root: ET.Element, x: float, y: float, content: str, *, anchor: str, fill: str,
    weight: str = "400",
) -> None:  # fmt: skip
    element = ET.SubElement(
        root,
        "text",
        {
            "x": f"{x:.1f}",
            "y": f"{y:.1f}",
            "text-anchor": anchor,
            "fill": fill,
            "font-weight": weight,
        },
    )
    element.text = content


def _serialise(root: ET.Element) -> str:
    return ET.tostring(root, encoding="unicode")
