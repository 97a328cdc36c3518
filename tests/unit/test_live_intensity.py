"""Electricity Maps client against a local server on 127.0.0.1 that speaks its JSON."""

from __future__ import annotations

import json
import logging
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from carbonlog.intensity import resolve_site
from carbonlog.intensity.live import ElectricityMaps, LiveError

TOKEN = "s3cr3t-token-value"


def em_body(zone: str = "FR", g_per_kwh: float = 42.0) -> bytes:
    """The shape of GET /v3/carbon-intensity/latest."""
    return json.dumps(
        {
            "zone": zone,
            "carbonIntensity": g_per_kwh,
            "datetime": "2026-11-27T02:00:00.000Z",
            "updatedAt": "2026-11-27T01:47:33.014Z",
            "createdAt": "2026-11-24T02:49:12.410Z",
            "emissionFactorType": "lifecycle",
            "isEstimated": True,
            "estimationMethod": "TIME_SLICER_AVERAGE",
        }
    ).encode()


class FakeElectricityMaps:
    """A ThreadingHTTPServer whose next answers are queued as (status, body, delay_s)."""

    def __init__(self):
        self.answers: list[tuple[int, bytes, float]] = []
        self.requests: list[tuple[str, dict]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                fake.requests.append((self.path, self.headers))
                status, body, delay_s = fake.answers.pop(0) if fake.answers else (200, em_body(), 0)
                time.sleep(delay_s)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v3"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Clock:
    def __init__(self):
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def server():
    fake = FakeElectricityMaps()
    yield fake
    fake.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def client(server, clock):
    return ElectricityMaps(
        token=TOKEN,
        base_url=server.url,
        timeout_s=0.5,
        min_interval_s=60,
        backoff_s=30,
        max_backoff_s=120,
        clock=clock,
    )


def test_latest_asks_for_the_zone_with_the_token_in_the_header(server, client):
    value, source = client.latest("FR")
    assert value == 42.0
    assert source == "electricitymaps:FR 2026-11-27T02:00:00.000Z"
    path, headers = server.requests[0]
    assert path == "/v3/carbon-intensity/latest?zone=FR"
    assert headers.get("auth-token") == TOKEN
    assert TOKEN not in path


def test_coordinates_are_sent_as_lat_and_lon(server, clock):
    client = ElectricityMaps(token=TOKEN, lat=48.85, lon=2.35, base_url=server.url, clock=clock)
    client.latest("DE")  # the client's own coordinates win over the site's zone
    assert server.requests[0][0] == "/v3/carbon-intensity/latest?lat=48.85&lon=2.35"


def test_answers_are_cached_for_the_minimum_period(server, client, clock):
    server.answers = [(200, em_body(g_per_kwh=40.0), 0), (200, em_body(g_per_kwh=60.0), 0)]
    assert client.latest("FR")[0] == 40.0
    clock.now_s += 59
    assert client.latest("FR")[0] == 40.0
    assert len(server.requests) == 1
    clock.now_s += 2
    assert client.latest("FR")[0] == 60.0
    assert len(server.requests) == 2


@pytest.mark.parametrize("status", [401, 429, 500])
def test_http_errors_are_live_errors_without_the_token(server, client, status):
    server.answers = [(status, b'{"error": "nope"}', 0)]
    with pytest.raises(LiveError, match=f"HTTP {status}") as info:
        client.latest("FR")
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"zone": "FR"}',
        b'{"carbonIntensity": null}',
        b'{"carbonIntensity": "lots"}',
        b'{"carbonIntensity": -5}',
        b'{"carbonIntensity": NaN}',
    ],
)
def test_malformed_bodies_are_live_errors(server, client, body):
    server.answers = [(200, body, 0)]
    with pytest.raises(LiveError):
        client.latest("FR")


def test_a_slow_server_times_out_quickly(server, clock):
    client = ElectricityMaps(token=TOKEN, base_url=server.url, timeout_s=0.2, clock=clock)
    server.answers = [(200, em_body(), 1.0)]
    started_s = time.monotonic()
    with pytest.raises(LiveError, match="unreachable"):
        client.latest("FR")
    assert time.monotonic() - started_s < 0.9


def test_nothing_listening_is_a_live_error(clock):
    client = ElectricityMaps(
        token=TOKEN, base_url="http://127.0.0.1:9/v3", timeout_s=0.5, clock=clock
    )
    with pytest.raises(LiveError, match="unreachable"):
        client.latest("FR")


