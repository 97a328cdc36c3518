"""Electricity Maps client against local HTTPS servers on 127.0.0.1 that speak its JSON.

The client speaks only https, so the servers hold a certificate made for the test session
(for `em.test` and `elsewhere.test`, names a test resolver maps to 127.0.0.1). FakeElectricityMaps,
`make_tls`, `em_body` and `client_for` serve tests/faults/test_live_faults.py too.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from carbonlog.errors import ConfigurationError
from carbonlog.intensity import resolve_site
from carbonlog.intensity.live import ElectricityMaps, LiveError, system_resolver

TOKEN = "s3cr3t-token-value"
HOSTS = ("em.test", "elsewhere.test")


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


def local_resolver(host: str, port: int):
    """Every test host name is this machine."""
    return system_resolver("127.0.0.1", port)


@dataclass(frozen=True)
class TLS:
    server: ssl.SSLContext
    client: ssl.SSLContext


def make_tls(folder: Path) -> TLS:
    """A self-signed certificate for the test hosts: the server's context and one trusting it."""
    if shutil.which("openssl") is None:
        pytest.skip("the live client speaks only https; its tests make a certificate with openssl")
    cert, key = folder / "cert.pem", folder / "key.pem"
    names = ",".join(["IP:127.0.0.1", *(f"DNS:{h}" for h in HOSTS)])
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
        + ["-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=em.test"]
        + ["-addext", f"subjectAltName={names}"],
        check=True,
        capture_output=True,
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return TLS(server=server, client=ssl.create_default_context(cafile=str(cert)))


@pytest.fixture(scope="session")
def tls(tmp_path_factory) -> TLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


@dataclass
class Reply:
    """One answer: status, body, headers; `delay_s` before it, `byte_gap_s` between body bytes."""

    status: int = 200
    body: bytes = field(default_factory=em_body)
    delay_s: float = 0.0
    byte_gap_s: float = 0.0
    headers: dict = field(default_factory=dict)


class FakeElectricityMaps:
    """A threading HTTPS server on 127.0.0.1 (plain HTTP without `tls`) whose next answers are
    queued Replies (or (status, body, delay_s) tuples); it records each request's path and
    headers."""

    def __init__(self, tls: TLS | None, host: str = HOSTS[0]):
        self.answers: list[Reply | tuple] = []
        self.requests: list[tuple[str, dict]] = []
        self.closed = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self):
                if tls is not None:
                    self.request = tls.server.wrap_socket(self.request, server_side=True)
                super().setup()

            def finish(self):
                super().finish()
                self.request.close()  # the TLS socket: the server closes only the one it accepted

            def do_GET(self):
                fake.requests.append((self.path, self.headers))
                reply = fake.answers.pop(0) if fake.answers else Reply()
                if isinstance(reply, tuple):
                    reply = Reply(*reply)
                if fake.closed.wait(reply.delay_s):
                    return
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    if not reply.byte_gap_s:
                        self.wfile.write(reply.body)
                    for i in range(len(reply.body) if reply.byte_gap_s else 0):
                        if fake.closed.wait(reply.byte_gap_s):
                            return
                        self.wfile.write(reply.body[i : i + 1])
                except OSError:  # the client gave up (deadline tests)
                    pass

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass  # a client that gave up mid-handshake

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.origin = f"{'https' if tls else 'http'}://{host}:{self.port}"
        self.url = f"{self.origin}/v3"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self):
        self.closed.set()
        self.server.shutdown()
        self.server.server_close()


def client_for(server: FakeElectricityMaps, tls: TLS, **options) -> ElectricityMaps:
    """A client of `server` that trusts the test certificate and resolves the test hosts."""
    defaults = {"token": TOKEN, "base_url": server.url, "timeout_s": 0.5}
    defaults |= {"ssl_context": tls.client, "resolver": local_resolver}
    return ElectricityMaps(**defaults | options)


def settle(site, value: float, within_s: float = 5.0) -> tuple[float, str]:
    """Ask `site` until the background ask has landed `value`; each call returns at once."""
    deadline_s = time.monotonic() + within_s
    while True:
        began_s = time.monotonic()
        got = site.current_g_per_kwh()
        assert time.monotonic() - began_s < 0.2
        if got[0] == value:
            return got
        assert time.monotonic() < deadline_s, f"still {got}"
        time.sleep(0.01)


def settle_source(site, suffix: str, within_s: float = 5.0) -> tuple[float, str]:
    """Ask `site` until its source ends with `suffix` (a failure has landed)."""
    deadline_s = time.monotonic() + within_s
    while not (got := site.current_g_per_kwh())[1].endswith(suffix):
        assert time.monotonic() < deadline_s, f"still {got}"
        time.sleep(0.01)
    return got


class Clock:
    def __init__(self):
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def server(tls):
    fake = FakeElectricityMaps(tls)
    yield fake
    fake.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def client(server, clock, tls):
    return client_for(server, tls, min_interval_s=60, backoff_s=30, max_backoff_s=120, clock=clock)


