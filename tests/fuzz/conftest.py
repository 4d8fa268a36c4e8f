"""Fuzzing fixtures: the project's ingestion sources with their sheets in this test's folder
(the same set-up as tests/ingest), shared by the spreadsheet and the console API fuzzers."""

from __future__ import annotations

from tests.ingest.conftest import _ingest_settings  # noqa: F401 - an autouse fixture
