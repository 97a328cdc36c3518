"""No network unless asked: with every socket blocked, a tracker and an estimate still run."""

from __future__ import annotations

import socket
import time

import pytest

from carbonlog.estimate import estimate
from carbonlog.intensity import resolve_site
from carbonlog.tracking import Tracker


class NetworkUsed(AssertionError):
    pass


@pytest.fixture
def no_sockets(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""

    def refuse(*args, **kwargs):
        raise NetworkUsed(f"network call: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    for name in ("CARBONLOG_LOCATION", "CARBONLOG_PUE", "CARBONLOG_INTENSITY"):
        monkeypatch.delenv(name, raising=False)


def test_the_block_works(no_sockets):
    with pytest.raises(NetworkUsed):
        socket.create_connection(("127.0.0.1", 9))


def test_a_tracker_runs_without_the_network(no_sockets):
    tracker = Tracker(
        location="gcp:europe-west4", power_w={"gpu": 100.0, "cpu": 10.0}, ledger=False
    ).start()
    time.sleep(0.02)
    interval = tracker.mark("epoch")
    summary = tracker.stop()
    site = resolve_site("gcp:europe-west4")
    assert interval.intensity_g_per_kwh == site.grid.g_per_kwh
    assert summary.intervals[-1].pue == site.pue == pytest.approx(1.09)


def test_every_kind_of_location_resolves_without_the_network(no_sockets):
    for location in ("FR", "US-CA", "CA-QC", "aws:eu-north-1", "azure:westeurope", None):
        site = resolve_site(location)
        assert site.current_g_per_kwh()[0] >= 0


def test_an_estimate_runs_without_the_network(no_sockets):
    e = estimate(
        "A100 SXM4 80 GB",
        count=8,
        hours=24,
        location="gcp:us-central1",
        compare_hardware="H100 SXM",
    )
    assert e.co2_kg > 0 and e.statement("latex")
