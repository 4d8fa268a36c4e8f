"""The console tests' spreadsheet sources: the project's sources file with its sheets in a
test folder (the buyers sheet written by the demo's writer, ``devtools/sheets.py``); and the
console's role groups, made again after a transactional test flushed them."""

from __future__ import annotations

import importlib
from pathlib import Path

from devtools.sheets import BUYER_HEADERS, buyer_rows, write

SOURCES_TOML = Path(__file__).resolve().parents[2] / "config" / "ingest_sources.toml"


def sources_file(folder: Path) -> Path:
    """A copy of config/ingest_sources.toml reading its sheets from ``folder``."""
    text = SOURCES_TOML.read_text()
    text = text.replace(".run/demo/buyers.csv", str(folder / "buyers.csv"))
    text = text.replace(".run/demo/sellers.csv", str(folder / "sellers.csv"))
    path = folder / "sources.toml"
    path.write_text(text)
    return path


def buyers_sheet(folder: Path, count: int, *, bad: int = 0) -> Path:
    """``count`` buyers of the demo's sheet; ``bad`` of them (spread evenly) carry an
    inquiry date that is not a date, so they fail validation and stay out (gaps)."""
    rows = list(buyer_rows(count, 0))
    date = BUYER_HEADERS.index("Inquiry Date")
    for i in range(bad):
        rows[i * (count // bad)][date] = "2024-13-45"
    return write(folder / "buyers.csv", BUYER_HEADERS, rows)


def ensure_roles() -> None:
    """The console's groups, as the data migration creates them: a transactional test
    before this one (a worker, the live server) flushed them with every other row."""
    from django.apps import apps

    migration = importlib.import_module("sync.migrations.0005_add_console_roles")
    migration.create_roles(apps, None)
