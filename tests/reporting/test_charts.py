"""The run report's charts: valid SVG, accessible, no script, exact figures in the labels."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from lxml import etree

from shared.models import DISCREPANCY_TYPES
from shared.reporting.charts import (
    Chart,
    discrepancies_by_type_chart,
    matched_percent_chart,
    money_at_stake_chart,
    run_report_charts,
)
from shared.runs.history import RunFigures

SVG = "{http://www.w3.org/2000/svg}"
POINTS = [("2026-11-01", Decimal("97.50")), ("2026-11-02", Decimal("99.25")),
          ("2026-11-03", Decimal("100.00"))]  # fmt: skip
COUNTS = dict.fromkeys(DISCREPANCY_TYPES, 0) | {"AmountMismatch": 12, "DisputeOpened": 1_234}
STAKES = {
    "EUR": {"amount_mismatch": 123_456, "missing_at_provider": 0, "missing_internally": 5,
            "disputed": 987_654_321},
    "JPY": {"amount_mismatch": 1_200, "missing_at_provider": 0, "missing_internally": 0,
            "disputed": 0},
    "KWD": {"amount_mismatch": 1_234_567, "missing_at_provider": 0, "missing_internally": 0,
            "disputed": 0},
}  # fmt: skip
CHARTS = {
    "matched": lambda: matched_percent_chart(POINTS),
    "by type": lambda: discrepancies_by_type_chart(COUNTS),
    "money": lambda: money_at_stake_chart(STAKES),
    "matched, none": lambda: matched_percent_chart([]),
    "money, none": lambda: money_at_stake_chart({}),
    "by type, zeros": lambda: discrepancies_by_type_chart(dict.fromkeys(DISCREPANCY_TYPES, 0)),
}


def parsed(chart: Chart) -> etree._Element:
    """The chart's SVG parsed as XML, refusing any DTD, entity or network access."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    return etree.fromstring(chart.svg.encode(), parser)


def texts(root) -> list[str]:
    return [element.text for element in root.iter(f"{SVG}text")]


def titles(root, mark: str) -> list[str]:
    return [element.findtext(f"{SVG}title") for element in root.iter(f"{SVG}{mark}")]


@pytest.mark.parametrize("name", CHARTS)
def test_every_chart_is_valid_accessible_svg_without_script_or_style(name):
    chart = CHARTS[name]()
    root = parsed(chart)
    assert root.tag == f"{SVG}svg"
    assert root.get("role") == "img"
    assert root.get("aria-label")
    assert root.findtext(f"{SVG}title") == chart.title
    assert root.findtext(f"{SVG}desc") == root.get("aria-label")
    assert root.get("viewBox")
    for element in root.iter():
        assert etree.QName(element).localname not in {"script", "foreignObject", "style", "a"}
        for attribute in element.attrib:
            assert not attribute.startswith("on"), attribute
            assert attribute not in {"style", "href", "{http://www.w3.org/1999/xlink}href"}


def test_the_matched_line_has_a_point_per_run_each_with_its_figure():
    chart = matched_percent_chart(POINTS)
    root = parsed(chart)
    assert titles(root, "circle") == [
        "2026-11-01: 97.50 %",
        "2026-11-02: 99.25 %",
        "2026-11-03: 100.00 %",
    ]
    assert len(root.find(f"{SVG}polyline").get("points").split()) == 3
    # The axis starts at the nearest ten below the lowest point, so 97.5 and 100 differ.
    assert {"90 %", "95 %", "100 %", "2026-11-01", "2026-11-03"} <= set(texts(root))
    assert "from 97.50 % (2026-11-01) to 100.00 % (2026-11-03); lowest 97.50 %" in root.get(
        "aria-label"
    )
    assert chart.rows == (("2026-11-01", "97.50 %"), ("2026-11-02", "99.25 %"),
                          ("2026-11-03", "100.00 %"))  # fmt: skip


def test_a_low_point_lowers_the_axis_to_its_ten():
    root = parsed(matched_percent_chart([("a", Decimal("42.10")), ("b", Decimal("99"))]))
    assert {"40 %", "70 %", "100 %"} <= set(texts(root))


def test_the_type_chart_has_a_bar_per_type_zeros_included_with_lengths_by_count():
    root = parsed(discrepancies_by_type_chart(COUNTS))
    bars = list(root.iter(f"{SVG}rect"))
    assert len(bars) == len(DISCREPANCY_TYPES)
    assert titles(root, "rect") == [f"{kind}: {COUNTS[kind]:,}" for kind in DISCREPANCY_TYPES]
    widths = {kind: float(bar.get("width")) for kind, bar in zip(COUNTS, bars, strict=True)}
    assert widths["StatusMismatch"] == 0
    assert widths["DisputeOpened"] > widths["AmountMismatch"] > 0
    assert "1,246 discrepancies by type: AmountMismatch 12, DisputeOpened 1,234." == root.get(
        "aria-label"
    )


def test_money_is_labelled_exactly_with_each_currencys_exponent():
    chart = money_at_stake_chart(STAKES)
    root = parsed(chart)
    labels = set(texts(root))
    assert {"1,234.56 EUR", "9,876,543.21 EUR", "0.05 EUR", "1,200 JPY", "1,234.567 KWD"} <= labels
    assert {"EUR", "JPY", "KWD"} <= labels
    assert len(list(root.iter(f"{SVG}rect"))) == 12
    assert ("KWD", "amount mismatch", "1,234.567 KWD") in chart.rows
    assert root.get("aria-label") == (
        "Money at stake by currency, never added across currencies: "
        "9,877,777.82 EUR, 1,200 JPY, 1,234.567 KWD."
    )


def test_each_currency_is_scaled_to_its_own_largest_amount():
    root = parsed(money_at_stake_chart(STAKES))
    widths = [float(bar.get("width")) for bar in root.iter(f"{SVG}rect")]
    eur, jpy, kwd = widths[0:4], widths[4:8], widths[8:12]
    # Each currency's largest fills the track, however its amount compares with another's.
    assert max(eur) == max(jpy) == max(kwd) > 0


def test_text_from_outside_is_escaped_not_markup():
    chart = discrepancies_by_type_chart({"<script>alert(1)</script>": 1})
    root = parsed(chart)
    assert not list(root.iter(f"{SVG}script"))
    assert "<script>alert(1)</script>" in texts(root)


def figures(day: int, percent: str, *, days: int = 1, verification: bool = False) -> RunFigures:
    start = date(2026, 11, day)
    return RunFigures(
        run_id=uuid.uuid4(),
        period_start=start,
        period_end=start + timedelta(days=days - 1),
        created_at=datetime(2026, 11, day, 3, tzinfo=UTC),
        is_verification_run=verification,
        matched_percent=Decimal(percent),
        items=10,
        discrepancies_by_type=COUNTS,
        money_at_stake=STAKES,
    )


def test_a_run_page_gets_the_history_line_and_the_runs_own_bars():
    recent = [figures(1, "97.50"), figures(2, "99.00", days=7), figures(3, "100.00",
              verification=True)]  # fmt: skip
    line, by_type, money = run_report_charts(recent[-1], recent)
    assert [row[0] for row in line.rows] == [
        "2026-11-01",
        "2026-11-02 to 2026-11-08",
        "2026-11-03 (verification)",
    ]
    assert by_type == discrepancies_by_type_chart(COUNTS)
    assert money == money_at_stake_chart(STAKES)
