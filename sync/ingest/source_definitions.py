"""Source configuration: the TOML file named by ``SYNC_INGEST_SOURCES_FILE``.

Re-read at the start of every run (an edit needs no restart). A source names its target
model, its natural key and the column mapping (sheet header -> field; ``property.<field>``
feeds the child model). What a source leaves out comes from the ``SYNC_INGEST_*`` settings.
"""

from __future__ import annotations

import codecs
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import models

from sync.cache.declaration import concrete_field
from sync.ingest.exceptions import SourceConfigError

KINDS = ("csv", "xlsx", "sheets")


@dataclass(frozen=True)
class ChildConfig:
    model: type[models.Model]
    parent_field: str  # the FK to the parent model, unique per parent (the upsert target)
    prefix: str  # mapping prefix, e.g. "property"


@dataclass(frozen=True)
class SourceConfig:
    name: str
    model: type[models.Model]
    natural_key: str
    columns: dict[str, str]  # header -> "field" or "<prefix>.field"
    kind: str = "csv"
    location: str = ""
    worksheet: str = ""
    key_pattern: str = ""
    required: tuple[str, ...] = ()
    batch_size: int = 1000
    auto_recovery: bool = True
    child: ChildConfig | None = None
    # Mapped headers the sheet may lack: their fields are then left as they are on existing
    # rows and take the database default on new ones (docs/ingestion.md, missing columns).
    optional_columns: tuple[str, ...] = ()
    encoding: str = ""  # "": the reader's default (sync/ingest/sources.py)
    delimiter: str = ""  # "": the reader's default
    options: dict = field(default_factory=dict)  # the reader's settings (encoding, delimiter)
    # What a whole-sheet run does with the database rows its sheet no longer has: "flag"
    # (keep and report them) or "soft_delete" (sync/ingest/left_sheet.py).
    left_sheet: str = "flag"

    @property
    def label(self) -> str:
        return self.model._meta.label_lower

    @property
    def key_column(self) -> str:
        """The sheet header that feeds the natural key."""
        return next(h for h, f in self.columns.items() if f == self.natural_key)

    def parent_columns(self) -> dict[str, str]:
        return {h: f for h, f in self.columns.items() if "." not in f}

    def child_columns(self) -> dict[str, str]:
        if self.child is None:
            return {}
        prefix = self.child.prefix + "."
        return {h: f.removeprefix(prefix) for h, f in self.columns.items() if f.startswith(prefix)}

    def resolve_location(self, file: str | None = None) -> tuple[str, str]:
        """(kind, location) for a run: ``file`` overrides the configured one (and its kind,
        by extension)."""
        if not file:
            return self.kind, _absolute(self.location) if self.kind != "sheets" else (self.location)
        suffix = Path(file).suffix.lower().lstrip(".")
        kind = {"csv": "csv", "txt": "csv", "xlsx": "xlsx", "xlsm": "xlsx"}.get(suffix)
        if kind is None:
            msg = f"cannot tell the format of {file!r}: use a .csv or .xlsx file"
            raise SourceConfigError(msg)
        return kind, _absolute(file)


def _absolute(path: str) -> str:
    """A relative path starts at the project root (``settings.BASE_DIR``)."""
    return str(path if Path(path).is_absolute() else Path(settings.BASE_DIR) / path)


def _model(label: str, where: str) -> type[models.Model]:
    try:
        return apps.get_model(label)
    except (LookupError, ValueError) as e:
        msg = f"{where}: unknown target model {label!r}"
        raise SourceConfigError(msg) from e


def _check_fields(model: type[models.Model], names: list[str], where: str) -> None:
    known = {f.name for f in model._meta.concrete_fields}
    unknown = sorted(set(names) - known)
    if unknown:
        msg = f"{where}: {model._meta.label_lower} has no field {', '.join(unknown)}"
        raise SourceConfigError(msg)


# Every key a source may have, and what its value must be (anything else is an error: a key
# that parses and does nothing is a silent change waiting to happen, I10).
KEYS = {
    "target": "a model label such as 'buyers.buyer'",
    "natural_key": "a field name",
    "columns": "a table of sheet header = field",
    "child": "a table with target, parent_field and prefix",
    "kind": f"one of {', '.join(KINDS)}",
    "location": "a path or a spreadsheet id",
    "worksheet": "a worksheet name",
    "key_pattern": "a regular expression",
    "required": "a list of field names",
    "optional_columns": "a list of sheet headers of columns",
    "batch_size": "a whole number of at least 1",
    "auto_recovery": "true or false",
    "encoding": "a Python codec name such as 'utf-8' or 'cp1252'",
    "delimiter": "one character",
    "left_sheet": '"flag" (keep and report the rows the sheet no longer has) or "soft_delete"',
}
CHILD_KEYS = ("target", "parent_field", "prefix")


