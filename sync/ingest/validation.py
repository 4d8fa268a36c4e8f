"""Row validation: sheet cells -> typed values, or issues with a category (DESIGN I8).

Text is kept exactly as the sheet holds it (never trimmed, never cut); a value that does not
fit its real column (length, digits, decimal places) is a ``schema`` issue with the value's
length and the limit; a missing required value, a natural key that breaks the source's
pattern, or a cell that is not a number/date is a ``validation`` issue. Validation never
raises on any input: whatever the cell holds, the row is either valid or reported.
"""

from __future__ import annotations

import datetime
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, NamedTuple, cast

from django.db import models

from sync.ingest.exceptions import SourceConfigError
from sync.ingest.schema import Column
from sync.ingest.source_definitions import SourceConfig
from sync.ingest.sources import FormulaRow, RaggedRow
from sync.models import ErrorLog

Category = ErrorLog.Category

# SQL types of the arrays a batch is sent in: never a length-limited type, whose cast
# would cut a value silently instead of failing.
ARRAY_TYPES = {
    "TextField": "text",
    "CharField": "text",
    "EmailField": "text",
    "SlugField": "text",
    "URLField": "text",
    "DecimalField": "numeric",
    "DateField": "date",
}
DATE_FORMATS = ("%Y-%m-%d", "%Y/%m/%d", "%Y-%m-%d %H:%M:%S", "%Y/%m/%d %H:%M:%S", "%d.%m.%Y")


@dataclass(frozen=True)
class Issue:
    category: str
    code: str
    header: str
    reason: str
    value_length: int | None = None
    limit: int | None = None


class _Invalid(Exception):  # noqa: N818 - internal signal, never leaves this module
    def __init__(self, issue: Issue) -> None:
        self.issue = issue


class ValidRow(NamedTuple):
    """A row that passed validation (a named tuple: made by the hundred thousand)."""

    row_number: int
    key: str
    values: tuple[Any, ...]  # parent fields, in FieldPlan.parent order
    child: tuple[Any, ...] | None  # child fields, in FieldPlan.child order


@dataclass(frozen=True)
class FieldSpec:
    header: str
    field: models.Field
    column: Column
    array_type: str
    required: bool


def _text(spec: FieldSpec, value: str) -> str:
    if "\x00" in value:
        raise _Invalid(
            Issue(
                Category.VALIDATION,
                "nul",
                spec.header,
                "contains a NUL character, which PostgreSQL text cannot hold",
                len(value),
            )
        )
    limit = spec.column.max_length
    if limit is not None and len(value) > limit:
        raise _Invalid(
            Issue(
                Category.SCHEMA,
                "too_long",
                spec.header,
                f"{len(value)} characters do not fit {spec.column.type_sql}",
                len(value),
                limit,
            )
        )
    return value


# NOTE: a comma is read only as a thousands separator in its places ("1,234,567.5"): dropped
# anywhere, a decimal comma ("6001,50", as LibreOffice and European Excel write) was stored
# as 600150.
_GROUPED = re.compile(r"[+-]?\d{1,3}(,\d{3})+(\.\d*)?")


def _decimal(spec: FieldSpec, value: str) -> Decimal | None:
    if value.isdigit() and value.isascii():
        # NOTE: the common cell, plain digits (nothing to strip or clean): no decimal
        # places, and as many digits before the point as it has without its leading zeros.
        precision, scale = spec.column.precision, spec.column.scale or 0
        if precision is not None and len(value.lstrip("0")) > precision - scale:
            raise _Invalid(_out_of_range(spec, value, len(value.lstrip("0"))))
        return Decimal(value)
    cleaned = value.strip().replace("_", "")
    if not cleaned:
        return None
    if "," in cleaned:
        if not _GROUPED.fullmatch(cleaned):
            raise _Invalid(
                Issue(
                    Category.VALIDATION,
                    "not_a_number",
                    spec.header,
                    "is not a number: a comma is read only between groups of "
                    "three digits (1,234.50); a decimal comma (1234,50) is not "
                    "read",
                    len(value),
                )
            )
        cleaned = cleaned.replace(",", "")
    try:
        number = Decimal(cleaned)
    except (InvalidOperation, ValueError):
        number = None
    if number is None or not number.is_finite():
        raise _Invalid(
            Issue(Category.VALIDATION, "not_a_number", spec.header, "is not a number", len(value))
        )
    precision, scale = spec.column.precision, spec.column.scale or 0
    _sign, digits, exponent = number.as_tuple()
    places = max(-int(exponent), 0)
    if precision is not None:
        whole = len(digits) + int(exponent) if number else 0
        if whole > precision - scale:
            raise _Invalid(_out_of_range(spec, value, whole))
        # NOTE: after the range check, so rounding stays within the decimal context.
        if places > scale and number != round(number, scale):
            raise _Invalid(
                Issue(
                    Category.SCHEMA,
                    "precision",
                    spec.header,
                    f"{places} decimal places; {spec.column.type_sql} keeps "
                    f"{scale} (it would be rounded)",
                    len(value),
                    scale,
                )
            )
    return number


