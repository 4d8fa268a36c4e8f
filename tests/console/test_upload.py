"""Upload a sheet in the console, preview it as a dry run, confirm it.

The preview is the real pipeline in dry-run mode: it writes no row, no intent and nothing to
Redis, and the confirmed run then does exactly what it showed (counts and every error). A
confirm after the database changed is refused; the stored file is encrypted and purged by
the retention task; only operators upload and confirm, with the CSRF token.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connections
from django.urls import reverse
from django.utils import timezone

from buyers.models import Buyer
from devtools.sheets import BUYER_HEADERS, buyer_rows
from sync.cache.connection import client as cache_client
from sync.ingest.pipeline import LOCK_CLASS, run_ingest
from sync.ingest.uploads import (
    UploadError,
    preview_upload,
    run_upload,
    store_upload,
    upload_bytes,
)
from sync.models import ErrorLog, RecordLog, StaffAction, SyncIntent, SyncRun, SyncUpload
from sync.ops.retention import purge_uploads
from tests.console.sources import sources_file

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sources(settings, tmp_path) -> Path:
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    return tmp_path


def sheet_bytes(rows: list[list[str]], headers: list[str] = BUYER_HEADERS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(headers)
    writer.writerows(rows)
    return out.getvalue().encode()


def existing_and_changed(tmp_path: Path) -> list[list[str]]:
    """30 buyers stored; the upload: 2 of them edited, 24 as they are, 4 bad, 2 new."""
    rows = list(buyer_rows(30, 0))
    (tmp_path / "buyers.csv").write_bytes(sheet_bytes(rows))
    assert run_ingest("buyers").created == 30
    rows[3][8] = "closed"  # B-00004 status
    rows[5][7] = "123000000"  # B-00006 budget
    new = list(buyer_rows(32, 0))[30:]
    rows += new
    rows[10][10] = "2024-13-45"  # not a date
    rows[11][0] = "bad-key"  # pattern
    rows[12][1] = ""  # required name
    rows[13][7] = "lots"  # not a number
    return rows


def upload(client, data: bytes, name: str = "buyers.csv", source: str = "buyers"):
    return client.post(
        reverse("admin:console_sync_upload", args=[source]),
        {"sheet": SimpleUploadedFile(name, data)},
    )


def errors_of(run_id: int) -> list[tuple]:
    return list(
        ErrorLog.objects.filter(run_id=run_id)
        .order_by("row_number", "id")
        .values_list("row_number", "natural_key", "category", "code", "column", "reason")
    )


def outcome(run: SyncRun) -> tuple:
    return (run.rows_done, run.created, run.updated, run.unchanged, run.failed)


def test_preview_shows_what_the_confirmed_run_then_does(client_for, tmp_path) -> None:
    rows = existing_and_changed(tmp_path)
    before = {b.buyer_number: b.version for b in Buyer.objects.all()}
    intents = list(SyncIntent.objects.order_by("pk").values_list("pk", "version"))
    client = client_for("operator")

    response = upload(client, sheet_bytes(rows), name="C:\\office\\buyers export.csv")
    item = SyncUpload.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:console_upload", args=[item.pk])
    assert item.filename == "buyers export.csv"
    assert item.status == "previewed"
    preview = SyncRun.objects.get(pk=item.preview_run_id)
    assert preview.dry_run
    assert outcome(preview) == (32, 2, 2, 24, 4)
    # Nothing written: the rows, their versions, the cache outbox.
    assert {b.buyer_number: b.version for b in Buyer.objects.all()} == before
    assert list(SyncIntent.objects.order_by("pk").values_list("pk", "version")) == intents

    page = client.get(response["Location"]).content.decode()
    for figure in (
        'id="pv-created">2<',
        'id="pv-updated">2<',
        'id="pv-unchanged">24<',
        'id="pv-failed">4<',
        "Inquiry Date",
        "is not a date",
        "Budget",
        "Confirm: run it for real",
    ):
        assert figure in page
    # B-00012's key is misspelt in the file: its stored row is one the file no longer has.
    assert 'id="pv-left">1<' in page
    assert "1 row in the database is not in this file and would be flagged: B-00012." in page

    response = client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    assert item.status == "confirmed" and item.confirmed_by == "operator-user"
    assert response["Location"].endswith(f"?run={item.run_id}")
    run = SyncRun.objects.get(pk=item.run_id)
    assert (run.status, run.batch_size, run.dry_run) == ("pending", preview.batch_size, False)
    assert run.location == f"upload {item.pk}: buyers export.csv"

    run = run_upload(upload_id=item.pk, run_id=run.pk)  # what the worker's task does
    assert run.status == "partial"
    assert outcome(run) == outcome(preview)
    assert errors_of(run.pk) == errors_of(preview.pk)
    assert list(
        RecordLog.objects.filter(run_id=run.pk)
        .order_by("row_number")
        .values_list("row_number", "natural_key", "action")
    ) == list(
        RecordLog.objects.filter(run_id=preview.pk)
        .order_by("row_number")
        .values_list("row_number", "natural_key", "action")
    )
    assert Buyer.objects.get(buyer_number="B-00004").status == "closed"
    assert Buyer.objects.count() == 32
    actions = set(StaffAction.objects.values_list("action", flat=True))
    assert {"sync.upload", "sync.upload.preview", "sync.upload.confirm"} <= actions
    # Confirmed once: a second confirm is refused.
    again = client.post(reverse("admin:console_upload_confirm", args=[item.pk]), follow=True)
    assert "confirmed already" in again.content.decode()
    assert SyncRun.objects.filter(dry_run=False).count() == 2


def test_confirm_is_refused_when_a_row_the_preview_judged_changed(client_for, tmp_path) -> None:
    rows = existing_and_changed(tmp_path)
    client = client_for("operator")
    upload(client, sheet_bytes(rows))
    item = SyncUpload.objects.get()
    # Someone edits a buyer the file names (the preview judged it unchanged).
    Buyer.objects.filter(buyer_number="B-00020").update(status="edited meanwhile")

    response = client.post(reverse("admin:console_upload_confirm", args=[item.pk]), follow=True)
    page = response.content.decode()
    assert "changed since its preview" in page
    item.refresh_from_db()
    assert item.status == "outdated" and item.run_id is None
    assert not SyncRun.objects.filter(dry_run=False).exclude(trigger="manual").exists()
    assert SyncRun.objects.filter(dry_run=False).count() == 1  # the setup's run only

    # Preview again: the new preview sees the edit, and can be confirmed.
    client.post(reverse("admin:console_upload_repreview", args=[item.pk]))
    item.refresh_from_db()
    assert item.status == "previewed"
    assert SyncRun.objects.get(pk=item.preview_run_id).updated == 3
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    assert item.status == "confirmed"


def test_the_worker_checks_the_preview_again_under_the_lock(client_for, tmp_path) -> None:
    """A change between the confirm and the worker's start: the run fails, writes nothing."""
    rows = existing_and_changed(tmp_path)
    client = client_for("operator")
    upload(client, sheet_bytes(rows))
    item = SyncUpload.objects.get()
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    Buyer.objects.filter(buyer_number="B-00001").delete()
    versions = dict(Buyer.objects.values_list("buyer_number", "version"))

    run = run_upload(upload_id=item.pk, run_id=item.run_id)
    assert run.status == "failed"
    assert "changed since its preview" in run.message
    assert (run.created, run.updated, run.unchanged) == (0, 0, 0)
    assert dict(Buyer.objects.values_list("buyer_number", "version")) == versions


