"""Reading, validating and encoding a run's batches in a second process: both cores busy.

``ReadAhead`` (readahead.py) overlaps the reading with the writing on a thread, but a thread
of Python waits for the interpreter lock after every statement: the run's own work and the
reader's take turns on one core. ``ReaderProcess`` runs the same work, ``check_batch`` of
every batch (pipeline/batches.py), in a process of its own (``spawn``: a fresh interpreter,
never a fork of a process holding database connections and threads), and hands the checked
batches back through a bounded queue: memory stays flat (``depth`` batches in flight).

The reader never touches the database: it reads a CSV file itself, or the spool a workbook's
or a Google Sheet's pre-scan wrote (spool.py), and it is given what the run looked up first
(the validator, the sheet's duplicate keys). Whatever it raises is raised in the run where
that batch would have been, as in turn; if it dies (killed, out of memory) the run fails
saying so instead of waiting; ``close`` (a cancelled run, or any way out of the load) stops
it, and kills it if it does not stop within ``STOP_SECONDS``.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings

from sync.ingest.exceptions import IngestError
from sync.ingest.reader_boot import serve

# The last reader's report in this process (the benchmark prints its CPU time and memory).
last_stats: ReaderStats | None = None
POLL_SECONDS = 0.5  # how often a wait for the next batch looks whether the reader still lives
STOP_SECONDS = 5.0  # how long a reader asked to stop may take before it is killed


@dataclass
class ReadJob:
    """What the reader needs: picklable, no connection, no settings the run changed."""

    source: Any  # a CsvSource, or a spool's path (SpoolFile)
    config: Any  # the run's SourceConfig
    validator: Any  # the run's RowValidator
    duplicates: dict[str, list[int]]
    batch_size: int
    settings_module: str = field(default_factory=lambda: os.environ["DJANGO_SETTINGS_MODULE"])


@dataclass
class ReaderStats:
    """What the reader reports when it has read everything (the run's timings; the bench)."""

    fetch_ms: float = 0.0
    validate_ms: float = 0.0
    read_digest: bytes | None = None
    cpu_seconds: float = 0.0
    peak_rss_kb: int = 0
    batches: int = 0


class ReaderCrashedError(IngestError):
    """The reader process died without a word (killed, out of memory)."""


class ReaderProcess:
    """The checked batches of ``job``, in order, read in a second process. Iterate it once;
    ``stats`` is set when it ends; ``close`` (also on leaving a ``with`` block) stops it."""

    def __init__(self, job: ReadJob, *, depth: int = 2) -> None:
        context = _context()
        self._queue = context.Queue(maxsize=depth)
        self._stop = context.Event()
        # NOTE: the job goes pickled: its unpickling needs the models, which the reader
        # loads (django.setup) before it reads it.
        self.process = context.Process(
            target=serve,  # in a module that loads nothing before Django is set up
            args=(pickle.dumps(job, pickle.HIGHEST_PROTOCOL), self._queue, self._stop),
            name="sync-reader",
            daemon=True,
        )
        self.process.start()
        self.stats: ReaderStats | None = None

    def __iter__(self) -> Iterator[tuple[None, Any]]:
        while True:
            try:
                kind, payload = pickle.loads(self._queue.get(timeout=POLL_SECONDS))  # noqa: S301 - our child's
            except queue.Empty:
                if not self.process.is_alive() and self._queue.empty():
                    code = self.process.exitcode
                    msg = (
                        f"the reader process stopped without finishing (exit code {code}): "
                        "killed, or out of memory? Nothing after the last batch it sent was "
                        "written; run the sync again (or set SYNC_INGEST_READER_PROCESS_ROWS=0 "
                        "to read in the run's own process)"
                    )
                    raise ReaderCrashedError(msg) from None
                continue
            if kind == "batch":
                yield None, payload  # as ReadAhead: (the batch, here left in the reader, checked)
            elif kind == "error":
                raise payload
            else:
                global last_stats  # NOTE: the benchmark's window into the reader
                self.stats = last_stats = payload
                return

    def close(self) -> None:
        """Stop the reader: what it queued is dropped, which frees it if it waits to queue
        more; killed if it does not stop within ``STOP_SECONDS``."""
        self._stop.set()
        deadline = time.monotonic() + STOP_SECONDS
        while self.process.is_alive() and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                self._queue.get(timeout=0.05)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self._queue.close()
        self._queue.join_thread()

    def __enter__(self) -> ReaderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _context():
    """The ``forkserver`` context: its server is a fresh interpreter (never a fork of a
    process holding database connections or threads), started once per process with Django
    set up and the pipeline imported (reader_preload); each reader is then a fork of it, ready
    in milliseconds instead of a new interpreter's second or more."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["sync.ingest.reader_preload"])
    return context


WARM_BYTES = 1 << 20  # a file this large likely has rows enough for the reader process


def warm_up(kind: str, location: str) -> bool:
    """Start the readers' forkserver now, on a thread of its own, when this run will likely
    want a reader (a file of ``WARM_BYTES`` or more): a fresh interpreter setting Django up
    takes a second or more (several on a busy machine), which then overlaps the run's
    pre-scan instead of delaying its first batch. Once per process; True if it was started."""
    if not settings.SYNC_INGEST_READER_PROCESS_ROWS or kind not in ("csv", "xlsx"):
        return False
    try:
        if Path(location).stat().st_size < WARM_BYTES:
            return False
    except OSError:
        return False  # the run says what is wrong with the file
    threading.Thread(target=_start_server, name="sync-reader-warm-up", daemon=True).start()
    return True


def _start_server() -> None:
    from multiprocessing import forkserver

    _context()
    forkserver.ensure_running()


@dataclass
class SpoolFile:
    """A spool (spool.py) read by another process through its path."""

    path: str

    def rows(self) -> Iterator:
        with Path(self.path).open("rb") as file:
            while True:
                try:
                    chunk = pickle.load(file)  # noqa: S301 - the run's own spool
                except EOFError:
                    return
                yield from chunk


def run_job(job_bytes: bytes, put, stopped) -> None:
    """The reader's work (reader_boot.serve), callable in any process (``put``: where each
    message goes; ``stopped``: whether to stop before the next batch)."""
    import itertools

    from sync.ingest.pipeline.batches import check_batch
    from sync.ingest.upsert import BatchWriter

    stats = ReaderStats()
    try:
        job: ReadJob = pickle.loads(job_bytes)  # noqa: S301 - the run's own job
        validator = job.validator
        writer = BatchWriter(job.config, validator)
        rows = job.source.rows()
        cpu = time.process_time()
        while not stopped():
            t = time.perf_counter()
            batch = list(itertools.islice(rows, job.batch_size))
            stats.fetch_ms += (time.perf_counter() - t) * 1000
            if not batch:
                break
            t = time.perf_counter()
            checked = check_batch(batch, validator, writer, job.duplicates)
            stats.validate_ms += (time.perf_counter() - t) * 1000
            stats.batches += 1
            put(pickle.dumps(("batch", checked), pickle.HIGHEST_PROTOCOL))
        else:
            return  # stopped: nobody reads any more
        stats.read_digest = getattr(job.source, "read_digest", None)
        stats.cpu_seconds = time.process_time() - cpu
        stats.peak_rss_kb = _peak_rss_kb()
        put(pickle.dumps(("done", stats), pickle.HIGHEST_PROTOCOL))
    except BaseException as e:  # noqa: BLE001 - raised in the run, where the batch would be
        try:
            message = pickle.dumps(("error", e), pickle.HIGHEST_PROTOCOL)
            pickle.loads(message)  # noqa: S301 - ours: the run must be able to read it
        except Exception:  # noqa: BLE001 - an error that does not pickle: its text
            text = f"the reader process failed: {type(e).__name__}: {e}"
            message = pickle.dumps(("error", IngestError(text)), pickle.HIGHEST_PROTOCOL)
        put(message)


def _peak_rss_kb() -> int:
    """This process's peak resident memory (VmHWM), 0 where /proc has none."""
    with (
        contextlib.suppress(OSError, StopIteration, ValueError),
        Path("/proc/self/status").open() as status,
    ):
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return 0  # pragma: no cover - Linux has it
