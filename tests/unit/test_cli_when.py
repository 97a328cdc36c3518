"""`carbonlog when` on each forecast file shape: the greenest start, the saving against now,
the provider's other regions, --json, and the errors said in one line (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carbonlog.cli import main

VALUES = (300, 280, 250, 200, 150, 120, 100, 110, 160, 220, 260, 300)
"""Two-hourly g/kWh over 24 h from 2026-12-01T00:00Z: a 6 h run is greenest from 10:00."""
NOW = "2026-12-01T00:00Z"


def sdk_entry(location: str, scale: float = 1.0) -> dict:
    points = [
        {"location": location, "timestamp": f"2026-12-01T{2 * i:02d}:00:00Z", "duration": 120}
        | {"value": v * scale}
        for i, v in enumerate(VALUES)
    ]
    return {"location": location, "generatedAt": "2026-11-30T23:00:00Z", "forecastData": points}


@pytest.fixture
def files(tmp_path) -> dict[str, Path]:
    sdk = tmp_path / "sdk.json"
    regions = [sdk_entry("westeurope"), sdk_entry("northeurope", 0.5), sdk_entry("uksouth", 1.2)]
    sdk.write_text(json.dumps(regions))
    uk = tmp_path / "uk.json"
    halves = [  # each two-hour value as four half-hours
        {"from": _half(n), "to": _half(n + 1), "intensity": {"forecast": VALUES[n // 4]}}
        for n in range(4 * len(VALUES))
    ]
    uk.write_text(json.dumps({"data": halves}))
    table = tmp_path / "forecast.csv"
    rows = "".join(f"2026-12-01T{2 * i + 1:02d}:00:00+01:00,{v}\n" for i, v in enumerate(VALUES))
    table.write_text("timestamp,g_per_kwh\n" + rows)
    return {"sdk": sdk, "uk": uk, "csv": table}


def _half(n: int) -> str:
    """The time n half-hours after 2026-12-01T00:00Z (n <= 48)."""
    return "2026-12-02T00:00Z" if n == 48 else f"2026-12-01T{n // 2:02d}:{n % 2 * 30:02d}Z"


def when(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["when", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("shape", "location"), [("sdk", "azure:westeurope"), ("uk", "GB"), ("csv", "FR")]
)
def test_each_shape_gives_the_same_window(files, capsys, shape, location):
    args = ["--location", location, "--hours", "6", "--forecast", str(files[shape])]
    code, out, _ = when(capsys, *args, "--now", NOW, "--json")
    assert code == 0
    found = json.loads(out)
    # from 10:00: 2 h each at 120, 100 and 110 -> 110; from 00:00: 300, 280, 250 -> 276.7
    assert found["start"] == "2026-12-01T10:00:00Z" and found["end"] == "2026-12-01T16:00:00Z"
    assert found["mean_g_per_kwh"] == pytest.approx(110)
    assert found["now_mean_g_per_kwh"] == pytest.approx(830 / 3)
    assert found["saving_ratio"] == pytest.approx(1 - 330 / 830)
    assert found["location"] == location


def test_the_table_says_the_window_and_the_saving(files, capsys):
    args = ["--location", "GB", "--hours", "6", "--forecast", str(files["uk"]), "--now", NOW]
    code, out, _ = when(capsys, *args)
    assert code == 0
    assert "greenest  2026-12-01 10:00 UTC to 2026-12-01 16:00 UTC: 110 g CO2e/kWh" in out
    assert "now       276.7 g CO2e/kWh, starting 2026-12-01 00:00 UTC" in out
    assert "saving    60% less CO2 than starting now" in out
    assert "(UK Carbon Intensity API)" in out and "(average intensity)" in out
    assert max(map(len, out.splitlines())) <= 80


def test_regions_are_ranked_by_intensity_times_pue(files, capsys):
    args = ["--location", "azure:westeurope", "--hours", "6", "--forecast", str(files["sdk"])]
    code, out, _ = when(capsys, *args, "--now", NOW, "--regions", "--json")
    assert code == 0
    regions = json.loads(out)["regions"]
    assert [r["location"] for r in regions] == [
        "azure:northeurope",
        "azure:westeurope",
        "azure:uksouth",
    ]
    for region, scale in zip(regions, (0.5, 1.0, 1.2), strict=True):
        assert region["window"]["mean_g_per_kwh"] == pytest.approx(110 * scale)
        assert region["effective_g_per_kwh"] == pytest.approx(110 * scale * region["pue"])
    code, out, _ = when(capsys, *args, "--now", NOW, "--regions")
    assert "azure:northeurope  2026-12-01 10:00 UTC" in out
    assert "3 regions with a forecast, greenest first" in out


def test_a_file_without_the_location_names_what_it_holds(files, capsys):
    args = ["--location", "azure:eastus", "--hours", "1", "--forecast", str(files["sdk"])]
    code, _, err = when(capsys, *args, "--now", NOW)
    assert code == 2
    assert err.strip().endswith(
        "has no forecast for azure:eastus (it has: northeurope, uksouth, westeurope)"
    )
    code, _, err = when(capsys, "--hours", "1", "--forecast", str(files["sdk"]), "--now", NOW)
    assert code == 2 and "pick one by its location" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--hours", "30"], "T00:00:00Z to 2026-12-02T00:00:00Z (the end of the forecast) is 24 h"),
        (["--hours", "6", "--finish-by", "2026-12-01T05:00Z"], "(the latest end asked) is 5 h"),
        (["--hours", "6", "--regions"], "comparing regions needs a cloud location"),
    ],
)  # fmt: skip
def test_what_cannot_be_planned_is_said_in_one_line(files, capsys, args, message):
    base = ["--location", "FR", "--forecast", str(files["csv"]), "--now", NOW]
    code, out, err = when(capsys, *base, *args)
    assert (code, out) == (2, "")
    assert err.startswith("carbonlog: error: ") and message in err and err.count("\n") == 1


def test_a_time_without_a_zone_is_a_usage_error(files, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["when", "--hours", "1", "--forecast", str(files["csv"]), "--now", "2026-12-01T00:00"])
    assert exit_info.value.code == 2
    assert "without a time zone" in capsys.readouterr().err


def test_a_bad_forecast_file_is_said_plainly(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"from": "2026-12-01T00:00Z", "to": "x"}]}))
    code, _, err = when(capsys, "--hours", "1", "--forecast", str(bad), "--now", NOW)
    assert code == 2 and "not an ISO 8601 timestamp: 'x'" in err
    code, _, err = when(capsys, "--hours", "1", "--forecast", str(tmp_path / "none.csv"))
    assert code == 2 and "cannot read the forecast" in err