def test_failures_back_off_doubling_up_to_the_maximum(server, client, clock):
    server.answers = [(500, b"", 0)] * 4
    with pytest.raises(LiveError):
        client.latest("FR")
    clock.now_s += 29  # backoff_s=30: no request yet
    with pytest.raises(LiveError, match="backing off"):
        client.latest("FR")
    assert len(server.requests) == 1
    clock.now_s += 1
    with pytest.raises(LiveError, match="HTTP 500"):
        client.latest("FR")
    clock.now_s += 59  # second failure: 60 s
    with pytest.raises(LiveError, match="backing off"):
        client.latest("FR")
    clock.now_s += 1
    with pytest.raises(LiveError, match="HTTP 500"):
        client.latest("FR")
    assert len(server.requests) == 3
    clock.now_s += 120  # third failure: 120 s, capped by max_backoff_s
    server.answers = [(200, em_body(g_per_kwh=50.0), 0)]
    assert client.latest("FR")[0] == 50.0


def test_the_token_never_appears_in_repr_or_describe(server, client):
    site = resolve_site("FR", live=client)
    for text in (repr(client), repr(site), str(site.describe()), str(client.describe("FR"))):
        assert TOKEN not in text


def test_token_from_environment_and_missing_token(monkeypatch):
    monkeypatch.delenv("ELECTRICITYMAPS_TOKEN", raising=False)
    monkeypatch.delenv("CARBONLOG_ELECTRICITYMAPS_TOKEN", raising=False)
    with pytest.raises(ValueError, match="ELECTRICITYMAPS_TOKEN"):
        ElectricityMaps()
    monkeypatch.setenv("CARBONLOG_ELECTRICITYMAPS_TOKEN", TOKEN)
    assert TOKEN not in repr(ElectricityMaps())
    site = resolve_site("FR", live="electricitymaps")
    assert isinstance(site.live, ElectricityMaps)
    assert site.describe()["live"]["place"] == "FR"


def test_bad_client_options_fail_at_construction():
    with pytest.raises(ValueError, match="lat and lon"):
        ElectricityMaps(token=TOKEN, lat=1.0)
    with pytest.raises(ValueError, match="out of range"):
        ElectricityMaps(token=TOKEN, lat=100.0, lon=0.0)
    with pytest.raises(ValueError, match="timeout_s"):
        ElectricityMaps(token=TOKEN, timeout_s=float("nan"))


def test_site_uses_live_values_and_the_zone_of_its_location(server, client, clock):
    server.answers = [(200, em_body("DE", 300.0), 0), (200, em_body("DE", 250.0), 0)]
    site = resolve_site("DE", live=client)
    assert site.current_g_per_kwh() == (300.0, "electricitymaps:DE 2026-11-27T02:00:00.000Z")
    clock.now_s += 61  # a long run sees the grid change
    assert site.current_g_per_kwh()[0] == 250.0
    assert server.requests[0][0].endswith("zone=DE")


def test_cloud_region_asks_about_the_grid_it_sits_in(server, client):
    site = resolve_site("gcp:europe-west9", live=client)
    site.current_g_per_kwh()
    assert server.requests[0][0].endswith("zone=FR")


def test_site_falls_back_to_the_table_and_says_so_once(server, client, clock, carbon_log):
    server.answers = [(500, b"", 0), (401, b"", 0)]
    site = resolve_site("FR", live=client)
    table = site.grid.g_per_kwh
    for _ in range(3):
        value, source = site.current_g_per_kwh()
        assert value == table
        assert source.endswith("(live unavailable)")
        clock.now_s += 40
    warnings = [r for r in carbon_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "live carbon intensity unavailable" in warnings[0].getMessage()
    assert all(TOKEN not in r.getMessage() for r in carbon_log)
    clock.now_s += 200
    assert site.current_g_per_kwh()[0] == 42.0  # recovered


def test_site_survives_any_exception_from_a_custom_live_source(carbon_log):
    class Broken:
        def latest(self, zone):
            raise KeyError("boom")

    site = resolve_site("SE", live=Broken())
    assert site.current_g_per_kwh()[0] == site.grid.g_per_kwh


def test_live_and_explicit_intensity_conflict():
    class Source:
        def latest(self, zone):
            return 1.0, "x"

    with pytest.raises(ValueError, match="not both"):
        resolve_site("FR", intensity=10, live=Source())
    with pytest.raises(ValueError, match="electricitymaps"):
        resolve_site("FR", live="wattime")
    with pytest.raises(ValueError, match="latest"):
        resolve_site("FR", live=object())
