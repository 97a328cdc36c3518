"""Keep every test away from the user's own ledger and configuration."""

from __future__ import annotations

import os

import pytest

# Keras 3 picks its backend at first import; TensorFlow is not installed here.
os.environ.setdefault("KERAS_BACKEND", "torch")

CONFIG_ENV = ("CARBONLOG_LOCATION", "CARBONLOG_PUE", "CARBONLOG_INTENSITY")


@pytest.fixture(autouse=True)
def isolated_carbonlog_home(tmp_path_factory, monkeypatch):
    """A fresh CARBONLOG_HOME per test (subprocesses inherit it) and no ambient configuration."""
    monkeypatch.setenv("CARBONLOG_HOME", str(tmp_path_factory.mktemp("carbonlog_home")))
    for name in CONFIG_ENV:
        monkeypatch.delenv(name, raising=False)
