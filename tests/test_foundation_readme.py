"""README.md documents every environment variable the configuration reads."""

from __future__ import annotations

import re

from config.env import REQUIRED_IN_PRODUCTION
from devtools.devservices import ROOT

SOURCES = (
    "config/settings.py",
    "config/env.py",
    "devtools/demo.py",
    "devtools/demo_data/setup.py",
)
READ = re.compile(
    r"""(?:\benv(?:\.\w+)?\(|os\.environ\.get\(|os\.environ\[)\s*["']([A-Z][A-Z0-9_]+)["']"""
)


def _variables_read() -> set[str]:
    return {name for source in SOURCES for name in READ.findall((ROOT / source).read_text())}


def _documented() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    return {
        match[1]: match[0]
        for match in re.findall(r"^(\| `([A-Z][A-Z0-9_]+)` \|.*)$", readme, re.MULTILINE)
    }


def test_every_variable_the_settings_read_is_in_the_readme_table() -> None:
    read = _variables_read()
    assert {"DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "SECRET_KEY"} <= read
    assert sorted(read - _documented().keys()) == []


def test_the_readme_marks_exactly_the_production_requirements() -> None:
    required = {name for name, row in _documented().items() if "**required.**" in row}
    assert required == set(REQUIRED_IN_PRODUCTION)
