"""Source configuration: the TOML file named by ``SYNC_INGEST_SOURCES_FILE``.

Re-read at the start of every run (an edit needs no restart). A source names its target
model, its natural key and the column mapping (sheet header -> field; ``property.<field>``
feeds the child model). What a source leaves out comes from the ``SYNC_INGEST_*`` settings.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import models

from config.env import ROOT
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
    batch_size: int = 100
    auto_recovery: bool = True
    child: ChildConfig | None = None
    options: dict = field(default_factory=dict)

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
        return {h: f.removeprefix(prefix) for h, f in self.columns.items()
                if f.startswith(prefix)}

    def resolve_location(self, file: str | None = None) -> tuple[str, str]:
        """(kind, location) for a run: ``file`` overrides the configured one (and its kind,
        by extension)."""
        if not file:
            return self.kind, _absolute(self.location) if self.kind != "sheets" else (
                self.location)
        suffix = Path(file).suffix.lower().lstrip(".")
        kind = {"csv": "csv", "txt": "csv", "xlsx": "xlsx", "xlsm": "xlsx"}.get(suffix)
        if kind is None:
            msg = f"cannot tell the format of {file!r}: use a .csv or .xlsx file"
            raise SourceConfigError(msg)
        return kind, _absolute(file)


def _absolute(path: str) -> str:
    return str(path if Path(path).is_absolute() else ROOT / path)


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


def _parse(name: str, raw: dict) -> SourceConfig:
    where = f"source {name!r} ({settings.SYNC_INGEST_SOURCES_FILE})"
    for required in ("target", "natural_key", "columns"):
        if required not in raw:
            msg = f"{where}: missing {required!r}"
            raise SourceConfigError(msg)
    model = _model(raw["target"], where)
    columns = {str(h): str(f) for h, f in raw["columns"].items()}
    child = None
    if "child" in raw:
        child_model = _model(raw["child"].get("target", ""), where)
        parent_field = raw["child"].get("parent_field", "")
        prefix = raw["child"].get("prefix", child_model._meta.model_name)
        _check_fields(child_model, [parent_field], where)
        child = ChildConfig(child_model, parent_field, prefix)
    _check_fields(model, [f for f in columns.values() if "." not in f], where)
    if child is not None:
        prefix = child.prefix + "."
        _check_fields(child.model, [f.removeprefix(prefix) for f in columns.values()
                                    if f.startswith(prefix)], where)
    stray = sorted(f for f in columns.values()
                   if "." in f and (child is None or not f.startswith(child.prefix + ".")))
    if stray:
        msg = f"{where}: columns map to {', '.join(stray)} but no such child is configured"
        raise SourceConfigError(msg)
    if raw["natural_key"] not in columns.values():
        msg = f"{where}: no column feeds the natural key {raw['natural_key']!r}"
        raise SourceConfigError(msg)
    kind = raw.get("kind", "csv")
    if kind not in KINDS:
        msg = f"{where}: kind must be one of {', '.join(KINDS)}, not {kind!r}"
        raise SourceConfigError(msg)
    pattern = raw.get("key_pattern", "")
    try:
        re.compile(pattern)
    except re.error as e:
        msg = f"{where}: key_pattern is not a regular expression: {e}"
        raise SourceConfigError(msg) from e
    batch_size = int(raw.get("batch_size", settings.SYNC_INGEST_BATCH_SIZE))
    if batch_size < 1:
        msg = f"{where}: batch_size must be at least 1"
        raise SourceConfigError(msg)
    known = {"target", "natural_key", "columns", "child", "kind", "location", "worksheet",
             "key_pattern", "required", "batch_size", "auto_recovery"}
    return SourceConfig(
        name=name, model=model, natural_key=raw["natural_key"], columns=columns, kind=kind,
        location=str(raw.get("location", "")), worksheet=str(raw.get("worksheet", "")),
        key_pattern=pattern, required=tuple(raw.get("required", ())), batch_size=batch_size,
        auto_recovery=bool(raw.get("auto_recovery", settings.SYNC_INGEST_AUTO_RECOVERY)),
        child=child, options={k: v for k, v in raw.items() if k not in known},
    )


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
    return {name: _parse(name, raw) for name, raw in data.get("sources", {}).items()}


def get_source(name: str) -> SourceConfig:
    sources = load_sources()
    try:
        return sources[name]
    except KeyError:
        known = ", ".join(sorted(sources)) or "none"
        msg = f"unknown source {name!r} (configured: {known}; see SYNC_INGEST_SOURCES_FILE)"
        raise SourceConfigError(msg) from None