def test_a_new_mapping_outdates_the_preview(client_for, tmp_path, settings) -> None:
    rows = existing_and_changed(tmp_path)
    client = client_for("operator")
    upload(client, sheet_bytes(rows))
    item = SyncUpload.objects.get()
    path = Path(settings.SYNC_INGEST_SOURCES_FILE)
    path.write_text(path.read_text().replace('"Notes" = "notes"\n', "", 1))
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    assert item.status == "outdated"


def test_viewers_cannot_upload_or_confirm_and_csrf_is_checked(client_for, tmp_path) -> None:
    rows = list(buyer_rows(5, 0))
    for role in ("viewer", "pii_viewer"):
        assert upload(client_for(role), sheet_bytes(rows)).status_code == 403
    assert upload(client_for("anonymous"), sheet_bytes(rows)).status_code == 302  # login
    assert not SyncUpload.objects.exists()
    strict = client_for("operator", enforce_csrf_checks=True)
    assert upload(strict, sheet_bytes(rows)).status_code == 403
    assert not SyncUpload.objects.exists()

    upload(client_for("operator"), sheet_bytes(rows))
    item = SyncUpload.objects.get()
    viewer = client_for("viewer")
    assert viewer.get(reverse("admin:console_upload", args=[item.pk])).status_code == 200
    for name in ("admin:console_upload_confirm", "admin:console_upload_repreview"):
        assert viewer.post(reverse(name, args=[item.pk])).status_code == 403
    assert strict.post(reverse("admin:console_upload_confirm", args=[item.pk])).status_code == 403
    item.refresh_from_db()
    assert item.status == "previewed"
    page = viewer.get(reverse("admin:console_sync", args=["buyers"])).content.decode()
    assert 'id="upload-file"' not in page
    page = client_for("operator").get(reverse("admin:console_sync", args=["buyers"]))
    assert 'id="upload-file"' in page.content.decode()


