"""The live forecast sources against local HTTPS servers on 127.0.0.1 speaking each API's
JSON: the path and credentials each sends, WattTime's login, and the failures (a hang, 500,
malformed or implausible bodies, a redirect that would carry a credential elsewhere)."""

from __future__ import annotations

import base64
import json
import time
from datetime import datetime, timezone
from functools import partial

import pytest

from carbonlog.cli import main
from carbonlog.errors import ConfigurationError
from carbonlog.intensity import forecast_live
from carbonlog.intensity.forecast_live import (
    CarbonIntensityUK,
    ElectricityMapsForecast,
    WattTimeForecast,
)
from carbonlog.intensity.forecast_shapes import LB_KG
from carbonlog.intensity.live import LiveError
from tests.unit.test_live_intensity import (
    HOSTS,
    TLS,
    TOKEN,
    FakeElectricityMaps,
    Reply,
    local_resolver,
    make_tls,
)

NOW = datetime(2026, 12, 1, 10, 7, tzinfo=timezone.utc)
DEADLINE_S = 0.5


def uk_body(values=(200, 50, 50, 300)) -> bytes:
    """The UK Carbon Intensity API's /intensity/{from}/fw48h: half-hours from 10:00Z."""
    data = []
    for i, value in enumerate(values):
        start = f"2026-12-01T{10 + i // 2:02d}:{i % 2 * 30:02d}Z"
        end = f"2026-12-01T{10 + (i + 1) // 2:02d}:{(i + 1) % 2 * 30:02d}Z"
        data.append({"from": start, "to": end, "intensity": {"forecast": value, "index": "low"}})
    return json.dumps({"data": data}).encode()


def em_forecast_body(zone: str = "DE", values=(400, 100, 300)) -> bytes:
    points = [
        {"carbonIntensity": v, "datetime": f"2026-12-01T{10 + i:02d}:00:00.000Z"}
        for i, v in enumerate(values)
    ]
    return json.dumps({"zone": zone, "forecast": points, "updatedAt": "x"}).encode()


def watttime_body(values_lbs=(1000.0, 200.0, 1000.0)) -> bytes:
    points = [
        {"point_time": f"2026-12-01T10:{5 * i:02d}:00+00:00", "value": v}
        for i, v in enumerate(values_lbs)
    ]
    meta = {"region": "CAISO_NORTH", "signal_type": "co2_moer", "units": "lbs_co2_per_mwh"}
    meta["data_point_period_seconds"] = 300
    return json.dumps({"data": points, "meta": meta}).encode()


@pytest.fixture(scope="module")
def tls(tmp_path_factory) -> TLS:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def servers(tls):
    made: list[FakeElectricityMaps] = []

    def make(host: str = HOSTS[0]) -> FakeElectricityMaps:
        made.append(FakeElectricityMaps(tls, host))
        return made[-1]

    yield make
    for server in made:
        server.close()


def local(cls, server, tls, **options):
    """A source of class `cls` asking `server`, trusting the test certificate."""
    defaults = {"base_url": server.origin, "timeout_s": DEADLINE_S}
    defaults |= {"ssl_context": tls.client, "resolver": local_resolver}
    return cls(**defaults | options)


# -- what each source asks -------------------------------------------------------------------


def test_uk_asks_48_hours_from_now_without_credentials(servers, tls):
    server = servers()
    server.answers = [Reply(body=uk_body())]
    f = local(CarbonIntensityUK, server, tls).forecast(now=NOW)
    path, headers = server.requests[0]
    assert path == "/intensity/2026-12-01T10:07Z/fw48h"
    assert "auth-token" not in headers and "Authorization" not in headers
    assert f.location == "GB" and [s.g_per_kwh for s in f.steps] == [200, 50, 50, 300]


def test_uk_covers_great_britain_only(tls):
    with pytest.raises(ConfigurationError, match="Great Britain only"):
        CarbonIntensityUK().forecast("FR")


def test_electricity_maps_sends_its_token_and_the_zone(servers, tls):
    server = servers()
    server.answers = [Reply(body=em_forecast_body())]
    f = local(ElectricityMapsForecast, server, tls, token=TOKEN).forecast("DE")
    path, headers = server.requests[0]
    assert path == "/carbon-intensity/forecast?zone=DE"
    assert headers.get("auth-token") == TOKEN
    assert f.location == "DE" and f.end == datetime(2026, 12, 1, 13, tzinfo=timezone.utc)


def test_watttime_logs_in_then_asks_with_the_bearer_token(servers, tls):
    server = servers()
    server.answers = [Reply(body=b'{"token": "jwt-abc"}'), Reply(body=watttime_body())]
    source = local(WattTimeForecast, server, tls, username="ann", password="pw")
    f = source.forecast("CAISO_NORTH")
    (login, login_headers), (path, headers) = server.requests
    assert login == "/login"
    assert login_headers["Authorization"] == "Basic " + base64.b64encode(b"ann:pw").decode()
    assert path == "/v3/forecast?region=CAISO_NORTH&signal_type=co2_moer"
    assert headers["Authorization"] == "Bearer jwt-abc"
    assert f.steps[1].g_per_kwh == pytest.approx(200 * LB_KG) and f.signal == "marginal"


