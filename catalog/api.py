"""The catalog's JSON API (django-ninja): public reads, staff writes, change events.

* Public (anonymous): ``GET /api/parts``, ``GET /api/parts/{id}`` — cache-first, ``ETag`` from
  the row versions, ``304`` on ``If-None-Match``, ``Cache-Control: no-cache`` (clients may keep
  a copy but revalidate each time: a stock change is visible on the next read). ``?fields=``
  trims each part to the keys asked for (``id`` always), with an ETag of its own.
* Staff (session + CSRF): reads for the viewer role, writes for the operator role. Writes need
  the version the caller last saw (``If-Match`` or ``version`` in the body): 428 without one,
  409 with the current version when someone else changed the row first.
* ``GET /api/events``: Server-Sent Events of committed changes (``catalog.streaming``).

OpenAPI at ``/api/openapi.json``, Swagger UI at ``/api/docs``.
"""

from __future__ import annotations

import hashlib
import json

from django.core.serializers.json import DjangoJSONEncoder
from django.http import HttpRequest, HttpResponse
from ninja import Header, NinjaAPI, Path, Query, Router
from ninja.errors import HttpError

from catalog import selectors, services
from catalog.models import CatalogChange, Part, PartContentVersion
from catalog.schemas import (
    MAX_VERSION,
    ChangeOut,
    ConflictOut,
    ContentIn,
    ContentVersionOut,
    ErrorOut,
    PartialPageOut,
    PartialPartOut,
    PartOut,
    PartPageOut,
    StaffPartOut,
    StockIn,
    StockOut,
    ValidationErrorOut,
    VersionIn,
)
from sync.access.api import CATALOG, RoleAuth, install_error_handlers
from sync.access.roles import can_operate, can_view

api = NinjaAPI(
    title="syncops parts catalog",
    version="1.0",
    urls_namespace="catalog-api",
    description="Public, cache-first part reads; staff writes with optimistic locking; "
    "Server-Sent Events of committed changes. See docs/api.md.",
)
public = Router(tags=["public"])


# A refusal before the view (CSRF), a body too big (413), a suspicious one (400) and a bug (a
# JSON 500, logged) in this API's envelope, {"detail": …}.
install_error_handlers(api, CATALOG, name="catalog API")

staff = Router(tags=["staff"])

CACHE_CONTROL = "no-cache"  # keep, but revalidate with the ETag every time
PART_ID = Path(..., ge=1, le=2**62)
IF_NONE_MATCH = Header(
    None,
    alias="If-None-Match",
    description=("An ETag from an earlier answer: 304 without a body while it still matches."),
)
IF_MATCH = Header(
    None,
    alias="If-Match",
    description=(
        'The version you last read, as its ETag ("<version>"); or send "version" in the '
        "body. Without either: 428; someone changed the row since: 409."
    ),
)
_HEADER = {"schema": {"type": "string"}}
_RATE_HEADERS = {
    name: {**_HEADER, "description": text}
    for name, text in (
        ("Retry-After", "Seconds until the window starts again."),
        ("RateLimit-Limit", "Requests allowed per window for your role."),
        ("RateLimit-Remaining", "Requests left in this window."),
        ("RateLimit-Reset", "Seconds until the window starts again."),
        ("RateLimit-Policy", "<limit>;w=<window seconds>"),
    )
}


def _doc(etag: str | None) -> dict:
    """The responses' headers, for the OpenAPI document: ``ETag`` on 200 (and 304), the
    rate-limit headers on 429 (docs/security.md)."""
    # NOTE: int keys, as ninja keys its responses: "429" would be a second, separate entry.
    responses: dict = {429: {"headers": _RATE_HEADERS}}
    if etag:
        tag = {"ETag": {**_HEADER, "description": etag}}
        responses[200] = {"headers": tag}
        responses[304] = {"headers": tag}
    return {"responses": responses}


# Answers any operation may give: a body ninja cannot parse (400), one too big (413, before
# the view), over the role's rate limit (429, docs/security.md).
ANY_ERRORS = {400: ErrorOut, 413: ErrorOut, 429: ErrorOut}


# Session auth with the CSRF check on writes, and the access rule every API asks
# (sync.access.api: active, staff and the role, on every request): 401 anonymous, 403 for an
# account that is not staff or lacks the role.
VIEWER = RoleAuth(can_view, no_role="the Console viewer role is required")
OPERATOR = RoleAuth(can_operate, no_role="the Console operator role is required")