def test_latest_asks_for_the_zone_with_the_token_in_the_header(server, client):
    value, source = client.latest("FR")
    assert value == 42.0
    assert source == "electricitymaps:FR 2026-11-27T02:00:00.000Z"
    path, headers = server.requests[0]
    assert path == "/v3/carbon-intensity/latest?zone=FR"
    assert headers.get("auth-token") == TOKEN
    assert headers.get("Host") == f"em.test:{server.port}"
    assert TOKEN not in path


def test_coordinates_are_sent_as_lat_and_lon(server, tls, clock):
    client = client_for(server, tls, lat=48.85, lon=2.35, clock=clock)
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
        b'{"carbonIntensity": 1e9}',
        b'{"carbonIntensity": 2000.5}',
    ],
)
def test_malformed_or_implausible_bodies_are_live_errors(server, client, body):
    server.answers = [(200, body, 0)]
    with pytest.raises(LiveError, match="malformed|implausible"):
        client.latest("FR")


def test_a_slow_server_times_out_quickly(server, tls, clock):
    client = client_for(server, tls, timeout_s=0.2, clock=clock)
    server.answers = [(200, em_body(), 1.0)]
    started_s = time.monotonic()
    with pytest.raises(LiveError, match="unreachable"):
        client.latest("FR")
    assert time.monotonic() - started_s < 0.9


def test_nothing_listening_is_a_live_error(tls, clock):
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    client = ElectricityMaps(
        token=TOKEN,
        base_url=f"https://em.test:{port}/v3",
        ssl_context=tls.client,
        resolver=local_resolver,
        timeout_s=0.5,
        clock=clock,
    )
    with pytest.raises(LiveError, match="unreachable"):
        client.latest("FR")


def test_an_untrusted_certificate_is_refused(server, clock):
    client = ElectricityMaps(  # the system's CAs: the test certificate is trusted by no one
        token=TOKEN, base_url=server.url, resolver=local_resolver, timeout_s=0.5, clock=clock
    )
    with pytest.raises(LiveError, match="unreachable.*SSL"):
        client.latest("FR")
    assert server.requests == []


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
    for timeout_s in (float("nan"), 0, -1, float("inf"), True):
        with pytest.raises(ValueError, match="timeout_s"):
            ElectricityMaps(token=TOKEN, timeout_s=timeout_s)


@pytest.mark.parametrize(
    "base_url",
    [
        "http://api.electricitymap.org/v3",
        "http://127.0.0.1:8080/v3",
        "http://localhost/v3",
        "ftp://api.electricitymap.org/v3",
        "https:///v3",
        "api.electricitymap.org/v3",
        "https://em.test:99999/v3",
    ],
)
def test_a_base_url_that_is_not_https_is_refused_at_construction(base_url):
    with pytest.raises(ConfigurationError, match="base_url") as info:
        ElectricityMaps(token=TOKEN, base_url=base_url)
    assert TOKEN not in str(info.value)


def test_site_uses_live_values_and_the_zone_of_its_location(server, client, clock):
    server.answers = [(200, em_body("DE", 300.0), 0), (200, em_body("DE", 250.0), 0)]
    site = resolve_site("DE", live=client)
    assert server.requests == []  # nothing asked before the first call
    first = site.current_g_per_kwh()  # nothing in memory yet: the table, at once
    assert first == (site.grid.g_per_kwh, f"{site.grid.source} (live not answered yet)")
    assert settle(site, 300.0) == (300.0, "electricitymaps:DE 2026-11-27T02:00:00.000Z")
    clock.now_s += 61  # a long run sees the grid change
    assert settle(site, 250.0)[0] == 250.0
    assert server.requests[0][0].endswith("zone=DE")


def test_cloud_region_asks_about_the_grid_it_sits_in(server, client):
    site = resolve_site("gcp:europe-west9", live=client)
    settle(site, 42.0)
    assert server.requests[0][0].endswith("zone=FR")


def test_site_falls_back_to_the_table_and_says_so_once(server, client, clock, carbon_log):
    server.answers = [(500, b"", 0), (401, b"", 0)]
    site = resolve_site("FR", live=client)
    table = site.grid.g_per_kwh
    assert settle_source(site, "(live unavailable)")[0] == table
    clock.now_s += 40  # past the back-off: the next ask gets the 401
    while len(server.requests) < 2:
        assert site.current_g_per_kwh()[0] == table
        time.sleep(0.01)
    assert settle_source(site, "(live unavailable)")[0] == table
    warnings = [r for r in carbon_log if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "live carbon intensity unavailable (HTTP 500" in warnings[0].getMessage()
    assert all(TOKEN not in r.getMessage() for r in carbon_log)
    clock.now_s += 200
    assert settle(site, 42.0)[0] == 42.0  # recovered


def test_site_survives_any_exception_from_a_custom_live_source(carbon_log):
    class Broken:
        def latest(self, zone):
            raise KeyError("boom")

    site = resolve_site("SE", live=Broken())
    assert settle_source(site, "(live unavailable)")[0] == site.grid.g_per_kwh
    assert len(carbon_log) == 1 and "boom" in carbon_log[0].getMessage()


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