def test_credentials_come_from_the_environment_or_fail_at_construction(monkeypatch):
    for name in ("ELECTRICITYMAPS_TOKEN", "CARBONLOG_ELECTRICITYMAPS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("WATTTIME_USERNAME", raising=False)
    with pytest.raises(ConfigurationError, match="ELECTRICITYMAPS_TOKEN"):
        ElectricityMapsForecast()
    with pytest.raises(ConfigurationError, match="WATTTIME_USERNAME"):
        WattTimeForecast(password="pw")
    monkeypatch.setenv("ELECTRICITYMAPS_TOKEN", TOKEN)
    assert TOKEN not in repr(ElectricityMapsForecast())
    with pytest.raises(ConfigurationError, match="https"):
        CarbonIntensityUK(base_url="http://api.carbonintensity.org.uk")


# -- failures ------------------------------------------------------------------------------


def test_a_hanging_server_fails_within_the_deadline(servers, tls):
    server = servers()
    server.answers = [Reply(body=uk_body(), delay_s=5.0)]
    began_s = time.monotonic()
    with pytest.raises(LiveError, match="unreachable .*Timeout"):
        local(CarbonIntensityUK, server, tls).forecast(now=NOW)
    assert time.monotonic() - began_s < DEADLINE_S + 0.5


def test_one_deadline_covers_the_login_and_the_forecast(servers, tls):
    server = servers()
    login = Reply(body=b'{"token": "t"}', delay_s=0.3)
    server.answers = [login, Reply(body=watttime_body(), delay_s=0.3)]
    source = local(WattTimeForecast, server, tls, username="u", password="p")
    with pytest.raises(LiveError, match="Timeout"):
        source.forecast("CAISO_NORTH")


@pytest.mark.parametrize("status", [500, 401, 429])
def test_http_errors_are_live_errors(servers, tls, status):
    server = servers()
    server.answers = [Reply(status=status, body=b"{}")]
    with pytest.raises(LiveError, match=f"HTTP {status} from Electricity Maps$") as info:
        local(ElectricityMapsForecast, server, tls, token=TOKEN).forecast("DE")
    assert TOKEN not in str(info.value)


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"<html>busy</html>", "not JSON"),
        (b'{"data": [{"from": "2026-12-01T10:00Z"}]}', "malformed .* period is malformed"),
        (uk_body((200, 9000)), "implausible carbon intensity 9000"),
        (b'{"data": [{"from": "2026-12-01T10:00", "to": "2026-12-01T10:30", '
         b'"intensity": {"forecast": 1}}]}', "without a time zone"),
    ],
)  # fmt: skip
def test_malformed_or_implausible_bodies_are_live_errors(servers, tls, body, match):
    server = servers()
    server.answers = [Reply(body=body)]
    with pytest.raises(LiveError, match=match):
        local(CarbonIntensityUK, server, tls).forecast(now=NOW)


def test_a_redirect_elsewhere_gets_no_credentials(servers, tls):
    origin, elsewhere = servers(), servers(HOSTS[1])
    elsewhere.answers = [Reply(body=em_forecast_body())]
    moved = f"{elsewhere.origin}/carbon-intensity/forecast?zone=DE"
    origin.answers = [Reply(status=302, body=b"", headers={"Location": moved})]
    f = local(ElectricityMapsForecast, origin, tls, token=TOKEN).forecast("DE")
    assert f.location == "DE"
    assert origin.requests[0][1].get("auth-token") == TOKEN
    assert all(TOKEN not in str(headers) for _, headers in elsewhere.requests)


def test_a_login_redirected_elsewhere_sends_no_password(servers, tls):
    origin, elsewhere = servers(), servers(HOSTS[1])
    elsewhere.answers = [Reply(status=401, body=b"")]
    location = f"{elsewhere.origin}/login"
    origin.answers = [Reply(status=307, body=b"", headers={"Location": location})]
    source = local(WattTimeForecast, origin, tls, username="u", password="secret")
    with pytest.raises(LiveError, match="HTTP 401 from WattTime at elsewhere.test"):
        source.forecast("CAISO_NORTH")
    assert "Authorization" not in elsewhere.requests[0][1]


def test_a_redirect_to_plain_http_is_refused(servers, tls):
    origin = servers()
    location = "http://em.test/intensity"
    origin.answers = [Reply(status=301, body=b"", headers={"Location": location})]
    with pytest.raises(LiveError, match="non-https"):
        local(CarbonIntensityUK, origin, tls).forecast(now=NOW)


# -- carbonlog when --source, against the local server ------------------------------------------


