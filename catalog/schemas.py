"""The catalog API's request and response bodies (pydantic, via django-ninja).

Input is validated and sanitised here, before any service sees it: names and specification
texts may hold no HTML at all (422), descriptions keep only a few formatting tags without
attributes (nh3), images must be http(s) URLs or paths on this site. Nothing the public API
serves is raw HTML.

Strict (DESIGN I8, I10): numbers must be JSON integers (``true`` is not 1, ``"5"`` is not 5),
text may hold no NUL character and no unpaired surrogate (PostgreSQL stores neither: they
were 500s), unknown fields are a 422 naming them, and a body that changes nothing is a 422 too
(it would have created an empty content version).
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Required
from urllib.parse import urlsplit

import nh3
from ninja import Schema
from pydantic import (
    ConfigDict,
    Field,
    FiniteFloat,
    ValidationInfo,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

DESCRIPTION_TAGS = {"p", "br", "ul", "ol", "li", "strong", "em", "b", "i", "code"}
# FiniteFloat: JSON bodies may carry NaN and Infinity (Python reads them), jsonb stores neither.
SpecValue = str | int | FiniteFloat | bool


UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_VERSION = 2**62  # versions come from a bigint sequence; more is no version we issued


def text_storable(text: str) -> bool:
    """Whether PostgreSQL can store ``text``: no NUL, no unpaired surrogate (JSON's
    ``"\\ud800"`` decodes to one)."""
    return UNSTORABLE.search(text) is None


def _storable(value: object) -> object:
    """Every string in ``value`` (nested lists and dicts, keys too) is storable text."""
    items = (
        value.items()
        if isinstance(value, dict)
        else (enumerate(value) if isinstance(value, list) else None)
    )
    if items is not None:
        for key, item in items:
            _storable(key)
            _storable(item)
    elif isinstance(value, str) and not text_storable(value):
        msg = "text may not contain NUL characters or unpaired surrogates"
        raise ValueError(msg)
    return value


def _version_field(description: str) -> Any:
    return Field(None, ge=0, le=MAX_VERSION, strict=True, description=description)


def _no_html(value: str) -> str:
    if nh3.is_html(value) or "<" in value or ">" in value:
        msg = "HTML is not allowed here"
        raise ValueError(msg)
    return value


class ErrorOut(Schema):
    detail: str


class FieldErrorOut(Schema):
    type: str
    loc: list[str | int] = Field(description='Where: e.g. ["body", "payload", "reserved"].')
    msg: str


class ValidationErrorOut(Schema):
    detail: list[FieldErrorOut]


class ConflictOut(Schema):
    detail: str
    current_version: int


class StockOut(Schema):
    quantity: int
    reserved: int
    available_stock: int
    is_in_stock: bool
    version: int


class PartOut(Schema):
    id: int
    sku: str
    name: str
    price: Decimal
    description: str
    specifications: dict[str, SpecValue]
    images: list[str]
    is_active: bool
    version: int = Field(description="The part's content version (row version).")
    stock: StockOut


class PartPageOut(Schema):
    count: int
    limit: int
    offset: int
    items: list[PartOut]


# ``?fields=`` answers (catalog/api.py): a part with only the keys asked for, ``id`` always.
# NOTE: TypedDicts (typing_extensions': pydantic needs them on Python 3.11): keys that may be
# missing, without claiming they could be null.
class PartialStockOut(TypedDict, total=False):
    quantity: int
    reserved: int
    available_stock: int
    is_in_stock: bool
    version: int


class PartialPartOut(TypedDict, total=False):
    id: Required[int]
    sku: str
    name: str
    price: Decimal
    description: str
    specifications: dict[str, SpecValue]
    images: list[str]
    is_active: bool
    version: int
    stock: PartialStockOut


class PartialPageOut(Schema):
    count: int
    limit: int
    offset: int
    items: list[PartialPartOut]


class StaffPartOut(PartOut):
    deleted_at: str | None
    content_version: int = Field(description="Number of the current content version.")


class ContentVersionOut(Schema):
    number: int
    part_version: int
    rolled_back_from: int | None
    created_by: str | None
    created_at: str
    snapshot: dict


class ChangeOut(Schema):
    id: int
    action: str
    changes: dict
    version: int
    username: str
    ip: str | None
    request_id: str
    created_at: str


class StockIn(Schema):
    model_config = ConfigDict(extra="forbid")

    quantity: int = Field(ge=0, le=1_000_000_000, strict=True)
    reserved: int = Field(0, ge=0, le=1_000_000_000, strict=True)
    version: int | None = _version_field("Expected stock version, if no If-Match.")

    @field_validator("reserved")
    @classmethod
    def _within_quantity(cls, reserved: int, info: ValidationInfo) -> int:
        quantity = info.data.get("quantity")
        if quantity is not None and reserved > quantity:
            msg = "reserved may not exceed quantity"
            raise ValueError(msg)
        return reserved


class ContentIn(Schema):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    specifications: dict[str, SpecValue] | None = Field(None, max_length=100)
    images: list[str] | None = Field(None, max_length=20)
    version: int | None = _version_field("Expected part version, if no If-Match.")

    @field_validator("name", "description", "specifications", "images", mode="before")
    @classmethod
    def _storable_text(cls, value: object) -> object:
        return _storable(value)

    @model_validator(mode="after")
    def _changes_something(self) -> ContentIn:
        if not self.content():
            msg = (
                "nothing to change: send at least one of name, description, specifications, images"
            )
            raise ValueError(msg)
        return self

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _no_html(value.strip()) or _blank()

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        return None if value is None else nh3.clean(value, tags=DESCRIPTION_TAGS, attributes={})

    @field_validator("specifications")
    @classmethod
    def _specifications(cls, value: dict | None) -> dict | None:
        if value is None:
            return None
        for key, item in value.items():
            if not key.strip() or len(key) > 100:
                msg = "specification names are 1 to 100 characters"
                raise ValueError(msg)
            _no_html(key)
            if isinstance(item, str):
                if len(item) > 500:
                    msg = f"{key}: at most 500 characters"
                    raise ValueError(msg)
                _no_html(item)
        return value

    @field_validator("images")
    @classmethod
    def _images(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        for url in value:
            parts = urlsplit(url)
            remote = parts.scheme in {"http", "https"} and bool(parts.netloc)
            # A path on this site (/static/…): the only kind the storefront's CSP shows as an
            # image; "//host/x" (another host) and backslashes are not paths here.
            local = url.startswith("/") and not url.startswith("//") and "\\" not in url
            if (
                not (remote or local)
                or len(url) > 2000
                or any(c.isspace() or c in "<>\"'" for c in url)
            ):
                msg = f"not an http(s) image URL or a path on this site: {url[:100]!r}"
                raise ValueError(msg)
        return value

    def content(self) -> dict:
        return self.model_dump(exclude={"version"}, exclude_none=True)


def _blank() -> str:
    msg = "may not be blank"
    raise ValueError(msg)


class VersionIn(Schema):
    model_config = ConfigDict(extra="forbid")

    version: int | None = _version_field("Expected part version, if no If-Match.")
