"""The console's formats: the rules are in ``sync.formats`` (below the models, whose string
forms use them too); this is the name the console's pages, the template filters and the
domain apps' admin pages import them by."""

from sync.formats import (
    EMPTY,
    ago,
    counts_in_text,
    duration,
    number,
    percent,
    position,
    rate,
    time_zone_name,
    when,
)

__all__ = [
    "EMPTY",
    "ago",
    "counts_in_text",
    "duration",
    "number",
    "percent",
    "position",
    "rate",
    "time_zone_name",
    "when",
]
