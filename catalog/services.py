"""Catalog writes: optimistic locking, content snapshots, rollback, soft delete, change log.

Every write is ``atomic(durable=True)``: it locks the row *only if it still has the version
the caller last saw* (``SELECT … FOR UPDATE`` with ``version = expected``: under READ
COMMITTED a concurrent committed change makes the row drop out of the WHERE, so the loser gets
``VersionConflict`` with the current version instead of overwriting). The save goes through the
sync engine (new version by trigger, outbox intent, write-through and change event on commit),
and a ``CatalogChange`` row records old and new values with the actor, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from catalog.models import CONTENT_FIELDS, CatalogChange, Part, PartContentVersion, StockLevel


class CatalogError(Exception):
    """Base of the catalog's errors."""


class PartNotFoundError(CatalogError):
    pass


class ContentVersionNotFoundError(CatalogError):
    pass


class VersionConflictError(CatalogError):
    def __init__(self, current_version: int) -> None:
        super().__init__(f"the row changed meanwhile; its current version is {current_version}")
        self.current_version = current_version


@dataclass(frozen=True)
class Actor:
    """Who is writing, from where, in which request (for the change log)."""

    user: Any = None
    ip: str | None = None
    request_id: str = ""

    @classmethod
    def from_request(cls, request) -> Actor:
        from sync.access.client_ip import client_ip  # the project's one rule (TRUSTED_PROXY_COUNT)

        user = request.user if request.user.is_authenticated else None
        return cls(user=user, ip=client_ip(request), request_id=getattr(request, "request_id", ""))


def _json(value: Any) -> Any:
    return (
        str(value)
        if not isinstance(value, str | int | float | bool | dict | list | None)
        else value
    )


def _log(
    part_id: int, action: str, changes: dict[str, tuple[Any, Any]], version: int, actor: Actor
) -> CatalogChange:
    return CatalogChange.objects.create(
        part_id=part_id,
        action=action,
        version=version,
        changes={name: [_json(old), _json(new)] for name, (old, new) in changes.items()},
        user=actor.user,
        username=actor.user.get_username() if actor.user else "",
        ip=actor.ip,
        request_id=actor.request_id[:64],
    )


def _locked(model, pk: int, expected_version: int, **live):
    """The row, locked, if it still has ``expected_version``; else why not (404 or 409)."""
    row = model.objects.select_for_update().filter(pk=pk, version=expected_version, **live).first()
    if row is not None:
        return row
    current = model.objects.filter(pk=pk, **live).values_list("version", flat=True).first()
    if current is None:
        raise PartNotFoundError(pk)
    raise VersionConflictError(current)


def _new_version(obj) -> int:
    obj.refresh_from_db(fields=["version"])
    return obj.version


# --------------------------------------------------------------------------- create


def part_create(
    *,
    sku: str,
    name: str,
    price,
    description: str = "",
    specifications: dict | None = None,
    images: list | None = None,
    quantity: int = 0,
    reserved: int = 0,
    actor: Actor = Actor(),
) -> Part:
    with transaction.atomic(durable=True):
        part = Part.objects.create(
            sku=sku,
            name=name,
            price=price,
            description=description,
            specifications=specifications or {},
            images=images or [],
        )
        stock = StockLevel.objects.create(
            part=part, quantity=quantity, reserved=reserved, last_updated_by=actor.user
        )
        version = _new_version(part)
        _snapshot(part, number=1, version=version, actor=actor)
        _log(
            part.pk,
            CatalogChange.Action.CREATE,
            {
                "sku": (None, sku),
                **{n: (None, getattr(part, n)) for n in CONTENT_FIELDS},
                "quantity": (None, quantity),
                "reserved": (None, reserved),
            },
            version,
            actor,
        )
        stock.refresh_from_db(fields=["version"])
    return part


# --------------------------------------------------------------------------- stock


