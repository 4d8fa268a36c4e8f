"""A run's stored results for its admin page: phase timings as a bar (inline
SVG, no script, no chart library) with a table of each phase's time and share, the
verification and the schema report as tables (any shape they hold: nested tables for
mappings, one table for a list of records, long lists cut with a count), and every number in
the console's one format (sync.console.formats). Every value is escaped; no raw JSON reaches
the page.
"""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from sync.console import formats

LISTED = 50  # items of a list shown; the rest are counted
# The pipeline's phases in the order a run goes through them (sync/ingest/pipeline): the
# sheet read, its header checked against the table, the pre-scan of every row (duplicate
# keys, values too long), then per batch validation, the upsert and the cache write-through,
# and the verification at the end.
PHASES = ("fetch", "schema", "scan", "validate", "update", "write_through", "verify")
BAR_WIDTH = 1000  # the bar's own units (it stretches to its box)
# Keys whose numbers are row positions in the sheet, not counts: their digits stay bare, as
# the sheet and the error messages write them ("also on row 1350").
POSITION_KEYS = frozenset({"row", "rows_of", "row_number", "row_numbers", "duplicates"})


# The stored reports' keys as a person reads them (a key not here: its name, spaced).
LABELS = {
    # verification (sync/ingest/verification.py)
    "sheet_count": "keys in the sheet",
    "database_count": "of them in the database",
    "table_count": "rows in the table",
    "gaps": "gaps (sheet keys not in the database)",
    "unexplained_gaps": "gaps no error row explains",
    "integrity": "integrity problems",
    "sample": "sample compared with the sheet",
    "left_sheet": "left the sheet",
    "keys_not_listed": "more keys, not listed",
    # schema report (sync/ingest/schema.py)
    "limited_columns": "length-limited columns",
    "rows_scanned": "rows measured",
    "rows_with_misfits": "rows with a value too long",
    "misfits": "values too long",
    "by_column": "values too long, by column",
    "rows": "values too long (first 100)",
    "file": "file read as",
    "detected": "detected (not declared)",
}


def label(name: object) -> str:
    return LABELS.get(str(name), str(name).replace("_", " "))


def throughput_text(rows_per_second: float | None) -> str:
    """``9,109 rows/s`` (below 10, one decimal)."""
    return formats.rate(rows_per_second, "rows")


def _scalar(value: Any, *, positions: bool = False) -> str:
    if value is None:
        return formats.EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if positions and isinstance(value, int):
        return formats.position(value)
    if isinstance(value, int | float):
        return formats.number(value)
    return str(value)


def _more(total: int) -> SafeString:
    if total <= LISTED:
        return mark_safe("")
    return format_html(' <span class="quiet">… and {} more</span>', formats.number(total - LISTED))


def render(value: Any, *, positions: bool = False) -> SafeString:
    """``value`` as HTML: a mapping as a two-column table, a list of mappings as a table with
    their keys as columns, any other list as a comma-separated line. Numbers under a key of
    ``POSITION_KEYS`` (``positions``) are row numbers: no separator."""
    if isinstance(value, dict):
        if not value:
            return format_html('<span class="quiet">{}</span>', "none")
        rows = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            (
                (label(k), render(v, positions=positions or k in POSITION_KEYS))
                for k, v in value.items()
            ),
        )
        return format_html('<table class="run-facts"><tbody>{}</tbody></table>', rows)
    if isinstance(value, list | tuple):
        if not value:
            return format_html('<span class="quiet">{}</span>', "none")
        if all(isinstance(item, dict) for item in value):
            columns = list(dict.fromkeys(k for item in value for k in item))
            head = format_html_join("", "<th>{}</th>", ((label(c),) for c in columns))
            body = format_html_join(
                "",
                "<tr>{}</tr>",
                (
                    (
                        format_html_join(
                            "",
                            "<td>{}</td>",
                            (
                                (render(item.get(c), positions=positions or c in POSITION_KEYS),)
                                for c in columns
                            ),
                        ),
                    )
                    for item in value[:LISTED]
                ),
            )
            return format_html(
                '<table class="run-facts"><thead><tr>{}</tr></thead><tbody>{}</tbody></table>{}',
                head,
                body,
                _more(len(value)),
            )
        items = format_html_join(
            ", ", "{}", ((render(item, positions=positions),) for item in value[:LISTED])
        )
        if positions and all(isinstance(item, int) for item in value):
            # Sheet rows, said as such: "rows 202, 1352" (not counts to group).
            return format_html("rows {}{}", items, _more(len(value)))
        return format_html("{}{}", items, _more(len(value)))
    return format_html("{}", _scalar(value, positions=positions))


