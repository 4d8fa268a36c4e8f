"""Edges of the console upload: a seller sheet (a child row per seller: its
version is part of what a preview judged), a busy source, a confirmed upload previewed again,
a broker that cannot be reached, the worker's task, and rejects of odd runs."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import openpyxl
import pytest
from django.db import connections
from django.urls import reverse

from devtools import testservices
from devtools.sheets import BUYER_HEADERS, SELLER_HEADERS, buyer_rows, seller_rows
from sellers.models import Property
from sync.ingest.pipeline import LOCK_CLASS, run_ingest
from sync.ingest.tasks import ingest_upload
from sync.ingest.uploads import UploadError, store_upload
from sync.models import ErrorLog, SyncRun, SyncUpload
from tests.console.sources import sources_file
from tests.console.test_rejects import rejects
from tests.console.test_upload import sheet_bytes, upload

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _sources(settings, tmp_path) -> Path:
    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    return tmp_path


def test_a_seller_upload_is_outdated_when_a_property_changes(client_for, tmp_path) -> None:
    rows = list(seller_rows(6))
    (tmp_path / "sellers.csv").write_bytes(sheet_bytes(rows, SELLER_HEADERS))
    assert run_ingest("sellers").created == 6
    rows[2][SELLER_HEADERS.index("Asking Price")] = "12345678"
    client = client_for("operator")
    upload(client, sheet_bytes(rows, SELLER_HEADERS), name="sellers.xlsx.csv", source="sellers")
    item = SyncUpload.objects.get()
    preview = SyncRun.objects.get(pk=item.preview_run_id)
    assert (preview.updated, preview.unchanged) == (1, 5)
    prop = Property.objects.order_by("pk").first()
    prop.property_type = "changed meanwhile"
    prop.save()
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    assert item.status == "outdated"


def test_confirm_waits_for_an_active_run_and_a_confirmed_upload_is_not_previewed_again(
    client_for,
) -> None:
    client = client_for("operator")
    upload(client, sheet_bytes(list(buyer_rows(4, 0))))
    item = SyncUpload.objects.get()
    active = SyncRun.objects.create(source="buyers", target="buyers.buyer", status="pending")
    response = client.post(reverse("admin:console_upload_confirm", args=[item.pk]), follow=True)
    assert f"a sync is already pending (run {active.pk})" in response.content.decode()
    item.refresh_from_db()
    assert item.status == "previewed"
    active.delete()
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    response = client.post(reverse("admin:console_upload_repreview", args=[item.pk]), follow=True)
    assert "was confirmed already" in response.content.decode()


def test_the_worker_task_runs_a_confirmed_upload_once(client_for) -> None:
    client = client_for("operator")
    upload(client, sheet_bytes(list(buyer_rows(4, 0))))
    item = SyncUpload.objects.get()
    client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    item.refresh_from_db()
    # The source busy: refused, as a scheduled run would be.
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, hashtext(%s))", [LOCK_CLASS, "buyers"])
        assert ingest_upload(upload_id=item.pk, run_id=item.run_id)["status"] == "refused"
        with other.cursor() as cursor:
            # Released now: a closed connection's backend lets go of it a moment later.
            cursor.execute("SELECT pg_advisory_unlock_all()")
    finally:
        other.close()
    run = SyncRun.objects.create(source="buyers", target="buyers.buyer", batch_size=100)
    SyncUpload.objects.filter(pk=item.pk).update(run_id=run.pk)
    result = ingest_upload(upload_id=item.pk, run_id=run.pk)
    assert (result["status"], SyncRun.objects.get(pk=run.pk).created) == ("succeeded", 4)
    # A run cancelled while it waited in the queue never starts.
    waiting = SyncRun.objects.create(source="buyers", target="buyers.buyer", status="cancelled")
    assert ingest_upload(upload_id=item.pk, run_id=waiting.pk)["status"] == "cancelled"


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_an_unreachable_broker_fails_the_confirmed_run_not_the_request(client_for) -> None:
    client = client_for("operator")
    upload(client, sheet_bytes(list(buyer_rows(3, 0))))
    item = SyncUpload.objects.get()
    broker = testservices.services().broker
    broker.stop()
    try:
        response = client.post(reverse("admin:console_upload_confirm", args=[item.pk]))
    finally:
        broker.start()
    assert response.status_code == 302
    item.refresh_from_db()
    run = SyncRun.objects.get(pk=item.run_id)
    assert run.status == "failed"
    assert "the task queue (Celery broker) is unreachable" in run.message


def test_store_refuses_a_file_over_the_limit(settings) -> None:
    settings.SYNC_UPLOAD_MAX_BYTES = 5
    with pytest.raises(UploadError, match="over the upload limit of 5 bytes"):
        store_upload(source="buyers", name="b.csv", data=b"123456", username="op")


def test_rejects_of_a_source_no_longer_configured_and_of_odd_runs(
    client_for, tmp_path, settings
) -> None:
    client = client_for("superuser")
    gone = SyncRun.objects.create(source="retired", target="buyers.buyer")
    assert client.get(reverse("admin:console_run_rejects", args=[gone.pk])).status_code == 404
    # A run whose location is no file (its upload deleted): listed without cells.
    run = SyncRun.objects.create(
        source="buyers", target="buyers.buyer", location="upload 9: gone.ods", failed=1
    )
    ErrorLog.objects.create(
        run_id=run.pk,
        source="buyers",
        category="database",
        code="40001",
        row_number=4,
        natural_key="B-00003",
        column="",
        reason="could not serialize access",
    )
    _response, lines = rejects(client, run.pk)
    assert lines[1][:2] == ["4", ""]
    assert "could not serialize access" in lines[1][2]
    assert "no longer available" in lines[1][2]
    # A workbook damaged past its header: the rows past the damage say so.
    path = broken_workbook(tmp_path / "buyers.xlsx")
    run = SyncRun.objects.create(source="buyers", target="buyers.buyer", location=str(path))
    for row in (5, 25):
        ErrorLog.objects.create(
            run_id=run.pk,
            source="buyers",
            category="validation",
            row_number=row,
            natural_key=f"B-{row - 1:05d}",
            column="Name",
            reason="Name is required but empty",
        )
    _response, lines = rejects(client, run.pk)
    assert [line[-3] for line in lines[1:]] == ["5", "25"]
    assert lines[1][0] == "B-00004"
    assert "the sheet cannot be read any more" in lines[2][-1]


def broken_workbook(path: Path) -> Path:
    """30 buyers in a workbook whose sheet XML ends in the middle of row 20."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(BUYER_HEADERS)
    for row in buyer_rows(30, 0):
        sheet.append(row)
    raw = io.BytesIO()
    book.save(raw)
    source, out = zipfile.ZipFile(io.BytesIO(raw.getvalue())), io.BytesIO()
    with zipfile.ZipFile(out, "w") as damaged:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                data = data[: data.index(b'<row r="20"')] + b'<row r="20"><c r="A20" t="in'
            damaged.writestr(info, data)
    path.write_bytes(out.getvalue())
    return path
