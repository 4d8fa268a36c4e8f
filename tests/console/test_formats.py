"""The console's one format per kind of value (sync/console/formats.py), and the same rules in
the browser's live updates (static/console/formats.js, run with node when it is installed):
a page never shows 4140 beside 4,140, nor one duration three ways."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import subprocess

import pytest
from django.template import Context, Template
from django.utils import timezone

from config.env import ROOT
from sync.console import formats

DURATIONS = {  # seconds: as every page shows them
    0.0: "0 s",
    0.454: "0.45 s",
    0.996: "1.0 s",
    2.345: "2.3 s",
    9.96: "10 s",
    12.4: "12 s",
    59.6: "1 min 00 s",
    125: "2 min 05 s",
    3599.6: "1 h 00 min",
    3725: "1 h 02 min",
}
NUMBERS = {4140: "4,140", 2.5: "2.5", 9109.058663715743: "9,109", 0: "0", 1234567: "1,234,567"}
PERCENTS = {0.992: "99.2%", 1.0: "100%", 0.5: "50.0%", 0.99999: "99.9%", 0.0: "0.0%"}


def test_durations_numbers_rates_and_percentages() -> None:
    assert {s: formats.duration(s) for s in DURATIONS} == DURATIONS
    assert formats.duration(0.045, milliseconds=True) == "45 ms"
    assert formats.duration(0.9996, milliseconds=True) == "1.0 s"
    assert formats.duration(None) == formats.duration(float("nan")) == "-"
    assert {n: formats.number(n) for n in NUMBERS} == NUMBERS
    assert formats.rate(9109.058663715743) == "9,109 rows/s"
    assert {f: formats.percent(f) for f in PERCENTS} == PERCENTS
    assert formats.percent(0.9999123, 3) == "99.991%"  # where the nines matter


def test_times_and_ages_in_the_console_time_zone(settings) -> None:
    moment = dt.datetime(2026, 12, 6, 20, 54, 21, 653209, tzinfo=dt.UTC)
    assert formats.when(moment) == "2026-12-06 20:54:21"
    assert formats.when(moment.isoformat()) == "2026-12-06 20:54:21"
    assert formats.when(None) == "-"
    # A time without a zone is taken as already in the console's.
    assert formats.when("2026-12-06T20:54:21") == "2026-12-06 20:54:21"
    now = moment + dt.timedelta(minutes=2, seconds=5)
    assert formats.ago(moment, now=now) == "2 min 05 s ago"
    assert formats.ago(moment.isoformat(), now=now) == "2 min 05 s ago"  # a JSON payload's
    assert formats.ago(None) == formats.ago("") == "-"
    assert formats.ago(moment, now=moment + dt.timedelta(seconds=3.4)) == "3 s ago"
    with timezone.override("Europe/Istanbul"):
        assert formats.when(moment) == "2026-12-06 23:54:21"
        assert formats.time_zone_name() == "Europe/Istanbul"


def test_counts_in_a_stored_message_and_row_positions() -> None:
    text = "1349 rows: 0 created, 3 updated, 1341 unchanged, 5 failed"
    assert formats.counts_in_text(text) == (
        "1,349 rows: 0 created, 3 updated, 1,341 unchanged, 5 failed"
    )
    # Keys, dates, years and row positions keep their digits.
    for kept in ("B-01350 also on row 1350", "2026-12-07 12:00", "in 2026", "run 1234"):
        assert formats.counts_in_text(kept) == kept
    assert formats.position(1350) == "1350"


def test_the_template_filters_and_django_s_own_formats() -> None:
    moment = dt.datetime(2026, 12, 6, 20, 54, 21, tzinfo=dt.UTC)
    page = Template(
        "{% load console_formats %}{{ n|num }} {{ s|duration }} {{ s|duration_ms }} "
        "{{ r|rate:'rows' }} {{ f|percent }} {{ t|when }} {% time_zone %} | {{ n }} {{ t }} "
        "{{ t|date }}"
    ).render(Context({"n": 4140, "s": 0.454, "r": 9109.06, "f": 0.992, "t": moment}))
    # Django's own rendering (admin lists, read-only fields) agrees: config/formats/en.
    assert page == (
        "4,140 0.45 s 454 ms 9,109 rows/s 99.2% 2026-12-06 20:54:21 UTC | "
        "4,140 2026-12-06 20:54:21 2026-12-06"
    )


def test_times_in_the_cache_inspector_s_text() -> None:
    """The inspector's lines (its own times, and texts it quotes, such as Redis's error)
    show times as the console does; a date-like text that is no date stays as it was."""
    from sync.console.admin_base import inspector_text

    text = inspector_text(
        [
            "last write: version 7 at 2026-12-07T02:16:57.880000Z",
            "Redis: cannot be read: since 2026-12-07T02:16:57",
            "why: key stamped 2026-13-45T99:00:00",
        ]
    )
    assert text == (
        "last write: version 7 at 2026-12-07 02:16:57\n"
        "Redis: cannot be read: since 2026-12-07 02:16:57\n"
        "why: key stamped 2026-13-45T99:00:00"
    )


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_browser_s_live_values_follow_the_same_rules() -> None:
    script = """
        global.window = {}; global.document = { querySelector: () => null };
        require(process.argv[1]);
        const F = window.ConsoleFormats, input = JSON.parse(process.argv[2]);
        console.log(JSON.stringify({
          durations: input.durations.map((s) => F.duration(s)),
          numbers: input.numbers.map((n) => F.number(n)),
          percents: input.percents.map((f) => F.percent(f)),
          ms: F.duration(0.045, true), rate: F.rate(9109.058663715743),
          when: F.when("2026-12-06T20:54:21.653209+00:00"),
          counts: F.countsInText(input.message),
        }));
    """
    message = "1349 rows: 0 created, 3 updated, 1341 unchanged, 5 failed; row 1350"
    given = {
        "durations": list(DURATIONS),
        "numbers": list(NUMBERS),
        "percents": list(PERCENTS),
        "message": message,
    }
    out = subprocess.run(
        ["node", "-e", script, str(ROOT / "static/console/formats.js"), json.dumps(given)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    found = json.loads(out)
    assert found == {
        "durations": list(DURATIONS.values()),
        "numbers": list(NUMBERS.values()),
        "percents": list(PERCENTS.values()),
        "ms": "45 ms",
        "rate": "9,109 rows/s",
        "when": "2026-12-06 20:54:21",
        "counts": formats.counts_in_text(message),
    }


@pytest.mark.django_db
def test_thousands_separators_stay_out_of_form_inputs_and_links(
    client_for, settings, tmp_path
) -> None:
    """USE_THOUSAND_SEPARATOR groups what a page shows, never what a form sends back or a
    link carries: a batch size of 2500 is typed and saved as 2500."""
    from django.urls import reverse

    from sync.models import SyncConfig
    from sync.ops.source_settings import config_for, config_update
    from tests.console.sources import sources_file

    settings.SYNC_INGEST_SOURCES_FILE = str(sources_file(tmp_path))
    config_for("buyers")
    config_update(source="buyers", batch_size=2500)
    config = SyncConfig.objects.get(source="buyers")
    page = (
        client_for("superuser")
        .get(reverse("admin:sync_syncconfig_change", args=[config.pk]))
        .content.decode()
    )
    assert 'name="batch_size" value="2500"' in page
    assert not re.search(r'<input[^>]*value="\d{1,3},\d{3}', page)
