"""The live intensity source under faults and hostile servers, on local HTTPS servers on 127.0.0.1:
redirects that would carry the token elsewhere, a server that trickles its answer, one that never
answers, a slow resolver, a source that hangs, and absurd figures. Each test checks that an edge
(Site.current_g_per_kwh, Tracker.mark) returned at once with what was in memory, what it
returned, and what the user was told, once."""

from __future__ import annotations

import math
import threading
import time

import pytest

from carbonlog.errors import ConfigurationError
from carbonlog.intensity import resolve_site
from carbonlog.intensity.feed import MAX_AGE_S, LiveFeed
from carbonlog.intensity.live import MAX_REDIRECTS, ElectricityMaps, LiveError
from carbonlog.tracking import Tracker
from tests.unit.test_live_intensity import (
    HOSTS,
    TLS,
    TOKEN,
    Clock,
    FakeElectricityMaps,
    Reply,
    client_for,
    em_body,
    local_resolver,
    make_tls,
    settle,
    settle_source,
)

EDGE_BOUND_S = 0.2
"""The longest an interval edge may take with a live source (it used to wait up to 36 s)."""
DEADLINE_S = 0.5
"""The clients' total deadline per request in these tests."""
WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}


def timed(call, *args):
    """`call(*args)` and the seconds it took."""
    began_s = time.perf_counter()
    result = call(*args)
    return result, time.perf_counter() - began_s


def live_warnings(records) -> list[str]:
    return [r.getMessage() for r in records if "live carbon intensity" in r.getMessage()]


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def servers(tls):
    made: list[FakeElectricityMaps] = []

    def make(host: str = HOSTS[0], secure: bool = True) -> FakeElectricityMaps:
        made.append(FakeElectricityMaps(tls if secure else None, host))
        return made[-1]

    yield make
    for server in made:
        server.close()


@pytest.fixture
def clock():
    return Clock()


# -- the token goes to Electricity Maps' own origin, over https only ---------------------------


@pytest.mark.parametrize(
    "target_host", [HOSTS[1], HOSTS[0]], ids=["another host", "the same host on another port"]
)
def test_a_redirect_to_another_origin_is_followed_without_the_token(
    servers, tls, clock, target_host
):
    origin, elsewhere = servers(), servers(target_host)
    elsewhere.answers = [Reply(body=em_body(g_per_kwh=77.0))]
    location = f"{elsewhere.origin}/v3/carbon-intensity/latest?zone=FR"
    origin.answers = [Reply(status=302, body=b"", headers={"Location": location})]
    client = client_for(origin, tls, clock=clock)
    assert client.latest("FR")[0] == 77.0
    assert origin.requests[0][1].get("auth-token") == TOKEN
    assert "auth-token" not in elsewhere.requests[0][1]
    assert all(TOKEN not in str(headers) for _, headers in elsewhere.requests)


def test_an_error_after_a_redirect_elsewhere_says_the_token_was_not_sent(servers, tls, clock):
    origin, elsewhere = servers(), servers(HOSTS[1])
    elsewhere.answers = [Reply(status=401, body=b"")]
    location = f"{elsewhere.origin}/v3/carbon-intensity/latest?zone=FR"
    origin.answers = [Reply(status=301, body=b"", headers={"Location": location})]
    with pytest.raises(LiveError, match="HTTP 401 .* at elsewhere.test .*not sent the token"):
        client_for(origin, tls, clock=clock).latest("FR")


def test_a_redirect_within_the_origin_keeps_the_token(servers, tls, clock):
    origin = servers()
    origin.answers = [Reply(status=307, body=b"", headers={"Location": "/v4/latest?zone=FR"})]
    assert client_for(origin, tls, clock=clock).latest("FR")[0] == 42.0
    assert [path for path, _ in origin.requests] == [
        "/v3/carbon-intensity/latest?zone=FR",
        "/v4/latest?zone=FR",
    ]
    assert all(headers.get("auth-token") == TOKEN for _, headers in origin.requests)


def test_a_redirect_to_plain_http_is_refused(servers, tls, clock):
    origin, plain = servers(), servers(secure=False)
    location = f"{plain.origin}/v3/carbon-intensity/latest?zone=FR"
    origin.answers = [Reply(status=302, body=b"", headers={"Location": location})]
    with pytest.raises(LiveError, match="non-https") as info:
        client_for(origin, tls, clock=clock).latest("FR")
    assert plain.requests == []
    assert TOKEN not in str(info.value)


