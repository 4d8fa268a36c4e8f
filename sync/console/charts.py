"""The dashboard's trend chart: small inline SVG rendered on the server (no script, no
chart library). Three bands over the last 7 days, one bar per bucket: rows processed, mean
run duration, failed rows; each band has its own scale, and every bar a tooltip."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from sync.console import formats

WIDTH, BAND, GAP = 336, 18, 5
BANDS = (
    ("rows", "rows", "trend-rows"),
    ("seconds", "duration", "trend-secs"),
    ("errors", "failed rows", "trend-errors"),
)


def _tooltip(bucket: dict, start: datetime, hours: int) -> str:
    """A bar's hover text, in the console's formats (the page names the time zone)."""
    end = start + timedelta(hours=hours)
    when = f"{formats.when(start)} to {formats.when(end)}"
    seconds = (
        f"{formats.duration(bucket['seconds'])} mean"
        if bucket["seconds"] is not None
        else "duration unknown"
    )
    failed_runs = (
        f", {formats.number(bucket['failed_runs'])} failed run(s)" if bucket["failed_runs"] else ""
    )
    return (
        f"{when}: {formats.number(bucket['runs'])} run(s), "
        f"{formats.number(bucket['rows'])} rows, {seconds}, "
        f"{formats.number(bucket['errors'])} failed rows{failed_runs}"
    )


def trend_svg(buckets: list[dict], *, hours: int, now: datetime | None = None) -> SafeString:
    """The chart of one source's buckets (oldest first); an empty list: no runs."""
    height = len(BANDS) * (BAND + GAP) - GAP
    if not any(b["runs"] for b in buckets):
        return format_html(
            '<svg class="trend" viewBox="0 0 {} {}" role="img" '
            'aria-label="no runs in 7 days"><text x="4" y="{}" class="trend-'
            'empty">no runs in the last 7 days</text></svg>',
            WIDTH,
            height,
            height // 2 + 4,
        )
    now = now or timezone.now()
    step = WIDTH / len(buckets)
    first = now - timedelta(hours=hours * len(buckets))
    bars: list[tuple[float, float, float, float, str, str]] = []
    for band, (field, _label, css) in enumerate(BANDS):
        top = band * (BAND + GAP)
        peak = max((b[field] or 0) for b in buckets) or 1
        bars.append((0, top + BAND - 0.5, WIDTH, 0.5, "trend-axis", ""))
        for i, bucket in enumerate(buckets):
            value = bucket[field] or 0
            if bucket["runs"] and value:
                h = max(1.5, BAND * value / peak)
                bars.append(
                    (
                        round(i * step + 0.5, 1),
                        round(top + BAND - h, 1),
                        round(max(step - 1, 1.5), 1),
                        round(h, 1),
                        css,
                        _tooltip(bucket, first + timedelta(hours=hours * i), hours),
                    )
                )
    labels = ", ".join(
        f"{label} (max {formats.number(max((b[f] or 0) for b in buckets))})"
        for f, label, _css in BANDS
    )
    body = format_html_join(
        "", '<rect x="{}" y="{}" width="{}" height="{}" class="{}"><title>{}</title></rect>', bars
    )
    return format_html(
        '<svg class="trend" viewBox="0 0 {} {}" role="img" '
        'aria-label="runs over 7 days: {}">{}</svg>',
        WIDTH,
        height,
        labels,
        body,
    )
