"""The console API's bodies and answers as pydantic models (django-ninja validates the bodies
and documents both in the OpenAPI document).

Bodies are bounded: a source name is 1 to 100 characters (``sync_config.source``), a setting's
value a boolean, a finite number or a text of at most ``MAX_TEXT`` characters. Answers keep
exactly the keys the code builds (``extra="forbid"``): a key added to a run or a
configuration without its schema fails the tests instead of leaving the document behind.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from django.db import models
from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, create_model
from pydantic_core import PydanticCustomError

from sync.access import roles
from sync.models import SyncConfig

MAX_SOURCE = 100
MAX_TEXT = 10_000
SOURCE_REQUIRED = "a source name is required, e.g. buyers"


REFUSALS = {
    "source_required": SOURCE_REQUIRED,
    "source_too_long": f"a source name has at most {MAX_SOURCE} characters",
    "text_too_long": f"a text setting has at most {MAX_TEXT} characters",
    "setting_value": "a setting is a boolean, a finite number or a text (or null)",
}


def _refusal(kind: str) -> PydanticCustomError:
    return PydanticCustomError(kind, REFUSALS[kind])


def _source(value: object) -> str:
    if not isinstance(value, str) or not value:
        kind = "source_required"
        raise _refusal(kind)
    if len(value) > MAX_SOURCE:
        kind = "source_too_long"
        raise _refusal(kind)
    return value


def _setting(value: object) -> object:
    """A setting's value as sent (the service validates it): a boolean, an integer, a
    finite number, a bounded text or null."""
    if isinstance(value, str) and len(value) > MAX_TEXT:
        kind = "text_too_long"
        raise _refusal(kind)
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    kind = "setting_value"
    raise _refusal(kind)


SourceName = Annotated[
    str,
    PlainValidator(_source),
    WithJsonSchema(
        {"type": "string", "minLength": 1, "maxLength": MAX_SOURCE, "examples": ["buyers"]}
    ),
]
SettingValue = Annotated[
    Any,
    PlainValidator(_setting),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "boolean"},
                {"type": "number"},
                {"type": "string", "maxLength": MAX_TEXT},
                {"type": "null"},
            ]
        }
    ),
]


# --------------------------------------------------------------------------- bodies


class ManualIn(Schema):
    # NOTE: a default that is validated: a missing source is refused with the same message
    # as a wrong one (the schema still lists it as required).
    model_config = ConfigDict(json_schema_extra={"required": ["source"]})

    source: SourceName = Field(None, validate_default=True, description="A configured source.")


class _ConfigChange(BaseModel):
    """``source`` and the settings to change; any other key is refused by the service
    (``not a setting of sync_config``), so it is accepted here and passed on. (A pydantic
    model, not a ninja ``Schema``: that one validates from attributes and drops such keys.)"""

    model_config = ConfigDict(extra="allow", json_schema_extra={"required": ["source"]})
    __pydantic_extra__: dict[str, SettingValue] = Field(init=False)

    source: SourceName = Field(
        None, validate_default=True, description='A configured source, or "engine".'
    )


def _help(name: str) -> str:
    return str(getattr(SyncConfig._meta.get_field(name), "help_text", "") or "")


ConfigIn = create_model(  # type: ignore[call-overload]
    "ConfigIn",
    __base__=_ConfigChange,
    **{name: (SettingValue, Field(None, description=_help(name))) for name in roles.CONFIG_FIELDS},
)


def changes_of(payload: _ConfigChange) -> dict[str, Any]:
    """The settings a config body names (with the values sent, ``null`` too), unknown keys
    included."""
    named = {
        name: getattr(payload, name)
        for name in payload.model_fields_set
        if name != "source" and name in type(payload).model_fields
    }
    return {**named, **(payload.model_extra or {})}


# --------------------------------------------------------------------------- answers


class _Out(Schema):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    error: str
    fields: dict[str, list[str]] | None = Field(
        None, description="Per field, what is wrong with it (bad input, a refused setting)."
    )


class RunOut(_Out):
    id: int
    source: str
    target: str
    trigger: str
    trigger_label: str
    status: str
    phase: str
    finished: bool
    dry_run: bool
    cancel_requested: bool
    rows_done: int
    rows_total: int | None
    percent: int
    created: int
    updated: int
    unchanged: int
    failed: int
    gaps: int | None
    batch_size: int
    duration_seconds: float | None
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    message: str
    errors_by_category: dict[str, Any]


class RunErrorOut(ErrorOut):
    run: RunOut = Field(description="The run that is active (409) or could not be queued (503).")


class StartedOut(_Out):
    run: RunOut
    progress_url: str


class RunAnswerOut(_Out):
    run: RunOut


class TrendBucketOut(_Out):
    runs: int
    seconds: float | None
    rows: int
    errors: int
    failed_runs: int


class SourceStatusOut(_Out):
    source: str
    active_run: RunOut | None
    last_run: RunOut | None
    success_rate_24h: float | None
    success_rate_7d: float | None
    runs_7d: int
    gaps: int | None


class SourceOut(SourceStatusOut):
    trend: list[TrendBucketOut]


class QueueOut(_Out):
    pending: int
    dead: int
    oldest_seconds: float


class StatusOut(_Out):
    sources: list[SourceStatusOut]
    sources_error: str
    queue: QueueOut


class AlertOut(_Out):
    id: int
    type: str
    type_label: str
    severity: str
    source: str
    message: str
    count: int
    first_seen_at: str | None
    last_seen_at: str | None
    acknowledged_at: str | None
    acknowledged_by: str | None


class AlertAnswerOut(_Out):
    alert: AlertOut


class HealthCheckOut(_Out):
    name: str
    ok: bool
    error: str
    ms: float


class TrendShapeOut(_Out):
    days: int
    bucket_hours: int
    buckets: int


class DashboardOut(_Out):
    generated_at: str
    health: list[HealthCheckOut] | None = Field(description="null with ?health=0.")
    queue: QueueOut
    consistency: dict[str, Any] | None = Field(description="The last full verification.")
    live_consistency: dict[str, Any] = Field(description="The sampler's windows and bars.")
    processes: list[dict[str, Any]] = Field(description="Workers and beat by heartbeat.")
    sources: list[SourceOut]
    sources_error: str
    alerts: list[AlertOut]
    open_alerts: int
    trend: TrendShapeOut


_TYPES: dict[type[models.Field], type] = {
    models.BooleanField: bool,
    models.PositiveIntegerField: int,
    models.FloatField: float,
    models.CharField: str,
    models.TextField: str,
}

ConfigOut = create_model(  # type: ignore[call-overload]
    "ConfigOut",
    __base__=_Out,
    **{
        f.name: (_TYPES[type(f)], Field(description=str(f.help_text or "")))
        for f in SyncConfig._meta.concrete_fields
        if f.name not in ("id", "updated_at")
    },
    updated_at=(str, ...),
)


class ConfigAnswerOut(_Out):
    config: ConfigOut  # type: ignore[valid-type]


class ConfigListOut(_Out):
    configs: list[ConfigOut]  # type: ignore[valid-type]
