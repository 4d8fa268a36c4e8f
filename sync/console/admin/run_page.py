"""A run's stored results as tables for its admin page (issue 15): phase timings with their
share of the run, the verification and the schema report (any shape they hold: nested
tables for mappings, one table for a list of records, long lists cut with a count), and the
throughput as a rounded rate. Every value is escaped; no raw JSON reaches the page.
"""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

LISTED = 50  # items of a list shown; the rest are counted
# The pipeline's phases in the order a run goes through them.
PHASES = ("fetch", "schema", "validate", "update", "write_through", "verify")


def label(name: object) -> str:
    return str(name).replace("_", " ")


def throughput_text(rows_per_second: float | None) -> str:
    """9,109 rows/s (below 10, one decimal)."""
    if rows_per_second is None:
        return "-"
    if rows_per_second < 10:
        return f"{rows_per_second:.1f} rows/s"
    return f"{round(rows_per_second):,} rows/s"


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.1f}"
    return str(value)


def _more(total: int) -> SafeString:
    if total <= LISTED:
        return mark_safe("")
    return format_html(' <span class="quiet">… and {} more</span>', f"{total - LISTED:,}")


def render(value: Any) -> SafeString:
    """``value`` as HTML: a mapping as a two-column table, a list of mappings as a table with
    their keys as columns, any other list as a comma-separated line."""
    if isinstance(value, dict):
        if not value:
            return format_html('<span class="quiet">{}</span>', "none")
        rows = format_html_join("", "<tr><th>{}</th><td>{}</td></tr>",
                                ((label(k), render(v)) for k, v in value.items()))
        return format_html('<table class="run-facts"><tbody>{}</tbody></table>', rows)
    if isinstance(value, list | tuple):
        if not value:
            return format_html('<span class="quiet">{}</span>', "none")
        if all(isinstance(item, dict) for item in value):
            columns = list(dict.fromkeys(k for item in value for k in item))
            head = format_html_join("", "<th>{}</th>", ((label(c),) for c in columns))
            body = format_html_join(
                "", "<tr>{}</tr>",
                ((format_html_join("", "<td>{}</td>", ((render(item.get(c)),) for c in columns)),)
                 for item in value[:LISTED]))
            return format_html('<table class="run-facts"><thead><tr>{}</tr></thead>'
                               "<tbody>{}</tbody></table>{}", head, body, _more(len(value)))
        items = format_html_join(", ", "{}", ((render(item),) for item in value[:LISTED]))
        return format_html("{}{}", items, _more(len(value)))
    return format_html("{}", _scalar(value))


def phase_table(phase_ms: dict[str, float]) -> SafeString:
    """Each phase's time and share of the phases' total, in the order a run goes."""
    if not phase_ms:
        return format_html('<span class="quiet">{}</span>', "not recorded")
    ordered = [p for p in PHASES if p in phase_ms] + sorted(set(phase_ms) - set(PHASES))
    total = sum(phase_ms.values()) or 1.0
    rows = format_html_join(
        "", '<tr><th>{}</th><td class="num">{}</td><td class="num">{}</td></tr>',
        ((label(p), _ms(phase_ms[p]), f"{phase_ms[p] / total:.0%}") for p in ordered))
    return format_html(
        '<table class="run-facts"><thead><tr><th>phase</th><th>time</th><th>share</th></tr>'
        '</thead><tbody>{}<tr><th>total</th><td class="num">{}</td><td></td></tr></tbody>'
        "</table>", rows, _ms(sum(phase_ms.values())))


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value < 10_000 else f"{value / 1000:,.1f} s"