def test_a_file_over_the_limit_is_refused_with_the_limit(client_for, settings) -> None:
    settings.SYNC_UPLOAD_MAX_BYTES = 2000
    data = sheet_bytes(list(buyer_rows(40, 0)))
    assert len(data) > 2000
    response = upload(client_for("operator"), data)
    assert response.status_code == 302
    page = client_for("operator").get(response["Location"])
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("over the upload limit of 2,000 bytes" in m for m in messages), messages
    assert page.status_code == 200
    assert not SyncUpload.objects.exists()
    assert not SyncRun.objects.exists()
    # Far over it: refused on the declared length, before the body is read.
    settings.SYNC_UPLOAD_MAX_BYTES = 10
    response = upload(client_for("operator"), data * 40)
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("over the upload limit of 10 bytes" in m for m in messages), messages


@pytest.mark.parametrize(
    ("name", "data", "message"),
    [
        ("buyers.pdf", b"%PDF", "is not a .csv or .xlsx file"),
        ("buyers.csv", b"", "is empty"),
    ],
)
def test_bad_uploads_are_refused_clearly(client_for, name, data, message) -> None:
    response = upload(client_for("operator"), data, name=name)
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any(message in m for m in messages), messages
    assert not SyncUpload.objects.exists()


def test_no_file_and_unknown_source(client_for) -> None:
    client = client_for("operator")
    response = client.post(reverse("admin:console_sync_upload", args=["buyers"]), {})
    assert "Choose a .csv or .xlsx file" in str(list(response.wsgi_request._messages))
    assert upload(client, b"x", source="nosuch").status_code == 404


def test_a_file_that_cannot_be_read_fails_its_preview_and_cannot_be_confirmed(client_for) -> None:
    client = client_for("operator")
    response = upload(client, b"PK\x03\x04 not really a workbook", name="buyers.xlsx")
    item = SyncUpload.objects.get()
    assert item.status == "failed"
    page = client.get(response["Location"]).content.decode()
    assert "The preview did not run through" in page
    assert "confirm-upload" not in page
    response = client.post(reverse("admin:console_upload_confirm", args=[item.pk]), follow=True)
    assert "preview it again before confirming" in response.content.decode()
    assert not SyncRun.objects.filter(dry_run=False).exists()


