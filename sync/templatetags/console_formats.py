"""Template filters for the console's formats (sync/console/formats.py):
``{% load console_formats %}`` then ``|num``, ``|duration``, ``|duration_ms``, ``|when``,
``|ago``, ``|rate:"rows"``, ``|percent`` (``|percent:3`` where the nines matter), ``|counts``
(the counts in a stored message), ``|position`` (a row number: no separator);
``{% time_zone %}`` names the zone once per page (templates/admin/base_site.html does)."""

from __future__ import annotations

from django import template

from sync.console import formats

register = template.Library()

register.filter("num", formats.number)
register.filter("duration", formats.duration)
register.filter("when", formats.when)
register.filter("ago", formats.ago)
register.filter("counts", formats.counts_in_text)
register.filter("position", formats.position)


@register.filter("percent")
def percent(fraction: float | None, decimals: int = 1) -> str:
    return formats.percent(fraction, int(decimals))


@register.filter("duration_ms")
def duration_ms(seconds: float | None) -> str:
    return formats.duration(seconds, milliseconds=True)


@register.filter("rate")
def rate(per_second: float | None, unit: str = "rows") -> str:
    return formats.rate(per_second, unit)


@register.simple_tag
def time_zone() -> str:
    return formats.time_zone_name()
