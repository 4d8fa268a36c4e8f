"""The management commands of ingestion and the Celery tasks on a real worker."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from buyers.models import Buyer
from sync.ingest.exceptions import SourceConfigError
from sync.ingest.source_definitions import get_source, load_sources
from sync.ingest.tasks import find_missing as find_missing_task
from sync.ingest.tasks import ingest, retry_records
from sync.ingest.tasks import sync_missing as sync_missing_task
from sync.models import SyncRun
from tests.waiting import wait_until


@pytest.mark.django_db
def test_ingest_command_prints_progress_and_totals(buyers_sheet) -> None:
    buyers_sheet(count=25)
    out = StringIO()
    call_command("sync_ingest", "buyers", "--batch-size", "10", stdout=out)
    text = out.getvalue()
    assert "25/25 100.0%" in text
    assert "buyers: succeeded; 25 rows: 25 created, 0 updated, 0 unchanged, 0 failed, 0 gap" in (
        text
    )
    out = StringIO()
    call_command("sync_ingest", "buyers", "--dry-run", stdout=out)
    assert "(dry run): succeeded; 25 rows: 0 created" in out.getvalue()
    with pytest.raises(CommandError, match="unknown source 'nope'"):
        call_command("sync_ingest", "nope", stdout=StringIO())


@pytest.mark.django_db
def test_failed_run_is_a_command_error(buyers_sheet, tmp_path) -> None:
    missing = tmp_path / "gone.csv"
    with pytest.raises(CommandError, match="cannot open"):
        call_command("sync_ingest", "buyers", "--file", str(missing), stdout=StringIO())
    headerless = tmp_path / "other.csv"
    headerless.write_text("Name\nA\n")
    with pytest.raises(CommandError, match="no 'Buyer Number' column"):
        call_command("sync_ingest", "buyers", "--file", str(headerless), stdout=StringIO())
    with pytest.raises(CommandError, match="cannot tell the format"):
        call_command("sync_ingest", "buyers", "--file", "x.ods", stdout=StringIO())


@pytest.mark.django_db
def test_find_missing_missing_health_and_schema_check(buyers_sheet) -> None:
    buyers_sheet(count=12)
    out = StringIO()
    call_command("sync_find_missing", "buyers", stdout=out)
    assert "sheet 12 keys (12 rows), 0 of them in the database, missing 12" in out.getvalue()
    assert "B-00001\trow 2" in out.getvalue()
    out = StringIO()
    call_command("sync_missing", "buyers", stdout=out)
    assert "missing 12" in out.getvalue()
    out = StringIO()
    call_command("sync_missing", "buyers", stdout=out)
    assert out.getvalue().strip() == (
        "buyers: sheet 12 keys (12 rows), 12 of them in the database, missing 0 "
        "(the table holds 12 rows from every source)"
    )
    out = StringIO()
    call_command("sync_health", stdout=out)
    assert "buyers: last run" in out.getvalue()
    assert "sellers: last run never" in out.getvalue()
    out = StringIO()
    call_command("sync_schema_check", "buyers", stdout=out)
    assert "Buyer Number         -> buyers.buyer_number text" in out.getvalue()
    with pytest.raises(CommandError, match="unknown source"):
        call_command("sync_health", "nope", stdout=StringIO())


@pytest.mark.django_db
def test_sync_missing_that_cannot_fill_every_gap_says_so(buyers_sheet) -> None:
    from devtools.sheets import buyer_rows

    rows = list(buyer_rows(3, 0))
    rows[1][1] = ""  # required name missing: cannot be stored
    buyers_sheet(rows)
    with pytest.raises(CommandError, match="1 row\\(s\\) are still missing"):
        call_command("sync_missing", "buyers", stdout=StringIO())


@pytest.mark.django_db
def test_schema_check_reports_sheet_columns_it_lacks_or_ignores(buyers_sheet) -> None:
    buyers_sheet([["B-00001", "x"]], headers=["Buyer Number", "Nickname"])
    out = StringIO()
    with pytest.raises(CommandError, match="lacks mapped columns"):
        call_command("sync_schema_check", "buyers", stdout=out)
    assert "missing column in the sheet: Name" in out.getvalue()
    assert "unmapped column (ignored): Nickname" in out.getvalue()


def test_configuration_errors_say_what_to_fix(settings, tmp_path) -> None:
    settings.SYNC_INGEST_SOURCES_FILE = str(tmp_path / "none.toml")
    with pytest.raises(SourceConfigError, match="no source configuration at"):
        load_sources()
    path = tmp_path / "bad.toml"
    settings.SYNC_INGEST_SOURCES_FILE = str(path)
    path.write_text("[sources")
    with pytest.raises(SourceConfigError, match="not valid TOML"):
        load_sources()
    cases = {
        'target = "buyers.buyer"': "missing 'natural_key'",
        'target = "x.y"\nnatural_key = "a"\ncolumns = { A = "a" }': "unknown target model",
        'target = "buyers.buyer"\nnatural_key = "buyer_number"\ncolumns = { A = "nope" }': (
            "has no field nope"
        ),
        'target = "buyers.buyer"\nnatural_key = "buyer_number"\ncolumns = { A = "name" }': (
            "no column feeds the natural key"
        ),
        'target = "buyers.buyer"\nnatural_key = "buyer_number"\n'
        'columns = { A = "buyer_number", B = "p.x" }': "no such child is configured",
        'target = "buyers.buyer"\nnatural_key = "buyer_number"\nkind = "ods"\n'
        'columns = { A = "buyer_number" }': "kind must be one of",
        'target = "buyers.buyer"\nnatural_key = "buyer_number"\nkey_pattern = "("\n'
        'columns = { A = "buyer_number" }': "not a regular expression",
        'target = "buyers.buyer"\nnatural_key = "buyer_number"\nbatch_size = 0\n'
        'columns = { A = "buyer_number" }': "batch_size must be at least 1",
    }
    for body, message in cases.items():
        path.write_text(f"[sources.s]\n{body}\n")
        with pytest.raises(SourceConfigError, match=message):
            load_sources()
    path.write_text(
        '[sources.s]\ntarget = "sellers.seller"\nnatural_key = "seller_number"\n'
        'child = { target = "sellers.property", parent_field = "seller" }\n'
        'columns = { A = "seller_number", B = "property.land_area" }\n'
    )
    config = get_source("s")
    assert config.child_columns() == {"B": "land_area"}
    assert config.resolve_location("x.xlsx")[0] == "xlsx"


@pytest.mark.slow
def test_celery_tasks_run_on_a_real_worker(celery_worker, buyers_sheet, settings) -> None:
    buyers_sheet(count=15)
    run = SyncRun.objects.create(source="buyers", target="buyers.buyer")
    ingest.delay("buyers", run_id=run.pk)
    wait_until(lambda: SyncRun.objects.filter(pk=run.pk, status="succeeded").exists())
    assert Buyer.objects.count() == 15
    Buyer.objects.filter(buyer_number="B-00004").delete()
    sync_missing_task.delay("buyers")
    wait_until(lambda: SyncRun.objects.filter(trigger="missing", status="succeeded").exists())
    assert Buyer.objects.count() == 15
    retry_records.delay()
    find_missing_task.delay("buyers")


@pytest.mark.parametrize("command", ["sync_find_missing", "sync_missing", "sync_schema_check"])
def test_gap_and_schema_commands_name_an_unknown_source(command) -> None:
    with pytest.raises(CommandError, match="nosuch"):
        call_command(command, "nosuch", stdout=StringIO())


@pytest.mark.django_db
def test_a_new_source_row_takes_model_defaults_when_the_sources_file_is_broken(
    settings, tmp_path
) -> None:
    from sync.ingest.source_settings import config_for

    bad = tmp_path / "bad.toml"
    bad.write_text("[sources")
    settings.SYNC_INGEST_SOURCES_FILE = str(bad)
    row = config_for("buyers")
    assert (row.batch_size, row.auto_recovery) == (1000, True)
