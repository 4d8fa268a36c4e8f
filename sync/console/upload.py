"""Upload a sheet on a source's sync page, preview it, confirm it; download a run's rejects.

1. **Upload** (operators, POST with the CSRF token): the file, at most
   ``SYNC_UPLOAD_MAX_BYTES`` (a bigger one is refused before its body is read into memory),
   is stored encrypted and previewed at once: ``sync.ingest.uploads.preview_upload`` runs
   the real pipeline as a dry run (nothing written, Redis untouched).
2. **Preview** (viewers may look): created / updated / unchanged / failed, duplicate keys,
   missing and unmapped columns, the first errors with row and column, and the rejects file.
3. **Confirm** (operators): refused with a message when the database rows the preview
   judged (or the source's mapping) changed since; then the file's real run is queued for a
   worker, which checks the same again under the source's lock before writing anything.
   **Preview again** makes a new dry run of the same stored file.
4. **Rejects** (operators): every run's reported rows as CSV (``sync.console.rejects``); PII
   columns only for PII viewers.
Every step is a staff action in the audit log.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from functools import partial, wraps

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.db import connection, transaction
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseRedirect,
    StreamingHttpResponse,
)
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from kombu.exceptions import OperationalError

from sync.access import roles
from sync.console.audit import record_staff_action
from sync.console.operations import START_LOCK_CLASS, UnknownSourceError, active_run, known_source
from sync.console.rejects import csv_chunks, rejects_file
from sync.console.views import run_message_tag
from sync.ingest.exceptions import IngestError, SourceConfigError, SyncAlreadyRunningError
from sync.ingest.uploads import (
    PreviewOutdatedError,
    UploadError,
    check_preview,
    preview_upload,
    start_upload_run,
    store_upload,
    too_big_message,
    upload_bytes,
    upload_columns,
)
from sync.models import ErrorLog, SyncRun, SyncUpload
from sync.redaction import RedactPiiFilter, redact

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

ERRORS_SHOWN = 20


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


class CappedUpload(FileUploadHandler):
    """Keeps an uploaded file in memory up to ``SYNC_UPLOAD_MAX_BYTES`` and stops reading
    past it (no temporary file on disk: the sheet holds PII)."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.limit = settings.SYNC_UPLOAD_MAX_BYTES
        self.too_big = False
        self.received = 0  # over every file of the request: ten files hold no more than one

    def new_file(self, *args, **kwargs) -> None:
        super().new_file(*args, **kwargs)
        self.chunks: list[bytes] = []

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received += len(raw_data)
        if self.received > self.limit:
            self.too_big = True
            raise StopUpload(connection_reset=False)  # the rest is read and dropped
        self.chunks.append(raw_data)

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        data = io.BytesIO(b"".join(self.chunks))
        return InMemoryUploadedFile(
            data,
            self.field_name,
            self.file_name,
            self.content_type,
            file_size,
            self.charset,
            self.content_type_extra,
        )


def _sync_url(source: str, run_id: int | None = None) -> str:
    url = reverse("admin:console_sync", args=[source])
    return f"{url}?run={run_id}" if run_id else url


def _preview_url(upload: SyncUpload) -> str:
    return reverse("admin:console_upload", args=[upload.pk])


