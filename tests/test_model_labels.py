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


def test_every_list_is_named_in_plural_english() -> None:
    """No "Record retrys": every model's plural (the app list, the list's title and count)."""
    from django.apps import apps

    wrong = {}
    for model in apps.get_models():
        singular = str(model._meta.verbose_name)
        plural = str(model._meta.verbose_name_plural)
        last = singular.split()[-1]
        if last[-1:] == "y" and last[-2:-1] not in "aeiou" and plural.endswith("ys"):
            wrong[model._meta.label] = plural  # retry -> retrys
        elif last.endswith(("s", "x", "sh", "ch")) and plural == f"{singular}s":
            wrong[model._meta.label] = plural  # address -> addresss
    assert not wrong, wrong


def test_choices_read_as_words_and_acronyms_stay_capitals() -> None:
    """Filters and pills show choice labels: "API" (not "Api"), "Consistency SLO"."""
    from sync.models import RecordRetry, SyncAlert, SyncRun

    assert SyncRun.Trigger.API.label == "API"
    assert SyncRun.Trigger.DEMO.label == "Demo data"
    assert SyncAlert.Type.CONSISTENCY_SLO.label == "Consistency SLO"
    assert RecordRetry.Status.PERMANENTLY_FAILED.label == "Permanently failed"
    from django.apps import apps

    titled = {
        f"{model._meta.label}.{field.name}": label
        for model in apps.get_models()
        if model._meta.app_label in ("sync", "catalog", "customers", "buyers", "sellers")
        for field in model._meta.get_fields()
        if getattr(field, "choices", None)
        for _value, label in field.choices
        if str(label) in ("Api", "Slo", "Sql", "Pii", "Ip", "Url", "Csv")
        or str(label).endswith((" Slo", " Api"))
    }
    assert not titled, titled


def test_the_demo_loads_its_sheets_as_demo_runs_not_scheduled_ones(db, settings, tmp_path) -> None:
    from devtools.demo_data import buyers as demo
    from sync.models import SyncRun
    from tests.console.sources import buyers_sheet, sources_file

    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    buyers_sheet(tmp_path, 20)
    demo.load(count=20)
    run = SyncRun.objects.get(source="buyers")
    assert (run.trigger, run.get_trigger_display()) == ("demo", "Demo data")