def _json(status: int, body: object, **headers: str) -> HttpResponse:
    response = HttpResponse(
        json.dumps(body, cls=DjangoJSONEncoder), status=status, content_type="application/json"
    )
    for name, value in headers.items():
        response[name.replace("_", "-")] = value
    return response


def _not_modified(request: HttpRequest, tag: str) -> bool:
    given = request.headers.get("If-None-Match", "")
    return given.strip() == "*" or tag in [t.strip().removeprefix("W/") for t in given.split(",")]


# --------------------------------------------------------------------------- ?fields=

# A part's keys in the schema's order, and its stock's as dotted paths ("stock.quantity").
PART_FIELDS = tuple(PartOut.model_fields)
STOCK_FIELDS = tuple(StockOut.model_fields)
FIELD_NAMES = (*PART_FIELDS, *(f"stock.{name}" for name in STOCK_FIELDS))
FIELDS = Query(
    None,
    max_length=500,
    description=(
        "Only these keys of each part, comma-separated (e.g. `id,name,price,stock`): a part's "
        "top-level keys, `stock` whole or single stock keys as `stock.<key>` (e.g. "
        "`stock.available_stock`). `id` is always included. An unknown name is a 422 naming "
        "it. Allowed: " + ", ".join(f"`{name}`" for name in FIELD_NAMES) + "."
    ),
)


def _field_error(message: str) -> HttpResponse:
    """A 422 in the API's validation envelope (as ninja's own), at the fields parameter."""
    return _json(
        422, {"detail": [{"type": "value_error", "loc": ["query", "fields"], "msg": message}]}
    )


def _chosen_fields(given: str | None) -> frozenset[str] | HttpResponse | None:
    """The keys ``?fields=`` asks for (``id`` added, ``stock.*`` folded into a whole
    ``stock``), None without the parameter, or the 422 for a name that is not a field."""
    if given is None:
        return None
    names = [name.strip() for name in given.split(",") if name.strip()]
    allowed = ", ".join(FIELD_NAMES)
    if not names:
        return _field_error(f"name at least one field; allowed: {allowed}")
    unknown = list(dict.fromkeys(name[:50] for name in names if name not in FIELD_NAMES))
    if unknown:
        plural = "s" if len(unknown) > 1 else ""
        return _field_error(f"unknown field{plural} {', '.join(unknown)}; allowed: {allowed}")
    chosen = {*names, "id"}
    if "stock" in chosen:
        chosen = {name for name in chosen if not name.startswith("stock.")}
    return frozenset(chosen)


def _trimmed(part: dict, chosen: frozenset[str] | None) -> dict:
    """``part`` with only the chosen keys, in the schema's order."""
    if chosen is None:
        return part
    body = {name: part[name] for name in PART_FIELDS if name in chosen}
    stock = {name: part["stock"][name] for name in STOCK_FIELDS if f"stock.{name}" in chosen}
    if stock:
        body["stock"] = stock
    return body


def _shaped_tag(tag: str, chosen: frozenset[str] | None) -> str:
    """The ETag of a trimmed answer: the versions' tag plus a digest of the field set, so a
    304 never confirms a copy of another shape (the same set in any order is one shape)."""
    if chosen is None:
        return tag
    digest = hashlib.sha256(",".join(sorted(chosen)).encode()).hexdigest()[:12]
    return f'{tag[:-1]};f={digest}"'


def _conditional(request: HttpRequest, body: dict, tag: str) -> HttpResponse:
    if _not_modified(request, tag):
        response = HttpResponse(status=304)
        response["ETag"], response["Cache-Control"] = tag, CACHE_CONTROL
        return response
    return _json(200, body, ETag=tag, Cache_Control=CACHE_CONTROL)


# --------------------------------------------------------------------------- public


@public.get(
    "/parts",
    response={
        200: PartPageOut | PartialPageOut,
        304: None,
        422: ValidationErrorOut,
        **ANY_ERRORS,
    },
    auth=None,
    summary="List parts (paginated, filter by stock, search name/sku)",
    openapi_extra=_doc("Changes when any listed part or its stock changes."),
)
def list_parts(
    request: HttpRequest,
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=1_000_000),
    in_stock: bool | None = Query(
        None, description="Only parts with available stock (true) or without (false)."
    ),
    q: str | None = Query(
        None,
        max_length=100,
        pattern=r"^[^\x00]*$",
        description="Case-insensitive search in name and sku.",
    ),
    fields: str | None = FIELDS,
    if_none_match: str | None = IF_NONE_MATCH,
):
    chosen = _chosen_fields(fields)
    if isinstance(chosen, HttpResponse):
        return chosen
    count, items = selectors.public_page(
        limit=limit, offset=offset, in_stock=in_stock, q=(q or "").strip() or None
    )
    tag = selectors.etag(
        count,
        limit,
        offset,
        *(v for item in items for v in (item["id"], item["version"], item["stock"]["version"])),
    )
    items = [_trimmed(item, chosen) for item in items]
    return _conditional(
        request,
        {"count": count, "limit": limit, "offset": offset, "items": items},
        _shaped_tag(tag, chosen),
    )


