"""Process heartbeats: each Celery worker, beat and web process writes its row of
``sync_process_heartbeats`` every ``SYNC_HEARTBEAT_INTERVAL`` seconds from a daemon thread.

The row is keyed by (kind, node): a worker restarted under the same node name (systemd, the
demo's supervisor) keeps its row, and a start whose predecessor did not shut down cleanly
counts as a restart — whoever restarted it. The watchdog (``sync.ops.watchdog``) reads the rows.
"""

from __future__ import annotations

import logging
import os
import threading

from django.db import DatabaseError, connection

from sync.redaction import RedactPiiFilter

logger = logging.getLogger(__name__)
logger.addFilter(RedactPiiFilter())

_BEAT = """
    WITH previous AS (
        SELECT pid, stopped_at FROM sync_process_heartbeats
        WHERE kind = %(kind)s AND node = %(node)s)
    INSERT INTO sync_process_heartbeats AS h (kind, node, pid, started_at, last_seen_at,
                                              stopped_at, restarts)
    VALUES (%(kind)s, %(node)s, %(pid)s, now(), now(), NULL, 0)
    ON CONFLICT (kind, node) DO UPDATE SET
        restarts = h.restarts + CASE WHEN h.pid <> EXCLUDED.pid AND h.stopped_at IS NULL
                                     THEN 1 ELSE 0 END,
        started_at = CASE WHEN h.pid <> EXCLUDED.pid OR h.stopped_at IS NOT NULL
                          THEN now() ELSE h.started_at END,
        pid = EXCLUDED.pid, last_seen_at = now(), stopped_at = NULL
    RETURNING restarts, (SELECT pid <> %(pid)s AND stopped_at IS NULL FROM previous)
"""


def heartbeat_beat(*, kind: str, node: str, pid: int) -> bool:
    """Record that this process is alive; True when this beat found an unclean restart
    (another pid of this node that never said it stopped)."""
    with connection.cursor() as cursor:
        cursor.execute(_BEAT, {"kind": kind, "node": node, "pid": pid})
        restarts, restarted = cursor.fetchone()
    if restarted:
        logger.warning("%s %s restarted after an unclean exit (restart %s)", kind, node, restarts)
    return bool(restarted)


def heartbeat_stop(*, kind: str, node: str, pid: int) -> None:
    """A clean shutdown: the next start of this node is not a restart after a crash."""
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE sync_process_heartbeats SET stopped_at = now()"
            " WHERE kind = %s AND node = %s AND pid = %s",
            [kind, node, pid],
        )


class Heartbeat:
    """A daemon thread that beats every ``interval`` seconds until ``stop()``; ``also``: a
    callable run after each beat (the web process's watchdog check)."""

    def __init__(self, *, kind: str, node: str, interval: float, also=None) -> None:
        self.kind, self.node, self.interval, self.also = kind, node, interval, also
        self.pid = os.getpid()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{kind}", daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def _beat(self) -> None:
        heartbeat_beat(kind=self.kind, node=self.node, pid=self.pid)
        if self.also is not None:
            self.also()

    def _attempt(self, action) -> bool:
        try:
            action()
        except DatabaseError:
            # NOTE: the connection is dropped, so the next attempt reconnects.
            connection.close()
            return False
        return True

    def _run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            ok = self._attempt(self._beat)
            if not ok and not failing:  # logged once per outage, not every beat
                logger.warning(
                    "heartbeat of %s %s failed; retrying every %ss",
                    self.kind,
                    self.node,
                    self.interval,
                )
            failing = not ok
            self._stopping.wait(self.interval)
        if not self._attempt(lambda: heartbeat_stop(kind=self.kind, node=self.node, pid=self.pid)):
            logger.warning("could not record the clean stop of %s %s", self.kind, self.node)
        connection.close()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)
