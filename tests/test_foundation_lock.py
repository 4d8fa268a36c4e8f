"""The lock files ./dev installs from hold every version pyproject.toml pins, with hashes, and
nothing a fresh machine could not fetch from PyPI."""

from __future__ import annotations

import re
import tomllib

import pytest

from devtools.devservices import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==(\S+)$")
LOCKED = re.compile(r"^([A-Za-z0-9_.\-]+)==(\S+) \\$", re.MULTILINE)


def _name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(*extras: str) -> dict[str, str]:
    project = PYPROJECT["project"]
    wanted = list(project["dependencies"])
    for extra in extras:
        wanted += project["optional-dependencies"][extra]
    pins = {}
    for requirement in wanted:
        match = PIN.match(requirement)
        assert match, f"{requirement!r} in pyproject.toml is not pinned with =="
        pins[_name(match[1])] = match[2]
    return pins


def _locked(lock: str) -> dict[str, str]:
    text = (ROOT / "requirements" / lock).read_text()
    return {_name(name): version for name, version in LOCKED.findall(text)}


@pytest.mark.parametrize(
    ("lock", "extras"), [("dev.txt", ("dev",)), ("bench.txt", ("dev", "bench"))]
)
def test_the_lock_holds_every_pin_of_pyproject(lock: str, extras: tuple[str, ...]) -> None:
    locked = _locked(lock)
    differ = {
        name: (version, locked.get(name))
        for name, version in _pins(*extras).items()
        if locked.get(name) != version
    }
    assert differ == {}, f"pyproject.toml and requirements/{lock} differ: run ./dev lock"


@pytest.mark.parametrize("lock", ["dev.txt", "bench.txt"])
def test_every_locked_file_is_hashed_and_comes_from_pypi(lock: str) -> None:
    text = (ROOT / "requirements" / lock).read_text()
    blocks = re.split(r"^(?=[A-Za-z0-9])", text, flags=re.MULTILINE)[1:]
    assert len(blocks) == len(LOCKED.findall(text)) > 100
    assert all("--hash=sha256:" in block for block in blocks)
    for forbidden in ("--index-url", "--extra-index-url", "--find-links", "file://", " @ "):
        assert forbidden not in text
