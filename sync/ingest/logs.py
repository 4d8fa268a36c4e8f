"""Per-row logs, written in bulk: one ``COPY`` per batch into ``sync_record_logs`` and one
into ``sync_error_logs``, inside the batch's transaction (a batch's rows and their logs commit
together). Error text is redacted before it is buffered (DESIGN I6); values never are stored,
only their lengths.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import connection

from sync.redaction import redact

RECORD_COLUMNS = ("run_id", "row_number", "natural_key", "action", "object_id")
ERROR_COLUMNS = (
    "run_id",
    "source",
    "category",
    "code",
    "row_number",
    "natural_key",
    "column",
    "value_length",
    "column_limit",
    "reason",
    "retryable",
)


@dataclass
class LogBuffer:
    run_id: int
    source: str
    records: list[tuple] = field(default_factory=list)
    errors: list[tuple] = field(default_factory=list)

    def record(
        self,
        row_number: int,
        key: str,
        action: str,
        object_id: int | None = None,
    ) -> None:
        self.records.append((self.run_id, row_number, key, action, object_id))

    def error(
        self,
        *,
        category: str,
        reason: str,
        code: str = "",
        row_number: int | None = None,
        key: str = "",
        column: str = "",
        value_length: int | None = None,
        limit: int | None = None,
        retryable: bool = False,
    ) -> None:
        self.errors.append(
            (
                self.run_id,
                self.source,
                category,
                code,
                row_number,
                key,
                column,
                value_length,
                limit,
                redact(reason)[:2000],
                retryable,
            )
        )

    def flush(self) -> None:
        """COPY what is buffered (in the caller's transaction) and empty the buffer."""
        with connection.cursor() as cursor:
            for table, columns, rows in (
                ("sync_record_logs", RECORD_COLUMNS, self.records),
                ("sync_error_logs", ERROR_COLUMNS, self.errors),
            ):
                if not rows:
                    continue
                quoted = ", ".join(connection.ops.quote_name(c) for c in columns)
                statement = f"COPY {table} ({quoted}) FROM STDIN"
                with cursor.copy(statement) as copy:
                    for row in rows:
                        copy.write_row(row)
        self.clear()

    def clear(self) -> None:
        self.records.clear()
        self.errors.clear()
