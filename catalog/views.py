"""The storefront: the public parts listing (``/parts/``) and a part's page (``/parts/<id>/``).

Server-rendered HTML that works without JavaScript (a GET form for search and the in-stock
filter, links for pagination); ``static/catalog/storefront.js`` then keeps what the page shows
up to date from ``GET /api/events`` (docs/storefront.md). Reads go through the API's own
cache-first selectors (``catalog.selectors``), so a page and ``/api/parts`` never disagree.

Each page carries the change stream's newest id *read before the parts*: the script resumes
the stream from there, so a change committed between this render and the script's subscribe
is replayed to it, never lost (and one already rendered is ignored by its version).
"""

from __future__ import annotations

import logging
import math
from typing import Any
from urllib.parse import urlencode, urlsplit

import nh3
import redis
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_safe

from catalog import selectors
from catalog.events import STREAM
from catalog.schemas import DESCRIPTION_TAGS
from sync.cache import connection
from sync.cache.events import stream_key
from sync.cache.exceptions import CacheUnavailableError

logger = logging.getLogger(__name__)

PAGE_SIZE = 24
MAX_QUERY = 100  # the API's limit for ``q``
MAX_PAGE_DIGITS = 9  # more is beyond any catalog's last page: the last page
MAX_PART_ID = 2**62  # the API's bound on a part id
IN_STOCK_VALUES = {"1": True, "true": True, "on": True, "0": False, "false": False}


class BadParameterError(ValueError):
    """A query parameter the storefront cannot use; the message says which and why."""


def stream_position() -> str | None:
    """The newest id of the change stream (``XREVRANGE … COUNT 1``): ``"0-0"`` when it is
    empty, None when the cache Redis cannot say (the script then re-reads the parts it shows
    when it connects)."""
    try:
        newest = connection.run(lambda c: c.xrevrange(stream_key(STREAM), count=1))
    except (CacheUnavailableError, redis.exceptions.RedisError) as e:
        logger.warning("storefront: change stream position unavailable (%s)", e)
        return None
    if not newest:
        return "0-0"
    entry_id = newest[0][0]
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


def is_local_image(url: str) -> bool:
    """An image this site serves itself (a path such as ``/static/…``): the only kind the
    Content-Security-Policy (``img-src 'self' data:``) lets a page show. Any other URL is
    shown as a link instead of a broken image."""
    if not isinstance(url, str) or not url.startswith("/") or url.startswith("//"):
        return False
    parts = urlsplit(url)
    return not parts.scheme and not parts.netloc and "\\" not in url


def spec_text(value: object) -> str:
    """A specification value as the page shows it (the script formats events the same way)."""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _view_part(part: dict) -> dict[str, Any]:
    """A selector's part dict plus what the templates show: the description re-sanitised
    (rows written around the API, by the admin or a sheet, get the same tag whitelist),
    the specifications as rows, the images split into local ones and links."""
    images = [url for url in part["images"] or [] if isinstance(url, str)]
    specs = part["specifications"] if isinstance(part["specifications"], dict) else {}
    return {
        **part,
        # nh3 leaves only the whitelisted tags, without attributes: safe to render as HTML.
        "description_html": mark_safe(  # noqa: S308
            nh3.clean(part["description"] or "", tags=DESCRIPTION_TAGS, attributes={})
        ),
        # Sorted by name: jsonb keeps its own key order; the script sorts events' rows alike.
        "spec_rows": [(name, spec_text(value)) for name, value in sorted(specs.items())],
        "local_images": [url for url in images if is_local_image(url)],
        "external_images": [
            (url, urlsplit(url).netloc or url) for url in images if not is_local_image(url)
        ],
    }