def capped(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """The upload URL's outermost wrapper: the capped upload handler is put in place before
    anything reads the body (the admin's guards and the CSRF check parse the form), and a
    body declared far over the limit is refused before any of it is read (the form's own
    fields are a few hundred bytes). The CSRF check is the admin view's own, inside."""

    @csrf_exempt  # NOTE: the middleware's check would parse the body first; see above
    @wraps(view)
    def outer(request: HttpRequest, source: str) -> HttpResponse:
        request.upload_handlers = [CappedUpload(request)]
        declared = request.META.get("CONTENT_LENGTH") or ""
        if (
            request.method == "POST"
            and roles.can_operate(request.user)
            and (declared.isdigit() and int(declared) > settings.SYNC_UPLOAD_MAX_BYTES + 64 * 1024)
        ):
            messages.error(request, too_big_message(int(declared)))
            return HttpResponseRedirect(_sync_url(source))
        return view(request, source)

    return outer


@require_POST
def upload_sheet(request: HttpRequest, source: str) -> HttpResponse:
    """Take the file, store it encrypted, preview it; to the preview page."""
    _require(roles.can_operate(request.user))
    try:
        known_source(source)
    except UnknownSourceError as e:
        raise Http404(str(e)) from e
    sheet = request.FILES.get("sheet")
    if any(getattr(handler, "too_big", False) for handler in request.upload_handlers):
        messages.error(request, too_big_message(None))
        return HttpResponseRedirect(_sync_url(source))
    if sheet is None:
        messages.error(request, "Choose a .csv or .xlsx file to upload.")
        return HttpResponseRedirect(_sync_url(source))
    try:
        upload = store_upload(
            source=source,
            name=sheet.name or "",
            data=sheet.read(),
            username=request.user.get_username(),
        )
    except UploadError as e:
        messages.error(request, str(e))
        return HttpResponseRedirect(_sync_url(source))
    record_staff_action(
        request,
        action="sync.upload",
        target=source,
        details={"upload_id": upload.pk, "size": upload.size},
    )
    return _preview(request, upload)


def _preview(request: HttpRequest, upload: SyncUpload) -> HttpResponse:
    try:
        run = preview_upload(upload)
    except SyncAlreadyRunningError as e:
        messages.error(request, f"Not previewed: {e}")
    else:
        record_staff_action(
            request,
            action="sync.upload.preview",
            target=upload.source,
            details={"upload_id": upload.pk, "run_id": run.pk},
        )
    return HttpResponseRedirect(_preview_url(upload))


@require_POST
def upload_repreview(request: HttpRequest, upload_id: int) -> HttpResponse:
    """A new dry run of the stored file (after the database changed, or a failed preview)."""
    _require(roles.can_operate(request.user))
    upload = get_object_or_404(SyncUpload, pk=upload_id)
    if upload.status == SyncUpload.Status.CONFIRMED:
        messages.warning(
            request,
            f"Upload {upload.pk} was confirmed already (run "
            f"{upload.run_id}); upload the file again for a new run.",
        )
        return HttpResponseRedirect(_preview_url(upload))
    try:
        return _preview(request, upload)
    except UploadError as e:  # purged after its retention
        messages.error(request, str(e))
        return HttpResponseRedirect(_preview_url(upload))


@require_GET
def upload_page(request: HttpRequest, upload_id: int) -> HttpResponse:
    """The preview of an upload: what its confirmed run will do."""
    # NOTE: imported here: sync.console.admin registers the admin classes with the site,
    # which imports this module.
    from sync.console.admin.run_page import render

    _require(roles.can_view(request.user))
    upload = get_object_or_404(SyncUpload, pk=upload_id)
    preview = (
        SyncRun.objects.filter(pk=upload.preview_run_id).first()
        if upload.preview_run_id is not None
        else None
    )
    errors = (
        ErrorLog.objects.filter(run_id=preview.pk).order_by("row_number", "id")
        if preview
        else ErrorLog.objects.none()
    )
    duplicates = errors.filter(code="duplicate_key")
    schema = (preview.schema_report or {}) if preview else {}
    context = {
        **admin.site.each_context(request),
        "title": f"Upload {upload.pk} of {upload.source}",
        "upload": upload,
        "preview": preview,
        "errors": [_error_row(e) for e in errors[:ERRORS_SHOWN]],
        "errors_total": errors.count(),
        "duplicates": [_error_row(e) for e in duplicates[:ERRORS_SHOWN]],
        "duplicates_total": duplicates.count(),
        # The rows in the database this file no longer has, and what the run would do.
        "left_sheet": ((preview.verification or {}).get("left_sheet") or {}) if preview else {},
        **_columns(upload, schema),
        # How the pipeline read the file (encoding, delimiter, what it detected), when it says.
        "file_format": render(schema["file"]) if schema.get("file") else None,
        "confirmable": upload.status == SyncUpload.Status.PREVIEWED and preview is not None,
        "can_operate": roles.can_operate(request.user),
        "can_download": roles.can_operate(request.user) and roles.can_view_pii(request.user),
    }
    return TemplateResponse(request, "admin/console/upload_preview.html", context)


def _columns(upload: SyncUpload, schema: dict) -> dict:
    """Missing and unmapped columns: the preview's schema report, or, when the pipeline
    refused the file before making one, the stored file's header row."""
    if "missing_headers" in schema:
        return {"missing": schema["missing_headers"], "unmapped": schema["unmapped_headers"]}
    try:
        missing, unmapped = upload_columns(upload)
    except IngestError:  # unreadable, or purged: the preview's message says why
        missing, unmapped = [], []
    return {"missing": missing, "unmapped": unmapped}


def _error_row(error: ErrorLog) -> dict:
    return {
        "row": error.row_number,
        "key": error.natural_key,
        "column": error.column,
        "category": error.category,
        "code": error.code,
        "reason": redact(error.reason),
    }


@require_POST
def upload_confirm(request: HttpRequest, upload_id: int) -> HttpResponse:
    """Run a previewed upload for real, if the database still holds what the preview saw."""
    _require(roles.can_operate(request.user))
    upload = get_object_or_404(SyncUpload, pk=upload_id)
    with transaction.atomic():
        # Serialised with the sync page's Start per source: one active run at a time.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, hashtext(%s))", [START_LOCK_CLASS, upload.source]
            )
        upload = SyncUpload.objects.select_for_update().get(pk=upload_id)
        if upload.status != SyncUpload.Status.PREVIEWED:
            messages.error(
                request,
                f"Upload {upload.pk} is {upload.status}: "
                + (
                    "it was confirmed already."
                    if upload.run_id
                    else "preview it again before confirming."
                ),
            )
            return HttpResponseRedirect(_preview_url(upload))
        active = active_run(upload.source)
        if active is not None:
            messages.error(
                request,
                f"{upload.source}: a sync is already {active.status} "
                f"(run {active.pk}); confirm when it has finished.",
            )
            return HttpResponseRedirect(_preview_url(upload))
        try:
            check_preview(upload)
        except PreviewOutdatedError as e:
            SyncUpload.objects.filter(pk=upload.pk).update(status=SyncUpload.Status.OUTDATED)
            record_staff_action(
                request,
                action="sync.upload.confirm",
                target=upload.source,
                details={"upload_id": upload.pk, "refused": "outdated"},
            )
            messages.error(request, f"Not confirmed: {e}")
            return HttpResponseRedirect(_preview_url(upload))
        run = start_upload_run(upload)
        SyncUpload.objects.filter(pk=upload.pk).update(
            status=SyncUpload.Status.CONFIRMED,
            confirmed_by=request.user.get_username(),
            confirmed_at=timezone.now(),
        )
        record_staff_action(
            request,
            action="sync.upload.confirm",
            target=upload.source,
            details={
                "upload_id": upload.pk,
                "run_id": run.pk,
                "preview_run_id": upload.preview_run_id,
            },
        )
        transaction.on_commit(partial(_enqueue, upload_id=upload.pk, run=run))
    messages.success(
        request,
        f"Run {run.pk} of {upload.source} queued with upload "
        f"{upload.pk}: a worker starts it shortly.",
        extra_tags=run_message_tag(run.pk, upload_id=upload.pk),
    )
    return HttpResponseRedirect(_sync_url(upload.source, run.pk))