def _out_of_range(spec: FieldSpec, value: str, whole: int) -> Issue:
    precision, scale = spec.column.precision or 0, spec.column.scale or 0
    return Issue(
        Category.SCHEMA,
        "out_of_range",
        spec.header,
        f"{whole} digits before the point do not fit {spec.column.type_sql}",
        len(value),
        precision - scale,
    )


def _date(spec: FieldSpec, value: str) -> datetime.date | None:
    cleaned = value.strip()
    if not cleaned:
        return None
    if len(cleaned) == 10 and cleaned[4] == "-" and cleaned[7] == "-" and cleaned.isascii():
        # NOTE: the common YYYY-MM-DD without strptime; the same dates "%Y-%m-%d" reads.
        try:
            return datetime.date.fromisoformat(cleaned)
        except ValueError:
            pass
    for fmt in DATE_FORMATS:
        try:
            return datetime.datetime.strptime(cleaned, fmt).date()  # noqa: DTZ007 - a date
        except ValueError:
            continue
    raise _Invalid(
        Issue(
            Category.VALIDATION, "not_a_date", spec.header, "is not a date (YYYY-MM-DD)", len(value)
        )
    )


CONVERTERS: dict[str, Callable[[FieldSpec, str], Any]] = {
    "text": _text,
    "numeric": _decimal,
    "date": _date,
}


def field_specs(
    model: type[models.Model],
    mapping: dict[str, str],
    columns: dict[str, Column],
    required: set[str],
    prefix: str = "",
) -> list[FieldSpec]:
    specs = []
    for header, name in mapping.items():
        field = model._meta.get_field(name)
        array_type = ARRAY_TYPES.get(field.get_internal_type())
        # A reverse relation's internal type is its foreign key's, never one of these.
        if array_type not in CONVERTERS or not isinstance(field, models.Field):
            msg = (
                f"{model._meta.label_lower}.{name}: a {field.get_internal_type()} cannot be "
                "fed from a sheet (text, decimal and date fields can)"
            )
            raise SourceConfigError(msg)
        specs.append(
            FieldSpec(header, field, columns[header], array_type, prefix + name in required)
        )
    return specs