def test_a_redirect_loop_ends(servers, tls, clock):
    origin = servers()
    loop = Reply(status=302, body=b"", headers={"Location": "/v3/again"})
    origin.answers = [loop] * (MAX_REDIRECTS + 2)
    with pytest.raises(LiveError, match="redirects"):
        client_for(origin, tls, clock=clock).latest("FR")
    assert len(origin.requests) == MAX_REDIRECTS + 1


def test_plain_http_is_refused_even_on_this_machine(servers):
    plain = servers(secure=False)
    with pytest.raises(ConfigurationError, match="https"):
        ElectricityMaps(token=TOKEN, base_url=plain.url)
    with pytest.raises(ConfigurationError, match="https"):
        resolve_site("FR", live=ElectricityMaps(token=TOKEN, base_url=plain.url))
    assert plain.requests == []


# -- one total deadline per request; edges never wait on it ------------------------------------


def slow_resolver(release: threading.Event, delay_s: float = 5.0):
    """A resolver that answers after `delay_s` (or once `release` is set)."""

    def resolve(host: str, port: int):
        release.wait(delay_s)
        return local_resolver(host, port)

    return resolve


HANGS = {
    "a server that trickles its body": dict(reply=Reply(byte_gap_s=0.25)),
    "a server that never answers": dict(reply=Reply(delay_s=60.0)),
    "a slow resolver": dict(reply=Reply(), slow_dns=True),
}


@pytest.fixture(params=list(HANGS))
def hanging(request, servers, tls, clock):
    """(client, server) whose first request cannot end before the deadline."""
    case = HANGS[request.param]
    server = servers()
    release = threading.Event()
    options = {"timeout_s": DEADLINE_S, "clock": clock, "backoff_s": 30}
    if case.get("slow_dns"):
        options["resolver"] = slow_resolver(release)
    server.answers = [case["reply"]]
    client = client_for(server, tls, **options)
    yield client, server, release
    release.set()


def test_one_deadline_covers_resolving_connecting_and_reading(hanging):
    client, _, _ = hanging
    began_s = time.perf_counter()
    with pytest.raises(LiveError, match="unreachable.*(timed out|deadline|longer than)"):
        client.latest("FR")
    assert time.perf_counter() - began_s < DEADLINE_S + 0.4


def test_edges_never_wait_on_a_hanging_source_and_switch_once_it_answers(hanging, carbon_warnings):
    client, server, release = hanging
    site = resolve_site("FR", live=client)
    table, source = site.grid.g_per_kwh, site.grid.source
    for _ in range(5):
        answer, took_s = timed(site.current_g_per_kwh)
        assert took_s < EDGE_BOUND_S
        assert answer == (table, f"{source} (live not answered yet)")
        time.sleep(0.02)
    assert settle_source(site, "(live unavailable)") == (table, f"{source} (live unavailable)")
    assert len(server.requests) <= 1  # one request in flight at most
    release.set()
    server.answers = [Reply(body=em_body(g_per_kwh=55.0))]
    client._clock.now_s += 31  # past the back-off
    assert settle(site, 55.0) == (55.0, "electricitymaps:FR 2026-11-27T02:00:00.000Z")
    assert len(live_warnings(carbon_warnings)) == 1


def test_a_tracker_mark_never_waits_on_a_hanging_source(hanging, carbon_warnings):
    client, server, release = hanging
    tracker = Tracker(location="FR", live=client, power_w=WATTS, ledger=False).start()
    table = tracker.site.grid.g_per_kwh
    for _ in range(5):
        interval, took_s = timed(tracker.mark)
        assert took_s < EDGE_BOUND_S
        assert interval.intensity_g_per_kwh == table
        time.sleep(0.05)
    deadline_s = time.monotonic() + 5
    while "(live unavailable)" not in tracker.mark().intensity_source:
        assert time.monotonic() < deadline_s
        time.sleep(0.02)
    release.set()
    server.answers = [Reply(body=em_body(g_per_kwh=55.0))]
    client._clock.now_s += 31
    while (interval := tracker.mark()).intensity_g_per_kwh != 55.0:
        assert time.monotonic() < deadline_s + 5
        time.sleep(0.02)
    assert interval.intensity_source.startswith("electricitymaps:FR")
    summary, took_s = timed(tracker.stop)
    assert took_s < EDGE_BOUND_S
    assert summary.co2_kg > 0
    assert len(live_warnings(carbon_warnings)) == 1
    assert all(TOKEN not in r.getMessage() for r in carbon_warnings)