def _parse_query(request: HttpRequest) -> tuple[str, bool | None, int]:
    q = request.GET.get("q", "")
    if len(q) > MAX_QUERY:
        msg = f"The search may be at most {MAX_QUERY} characters long."
        raise BadParameterError(msg)
    if "\x00" in q:
        msg = "The search may not contain a NUL character."
        raise BadParameterError(msg)
    raw_stock = request.GET.get("in_stock", "").strip().lower()
    if raw_stock and raw_stock not in IN_STOCK_VALUES:
        msg = "The in-stock filter is either on (1) or off (0)."
        raise BadParameterError(msg)
    in_stock = IN_STOCK_VALUES.get(raw_stock) if raw_stock else None
    raw_page = request.GET.get("page", "1").strip() or "1"
    if not (raw_page.isascii() and raw_page.isdigit()) or int(raw_page[: MAX_PAGE_DIGITS + 1]) < 1:
        msg = "The page number must be a whole number of 1 or more."
        raise BadParameterError(msg)
    page = 10**MAX_PAGE_DIGITS if len(raw_page) > MAX_PAGE_DIGITS else int(raw_page)
    return q.strip(), in_stock, page


def _bad_request(request: HttpRequest, message: str) -> HttpResponse:
    return render(request, "catalog/bad_request.html", {"message": message}, status=400)


def _page_links(page: int, pages: int) -> list[int | None]:
    """Page numbers around the current one, the first and the last; None is a gap."""
    wanted = {1, pages, *range(page - 2, page + 3)}
    shown = sorted(n for n in wanted if 1 <= n <= pages)
    links: list[int | None] = []
    for n in shown:
        if links and n - (links[-1] or 0) > 1:
            links.append(None)
        links.append(n)
    return links


@require_safe
def part_list(request: HttpRequest) -> HttpResponse:
    try:
        q, in_stock, page = _parse_query(request)
    except BadParameterError as e:
        return _bad_request(request, str(e))
    position = stream_position()  # before the parts: see the module's docstring
    count, items = selectors.public_page(
        limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, in_stock=in_stock, q=q or None
    )
    pages = max(1, math.ceil(count / PAGE_SIZE))
    if page > pages:  # past the end (a stale link, a hand-made URL): the last page
        page = pages
        count, items = selectors.public_page(
            limit=PAGE_SIZE, offset=(page - 1) * PAGE_SIZE, in_stock=in_stock, q=q or None
        )
        pages = max(1, math.ceil(count / PAGE_SIZE))

    def link(number: int) -> str:
        params: dict[str, str | int] = {}
        if q:
            params["q"] = q
        if in_stock is not None:
            params["in_stock"] = "1" if in_stock else "0"
        if number > 1:
            params["page"] = number
        return "?" + urlencode(params) if params else "?"

    context = {
        "parts": [_view_part(p) for p in items],
        "count": count,
        "q": q,
        "in_stock": in_stock,
        "page": page,
        "pages": pages,
        "first_shown": (page - 1) * PAGE_SIZE + 1 if items else 0,
        "last_shown": (page - 1) * PAGE_SIZE + len(items),
        "page_links": [(n, link(n) if n else None) for n in _page_links(page, pages)],
        "previous_link": link(page - 1) if page > 1 else None,
        "next_link": link(page + 1) if page < pages else None,
        "stream_position": position,
        "currency": settings.CATALOG_CURRENCY_SYMBOL,
    }
    return render(request, "catalog/part_list.html", context)


@require_safe
def part_detail(request: HttpRequest, part_id: str) -> HttpResponse:
    if not (part_id.isascii() and part_id.isdigit()) or not 1 <= int(part_id) <= MAX_PART_ID:
        return not_found(request)
    position = stream_position()  # before the part: see the module's docstring
    part = selectors.public_part(int(part_id))
    if part is None:  # missing or soft-deleted
        return not_found(request)
    context = {
        "part": _view_part(part),
        "stream_position": position,
        "currency": settings.CATALOG_CURRENCY_SYMBOL,
    }
    return render(request, "catalog/part_detail.html", context)


def not_found(request: HttpRequest) -> HttpResponse:
    """The storefront's own 404 page (also under DEBUG, where Django's would be a debug page)."""
    return render(request, "catalog/not_found.html", status=404)
