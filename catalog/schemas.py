"""The catalog API's request and response bodies (pydantic, via django-ninja).

Input is validated and sanitised here, before any service sees it: names and specification
texts may hold no HTML at all (422), descriptions keep only a few formatting tags without
attributes (nh3), images must be http(s) URLs. Nothing the public API serves is raw HTML.
"""

from __future__ import annotations

from decimal import Decimal
from urllib.parse import urlsplit

import nh3
from ninja import Schema
from pydantic import Field, ValidationInfo, field_validator

DESCRIPTION_TAGS = {"p", "br", "ul", "ol", "li", "strong", "em", "b", "i", "code"}
SpecValue = str | int | float | bool


def _no_html(value: str) -> str:
    if nh3.is_html(value) or "<" in value or ">" in value:
        msg = "HTML is not allowed here"
        raise ValueError(msg)
    return value


class ErrorOut(Schema):
    detail: str


class FieldErrorOut(Schema):
    type: str
    loc: list[str | int] = Field(description="Where: e.g. [\"body\", \"payload\", \"reserved\"].")
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
    quantity: int = Field(ge=0, le=1_000_000_000)
    reserved: int = Field(0, ge=0, le=1_000_000_000)
    version: int | None = Field(None, description="Expected stock version, if no If-Match.")

    @field_validator("reserved")
    @classmethod
    def _within_quantity(cls, reserved: int, info: ValidationInfo) -> int:
        quantity = info.data.get("quantity")
        if quantity is not None and reserved > quantity:
            msg = "reserved may not exceed quantity"
            raise ValueError(msg)
        return reserved


class ContentIn(Schema):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    specifications: dict[str, SpecValue] | None = Field(None, max_length=100)
    images: list[str] | None = Field(None, max_length=20)
    version: int | None = Field(None, description="Expected part version, if no If-Match.")

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
            if (parts.scheme not in {"http", "https"} or not parts.netloc or len(url) > 2000
                    or any(c.isspace() or c in "<>\"'" for c in url)):
                msg = f"not an http(s) image URL: {url[:100]!r}"
                raise ValueError(msg)
        return value

    def content(self) -> dict:
        return self.model_dump(exclude={"version"}, exclude_none=True)


def _blank() -> str:
    msg = "may not be blank"
    raise ValueError(msg)


class VersionIn(Schema):
    version: int | None = Field(None, description="Expected part version, if no If-Match.")