@public.get(
    "/parts/{part_id}",
    response={
        200: PartOut | PartialPartOut,
        304: None,
        404: ErrorOut,
        422: ValidationErrorOut,
        **ANY_ERRORS,
    },
    auth=None,
    summary="One part with its stock (cache-first; ETag / If-None-Match)",
    openapi_extra=_doc("The part's and its stock's versions."),
)
def get_part(
    request: HttpRequest,
    part_id: int = PART_ID,
    fields: str | None = FIELDS,
    if_none_match: str | None = IF_NONE_MATCH,
):
    chosen = _chosen_fields(fields)
    if isinstance(chosen, HttpResponse):
        return chosen
    body = selectors.public_part(part_id)
    if body is None:
        return _json(404, {"detail": "no such part"})
    tag = selectors.etag(body["version"], body["stock"]["version"])
    return _conditional(request, _trimmed(body, chosen), _shaped_tag(tag, chosen))


# --------------------------------------------------------------------------- staff


def _expected_version(request: HttpRequest, body_version: int | None) -> int:
    given = request.headers.get("If-Match", "").split(",")[0].strip()
    given = given.removeprefix("W/").strip('"')
    if given.isascii() and given.isdigit():  # "²" is a digit to isdigit(), not to int()
        if len(given) > 19 or int(given) > MAX_VERSION:
            raise HttpError(400, "If-Match: not a version this API issued")
        return int(given)
    if body_version is not None:
        return body_version
    raise HttpError(428, 'send the version you last read: If-Match or "version" in the body')


def _staff_part(part_id: int) -> Part:
    part = Part.objects.select_related("stock_level").filter(pk=part_id).first()
    if part is None:
        raise HttpError(404, "no such part")
    return part


def _staff_body(part: Part) -> dict:
    body = selectors.part_dict(part, getattr(part, "stock_level", None))
    number = (
        PartContentVersion.objects.filter(part=part)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )
    body.update(
        deleted_at=part.deleted_at.isoformat() if part.deleted_at else None,
        content_version=number or 0,
    )
    return body


def _written(part_id: int, tag_of: str = "part") -> HttpResponse:
    part = _staff_part(part_id)
    body = _staff_body(part)
    version = body["stock"]["version"] if tag_of == "stock" else body["version"]
    return _json(200, body, ETag=selectors.etag(version))


def _run(write, part_id: int, tag_of: str = "part") -> HttpResponse:
    try:
        write()
    except services.PartNotFoundError:
        return _json(404, {"detail": "no such part"})
    except services.ContentVersionNotFoundError:
        return _json(404, {"detail": "no such content version"})
    except services.VersionConflictError as e:
        return _json(409, {"detail": str(e), "current_version": e.current_version})
    return _written(part_id, tag_of)


READ_ERRORS = {401: ErrorOut, 403: ErrorOut, 404: ErrorOut, 422: ValidationErrorOut, **ANY_ERRORS}
WRITE_RESPONSES = {200: StaffPartOut, **READ_ERRORS, 409: ConflictOut, 428: ErrorOut}
WRITE_DOC = _doc("The new version (the stock's for a stock write): send it as If-Match next.")


@staff.get(
    "/parts/{part_id}",
    response={200: StaffPartOut, **READ_ERRORS},
    auth=VIEWER,
    summary="A part as staff see it (soft-deleted too), with both versions",
    openapi_extra=_doc("The part's version: If-Match for a content write."),
)
def staff_get_part(request: HttpRequest, part_id: int = PART_ID):
    part = _staff_part(part_id)
    return _json(200, _staff_body(part), ETag=selectors.etag(part.version))


@staff.put(
    "/parts/{part_id}/stock",
    response=WRITE_RESPONSES,
    auth=OPERATOR,
    summary="Set stock (quantity, reserved) if the stock version still matches",
    openapi_extra=WRITE_DOC,
)
def staff_put_stock(
    request: HttpRequest, payload: StockIn, part_id: int = PART_ID, if_match: str | None = IF_MATCH
):
    expected = _expected_version(request, payload.version)
    actor = services.Actor.from_request(request)
    return _run(
        lambda: services.stock_update(
            part_id=part_id,
            expected_version=expected,
            quantity=payload.quantity,
            reserved=payload.reserved,
            actor=actor,
        ),
        part_id,
        tag_of="stock",
    )