def stock_update(
    *, part_id: int, expected_version: int, quantity: int, reserved: int, actor: Actor = Actor()
) -> StockLevel:
    """Set a part's stock if its stock version is still ``expected_version``."""
    with transaction.atomic(durable=True):
        if not Part.objects.filter(pk=part_id, deleted_at__isnull=True).exists():
            raise PartNotFoundError(part_id)
        stock = _locked(StockLevel, part_id, expected_version)
        changes = {
            name: (getattr(stock, name), new)
            for name, new in (("quantity", quantity), ("reserved", reserved))
            if getattr(stock, name) != new
        }
        stock.quantity, stock.reserved, stock.last_updated_by = quantity, reserved, actor.user
        stock.save(update_fields=["quantity", "reserved", "last_updated_by", "updated_at"])
        version = _new_version(stock)
        _log(part_id, CatalogChange.Action.STOCK, changes, version, actor)
    return stock


# --------------------------------------------------------------------------- content


def _next_number(part: Part) -> int:
    return (part.content_versions.aggregate(n=Max("number"))["n"] or 0) + 1


def _snapshot(
    part: Part, *, number: int, version: int, actor: Actor, rolled_back_from: int | None = None
) -> PartContentVersion:
    return PartContentVersion.objects.create(
        part=part,
        number=number,
        snapshot=part.content(),
        part_version=version,
        rolled_back_from=rolled_back_from,
        created_by=actor.user,
    )


def _apply_content(
    part: Part,
    content: dict[str, Any],
    *,
    actor: Actor,
    action: str,
    rolled_back_from: int | None = None,
) -> Part:
    number = _next_number(part)
    if number == 1:
        # A part from before content versions (or a bulk load): its current content is v1.
        _snapshot(part, number=1, version=part.version, actor=Actor())
        number = 2
    changes = {
        name: (getattr(part, name), content[name])
        for name in CONTENT_FIELDS
        if name in content and getattr(part, name) != content[name]
    }
    for name, (_old, new) in changes.items():
        setattr(part, name, new)
    part.save(update_fields=[*CONTENT_FIELDS])
    version = _new_version(part)
    _snapshot(part, number=number, version=version, actor=actor, rolled_back_from=rolled_back_from)
    _log(part.pk, action, changes, version, actor)
    return part


def part_update_content(
    *, part_id: int, expected_version: int, content: dict[str, Any], actor: Actor = Actor()
) -> Part:
    """Change some of a part's content fields (already validated and sanitised): a new row
    version, a new content version with the full snapshot, a change-log row."""
    unknown = set(content) - set(CONTENT_FIELDS)
    if unknown:
        msg = f"not content fields: {', '.join(sorted(unknown))}"
        raise ValueError(msg)
    with transaction.atomic(durable=True):
        part = _locked(Part, part_id, expected_version, deleted_at__isnull=True)
        return _apply_content(part, content, actor=actor, action=CatalogChange.Action.CONTENT)


def part_rollback(
    *, part_id: int, number: int, expected_version: int, actor: Actor = Actor()
) -> Part:
    """Make content version ``number`` current again, as a new content version."""
    with transaction.atomic(durable=True):
        part = _locked(Part, part_id, expected_version, deleted_at__isnull=True)
        target = part.content_versions.filter(number=number).first()
        if target is None:
            raise ContentVersionNotFoundError(number)
        return _apply_content(
            part,
            target.snapshot,
            actor=actor,
            action=CatalogChange.Action.ROLLBACK,
            rolled_back_from=number,
        )


# --------------------------------------------------------------------------- soft delete


def part_soft_delete(*, part_id: int, expected_version: int, actor: Actor = Actor()) -> Part:
    with transaction.atomic(durable=True):
        part = _locked(Part, part_id, expected_version, deleted_at__isnull=True)
        part.deleted_at = timezone.now()
        part.save(update_fields=["deleted_at"])
        version = _new_version(part)
        _log(
            part.pk,
            CatalogChange.Action.DELETE,
            {"deleted_at": (None, part.deleted_at)},
            version,
            actor,
        )
    return part


def part_restore(*, part_id: int, expected_version: int, actor: Actor = Actor()) -> Part:
    with transaction.atomic(durable=True):
        part = _locked(Part, part_id, expected_version, deleted_at__isnull=False)
        old, part.deleted_at = part.deleted_at, None
        part.save(update_fields=["deleted_at"])
        version = _new_version(part)
        _log(part.pk, CatalogChange.Action.RESTORE, {"deleted_at": (old, None)}, version, actor)
    return part