def test_the_stored_upload_is_encrypted_and_purged_after_its_retention(settings) -> None:
    data = sheet_bytes(
        [
            [
                "B-77777",
                "Canary Person",
                "canary.person@pii.example",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
                "",
            ]
        ]
    )
    item = store_upload(source="buyers", name="buyers.csv", data=data, username="op")
    stored = bytes(SyncUpload.objects.get(pk=item.pk).content)
    assert b"canary.person" not in stored and b"Canary Person" not in stored
    assert upload_bytes(item) == data
    # Bound to its row: the ciphertext under another upload's token does not decrypt.
    other = store_upload(source="buyers", name="b.csv", data=b"x,y\n", username="op")
    other.content = stored
    with pytest.raises(Exception, match="does not authenticate"):
        upload_bytes(other)

    settings.SYNC_UPLOAD_RETENTION_DAYS = 30
    SyncUpload.objects.filter(pk=item.pk).update(created_at=timezone.now() - timedelta(days=31))
    assert purge_uploads() == 1
    item.refresh_from_db()
    assert item.purged_at is not None and bytes(item.content) == b""
    assert item.sha256 and item.filename == "buyers.csv"  # the audit stays
    with pytest.raises(UploadError, match="purged after the retention of 30 days"):
        upload_bytes(item)
    assert purge_uploads() == 0
    # Older than the logs' retention: the row goes too, as its runs do.
    SyncUpload.objects.filter(pk=item.pk).update(created_at=timezone.now() - timedelta(days=400))
    assert purge_uploads() == 1
    assert not SyncUpload.objects.filter(pk=item.pk).exists()


def test_the_daily_retention_task_purges_uploads(settings) -> None:
    from sync.tasks import archive_logs

    settings.SYNC_ARCHIVE_DIR = str(Path(settings.SYNC_INGEST_SOURCES_FILE).parent / "archive")
    item = store_upload(source="buyers", name="buyers.csv", data=b"a\n", username="op")
    SyncUpload.objects.filter(pk=item.pk).update(created_at=timezone.now() - timedelta(days=45))
    assert archive_logs()["sync_uploads"] == 1


def test_a_purged_upload_cannot_be_previewed_or_run(client_for) -> None:
    client = client_for("operator")
    upload(client, sheet_bytes(list(buyer_rows(3, 0))))
    item = SyncUpload.objects.get()
    SyncUpload.objects.filter(pk=item.pk).update(content=b"", purged_at=timezone.now())
    response = client.post(reverse("admin:console_upload_repreview", args=[item.pk]), follow=True)
    assert "was purged after the retention" in response.content.decode()
    item.refresh_from_db()
    run = SyncRun.objects.create(source="buyers", target="buyers.buyer")
    run = run_upload(upload_id=item.pk, run_id=run.pk)
    assert run.status == "failed" and "purged" in run.message


@pytest.mark.django_db(transaction=True)
def test_a_preview_never_reaches_redis_and_the_confirmed_run_does(client_for, tmp_path) -> None:
    client = client_for("operator")
    redis = cache_client()
    upload(client, sheet_bytes(list(buyer_rows(12, 0))))
    item = SyncUpload.objects.get()
    assert SyncRun.objects.get(pk=item.preview_run_id).created == 12
    # NOTE: a request slow under load leaves its path (no row data) in the slow-request log.
    assert [key for key in redis.scan_iter() if b"{__slow__}" not in key] == []
    assert not SyncIntent.objects.exists() and not Buyer.objects.exists()
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    run = run_upload(upload_id=item.pk, run_id=item.run_id)
    assert run.created == 12
    assert any(b"buyers.buyer" in key for key in redis.scan_iter(count=1000))


def test_a_preview_while_a_run_holds_the_source_says_so(client_for, tmp_path) -> None:
    item = store_upload(
        source="buyers", name="buyers.csv", data=sheet_bytes(list(buyer_rows(3, 0))), username="op"
    )
    # NOTE: the source's lock held by another session, as a running worker's is.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [LOCK_CLASS, "buyers"])
        response = client_for("operator").post(
            reverse("admin:console_upload_repreview", args=[item.pk]), follow=True
        )
        assert "Not previewed" in response.content.decode()
        item.refresh_from_db()
        assert item.status == "failed"
    finally:
        other.close()
    with pytest.raises(UploadError):
        preview_upload(SyncUpload(source="buyers", filename="x.csv", content=b""))


