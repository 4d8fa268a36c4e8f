"""The console's one format for each kind of value: numbers, durations, rates, percentages and
times, so a page never shows ``4140`` beside ``4,140`` or a run's duration three ways. The
live-updated values use the same rules (static/console/formats.js); the template filters are
in sync/templatetags/console_formats.py.

* numbers: ``4,140``; a float below 10 keeps one decimal (``2.5``), else it is rounded;
* durations: ``45 ms`` (below 1 s, where a page wants it), ``0.45 s``, ``2.3 s``, ``12 s``,
  ``2 min 05 s``, ``1 h 02 min``;
* rates: ``9,109 rows/s``; percentages: ``99.2%``, ``100%``;
* times: ``2026-12-06 20:54:21`` in the console's time zone (``settings.TIME_ZONE``), which
  a page shows once (``time_zone_name``), never beside each value.
"""

from __future__ import annotations

import datetime as dt
import math

from django.utils import timezone

EMPTY = "-"


def number(value: float | int | None) -> str:
    """``4,140``; a float below 10 keeps one decimal."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return EMPTY
    if isinstance(value, float) and abs(value) < 10 and value != int(value):
        return f"{value:,.1f}"
    return f"{round(value):,}"


def duration(seconds: float | None, *, milliseconds: bool = False) -> str:
    """A span of time, short and unambiguous. ``milliseconds``: below 1 s in ``ms``."""
    if seconds is None or not math.isfinite(seconds):
        return EMPTY
    negative, seconds = seconds < 0, abs(seconds)
    if milliseconds and seconds < 1:
        text = f"{seconds * 1000:.0f} ms"
    elif seconds < 10:
        text = f"{seconds:.2g} s" if seconds < 1 else f"{seconds:.1f} s"
    elif seconds < 60:
        text = f"{seconds:.0f} s"
    elif seconds < 3600:
        minutes, rest = divmod(round(seconds), 60)
        text = f"{minutes} min {rest:02d} s"
    else:
        hours, rest = divmod(round(seconds) // 60, 60)
        text = f"{hours:,} h {rest:02d} min"
    return f"-{text}" if negative else text


def rate(per_second: float | None, unit: str = "rows") -> str:
    """``9,109 rows/s``."""
    if per_second is None or not math.isfinite(per_second):
        return EMPTY
    return f"{number(per_second)} {unit}/s"


def percent(fraction: float | None) -> str:
    """A fraction (0..1) as ``99.2%``; exactly 1 as ``100%``, never rounded up to it."""
    if fraction is None or not math.isfinite(fraction):
        return EMPTY
    value = fraction * 100
    if value >= 100:
        return "100%" if value == 100 else f"{value:,.0f}%"
    return f"{math.floor(value * 10) / 10:.1f}%"


def when(value: dt.datetime | None) -> str:
    """``2026-12-06 20:54:21`` in the console's time zone."""
    if value is None:
        return EMPTY
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


def time_zone_name() -> str:
    """The console's time zone, for the one place a page names it (``UTC``)."""
    return timezone.get_current_timezone_name()
