"""Ingestion fixtures: a source configuration per test, sheets written to real files, a local
HTTP server that speaks the Google Sheets v4 values API, and database helpers."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

import pytest
from django.db import connection

from devtools.sheets import BUYER_HEADERS, SELLER_HEADERS, buyer_rows, seller_rows, write

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SOURCES_TOML = Path(__file__).resolve().parents[2] / "config" / "ingest_sources.toml"


@pytest.fixture(autouse=True)
def _ingest_settings(settings, tmp_path) -> None:
    """Fast backoff; the project's source configuration with files in this test's folder."""
    settings.SYNC_INGEST_NETWORK_BACKOFF = 0.01
    settings.SYNC_INGEST_DB_BACKOFF = 0.01
    settings.SYNC_INGEST_LOCK_TIMEOUT_MS = 5000
    text = SOURCES_TOML.read_text()
    text = text.replace(".run/demo/buyers.csv", str(tmp_path / "buyers.csv"))
    text = text.replace(".run/demo/sellers.csv", str(tmp_path / "sellers.csv"))
    path = tmp_path / "sources.toml"
    path.write_text(text)
    settings.SYNC_INGEST_SOURCES_FILE = str(path)


def add_source(settings, text: str) -> None:
    """Append a [sources.*] table to this test's configuration."""
    path = Path(settings.SYNC_INGEST_SOURCES_FILE)
    path.write_text(path.read_text() + "\n" + text)


def set_source_key(settings, source: str, line: str) -> None:
    """Add ``line`` (``key = value``) to the [sources.<source>] table of this test's file."""
    path = Path(settings.SYNC_INGEST_SOURCES_FILE)
    table = f"[sources.{source}]\n"
    path.write_text(path.read_text().replace(table, table + line + "\n", 1))


@pytest.fixture
def buyers_sheet(tmp_path) -> Callable[..., Path]:
    def make(
        rows=None, *, count: int = 20, name: str = "buyers.csv", headers: list[str] | None = None
    ) -> Path:
        data = list(rows) if rows is not None else list(buyer_rows(count, 0))
        return write(tmp_path / name, headers or BUYER_HEADERS, data)

    return make


@pytest.fixture
def sellers_sheet(tmp_path) -> Callable[..., Path]:
    def make(rows=None, *, count: int = 10, name: str = "sellers.csv") -> Path:
        data = list(rows) if rows is not None else list(seller_rows(count))
        return write(tmp_path / name, SELLER_HEADERS, data)

    return make


def alter_columns(table: str, columns: list[str], type_sql: str) -> None:
    with connection.cursor() as cursor:
        for column in columns:
            cursor.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {type_sql}")


# --------------------------------------------------------------------------- Sheets server


class SheetsServer:
    """Google Sheets v4 ``spreadsheets/{id}/values/{range}`` on 127.0.0.1, with faults."""

    def __init__(self) -> None:
        self.sheets: dict[str, list[list[str]]] = {}
        self.fail_next = 0  # answer this many requests with 503
        self.fail_at: set[int] = set()  # … and these (1-based request numbers)
        self.fail_status = 503
        self.requests: list[str] = []
        self.api_key = "test-key"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(self.path)
                if server.fail_next > 0 or len(server.requests) in server.fail_at:
                    server.fail_next = max(server.fail_next - 1, 0)
                    return self._send(
                        server.fail_status,
                        {
                            "error": {
                                "code": server.fail_status,
                                "message": "The service is unavailable.",
                                "status": "UNAVAILABLE",
                            }
                        },
                    )
                url = urlparse(self.path)
                match = re.fullmatch(r"/v4/spreadsheets/([^/]+)/values/(.+)", url.path)
                if parse_qs(url.query).get("key") != [server.api_key]:
                    return self._send(
                        403,
                        {
                            "error": {
                                "code": 403,
                                "message": "bad key",
                                "status": "PERMISSION_DENIED",
                            }
                        },
                    )
                if not match or match.group(1) not in server.sheets:
                    return self._send(
                        404, {"error": {"code": 404, "message": "not found", "status": "NOT_FOUND"}}
                    )
                rows = server.sheets[match.group(1)]
                cells = unquote(match.group(2)).rsplit("!", 1)[-1]
                first, last = (int(n) for n in cells.split(":"))
                values = rows[first - 1 : last]
                while values and not any(values[-1]):
                    values.pop()
                body = {"range": unquote(match.group(2)), "majorDimension": "ROWS"}
                if values:
                    body["values"] = values
                return self._send(200, body)

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v4/spreadsheets"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> SheetsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def sheets_server(settings) -> Iterator[SheetsServer]:
    with SheetsServer() as server:
        settings.SYNC_INGEST_SHEETS_API_URL = server.url
        settings.SYNC_INGEST_SHEETS_API_KEY = server.api_key
        settings.SYNC_INGEST_SHEETS_CREDENTIALS = ""
        yield server
