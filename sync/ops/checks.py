"""The ops check: what the engine's beat entry and the hook after an ingest task run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sync.ingest.source_settings import config_ensure, config_for
from sync.models import SyncAlert, SyncConfig
from sync.ops.rules import evaluate
from sync.ops.stats import record_health, record_run_metrics, run_statistics

logger = logging.getLogger(__name__)


@dataclass
class CheckResult:
    alerts: list[SyncAlert] = field(default_factory=list)
    runs_recorded: int = 0
    health_checks: int = 0

    def __str__(self) -> str:
        return (
            f"{len(self.alerts)} alert(s), {self.runs_recorded} run(s) recorded, "
            f"{self.health_checks} health check(s)"
        )


def ops_check(*, source: str | None = None) -> CheckResult:
    """Evaluate every rule (of one source, or of all and the engine), record the finished
    runs' metrics and a health check per source."""
    configs = [config_for(source)] if source else config_ensure()
    result = CheckResult(runs_recorded=record_run_metrics())
    statistics = run_statistics()
    for config in configs:
        result.alerts += evaluate(config)
        if config.source != SyncConfig.ENGINE:
            record_health(config, statistics.get(config.source))
            result.health_checks += 1
    logger.info("ops check: %s", result)
    return result
