"""A one-line progress bar for management commands (redrawn in place on a terminal)."""

from __future__ import annotations


def bar(done: int, total: int, width: int = 30) -> str:
    filled = int(width * done / total) if total else width
    percent = 100 * done / total if total else 100
    return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {percent:5.1f}%"