def _bad(where: str, key: str, value: object) -> SourceConfigError:
    shown = repr(value)
    shown = shown if len(shown) <= 60 else shown[:57] + "..."
    return SourceConfigError(f"{where}: {key} = {shown} is not valid: {key} must be {KEYS[key]}")


def _string(raw: dict, key: str, where: str, default: str = "") -> str:
    value = raw.get(key, default)
    if not isinstance(value, str):
        raise _bad(where, key, value)
    return value


def _strings(raw: dict, key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _bad(where, key, value)
    return tuple(value)


def _check_keys(raw: dict, where: str) -> None:
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        msg = (
            f"{where}: unknown key {', '.join(repr(k) for k in unknown)} (known: "
            f"{', '.join(KEYS)}); a key that is not read would change nothing silently"
        )
        raise SourceConfigError(msg)
    for required in ("target", "natural_key", "columns"):
        if required not in raw:
            msg = f"{where}: missing {required!r}"
            raise SourceConfigError(msg)
    columns = raw["columns"]
    if (
        not isinstance(columns, dict)
        or not columns
        or not all(isinstance(f, str) for f in columns.values())
    ):
        raise _bad(where, "columns", columns)
    child = raw.get("child", {})
    if (
        not isinstance(child, dict)
        or set(child) - set(CHILD_KEYS)
        or not all(isinstance(v, str) for v in child.values())
    ):
        raise _bad(where, "child", child)


def _child(raw: dict, where: str) -> ChildConfig | None:
    if "child" not in raw:
        return None
    child_model = _model(raw["child"].get("target", ""), where)
    parent_field = raw["child"].get("parent_field", "")
    prefix = raw["child"].get("prefix", child_model._meta.model_name)
    _check_fields(child_model, [parent_field], where)
    return ChildConfig(child_model, parent_field, prefix)


def _check_optional(config: SourceConfig, where: str) -> None:
    """Optional columns: mapped, not the key, not a required field, and with a database
    default (a new row is created without them)."""
    unmapped = [h for h in config.optional_columns if h not in config.columns]
    if unmapped:
        msg = (
            f"{where}: optional_columns names {', '.join(map(repr, unmapped))}, which "
            "is not a header of columns"
        )
        raise SourceConfigError(msg)
    for header in config.optional_columns:
        name = config.columns[header]
        if name == config.natural_key or name in config.required:
            msg = (
                f"{where}: optional_columns: {header!r} feeds {name}, which is the "
                "natural key or required; it cannot be optional"
            )
            raise SourceConfigError(msg)
        model = config.model if "." not in name or config.child is None else config.child.model
        field = concrete_field(model, name.rpartition(".")[2])
        if not field.null and field.db_default is models.NOT_PROVIDED:
            msg = (
                f"{where}: optional_columns: {header!r} feeds {name}, which is NOT NULL "
                "without a database default (db_default): a new row could not be created "
                "without the column"
            )
            raise SourceConfigError(msg)
    if (
        config.child is not None
        and config.child_columns()
        and all(h in config.optional_columns for h in config.child_columns())
    ):
        msg = (
            f"{where}: optional_columns: at least one {config.child.prefix} column must "
            "not be optional"
        )
        raise SourceConfigError(msg)


def _parse(name: str, raw: dict) -> SourceConfig:
    where = f"source {name!r} ({settings.SYNC_INGEST_SOURCES_FILE})"
    if not isinstance(raw, dict):
        msg = f"{where}: must be a table ([sources.{name}])"
        raise SourceConfigError(msg)
    _check_keys(raw, where)
    model = _model(_string(raw, "target", where), where)
    columns = {str(h): f for h, f in raw["columns"].items()}
    child = _child(raw, where)
    _check_fields(model, [f for f in columns.values() if "." not in f], where)
    if child is not None:
        prefix = child.prefix + "."
        _check_fields(
            child.model,
            [f.removeprefix(prefix) for f in columns.values() if f.startswith(prefix)],
            where,
        )
    stray = sorted(
        f
        for f in columns.values()
        if "." in f and (child is None or not f.startswith(child.prefix + "."))
    )
    if stray:
        msg = f"{where}: columns map to {', '.join(stray)} but no such child is configured"
        raise SourceConfigError(msg)
    natural_key = _string(raw, "natural_key", where)
    if natural_key not in columns.values():
        msg = f"{where}: no column feeds the natural key {natural_key!r}"
        raise SourceConfigError(msg)
    kind = raw.get("kind", "csv")
    if kind not in KINDS:
        msg = f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}"
        raise SourceConfigError(msg)
    pattern = _string(raw, "key_pattern", where)
    try:
        re.compile(pattern)
    except re.error as e:
        msg = f"{where}: key_pattern is not a regular expression: {e}"
        raise SourceConfigError(msg) from e
    batch_size = raw.get("batch_size", settings.SYNC_INGEST_BATCH_SIZE)
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        msg = f"{where}: batch_size must be at least 1, not {batch_size!r}"
        raise SourceConfigError(msg)
    auto_recovery = raw.get("auto_recovery", settings.SYNC_INGEST_AUTO_RECOVERY)
    if not isinstance(auto_recovery, bool):
        raise _bad(where, "auto_recovery", auto_recovery)
    required = _strings(raw, "required", where)
    unfed = [r for r in required if r not in columns.values()]
    if unfed:
        msg = (
            f"{where}: required names {', '.join(unfed)}, which no column feeds "
            "(name the field, e.g. 'name' or 'property.property_type')"
        )
        raise SourceConfigError(msg)
    encoding = _string(raw, "encoding", where)
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise _bad(where, "encoding", encoding) from None
    delimiter = _string(raw, "delimiter", where)
    if "delimiter" in raw and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise _bad(where, "delimiter", delimiter)
    config = SourceConfig(
        name=name,
        model=model,
        natural_key=natural_key,
        columns=columns,
        kind=kind,
        location=_string(raw, "location", where),
        worksheet=_string(raw, "worksheet", where),
        key_pattern=pattern,
        required=required,
        batch_size=batch_size,
        auto_recovery=auto_recovery,
        child=child,
        optional_columns=_strings(raw, "optional_columns", where),
        encoding=encoding,
        delimiter=delimiter,
        options={k: raw[k] for k in ("encoding", "delimiter") if k in raw},
        left_sheet=_left_sheet(raw, model, where),
    )
    _check_optional(config, where)
    return config