def _enqueue(*, upload_id: int, run: SyncRun) -> None:
    from sync.ingest.tasks import ingest_upload

    try:
        ingest_upload.apply_async(kwargs={"upload_id": upload_id, "run_id": run.pk})
    except OperationalError as e:
        logger.error("run %s of %s could not be queued: %s", run.pk, run.source, e)
        SyncRun.objects.filter(pk=run.pk, status=SyncRun.Status.PENDING).update(
            status=SyncRun.Status.FAILED,
            finished_at=timezone.now(),
            message=f"not started: the task queue (Celery broker) is unreachable: {e}"[:2000],
        )


@require_GET
def upload_download(request: HttpRequest, upload_id: int) -> HttpResponse:
    """The uploaded file as it was uploaded, for audit: operators who are PII viewers."""
    _require(roles.can_operate(request.user) and roles.can_view_pii(request.user))
    upload = get_object_or_404(SyncUpload, pk=upload_id)
    try:
        data = upload_bytes(upload)
    except UploadError as e:  # purged after its retention
        raise Http404(str(e)) from e
    record_staff_action(
        request,
        action="sync.upload.download",
        target=upload.source,
        details={"upload_id": upload.pk},
    )
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(
        True, f"upload-{upload.pk}-{upload.filename}"
    )
    response["Cache-Control"] = "no-store"
    return response


@require_GET
def run_rejects(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    """The run's rejected rows as CSV, in the sheet's columns plus row, column, reason."""
    _require(roles.can_operate(request.user))
    run = get_object_or_404(SyncRun, pk=run_id)
    pii = roles.can_view_pii(request.user)
    try:
        found = rejects_file(run, pii=pii)
    except SourceConfigError as e:  # the source is no longer configured
        raise Http404(str(e)) from e
    record_staff_action(
        request,
        action="run.rejects",
        target=f"run {run.pk}",
        details={"run_id": run.pk, "source": run.source, "pii": pii},
    )
    response = StreamingHttpResponse(
        csv_chunks(found.lines), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{found.filename}"'
    response["Cache-Control"] = "no-store"
    return response
