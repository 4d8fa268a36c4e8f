"""A run's page renders its verification, schema report and phase timings as tables, never
raw JSON, and its throughput rounded; it links a console upload's file and the
rejects file."""

from __future__ import annotations

import html
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from sync.console.admin.run_page import render, throughput_text
from sync.models import SyncRun, SyncUpload

pytestmark = pytest.mark.django_db

VERIFICATION = {
    "sheet_count": 4140,
    "database_count": 4138,
    "gaps": 2,
    "gap_keys": [f"B-{n:05d}" for n in range(60)],
    "unexplained_gaps": [],
    "duplicates": {"B-00007": [8, 4000]},
    "integrity": {"empty name": 1},
    "sample": {"compared": 20, "mismatches": [{"key": "B-00003", "field": "status"}]},
    "recovery": {"attempted": 1, "recovered": 1},
}
SCHEMA = {
    "limited_columns": {"Email": "character varying(50)"},
    "missing_headers": ["Notes"],
    "unmapped_headers": ["Remarks"],
    "rows_scanned": 4140,
    "rows_with_misfits": 1,
    "misfits": 1,
    "by_column": {"Email": 1},
    "rows": [{"row": 17, "column": "Email", "length": 61, "limit": 50}],
}


def make_run(**values) -> SyncRun:
    now = timezone.now()
    fields = {
        "source": "buyers",
        "target": "buyers.buyer",
        "status": "partial",
        "started_at": now,
        "finished_at": now,
        "rows_total": 4140,
        "rows_done": 4140,
        "failed": 2,
        "throughput": 9109.37,
        "phase_ms": {"update": 15234.5, "fetch": 120.4, "verify": 88.0, "other": 1.0},
        "errors_by_category": {"validation": 2},
        "verification": VERIFICATION,
        "schema_report": SCHEMA,
        **values,
    }
    return SyncRun.objects.create(**fields)


def page_of(client, run: SyncRun) -> str:
    response = client.get(reverse("admin:sync_syncrun_change", args=[run.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_run_page_shows_tables_not_json(client_for) -> None:
    run = make_run()
    page = page_of(client_for("viewer"), run)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    assert "9,109 rows/s" in text
    assert '{"' not in page and "{&quot;" not in page and "[&quot;" not in page
    # Phase timings: in the run's order, with their share.
    phases = re.findall(
        r'<tr(?: class="total")?><th>(?:<i class="swatch [\w-]+"></i>)?'
        r"(fetch|update|verify|other|total)</th>",
        page,
    )
    assert phases == ["fetch", "update", "verify", "other", "total"]
    assert "15 s" in text and "120 ms" in text and "98.6%" in text
    # Verification and schema report: labelled rows and nested tables.
    for fragment in (
        "keys in the sheet",
        "4,140",
        "of them in the database",
        "gap keys",
        "B-00049",
        "… and 10 more",
        "duplicates",
        "B-00007",
        "rows 8, 4000",
        "empty name",
        "mismatches",
        "status",
        "recovered",
        "length-limited columns",
        "character varying(50)",
        "missing headers",
        "Notes",
        "unmapped headers",
        "Remarks",
        "validation",
    ):
        assert fragment in text, fragment
    # A list of records is one table with their keys as columns (jsonb keeps no key order).
    head = re.search(
        r"<thead><tr>((?:<th>\w+</th>){4})</tr></thead><tbody><tr>"
        r"(?:<td>[^<]*</td>){4}",
        page,
    )
    assert head and sorted(re.findall(r"<th>(\w+)</th>", head.group(1))) == [
        "column",
        "length",
        "limit",
        "row",
    ]
    assert "B-00050" not in text  # cut at 50, counted
    assert "rejected rows (CSV)" in page


def test_a_dry_run_says_it_was_not_verified_and_links_its_upload(client_for) -> None:
    run = make_run(
        dry_run=True, verification={}, schema_report={}, phase_ms={}, throughput=None, failed=0
    )
    item = SyncUpload.objects.create(
        source="buyers",
        filename="office.csv",
        size=3,
        sha256="0" * 64,
        token="7b0a7e2e-4b8e-4c55-9d7f-3d9b1c7f0a11",
        key_id="k",
        content=b"x",
        uploaded_by="someone",
        preview_run_id=run.pk,
    )
    page = page_of(client_for("viewer"), run)
    assert "Not verified: a dry run writes nothing to verify." in page
    assert "not recorded" in page
    assert reverse("admin:console_upload", args=[item.pk]) in page
    assert "office.csv" in page and "rejected rows (CSV)" not in page


def test_rendering_rules() -> None:
    assert throughput_text(None) == "-"
    assert throughput_text(3.14159) == "3.1 rows/s"
    assert throughput_text(123456.7) == "123,457 rows/s"
    assert str(render({})) == '<span class="quiet">none</span>'
    assert str(render([])) == '<span class="quiet">none</span>'
    assert str(render(None)) == "-"
    assert str(render(True)) == "yes"
    assert str(render(2.25)) == "2.2"
    assert str(render("<b>x</b>")) == "&lt;b&gt;x&lt;/b&gt;"
    assert "&lt;script&gt;" in str(render({"<script>": ["<script>"]}))