def _left_sheet(raw: dict, model: type[models.Model], where: str) -> str:
    """``left_sheet``: soft_delete only for a target the engine can soft-delete."""
    from sync.ingest.left_sheet import OPTIONS, SOFT_DELETE, soft_delete_field

    value = raw.get("left_sheet", OPTIONS[0])
    if value not in OPTIONS:
        raise _bad(where, "left_sheet", value)
    if value == SOFT_DELETE and soft_delete_field(model) is None:
        msg = (
            f'{where}: left_sheet = "soft_delete" is not valid: '
            f"{model._meta.label_lower} has no soft delete (its @synced declaration names "
            'no soft_delete field); use "flag" to keep and report the rows the sheet no '
            "longer has"
        )
        raise SourceConfigError(msg)
    return value


def _check_shared(path: Path, sources: dict[str, SourceConfig]) -> None:
    """soft_delete on a target other sources feed too would delete their rows: refused."""
    from sync.ingest.left_sheet import SOFT_DELETE

    for name, config in sources.items():
        others = sorted(n for n, o in sources.items() if o.label == config.label and n != name)
        if config.left_sheet == SOFT_DELETE and others:
            msg = (
                f'source {name!r} ({path}): left_sheet = "soft_delete" is not valid: '
                f"{config.label} is fed by {', '.join(map(repr, others))} too, and a row "
                'cannot be told to be this source\'s; use "flag"'
            )
            raise SourceConfigError(msg)


def load_sources() -> dict[str, SourceConfig]:
    path = Path(settings.SYNC_INGEST_SOURCES_FILE)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError as e:
        msg = f"no source configuration at {path} (SYNC_INGEST_SOURCES_FILE)"
        raise SourceConfigError(msg) from e
    except tomllib.TOMLDecodeError as e:
        msg = f"{path} is not valid TOML: {e}"
        raise SourceConfigError(msg) from e
    unknown = sorted(set(data) - {"sources"})
    if unknown:
        msg = f"{path}: unknown top-level key {', '.join(map(repr, unknown))} (only [sources.*])"
        raise SourceConfigError(msg)
    sources = data.get("sources", {})
    if not isinstance(sources, dict):
        msg = f"{path}: sources must be tables ([sources.<name>])"
        raise SourceConfigError(msg)
    parsed = {name: _parse(name, raw) for name, raw in sources.items()}
    _check_shared(path, parsed)
    return parsed


def get_source(name: str) -> SourceConfig:
    sources = load_sources()
    try:
        return sources[name]
    except KeyError:
        known = ", ".join(sorted(sources)) or "none"
        msg = f"unknown source {name!r} (configured: {known}; see SYNC_INGEST_SOURCES_FILE)"
        raise SourceConfigError(msg) from None
