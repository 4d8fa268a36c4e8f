"""The names the console and the shell give the new audit and observation rows: what an
operator reads in a breadcrumb, a delete confirmation or a log line, never PII (an upload is
named by its file name, which the operator chose, not by a cell of it)."""

from __future__ import annotations

from sync.models import ConsistencySample, ProcessHeartbeat, SyncUpload


def test_rows_are_named_by_what_identifies_them() -> None:
    upload = SyncUpload(pk=7, source="buyers", filename="buyers export.csv", status="previewed")
    assert str(upload) == "upload 7 buyers buyers export.csv (previewed)"
    beat = ProcessHeartbeat(kind="worker", node="celery@host", pid=4242)
    assert str(beat) == "worker celery@host pid 4242"
    sample = ConsistencySample(model="catalog.part", object_pk="12", version=40)
    assert str(sample) == "catalog.part:12 v40"
