"""Fixtures shared by all tests: a unique per-run name prefix and guaranteed clean-up."""

from __future__ import annotations

import os
import secrets
import sys
from typing import Iterator

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from helpers import cleanup, ensure_collection_path  # noqa: E402

ensure_collection_path()
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build", "collections"))

# Every name a test makes starts with this: 'ln' + 3 random hex digits, so several runs (and
# whatever else lives on the machine) never collide. Interface names stay within 15 bytes.
RUN_PREFIX = os.environ.get("LINUXNET_TEST_PREFIX") or "ln%s" % secrets.token_hex(2)[:3]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "root: needs root and a real kernel")


@pytest.fixture(scope="session")
def run_prefix() -> str:
    return RUN_PREFIX


@pytest.fixture
def prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh prefix per test (run prefix + counter); everything with it is removed afterwards."""
    counter = getattr(request.config, "_linuxnet_counter", 0) + 1
    request.config._linuxnet_counter = counter
    value = "%s%s" % (RUN_PREFIX, _base36(counter).rjust(2, "0"))  # fixed width: no prefix overlaps
    cleanup(value)
    try:
        yield value
    finally:
        cleanup(value)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, rest = divmod(number, 36)
        text = digits[rest] + text
        if number == 0:
            return text
