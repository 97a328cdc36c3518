"""Keep every test away from the user's own ledger and configuration."""

from __future__ import annotations

import logging
import os

import pytest

import carbonlog._log

# Keras 3 picks its backend at first import; TensorFlow is not installed here.
os.environ.setdefault("KERAS_BACKEND", "torch")

CONFIG_ENV = ("CARBONLOG_LOCATION", "CARBONLOG_PUE", "CARBONLOG_INTENSITY")


@pytest.fixture(autouse=True)
def isolated_carbonlog_home(tmp_path_factory, monkeypatch):
    """A fresh CARBONLOG_HOME per test (subprocesses inherit it) and no ambient configuration."""
    monkeypatch.setenv("CARBONLOG_HOME", str(tmp_path_factory.mktemp("carbonlog_home")))
    for name in CONFIG_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(carbonlog._log, "_said", set())  # say-once memory starts empty
    monkeypatch.setattr(carbonlog._log, "_ranks", None)  # no rank an earlier test's tracker set


def _records(level: int):
    """Records of the "carbonlog" logger at `level` and above, whatever its propagation."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(level)
    handler.emit = records.append
    logger = logging.getLogger("carbonlog")
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


@pytest.fixture
def carbon_log():
    """Every message the "carbonlog" logger gives in this test."""
    yield from _records(logging.DEBUG)


@pytest.fixture
def carbon_warnings():
    """The "carbonlog" logger's warnings (and worse) in this test."""
    yield from _records(logging.WARNING)
