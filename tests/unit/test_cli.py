"""The carbonlog command through its entry point (a subprocess per call): every subcommand,
--json against the figures real Trackers recorded, tables within 80 columns, bad arguments."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

import carbonlog
from carbonlog.interval import Summary
from carbonlog.tracking import Tracker

REPO = Path(__file__).resolve().parents[2]
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason='plots need matplotlib: pip install "carbonlog[report]"',
)
WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
COMMANDS = ("demo", "estimate", "intensity", "regions", "runs", "runs show", "compare")
COMMANDS += ("report", "statement")


def carbonlog_cli(*args: str, home: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m carbonlog.cli ARGS` with the ledger in `home` and no CARBONLOG_* from outside."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CARBONLOG_")}
    environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(REPO / "src"), environ.get("PYTHONPATH")])
    )
    environ.update(CARBONLOG_HOME=str(home), COLUMNS="80", **env)
    return subprocess.run(
        [sys.executable, "-m", "carbonlog.cli", *args],
        capture_output=True,
        text=True,
        env=environ,
        timeout=120,
    )


def ok(*args: str, home: Path, **env: str) -> str:
    done = carbonlog_cli(*args, home=home, **env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def record_run(ledger: Path, name: str, accuracies: list[float], **run_info) -> Summary:
    """A real Tracker run with constant wattage, one epoch per accuracy, into `ledger`."""
    tracker = Tracker(
        location="FR",
        power_w=WATTS,
        ledger=str(ledger),
        run_name=name,
        tags={"lr": "0.001"},
        run_info={"framework": "torch", "stage": "fit", **run_info},
    ).start()
    for accuracy in accuracies:
        time.sleep(0.01)
        tracker.mark("epoch", metrics={"val_accuracy": accuracy})
    return tracker.stop()


@pytest.fixture(scope="module")
def ledger_home(tmp_path_factory) -> tuple[Path, dict[str, Summary]]:
    home = tmp_path_factory.mktemp("carbonlog-home")
    path = home / "ledger.sqlite3"
    runs = {
        "finetune": record_run(
            path, "finetune", [0.6, 0.85, 0.93], task="sst2", model="bert-base", pretrained=True
        ),
        "scratch": record_run(
            path, "scratch", [0.3, 0.5, 0.7, 0.8], task="sst2", model="bert", pretrained=False
        ),
        "other": record_run(path, "other", [0.9], task="mnist", model="cnn", pretrained=False),
    }
    return home, runs


def assert_fits_80_columns(text: str) -> None:
    assert max(len(line) for line in text.splitlines()) <= 80, text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(tmp_path, command):
    out = ok(*command.split(), "--help", home=tmp_path)
    assert out.startswith(f"usage: carbonlog {command}")


def test_version_and_top_level_help(tmp_path):
    assert ok("--version", home=tmp_path).strip() == f"carbonlog {carbonlog.__version__}"
    out = ok("--help", home=tmp_path)
    for command in ("estimate", "intensity", "regions", "runs", "compare", "report", "statement"):
        assert command in out


def test_runs_lists_the_ledger_newest_first_within_80_columns(ledger_home):
    home, _ = ledger_home
    out = ok("runs", home=home)
    assert_fits_80_columns(out)
    names = [line.split()[1] for line in out.splitlines()[2:]]
    assert names == ["other", "scratch", "finetune"]


def test_runs_json_carries_the_trackers_figures(ledger_home):
    home, summaries = ledger_home
    runs = {r["name"]: r for r in json.loads(ok("runs", "--json", home=home))}
    for name, summary in summaries.items():
        assert runs[name]["energy_kwh"] == pytest.approx(summary.energy_kwh, rel=1e-9)
        assert runs[name]["co2_kg"] == pytest.approx(summary.co2_kg, rel=1e-9)
        assert runs[name]["status"] == "completed"


def test_runs_filters_and_totals_per_task(ledger_home):
    home, summaries = ledger_home
    sst2 = json.loads(ok("runs", "--task", "sst2", "--json", home=home))
    assert sorted(r["name"] for r in sst2) == ["finetune", "scratch"]
    assert [r["name"] for r in json.loads(ok("runs", "--model", "cnn", "--json", home=home))] == [
        "other"
    ]
    totals = {g["key"]: g for g in json.loads(ok("runs", "--by", "task", "--json", home=home))}
    expected = summaries["finetune"].co2_kg + summaries["scratch"].co2_kg
    assert totals["sst2"]["runs"] == 2
    assert totals["sst2"]["co2_kg"] == pytest.approx(expected, rel=1e-9)
    assert_fits_80_columns(ok("runs", "--by", "task", home=home))
    assert "no runs match" in ok("runs", "--task", "nothing", home=home)


def test_runs_show_by_id_and_by_name(ledger_home):
    home, summaries = ledger_home
    shown = json.loads(ok("runs", "show", "1", "--json", home=home))
    assert shown["name"] == "finetune"
    assert [i["label"] for i in shown["intervals"]] == ["epoch"] * 3 + ["end"]
    assert shown["intervals"][2]["metrics"] == {"val_accuracy": 0.93}
    out = ok("runs", "show", "scratch", home=home)
    assert_fits_80_columns(out)
    assert "run 2 (scratch)" in out
    assert "France" in out
    assert sum(line.startswith(("1 ", "2 ", "3 ", "4 ")) for line in out.splitlines()) == 4


def test_compare_reports_what_reaching_the_target_took(ledger_home):
    home, summaries = ledger_home
    args = ("compare", "finetune", "scratch", "--target", "val_accuracy>=0.9")
    facts = json.loads(ok(*args, "--json", home=home))
    assert facts["a"]["target_epoch"] == 3
    assert facts["b"]["target_kg"] is None
    assert facts["verdict"] == "only run 1 (finetune) reached val_accuracy>=0.9"
    assert "not reached" in ok(*args, home=home)


def test_statement_has_the_measured_figures(ledger_home):
    home, summaries = ledger_home
    markdown = ok("statement", "finetune", home=home)
    assert markdown.startswith(
        "Experiments were conducted using a private infrastructure in France"
    )
    assert "Ember" in markdown  # the intensity's source
    assert "(Lacoste et al. 2019)" not in markdown and "[Lacoste et al. 2019](" in markdown
    assert "Energy was estimated for the GPU (a constant 100 W, as given)" in markdown
    latex = ok("statement", "1", "--format", "latex", "--bibtex", home=home)
    assert "kgCO$_2$eq" in latex and "\\cite{lacoste2019quantifying}" in latex
    assert "@article{lacoste2019quantifying," in latex
    facts = json.loads(ok("statement", "1", "--json", home=home))
    assert facts["statement"] == markdown.rstrip("\n")


@needs_matplotlib
def test_report_writes_html_and_plots_with_progress_on_stderr(ledger_home, tmp_path):
    pytest.importorskip(
        "matplotlib", reason='plots need matplotlib: pip install "carbonlog[report]"'
    )
    home, _ = ledger_home
    out = tmp_path / "report"
    args = ("report", "finetune", "--out", str(out), "--compare", "scratch")
    done = carbonlog_cli(*args, "--target", "val_accuracy>=0.9", home=home)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out / "report.html")
    assert "[1/4]" in done.stderr and "[4/4]" in done.stderr
    for name in ("energy_by_component.png", "cumulative_co2.png", "co2_vs_metric.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('src="data:image/png;base64,') == 3


def test_estimate_prints_the_calculator_figures_the_cleanest_region_and_the_statement(tmp_path):
    args = ("estimate", "--hardware", "A100 SXM4 80 GB", "--count", "8", "--hours", "24")
    args += ("--location", "gcp:us-central1", "--compare", "H100 SXM,T4")
    facts = json.loads(ok(*args, "--json", home=tmp_path))
    expected = carbonlog.estimate("A100 SXM4 80 GB", 8, 24, "gcp:us-central1")
    assert facts["energy_kwh"] == pytest.approx(400 * 8 * 24 / 1000 * expected.pue)
    assert facts["co2_kg"] == pytest.approx(expected.co2_kg)
    assert facts["cleanest_location"] == expected.cleanest.code
    assert [c["hardware"] for c in facts["comparisons"]] == ["H100 SXM", "T4"]
    assert facts["statement"]["markdown"] == expected.statement("markdown")
    text = ok(*args, home=tmp_path)
    table = text.split("statement:")[0]
    assert_fits_80_columns(table)
    assert f"cleanest gcp region: {expected.cleanest.code}" in table
    assert "like driving" in table
    assert expected.statement("markdown") in text


def test_intensity_of_a_location_and_of_the_environment(tmp_path):
    facts = json.loads(ok("intensity", "FR", "--json", home=tmp_path))
    assert facts["g_per_kwh"] == carbonlog.intensity("FR").g_per_kwh
    assert facts["year"] and facts["source"]
    default = carbonlog_cli("intensity", "--json", home=tmp_path)
    assert default.returncode == 0
    assert json.loads(default.stdout)["location"] == "WORLD"
    assert "world average" in default.stderr  # the one warning, on stderr
    configured = json.loads(ok("intensity", "--json", home=tmp_path, CARBONLOG_LOCATION="FR"))
    assert configured["location"] == "FR"
    assert configured["configured_by"] == "CARBONLOG_LOCATION=FR"


def test_regions_of_a_provider_cleanest_first(tmp_path):
    regions = json.loads(ok("regions", "--provider", "GCP", "--sort", "--json", home=tmp_path))
    assert regions and {r["provider"] for r in regions} == {"gcp"}
    costs = [r["g_per_kwh"] * (r["pue"] or 1.0) for r in regions]
    assert costs == sorted(costs)
    out = ok("regions", "--sort", home=tmp_path)
    assert_fits_80_columns(out)
    assert out.rstrip().endswith("cleanest first (g/kWh x PUE)")


@pytest.mark.parametrize(
    "args, message",
    [
        ((), "the following arguments are required: COMMAND"),
        (("nonsense",), "invalid choice: 'nonsense'"),
        (("estimate", "--hours", "1"), "required: --hardware"),
        (("estimate", "--hardware", "A100 PCIe", "--hours", "1"), "ambiguous hardware"),
        (("estimate", "--hardware", "T4", "--hours", "-1"), "--hours: must be a number > 0"),
        (("estimate", "--hardware", "T4", "--hours", "1", "--count", "0"), "whole number >= 1"),
        (("intensity", "Atlantis"), "unknown location 'Atlantis'"),
        (("regions", "--provider", "acme"), "unknown provider 'acme'"),
        (("runs", "--by", "colour"), "invalid choice: 'colour'"),
        (("runs", "show"), "required: run"),
        (("compare", "1", "2", "--target", "accuracy=0.9"), "bad target"),
        (("statement", "1", "--format", "html"), "invalid choice: 'html'"),
        (("report", "1", "--target", "val_accuracy>=0.9"), "need --compare"),
    ],
)
def test_bad_arguments_exit_2_with_a_readable_message(ledger_home, args, message):
    home, _ = ledger_home
    done = carbonlog_cli(*args, home=home)
    assert done.returncode == 2
    assert message in done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr  # one line, no usage, no traceback


def test_missing_run_or_ledger_exits_1(ledger_home, tmp_path):
    home, _ = ledger_home
    missing = carbonlog_cli("runs", "show", "no-such-run", home=home)
    assert missing.returncode == 1
    assert "no run 'no-such-run'" in missing.stderr
    empty = carbonlog_cli("statement", "1", home=tmp_path / "nowhere")
    assert empty.returncode == 1
    assert "no run ledger at" in empty.stderr and "Traceback" not in empty.stderr
    assert not (tmp_path / "nowhere").exists()  # reading never creates a ledger


def test_ledger_option_before_or_after_the_command(ledger_home, tmp_path):
    home, _ = ledger_home
    before = json.loads(ok("--ledger", str(home), "runs", "--json", home=tmp_path))
    after = json.loads(
        ok("runs", "--json", "--ledger", str(home / "ledger.sqlite3"), home=tmp_path)
    )
    assert [r["id"] for r in before] == [r["id"] for r in after] == [3, 2, 1]


def test_only_carbonlogs_own_errors_become_a_one_line_message(monkeypatch, capsys):
    """A CarbonlogError is a bad argument (2), a LedgerError a failure to act on (1); any other
    exception is a bug and keeps its traceback."""
    from carbonlog import cli
    from carbonlog.cli import commands
    from carbonlog.errors import ConfigurationError
    from carbonlog.ledger import LedgerError

    def raising(exc: Exception):
        def regions(args):
            raise exc

        return regions

    for exc, code in ((ConfigurationError("bad option"), 2), (LedgerError("ledger locked"), 1)):
        monkeypatch.setattr(commands, "regions", raising(exc))
        assert cli.main(["regions"]) == code
        assert capsys.readouterr().err == f"carbonlog: error: {exc}\n"
    monkeypatch.setattr(commands, "regions", raising(ValueError("a bug")))
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["regions"])


def test_estimate_says_which_row_a_family_name_resolved_to(tmp_path):
    out = ok("estimate", "--hardware", "A100", "--hours", "1", "--location", "FR", home=tmp_path)
    facts = out.split("statement:")[0]
    assert "hardware   1 x A100 SXM4 80 GB (TDP 400 W)" in facts
    matched = " ".join(facts.split("matched", 1)[1].split("time", 1)[0].split())
    assert matched == (
        "'A100' is the A100 SXM4 80 GB row; the table also has A100 PCIe 40 GB (250 W), "
        "A100 PCIe 80 GB (300 W), A100 SXM4 40 GB (400 W)"
    )
    assert "energy     400 Wh at the facility" in facts  # not 0.4 kWh beside grams
    exact = ok("estimate", "--hardware", "A100 SXM4 80GB", "--hours", "1", home=tmp_path)
    assert "matched" not in exact
    ambiguous = carbonlog_cli("estimate", "--hardware", "A100 80GB", "--hours", "1", home=tmp_path)
    assert ambiguous.returncode == 2
    assert "ambiguous hardware 'A100 80GB'; did you mean one of: " in ambiguous.stderr


def test_tables_and_facts_show_one_unit_per_quantity_and_no_exponent(ledger_home):
    home, _ = ledger_home
    for args in (("runs",), ("runs", "show", "1"), ("compare", "1", "2"), ("runs", "--by", "task")):
        out = ok(*args, home=home).replace(" g CO2e/kWh", "")  # an intensity, not a mass
        assert not re.search(r"\d[eE][-+]?\d", out), out
        energy = set(re.findall(r"(?<![\w/])[µmkMG]?Wh(?![\w/])", out))
        mass = set(re.findall(r"(?:CO2|\d|completed) ([µm]?g|kg|k?t)\b(?!/)", out))
        assert len(energy) == 1 and len(mass) == 1, out