def test_preview_equals_the_run_with_duplicates_far_apart_and_small_batches(
    client_for, tmp_path
) -> None:
    """A key on rows 3 and 40 lands in different batches (batch size 5): the preview, whose
    batches are each rolled back, still judges it as the real run then does."""
    from sync.ops.source_settings import config_update

    rows = list(buyer_rows(45, 0))
    (tmp_path / "buyers.csv").write_bytes(sheet_bytes(rows[:20]))
    run_ingest("buyers")
    config_update(source="buyers", batch_size=5)
    rows[38] = [*rows[1]]  # row 40 repeats row 3's key, with other values
    rows[38][8] = "a different status"
    client = client_for("operator")
    upload(client, sheet_bytes(rows))
    item = SyncUpload.objects.get()
    preview = SyncRun.objects.get(pk=item.preview_run_id)
    assert preview.batch_size == 5
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    run = run_upload(upload_id=item.pk, run_id=item.run_id)
    assert run.batch_size == 5
    assert outcome(run) == outcome(preview)
    assert errors_of(run.pk) == errors_of(preview.pk)


def test_an_xlsx_upload_is_previewed_and_a_missing_column_is_shown(client_for) -> None:
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    headers = [h for h in BUYER_HEADERS if h != "Notes"]
    sheet.append(headers)
    for row in buyer_rows(6, 0):
        sheet.append([cell for h, cell in zip(BUYER_HEADERS, row, strict=True) if h != "Notes"])
    data = io.BytesIO()
    book.save(data)
    client = client_for("operator")
    response = upload(client, data.getvalue(), name="Buyers.XLSX")
    item = SyncUpload.objects.get()
    preview = SyncRun.objects.get(pk=item.preview_run_id)
    page = client.get(response["Location"]).content.decode()
    # Whatever the pipeline's rule for a missing column (refuse the run, or leave the field
    # alone), the preview names the column and the confirmed run does what it showed.
    assert re.search(r'id="pv-missing"><code>Notes</code>', page)
    if item.status == "previewed":
        client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
        item.refresh_from_db()
        run = run_upload(upload_id=item.pk, run_id=item.run_id)
        assert outcome(run) == outcome(preview)
    else:
        assert preview.status == "failed" and "Notes" in page
        assert "confirm-upload" not in page


def test_the_limit_counts_every_file_of_the_request(client_for, settings) -> None:
    data = sheet_bytes(list(buyer_rows(10, 0)))
    settings.SYNC_UPLOAD_MAX_BYTES = len(data) + 10
    response = client_for("operator").post(
        reverse("admin:console_sync_upload", args=["buyers"]),
        {"other": SimpleUploadedFile("a.csv", data), "sheet": SimpleUploadedFile("b.csv", data)},
    )
    messages = [str(m) for m in response.wsgi_request._messages]
    assert any("over the upload limit" in m for m in messages), messages
    assert not SyncUpload.objects.exists()


def test_the_uploaded_file_is_downloadable_only_by_operators_who_see_pii(client_for) -> None:
    data = sheet_bytes(list(buyer_rows(3, 0)))
    upload(client_for("operator"), data, name='we"ird name.csv')
    item = SyncUpload.objects.get()
    url = reverse("admin:console_upload_file", args=[item.pk])
    for role in ("viewer", "operator", "pii_viewer"):
        assert client_for(role).get(url).status_code == 403
        page = client_for(role).get(reverse("admin:console_upload", args=[item.pk]))
        assert 'id="upload-download"' not in page.content.decode()
    superuser = client_for("superuser")
    assert (
        'id="upload-download"'
        in superuser.get(reverse("admin:console_upload", args=[item.pk])).content.decode()
    )
    response = superuser.get(url)
    assert response.status_code == 200 and response.content == data
    assert response["Content-Disposition"].startswith("attachment;")
    assert StaffAction.objects.filter(action="sync.upload.download").count() == 1
    SyncUpload.objects.filter(pk=item.pk).update(content=b"", purged_at=timezone.now())
    assert superuser.get(url).status_code == 404


def test_any_change_to_the_source_outdates_the_preview(client_for, settings) -> None:
    upload(client_for("operator"), sheet_bytes(list(buyer_rows(4, 0))))
    item = SyncUpload.objects.get()
    path = Path(settings.SYNC_INGEST_SOURCES_FILE)
    # Not the mapping: a setting the run's behaviour depends on all the same.
    path.write_text(
        path.read_text().replace(
            'required = ["buyer_number", "name"]',
            'required = ["buyer_number", "name"]\nauto_recovery = false',
            1,
        )
    )
    client_for("operator").post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    assert item.status == "outdated"
