"""The console's one format for each kind of value: numbers, durations, rates, percentages and
times, so a page never shows ``4140`` beside ``4,140`` or a run's duration three ways. The
live-updated values use the same rules (static/console/formats.js); the template filters are
in sync/templatetags/console_formats.py. Below every subsystem (it needs nothing but Django's
time zone), so a model's string form (``sync.models``) reads like the page that shows it; the
console imports it as ``sync.console.formats``.

* numbers: ``4,140``; a float below 10 keeps one decimal (``2.5``), else it is rounded;
* durations: ``45 ms`` (below 1 s, where a page wants it), ``0.45 s``, ``2.3 s``, ``12 s``,
  ``2 min 05 s``, ``1 h 02 min``;
* rates: ``9,109 rows/s``; percentages: ``99.2%``, ``100%``;
* times: ``2026-12-06 20:54:21`` in the console's time zone (``settings.TIME_ZONE``), which
  a page shows once (``time_zone_name``, in the header), never beside each value; an age is a
  duration (``2 min 05 s ago``).

Django's own rendering (admin lists, read-only fields) agrees through ``config/formats/en``
(``FORMAT_MODULE_PATH``) and ``USE_THOUSAND_SEPARATOR``.
"""

from __future__ import annotations

import datetime as dt
import math
import re

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
    # NOTE: each band takes the value as it will be shown, so 9.96 s is "10 s" (not "10.0 s")
    # and 59.6 s "1 min 00 s" (not "60 s").
    if milliseconds and round(seconds * 1000) < 1000:
        text = f"{seconds * 1000:.0f} ms"
    elif seconds < 1 and float(f"{seconds:.2g}") < 1:
        text = f"{seconds:.2g} s" if seconds else "0 s"
    elif round(seconds, 1) < 10:
        text = f"{seconds:.1f} s"
    elif round(seconds) < 60:
        text = f"{seconds:.0f} s"
    elif round(seconds) < 3600:
        minutes, rest = divmod(round(seconds), 60)
        text = f"{minutes} min {rest:02d} s"
    else:
        hours, rest = divmod(round(seconds / 60), 60)
        text = f"{hours:,} h {rest:02d} min"
    return f"-{text}" if negative else text


def rate(per_second: float | None, unit: str = "rows") -> str:
    """``9,109 rows/s``."""
    if per_second is None or not math.isfinite(per_second):
        return EMPTY
    return f"{number(per_second)} {unit}/s"


def percent(fraction: float | None, decimals: int = 1) -> str:
    """A fraction (0..1) as ``99.2%``; exactly 1 as ``100%``, never rounded up to it.
    ``decimals``: 3 where the nines matter (``99.991%``, cache consistency)."""
    if fraction is None or not math.isfinite(fraction):
        return EMPTY
    value = fraction * 100
    if value >= 100:
        return "100%" if value == 100 else f"{value:,.0f}%"
    scale = 10**decimals
    return f"{math.floor(value * scale) / scale:.{decimals}f}%"


def when(value: dt.datetime | str | None) -> str:
    """``2026-12-06 20:54:21`` in the console's time zone (an ISO string is read first)."""
    if not value:
        return EMPTY
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d %H:%M:%S")


# A count in a stored sentence ("1349 rows: 0 created, 1341 unchanged"): a number of four
# digits or more standing alone and followed by what it counts. Not a key (B-01350), a date,
# a time, a year, nor a row position ("row 1350" names a row: positions, like ids, keep
# their digits bare).
_COUNT_IN_TEXT = re.compile(
    r"(?<![\w.,:/#-])(\d{4,})(?= (?:rows?|created|updated|unchanged|failed|flagged|new|gaps?|"
    r"keys?|samples?|intents?|errors?|of|vs)\b)"
)


def counts_in_text(text: str) -> str:
    """The counts in a stored message grouped like every other number on the page:
    ``1349 rows: 1341 unchanged`` reads ``1,349 rows: 1,341 unchanged``."""
    return _COUNT_IN_TEXT.sub(lambda m: f"{int(m.group(1)):,}", text or "")


def position(value: int | None) -> str:
    """A row number (a position in a sheet, like an id): its digits, no separator, as the
    sheet and the error messages write it (``row 1350``)."""
    return EMPTY if value is None else str(value)


def ago(value: dt.datetime | str | None, *, now: dt.datetime | None = None) -> str:
    """How long ago, as a duration in whole seconds: ``3 s ago``, ``2 min 05 s ago``,
    ``3 h 10 min ago``."""
    if not value:
        return EMPTY
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    seconds = max(0.0, ((now or timezone.now()) - value).total_seconds())
    # NOTE: whole seconds: "0.45 s ago" is noise on a page that refreshes every 5 s.
    if round(seconds) < 10:
        return f"{round(seconds)} s ago"
    return f"{duration(seconds)} ago"


def time_zone_name() -> str:
    """The console's time zone, for the one place a page names it (``UTC``)."""
    return timezone.get_current_timezone_name()