def test_a_source_that_hangs_is_asked_once_at_a_time(carbon_warnings):
    release, calls = threading.Event(), []

    class Hung:
        def latest(self, zone):
            calls.append(zone)
            release.wait(10)
            return 123.0, "hung:FR"

    site = resolve_site("FR", live=Hung())
    began_s = time.monotonic()
    while time.monotonic() - began_s < 1.0:
        answer, took_s = timed(site.current_g_per_kwh)
        assert took_s < EDGE_BOUND_S and answer[0] == site.grid.g_per_kwh
        time.sleep(0.01)
    assert calls == ["FR"]
    release.set()
    assert settle(site, 123.0) == (123.0, "hung:FR")
    assert carbon_warnings == []  # still waiting is not a failure


# -- absurd figures --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [1e9, 2000.01, -1.0, math.inf, math.nan, "lots", None])
def test_an_absurd_live_figure_falls_back_to_the_table_with_one_warning(value, carbon_warnings):
    class Absurd:
        def latest(self, zone):
            return value, "absurd:FR"

    tracker = Tracker(location="FR", live=Absurd(), power_w=WATTS, ledger=False).start()
    table = tracker.site.grid.g_per_kwh
    deadline_s = time.monotonic() + 5
    while "(live unavailable)" not in tracker.mark().intensity_source:
        assert time.monotonic() < deadline_s
        time.sleep(0.02)
    for _ in range(2):
        time.sleep(0.3)  # past the feed's gap between asks: each mark asks again
        assert tracker.mark().intensity_g_per_kwh == table
    summary = tracker.stop()
    assert all(iv.intensity_g_per_kwh == table for iv in summary.intervals)
    (warning,) = live_warnings(carbon_warnings)
    assert f"implausible live carbon intensity {value!r} g/kWh (plausible: 0 to 2000)" in warning


def test_electricity_maps_answering_1e9_prices_no_interval(servers, tls, clock, carbon_warnings):
    server = servers()
    server.answers = [Reply(body=em_body(g_per_kwh=1e9))]
    site = resolve_site("FR", live=client_for(server, tls, clock=clock))
    assert settle_source(site, "(live unavailable)")[0] == site.grid.g_per_kwh
    (warning,) = live_warnings(carbon_warnings)
    assert "implausible carbon intensity from Electricity Maps: 1000000000.0 g/kWh" in warning
    assert "plausible: 0 to 2000" in warning


def until(condition, within_s: float = 5.0):
    """Poll `condition()` until it returns something true; that."""
    deadline_s = time.monotonic() + within_s
    while not (got := condition()):
        assert time.monotonic() < deadline_s
        time.sleep(0.01)
    return got


class GoodThenFailing:
    """A live source that answers `good` once, then fails every time."""

    def __init__(self, good: tuple[float, str]):
        self.answers = [good]

    def latest(self, zone):
        if self.answers:
            return self.answers.pop(0)
        raise LiveError("HTTP 500 from Electricity Maps")


def test_the_last_good_figure_stands_in_while_young_then_the_table():
    clock = Clock()
    feed = LiveFeed(GoodThenFailing((300.0, "em:DE")), "DE", clock=clock)
    assert feed.read() == (None, None)  # asks in the background
    assert until(lambda: feed.read()[0]) == (300.0, "em:DE")
    clock.now_s += 60  # the next read asks again, and that ask fails
    answer, failure = until(lambda: (got := feed.read())[1] and got)
    assert answer == (300.0, "em:DE") and isinstance(failure, LiveError)
    clock.now_s += MAX_AGE_S
    answer, failure = feed.read()
    assert answer is None and isinstance(failure, LiveError)


def test_a_site_keeps_its_last_live_figure_through_a_failure(carbon_warnings):
    site = resolve_site("DE", live=GoodThenFailing((300.0, "em:DE")))
    settle(site, 300.0)
    until(lambda: site.current_g_per_kwh() and live_warnings(carbon_warnings))
    for _ in range(3):
        time.sleep(0.3)  # past the feed's gap between asks: each one fails
        assert site.current_g_per_kwh() == (300.0, "em:DE")
    (warning,) = live_warnings(carbon_warnings)
    assert "HTTP 500" in warning and "last live figure" in warning