def test_when_asks_the_live_source_only_when_told(servers, tls, monkeypatch, capsys):
    server = servers()
    server.answers = [Reply(body=uk_body())]
    monkeypatch.setitem(
        forecast_live.SOURCES, "carbonintensity", partial(local, CarbonIntensityUK, server, tls)
    )
    args = ["when", "--hours", "1", "--now", "2026-12-01T10:00Z", "--json"]
    assert main([*args, "--source", "carbonintensity"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["location"] == "GB" and found["start"] == "2026-12-01T10:30:00Z"
    assert found["mean_g_per_kwh"] == 50 and found["now_mean_g_per_kwh"] == 125
    assert server.requests[0][0] == "/intensity/2026-12-01T10:00Z/fw48h"
    assert main(args) == 2  # neither --forecast nor --source: nothing is asked
    assert "--forecast FILE, or --source" in capsys.readouterr().err
    assert len(server.requests) == 1


def test_when_says_a_failed_source_in_one_line(servers, tls, monkeypatch, capsys):
    server = servers()
    server.answers = [Reply(status=500, body=b"")]
    monkeypatch.setitem(
        forecast_live.SOURCES, "carbonintensity", partial(local, CarbonIntensityUK, server, tls)
    )
    assert main(["when", "--hours", "1", "--source", "carbonintensity"]) == 1
    assert capsys.readouterr().err == ("carbonlog: error: HTTP 500 from carbonintensity.org.uk\n")


def em_source(monkeypatch, server, tls):
    monkeypatch.setitem(
        forecast_live.SOURCES,
        "electricitymaps",
        partial(local, ElectricityMapsForecast, server, tls, token=TOKEN),
    )


def test_regions_ask_each_grid_zone_once_and_list_the_failures(servers, tls, monkeypatch, capsys):
    server = servers()
    server.answers = [Reply(body=em_forecast_body("NL"))] + [Reply(status=500, body=b"")]
    server.answers += [Reply(body=em_forecast_body(values=(90, 90, 90)))] * 40
    em_source(monkeypatch, server, tls)
    args = ["when", "--location", "azure:westeurope", "--hours", "1", "--regions", "--json"]
    assert main([*args, "--source", "electricitymaps", "--now", "2026-12-01T10:00Z"]) == 0
    found = json.loads(capsys.readouterr().out)
    zones = [path.rsplit("=", 1)[1] for path, _ in server.requests]
    assert zones[0] == "NL" and len(zones) == len(set(zones))  # every grid zone asked once
    failed = [r for r in found["regions"] if r["window"] is None]
    assert {r["location"] for r in failed} == {"azure:australiacentral", "azure:australiacentral2"}
    assert all(r["problem"] == "HTTP 500 from Electricity Maps" for r in failed)
    ranked = [r["effective_g_per_kwh"] for r in found["regions"] if r["window"]]
    assert ranked == sorted(ranked) and found["start"] == "2026-12-01T11:00:00Z"


def test_regions_stop_asking_when_their_time_is_spent(servers, tls, monkeypatch, capsys):
    server = servers()
    server.answers = [Reply(body=em_forecast_body(), delay_s=0.2) for _ in range(40)]
    em_source(monkeypatch, server, tls)
    monkeypatch.setattr(forecast_live, "REGIONS_TIMEOUT_S", 1.0)
    began_s = time.monotonic()
    args = ["when", "--location", "gcp:europe-west3", "--hours", "1", "--regions", "--json"]
    assert main([*args, "--source", "electricitymaps", "--now", "2026-12-01T10:00Z"]) == 0
    assert time.monotonic() - began_s < 1.0 + DEADLINE_S + 0.5
    regions = json.loads(capsys.readouterr().out)["regions"]
    problems = {r["problem"] for r in regions if r["window"] is None}
    assert "not asked: the time for asking Electricity Maps ran out" in problems
    assert 2 <= len(server.requests) <= 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--source", "watttime"], "WattTime names its regions itself: give its zone"),
        (["--source", "carbonintensity", "--location", "azure:uksouth", "--regions"],
         "comparing regions needs a forecast of each grid"),
        (["--source", "carbonintensity", "--location", "FR"], "Great Britain only"),
    ],
)  # fmt: skip
def test_what_a_live_source_cannot_answer_is_refused_before_asking(args, message, capsys):
    assert main(["when", "--hours", "1", *args]) == 2
    assert message in capsys.readouterr().err


def test_when_asks_watttime_by_its_own_zone(servers, tls, monkeypatch, capsys):
    server = servers()
    server.answers = [Reply(body=b'{"token": "t"}'), Reply(body=watttime_body())]
    source = partial(local, WattTimeForecast, server, tls, username="u", password="p")
    monkeypatch.setitem(forecast_live.SOURCES, "watttime", source)
    args = ["when", "--hours", "0.05", "--source", "watttime", "--zone", "CAISO_NORTH"]
    assert main([*args, "--now", "2026-12-01T10:00Z", "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert (found["location"], found["signal"]) == ("CAISO_NORTH", "marginal")
    assert found["start"] == "2026-12-01T10:05:00Z"
    assert found["mean_g_per_kwh"] == pytest.approx(200 * LB_KG)
