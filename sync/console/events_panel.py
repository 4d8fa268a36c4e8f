"""The console's "Event system" page: the SSE processes' figures, the change-event streams, the
event system's open alerts, and a replay tool that opens a debugging client in the page.

The figures come from ``sync.ops.event_stats`` (what each SSE process last wrote to Redis,
and the streams as Redis holds them now). The replay tool is a GET form (it changes nothing:
no CSRF token needed): given a stream id X and optional part ids, the page's script
(static/console/events.js) opens an ``EventSource`` on ``/api/events?last_event_id=X&part=…``
and lists the raw frames as they arrive, as text. X is checked first: not a stream id is an
error; older than the oldest entry the stream still holds (or newer than its newest) is said
plainly: the client gets ``event: reset`` and then everything the stream holds.

Viewing needs the viewer role, like every console page.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse

from sync.access import roles
from sync.cache.exceptions import CacheUnavailableError
from sync.models import SyncAlert
from sync.ops import event_stats

EVENT_ALERTS = (SyncAlert.Type.EVENT_LATENCY, SyncAlert.Type.EVENT_LAG)
MAX_PARTS = 50  # part ids one debugging client may filter on
MAX_FRAMES = 200  # frames the page keeps (the oldest go first)


@dataclass
class Replay:
    """The replay form, checked."""

    last_event_id: str = ""
    parts: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    warning: str = ""
    url: str = ""  # what the debugging client opens; empty: no client

    @property
    def parts_text(self) -> str:
        return " ".join(str(part) for part in self.parts)


def _events_url() -> str:
    try:
        return reverse("catalog-api:events")
    except NoReverseMatch:  # pragma: no cover - the catalog API is always mounted
        return "/api/events"


def check_replay(
    raw_id: str, raw_parts: list[str], stream: event_stats.StreamFigures | None
) -> Replay:
    """Check the form: X a stream id, each part a positive integer; say what the client will
    get when X is outside what ``stream`` holds."""
    replay = Replay(last_event_id=raw_id.strip())
    parts = [p.strip() for p in raw_parts if p.strip()]
    if not replay.last_event_id:
        if parts:
            replay.errors.append("Give the stream id to replay after.")
        return replay
    position = event_stats.parse_stream_id(replay.last_event_id)
    if position is None:
        replay.errors.append(
            "The stream id must be <milliseconds>-<sequence>, e.g. 1733560000000-0 "
            "(the id: line of a frame)."
        )
    for part in parts:
        if not part.isdigit() or not 0 < int(part) < 2**63:
            replay.errors.append(f"Part id {part[:40]!r} is not a positive whole number.")
        else:
            replay.parts.append(int(part))
    if len(replay.parts) > MAX_PARTS:
        replay.errors.append(f"At most {MAX_PARTS} part ids.")
    if replay.errors or position is None:
        return replay
    if stream is not None:
        oldest = event_stats.parse_stream_id(stream.oldest_id or "")
        newest = event_stats.parse_stream_id(stream.newest_id or "")
        if oldest is None or newest is None:
            replay.warning = (
                "The stream is empty: the client will get event: reset, then live events."
            )
        elif position < oldest:
            replay.warning = (
                f"{replay.last_event_id} is older than the oldest replayable entry "
                f"({stream.oldest_id}): the stream no longer holds what followed it. The client "
                "will get event: reset first, then everything the stream still holds."
            )
        elif position > newest:
            replay.warning = (
                f"{replay.last_event_id} is newer than the newest entry ({stream.newest_id}): "
                "the client will get event: reset first, then everything the stream holds."
            )
    query = [("last_event_id", replay.last_event_id), *(("part", p) for p in replay.parts)]
    replay.url = f"{_events_url()}?{urlencode(query)}"
    return replay


def _row(figures: event_stats.ProcessFigures) -> dict:
    """A process's figures as the template shows them (latencies in seconds)."""
    return {
        **asdict(figures),
        "p50": None if figures.p50_ms is None else figures.p50_ms / 1000,
        "p99": None if figures.p99_ms is None else figures.p99_ms / 1000,
        "reported": datetime.fromtimestamp(figures.updated_at, tz=UTC),
    }


def events_page(request: HttpRequest) -> HttpResponse:
    """The event system: processes, totals, streams, open alerts, and the replay tool."""
    if not roles.can_view(request.user):
        raise PermissionDenied
    error = ""
    processes: list[event_stats.ProcessFigures] = []
    streams: list[event_stats.StreamFigures] = []
    try:
        processes = event_stats.read_processes()
        streams = event_stats.read_streams()
    except CacheUnavailableError as e:
        error = f"The cache Redis cannot be read ({e}): no figures."
    p99s = [p.p99_ms for p in processes if p.p99_ms is not None]
    totals = {
        "processes": len(processes),
        "clients": sum(p.clients for p in processes),
        "rate": sum(p.rate for p in processes),
        "delivered": sum(p.delivered for p in processes),
        "worst_p99": max(p99s) / 1000 if p99s else None,
    }
    # The form's "parts" field (spaces or commas), or repeated part= as /api/events takes.
    parts = request.GET.get("parts", "")[:1000].replace(",", " ").split()
    parts += request.GET.getlist("part")
    replay = check_replay(
        request.GET.get("last_event_id", "")[:100],
        parts[: MAX_PARTS + 1],
        # NOTE: /api/events serves the one stream there is (catalog's).
        streams[0] if streams else None,
    )
    context = {
        **admin.site.each_context(request),
        "title": "Event system",
        "error": error,
        "processes": [_row(p) for p in processes],
        "totals": totals,
        "streams": streams,
        "alerts": SyncAlert.objects.filter(
            alert_type__in=EVENT_ALERTS, acknowledged_at__isnull=True
        ).order_by("-last_seen_at"),
        "replay": replay,
        "max_frames": MAX_FRAMES,
        "stale_after": event_stats.STALE_AFTER,
        "window": event_stats.WINDOW,
    }
    return TemplateResponse(request, "admin/console/events.html", context)