@staff.patch(
    "/parts/{part_id}/content",
    response=WRITE_RESPONSES,
    auth=OPERATOR,
    summary="Change content fields; creates a content version",
    openapi_extra=WRITE_DOC,
)
def staff_patch_content(
    request: HttpRequest,
    payload: ContentIn,
    part_id: int = PART_ID,
    if_match: str | None = IF_MATCH,
):
    expected = _expected_version(request, payload.version)
    actor = services.Actor.from_request(request)
    return _run(
        lambda: services.part_update_content(
            part_id=part_id, expected_version=expected, content=payload.content(), actor=actor
        ),
        part_id,
    )


@staff.post(
    "/parts/{part_id}/rollback/{number}",
    response=WRITE_RESPONSES,
    auth=OPERATOR,
    summary="Make content version <number> current again (as a new version)",
    openapi_extra=WRITE_DOC,
)
def staff_rollback(
    request: HttpRequest,
    number: int = Path(..., ge=1, le=2**31),
    part_id: int = PART_ID,
    payload: VersionIn | None = None,
    if_match: str | None = IF_MATCH,
):
    expected = _expected_version(request, payload.version if payload else None)
    actor = services.Actor.from_request(request)
    return _run(
        lambda: services.part_rollback(
            part_id=part_id, number=number, expected_version=expected, actor=actor
        ),
        part_id,
    )


@staff.delete(
    "/parts/{part_id}",
    response=WRITE_RESPONSES,
    auth=OPERATOR,
    summary="Soft-delete a part (gone publicly and from Redis; kept for staff)",
    openapi_extra=WRITE_DOC,
)
def staff_delete(
    request: HttpRequest,
    part_id: int = PART_ID,
    payload: VersionIn | None = None,
    if_match: str | None = IF_MATCH,
):
    expected = _expected_version(request, payload.version if payload else None)
    actor = services.Actor.from_request(request)
    return _run(
        lambda: services.part_soft_delete(part_id=part_id, expected_version=expected, actor=actor),
        part_id,
    )


@staff.post(
    "/parts/{part_id}/restore",
    response=WRITE_RESPONSES,
    auth=OPERATOR,
    summary="Undo a soft delete",
    openapi_extra=WRITE_DOC,
)
def staff_restore(
    request: HttpRequest,
    part_id: int = PART_ID,
    payload: VersionIn | None = None,
    if_match: str | None = IF_MATCH,
):
    expected = _expected_version(request, payload.version if payload else None)
    actor = services.Actor.from_request(request)
    return _run(
        lambda: services.part_restore(part_id=part_id, expected_version=expected, actor=actor),
        part_id,
    )


@staff.get(
    "/parts/{part_id}/versions",
    response={200: list[ContentVersionOut], **READ_ERRORS},
    auth=VIEWER,
    summary="Content versions of a part (rollback targets), newest first",
    openapi_extra=_doc(None),
)
def staff_versions(request: HttpRequest, part_id: int = PART_ID):
    part = _staff_part(part_id)
    rows = (
        PartContentVersion.objects.filter(part=part)
        .select_related("created_by")
        .order_by("-number")[:200]
    )
    return _json(
        200,
        [
            {
                "number": v.number,
                "part_version": v.part_version,
                "rolled_back_from": v.rolled_back_from,
                "created_by": v.created_by.get_username() if v.created_by else None,
                "created_at": v.created_at.isoformat(),
                "snapshot": v.snapshot,
            }
            for v in rows
        ],
    )


@staff.get(
    "/parts/{part_id}/changes",
    response={200: list[ChangeOut], **READ_ERRORS},
    auth=VIEWER,
    summary="The change log of a part (old/new values, who, IP, request id)",
    openapi_extra=_doc(None),
)
def staff_changes(request: HttpRequest, part_id: int = PART_ID):
    part = _staff_part(part_id)
    rows = CatalogChange.objects.filter(part=part).order_by("-id")[:200]
    return _json(
        200,
        [
            {
                "id": c.id,
                "action": c.action,
                "changes": c.changes,
                "version": c.version,
                "username": c.username,
                "ip": c.ip,
                "request_id": c.request_id,
                "created_at": c.created_at.isoformat(),
            }
            for c in rows
        ],
    )


api.add_router("/", public)
api.add_router("/staff", staff)

from catalog import streaming  # noqa: E402 - registers /events on the public router's API

api.add_router("/", streaming.router)