def _ordered(phase_ms: dict[str, float]) -> list[str]:
    return [p for p in PHASES if p in phase_ms] + sorted(set(phase_ms) - set(PHASES))


def _tone(phase: str) -> str:
    return f"phase-{phase}" if phase in PHASES else "phase-other"


def left_sheet_text(verification: dict) -> SafeString:
    """The database rows a whole-sheet run no longer found in its sheet, in a line:
    ``2 rows: B-00601, B-00701 (flagged)``; nothing to say when none left."""
    left = verification.get("left_sheet")
    if not isinstance(left, dict):
        return format_html('<span class="quiet">{}</span>', "not checked (not a whole-sheet run)")
    count = left.get("count")
    if not count:
        if left.get("action") == "not checked":
            return format_html('<span class="quiet">not checked: {}</span>', left.get("reason", ""))
        return format_html('<span class="quiet">{}</span>', "none")
    keys = ", ".join(str(k) for k in left.get("keys") or [])
    more = left.get("keys_not_listed")
    return format_html(
        '<span class="console-bad">{} row{}:</span> {}{} ({})',
        formats.number(count),
        "" if count == 1 else "s",
        keys,
        f" and {formats.number(more)} more" if more else "",
        left.get("action", ""),
    )


def phase_time(ms: float) -> str:
    """A phase's time: ``45 ms`` below a second, else the console's duration (``15 s``)."""
    return formats.duration(ms / 1000, milliseconds=True)


def phase_bar(phase_ms: dict[str, float]) -> SafeString:
    """One horizontal bar, a segment per phase in the run's order, as wide as its share;
    hover a segment for its phase, time and share."""
    total = sum(phase_ms.values())
    if not total:
        return mark_safe("")
    segments, x = [], 0.0
    for phase in _ordered(phase_ms):
        width = BAR_WIDTH * phase_ms[phase] / total
        title = (
            f"{label(phase)}: {phase_time(phase_ms[phase])} "
            f"({formats.percent(phase_ms[phase] / total)})"
        )
        segments.append((round(x, 2), round(max(width, 0.0), 2), _tone(phase), title))
        x += width
    rects = format_html_join(
        "",
        '<rect x="{}" y="0" width="{}" height="20" class="{}"><title>{}</title></rect>',
        segments,
    )
    return format_html(
        '<svg class="phase-bar" viewBox="0 0 {} 20" preserveAspectRatio="none" '
        'role="img" aria-label="phase timings">{}</svg>',
        BAR_WIDTH,
        rects,
    )


def phase_table(phase_ms: dict[str, float]) -> SafeString:
    """The bar, then each phase's time and share of the phases' total, in the run's order."""
    if not phase_ms:
        return format_html('<span class="quiet">{}</span>', "not recorded")
    total = sum(phase_ms.values()) or 1.0
    rows = format_html_join(
        "",
        '<tr><th><i class="swatch {}"></i>{}</th><td class="num">{}</td>'
        '<td class="num">{}</td></tr>',
        (
            (_tone(p), label(p), phase_time(phase_ms[p]), formats.percent(phase_ms[p] / total))
            for p in _ordered(phase_ms)
        ),
    )
    return format_html(
        '<div class="phase-timings">{}<table class="run-facts phases"><thead><tr><th>phase</th>'
        '<th class="num">time</th><th class="num">share</th></tr></thead><tbody>{}'
        '<tr class="total"><th>total</th><td class="num">{}</td><td class="num">{}</td></tr>'
        "</tbody></table></div>",
        phase_bar(phase_ms),
        rows,
        phase_time(sum(phase_ms.values())),
        formats.percent(1.0),
    )