class RowValidator:
    """Validates rows of one sheet (its header row fixes where each column is)."""

    def __init__(
        self, config: SourceConfig, columns: dict[str, Column], headers: list[str]
    ) -> None:
        required = set(config.required) | {config.natural_key}
        self.parent = field_specs(config.model, config.parent_columns(), columns, required)
        self.child = (
            field_specs(
                config.child.model,
                config.child_columns(),
                columns,
                required,
                config.child.prefix + ".",
            )
            if config.child
            else []
        )
        positions = {h: i for i, h in enumerate(headers)}
        self._positions = [positions.get(s.header) for s in self.parent + self.child]
        self.key_index = next(
            i for i, s in enumerate(self.parent) if s.field.name == config.natural_key
        )
        self.key_header = self.parent[self.key_index].header
        self.key_position = self._positions[self.key_index]  # None: the sheet lacks it
        self._key_pattern = re.compile(config.key_pattern) if config.key_pattern else None
        key_spec = self.parent[self.key_index]
        # Per column: where, how, and whether it is plain text (no limit: only NUL can fail).
        self._plan = [
            (
                position,
                spec,
                CONVERTERS[spec.array_type],
                spec.required,
                spec is key_spec,
                spec.array_type == "text" and spec.column.max_length is None,
            )
            for spec, position in zip(self.parent + self.child, self._positions, strict=True)
        ]
        # The common row (a plain list with every mapped column, none holding a NUL): its
        # cells are taken in one C call; only the columns that need more than the cell as
        # it is (the key, required, numbers, dates, limited text) are looked at one by one.
        self._width = 0
        self._cells_of: Callable[[list[str]], tuple[str, ...]] | None = None
        self._checked = [
            (index, position, spec, convert, required, is_key, plain)
            for index, (position, spec, convert, required, is_key, plain) in enumerate(self._plan)
            if is_key or required or not plain
        ]
        if self._positions and all(p is not None for p in self._positions):
            at = cast("list[int]", self._positions)
            self._width = max(at) + 1
            getter = operator.itemgetter(*at)
            self._cells_of = getter if len(at) > 1 else lambda cells: (getter(cells),)

    def key_of(self, cells: list[str]) -> str:
        position = self.key_position
        raw = cells[position] if position is not None and position < len(cells) else ""
        # NOTE: a key with a NUL fails validation; shown so, it can still be logged.
        return raw.strip().replace("\x00", "\ufffd")

    def validate(self, row_number: int, cells: list[str]) -> tuple[ValidRow | None, list[Issue]]:
        if type(cells) is list and self._cells_of is not None and len(cells) >= self._width:
            mapped = self._cells_of(cells)
            if "\x00" not in "".join(mapped):
                return self._validate_common(row_number, list(mapped))
        if type(cells) is RaggedRow:
            return None, [self._ragged(cells)]
        issues: list[Issue] = [] if type(cells) is not FormulaRow else self._formulas(cells)
        values: list[Any] = []
        append = values.append
        have = len(cells)
        for position, spec, convert, required, is_key, plain in self._plan:
            raw = cells[position] if position is not None and position < have else ""
            if is_key:
                raw = raw.strip()  # NOTE: the one normalisation: a key is matched, not shown
            if required and not raw.strip():
                if not issues_for(issues, spec.header):  # a formula's cell is not empty
                    issues.append(
                        Issue(
                            Category.VALIDATION, "required", spec.header, "is required but empty", 0
                        )
                    )
                append(None)
                continue
            if plain and "\x00" not in raw:
                append(raw)
                continue
            try:
                append(convert(spec, raw))
            except _Invalid as e:
                issues.append(e.issue)
                append(None)
        return self._row(row_number, values, issues)

    def _validate_common(
        self, row_number: int, values: list[Any]
    ) -> tuple[ValidRow | None, list[Issue]]:
        """``validate`` of a plain row that holds every mapped column, none with a NUL
        (``values``: those cells, in the columns' order): the same values and issues in the
        same order (tests/ingest/test_properties.py compares them), with the plain text
        cells kept as they are at once (only a NUL could fail them)."""
        issues: list[Issue] = []
        for index, _position, spec, convert, required, is_key, plain in self._checked:
            raw = values[index]
            if is_key:
                raw = values[index] = raw.strip()
            if required and not raw.strip():
                issues.append(
                    Issue(Category.VALIDATION, "required", spec.header, "is required but empty", 0)
                )
                values[index] = None
            elif not plain:
                try:
                    values[index] = convert(spec, raw)
                except _Invalid as e:
                    issues.append(e.issue)
                    values[index] = None
        return self._row(row_number, values, issues)

    def _row(
        self, row_number: int, values: list[Any], issues: list[Issue]
    ) -> tuple[ValidRow | None, list[Issue]]:
        """The checked row: valid, or its issues (and the key's pattern, if it breaks it and
        has no issue of its own)."""
        key = values[self.key_index] or ""
        if (
            self._key_pattern
            and key
            and (not issues or not issues_for(issues, self.key_header))
            and not self._key_pattern.fullmatch(key)
        ):
            issues.append(
                Issue(
                    Category.VALIDATION,
                    "pattern",
                    self.key_header,
                    f"does not match the pattern {self._key_pattern.pattern}",
                    len(key),
                )
            )
        if issues:
            return None, issues
        split = len(self.parent)
        return ValidRow(
            row_number, key, tuple(values[:split]), tuple(values[split:]) if self.child else None
        ), []

    def _ragged(self, cells: RaggedRow) -> Issue:
        """A CSV line with fewer cells than the header, or cells past its last column: its
        cells do not line up with the columns, so none of them is stored (DESIGN I10)."""
        have = len(cells)
        missing = [
            spec.header
            for spec, position in zip(self.parent + self.child, self._positions, strict=True)
            if position is not None and position >= have
        ]
        if have < cells.width:
            return Issue(
                Category.VALIDATION,
                "ragged_row",
                (missing or [self.key_header])[0],
                f"is missing: the line ends after {have} of the header's "
                f"{cells.width} cells"
                f"{' (no ' + ', '.join(missing) + ')' if missing else ''}: cut "
                "short, or a line break outside quotes? Nothing of the row is stored",
            )
        return Issue(
            Category.VALIDATION,
            "ragged_row",
            self.key_header,
            f"is not read: the line has {have} cells, past the header's "
            f"{cells.width} columns "
            "(a delimiter inside an unquoted value?): its cells do not line up with "
            "the columns. Nothing of the row is stored",
        )

    def _formulas(self, cells: FormulaRow) -> list[Issue]:
        """A mapped cell holding a formula whose value the workbook did not save: reported,
        never stored as the empty cell it reads as (DESIGN I10)."""
        at = set(cells.formulas)
        return [
            Issue(
                Category.VALIDATION,
                "formula",
                spec.header,
                "is a formula without a saved value (the file was written by a program "
                "that does not calculate formulas): open and save it in Excel or "
                "LibreOffice, or type the value",
            )
            for spec, position in zip(self.parent + self.child, self._positions, strict=True)
            if position in at
        ]


def issues_for(issues: list[Issue], header: str) -> bool:
    return any(issue.header == header for issue in issues)
