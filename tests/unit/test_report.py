"""Reports: equivalents, the measured emissions statement, PNG plots and the escaped HTML page."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carbonlog import equivalents
from carbonlog.compare import compare
from carbonlog.estimate import estimate
from carbonlog.ledger import Ledger
from carbonlog.report import html, plots, statement, write_report
from carbonlog.report.rows import interval_rows
from carbonlog.report.statement import PLUS_MINUS, hardware_phrase, latex_escape, measured_with
from carbonlog.report.text import table
from carbonlog.tracking import Tracker

REPO = Path(__file__).resolve().parents[2]
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None,
    reason='plots need matplotlib: pip install "carbonlog[report]"',
)
WATTS = {"gpu": 100.0, "cpu": 10.0, "ram": 1.0}
HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)> $x$'


def record_run(ledger: Path, name: str, accuracies, location="gcp:us-central1", **run_info):
    """A real Tracker run with constant wattage, one epoch per accuracy; its ledger record."""
    tracker = Tracker(
        location=location,
        power_w=WATTS,
        ledger=str(ledger),
        run_name=name,
        tags={"note": HOSTILE},
        run_info={"framework": "torch", "task": "sst2", **run_info},
    ).start()
    for accuracy in accuracies:
        time.sleep(0.01)
        tracker.mark("epoch", metrics={"val_accuracy": accuracy, "<b>loss</b>": 1 - accuracy})
    run_id = tracker.stop().run_id
    with Ledger(ledger) as store:
        return store.run(run_id)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    path = tmp_path_factory.mktemp("ledger") / "ledger.sqlite3"
    hostile = record_run(path, HOSTILE, [0.6, 0.85, 0.93], model=HOSTILE, pretrained=True)
    scratch = record_run(path, "scratch", [0.3, 0.5, 0.7], location="FR", pretrained=False)
    return path, hostile, scratch


# -- equivalents -------------------------------------------------------------------------


def test_describe_reads_like_the_readme():
    assert equivalents.describe(2.0) == "like driving 19 km in an average new car"
    assert (
        equivalents.describe(0.0822, "smartphone_charges") == "like charging a smartphone 10 times"
    )
    assert equivalents.describe(25.0, "flights") == "like 0.5 one-way Paris-London flights"
    assert equivalents.describe(11.0, "tree_months") == "what a tree absorbs in 12 months"
    with pytest.raises(ValueError, match="unknown equivalent"):
        equivalents.describe(1.0, "horses")


def test_every_equivalent_names_its_source_and_year():
    assert [e.key for e in equivalents.EQUIVALENTS] == [
        "car_km",
        "smartphone_charges",
        "flights",
        "tree_months",
    ]
    for equivalent in equivalents.EQUIVALENTS:
        assert equivalent.source and 2000 < equivalent.year < 2030
        assert equivalent.kg_per_unit > 0
        assert str(equivalent.year) in equivalent.cite()
    assert equivalents.equivalents(1.068)["car_km"] == pytest.approx(10.0)


def test_small_amounts_never_read_in_exponent_form():
    assert equivalents.describe(3.4e-6) == "like driving 0.000032 km in an average new car"
    assert equivalents.describe(1234.0 * 0.1068) == "like driving 1,234 km in an average new car"


# -- the statement -----------------------------------------------------------------------


def test_statement_reuses_the_calculators_wording_with_measured_figures(runs):
    _, run, _ = runs
    measured = statement(run)
    calculated = estimate("T4", 1, 1, "gcp:us-central1").statement()
    opening = "Experiments were conducted using Google Cloud Platform in region us-central1, "
    assert measured.startswith(opening) and calculated.startswith(opening)
    assert "carbon efficiency of 0.43 kgCO₂eq/kWh (Google Cloud region carbon data 2023" in measured
    assert "a power usage effectiveness of 1.11" in measured
    assert "100 percents were directly offset by the cloud provider" in measured
    assert "Energy was estimated for the GPU (a constant 100 W, as given), the CPU" in measured
    assert "[Lacoste et al. 2019](https://arxiv.org/abs/1910.09700)" in measured


def test_statement_in_latex_escapes_and_cites():
    tracker = Tracker(intensity=50.0, power_w={"cpu": 10.0}, gpus=None, ledger=False).start()
    summary = tracker.stop()
    text = statement(summary, "latex")
    assert "a private infrastructure, which has a carbon efficiency of 0.05 kgCO$_2$eq/kWh" in text
    assert "power\\_w" in text  # the device name's underscore, escaped
    assert text.endswith("\\cite{lacoste2019quantifying}.")
    with pytest.raises(ValueError, match="markdown' or 'latex"):
        statement(summary, "html")


LATEX_SPECIALS = "\\{}$&#^_~%"
LATEX_ESCAPED = {
    "\\": r"\textbackslash{}",
    "{": r"\{",
    "}": r"\}",
    "$": r"\$",
    "&": r"\&",
    "#": r"\#",
    "^": r"\textasciicircum{}",
    "_": r"\_",
    "~": r"\textasciitilde{}",
    "%": r"\%",
}
NAME = f"a{LATEX_SPECIALS}b ~x^2 100% C:\\dir\\ {{}}"  # every special character, and pairs


def unlatex(text: str) -> str:
    """What LaTeX prints for escaped `text`: the inverse of latex_escape, in one pass."""
    inverse = {v: k for k, v in LATEX_ESCAPED.items()}
    pattern = "|".join(re.escape(v) for v in sorted(inverse, key=len, reverse=True))
    return re.sub(pattern, lambda m: inverse[m.group()], text)


@pytest.mark.parametrize("special", list(LATEX_SPECIALS))
def test_latex_escape_escapes_every_special_character(special):
    assert latex_escape(f"x{special}y") == f"x{LATEX_ESCAPED[special]}y"


def test_latex_escape_turns_control_characters_into_spaces():
    assert latex_escape("a\x1b[2Jb\nc\x7f\x9bd") == "a [2Jb c  d"


def latex_statements(run) -> list[str]:
    """Both statements in LaTeX, of a run and an estimate whose names are all specials."""
    site = {**run.site, "provider": None, "kind": "country", "name": NAME, "pue_source": NAME}
    devices = {"gpu": [{"name": NAME, "method": "counter"}]}
    measured = statement(dataclasses.replace(run, site=site, hardware=devices), "latex")
    calculated = estimate(hardware="T4", hours=1, location="FR")
    hardware = dataclasses.replace(calculated.hardware, name=NAME)
    return [measured, dataclasses.replace(calculated, hardware=hardware).statement("latex")]


def test_both_latex_statements_escape_a_name_of_special_characters(runs):
    _, run, _ = runs
    escaped = latex_escape(NAME)
    assert unlatex(escaped) == NAME
    for text in latex_statements(run):
        assert escaped in text
        outside_markup = (
            text.replace("kgCO$_2$eq", "")
            .replace("\\cite{lacoste2019quantifying}", "")
            .replace(PLUS_MINUS[True], "")
        )
        unescaped = re.sub(
            r"\\(textbackslash|textasciicircum|textasciitilde)\{\}|\\[{}$&#_%]", "", outside_markup
        )
        assert not re.search(r"[\\{}$&#^_~%]", unescaped), unescaped


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_both_latex_statements_compile(runs, tmp_path):
    _, run, _ = runs
    body = "\n\n".join(latex_statements(run))
    document = (
        "\\documentclass{article}\\usepackage[T1]{fontenc}\\begin{document}\n"
        f"{body}\n\\end{{document}}\n"
    )
    (tmp_path / "s.tex").write_text(document, encoding="utf-8")
    done = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "s.tex"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:]


def test_hardware_and_what_was_measured_and_what_estimated_in_words():
    hardware = {
        "gpu": [{"name": "NVIDIA A100-SXM4-80GB", "method": "counter"}] * 2,
        "cpu": [{"name": "AMD EPYC 7763", "method": "rapl"}],
        "ram": [{"name": "RAM (node)", "method": "model: W per GiB"}],
    }
    assert hardware_phrase(hardware) == "2 x NVIDIA A100-SXM4-80GB GPUs and AMD EPYC 7763 CPU"
    assert measured_with(hardware, {"ram"}) == (
        "Energy was measured for the GPU (the NVML total-energy counter) and the CPU (RAPL "
        "energy counters) and estimated for the RAM (a W per GiB model)"
    )
    assert "GPU (the NVML total-energy counter; estimated in part, after a fault)" in (
        measured_with(hardware, {"gpu"})
    )
    laptop = {
        "cpu": [{"name": "Intel", "method": "model: TDP x load", "tdp_w": 28.0}],
        "ram": [{"name": "RAM (process)", "method": "model: W per GiB"}],
    }
    assert measured_with(laptop, {"cpu", "ram"}) == (
        "Energy was estimated for the CPU (a TDP x load model, TDP 28 W) and the RAM (a W per "
        "GiB model); no counter measured any of it"
    )
    sampled = {"gpu": [{"name": "T4", "method": "sampled instant power"}]}
    assert measured_with(sampled, set()) == "Energy was measured for the GPU (NVML power samples)"
    assert hardware_phrase({"gpu": [], "cpu": []}) == "unmeasured hardware"
    assert measured_with({"gpu": [], "cpu": []}, set()) == "No device's energy was recorded"


def test_a_statement_says_which_stage_ran_and_never_uses_exponent_form(runs):
    _, run, _ = runs
    tiny = dataclasses.replace(run, stage="test")
    text = statement(tiny)
    assert "Testing ran for " in text and "Training ran" not in text
    assert not re.search(r"\d[eE][-+]?\d", text), text  # a run of micrograms in decimals
    assert "Training ran for " in statement(dataclasses.replace(run, stage="fit"))
    assert "The calibrate stage ran for " in statement(dataclasses.replace(run, stage="calibrate"))


# -- tables -----------------------------------------------------------------------------


def test_one_row_builder_serves_every_interval_table(runs):
    _, run, _ = runs
    rows = interval_rows(run.intervals)
    assert [r.label for r in rows] == ["1", "2", "3", "end"]
    assert [r.name for r in rows] == ["epoch 1", "epoch 2", "epoch 3", "end"]
    for row, interval in zip(rows, run.intervals, strict=True):
        assert row.gpu_kwh == pytest.approx(interval.gpu_j / 3.6e6)
        assert (row.energy_kwh, row.co2_kg) == (interval.energy_kwh, interval.co2_kg)
        assert row.metrics == interval.metrics


def test_the_table_renderer_aligns_cuts_and_rules():
    rows = [("a", 1, None), ("a much longer name", 22, "x")]
    assert table(("name", "n", "note"), rows, right=(1,)).splitlines() == [
        "name                 n  note",
        "------------------  --  ----",
        "a                    1  -",
        "a much longer name  22  x",
    ]
    cut = table(("name", "n"), [r[:2] for r in rows], shrink=(0,), width=14).splitlines()
    assert cut[3] == "a much lo…  22" and max(map(len, cut)) <= 14
    assert table(("", "x"), [("k", "v")], rule=False) == "   x\nk  v"


# -- plots -------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@needs_matplotlib
def test_plots_are_pngs_of_the_run(runs, tmp_path):
    pytest.importorskip(
        "matplotlib", reason='plots need matplotlib: pip install "carbonlog[report]"'
    )
    _, run, other = runs
    assert png_size(plots.energy_by_component(run, tmp_path / "e.png")) == (800, 560)
    assert png_size(plots.cumulative_co2(run, tmp_path / "c.png")) == (800, 360)
    path = plots.co2_vs_metric([run, other], "val_accuracy", tmp_path / "m.png", target=0.9)
    assert png_size(path) == (800, 400)
    with pytest.raises(ValueError, match="no run reported the metric 'bleu'"):
        plots.co2_vs_metric([run, other], "bleu", tmp_path / "none.png")


def test_plot_helpers():
    assert plots.literal("a $x$ b") == r"a \$x\$ b"


def test_cumulative_and_metric_points_follow_the_intervals(runs):
    _, run, _ = runs
    seconds, kg = plots.cumulative(run)
    assert kg[-1] == pytest.approx(run.co2_kg, rel=1e-12)
    assert len(seconds) == len(run.intervals) + 1
    xs, ys = plots.metric_points(run, "val_accuracy")
    assert ys == [0.6, 0.85, 0.93]
    assert xs == pytest.approx([sum(i.co2_kg for i in run.intervals[: n + 1]) for n in range(3)])


def test_importing_the_report_package_leaves_matplotlib_unloaded():
    code = "import sys, carbonlog.report, carbonlog.cli; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO / "src", timeout=60)


# -- the HTML page -----------------------------------------------------------------------


@needs_matplotlib
def test_report_escapes_every_user_string(runs, tmp_path):
    pytest.importorskip(
        "matplotlib", reason='plots need matplotlib: pip install "carbonlog[report]"'
    )
    path, run, other = runs
    with Ledger(path) as ledger:
        comparison = compare(run.id, other.id, target="val_accuracy>=0.9", ledger=ledger)
    files = write_report(run, tmp_path / "out", other=other, comparison=comparison)
    page = files.html.read_text(encoding="utf-8")
    assert "alert(" in page  # the hostile strings are there, as text
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>loss" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert "&lt;b&gt;loss&lt;/<wbr>b&gt;" in page  # a metric name, as a table header
    assert page.count("<script>") == 1 and f"<script>{html.SCRIPT}</script>" in page
    assert page.count('src="data:image/png;base64,') == 3
    assert set(files.plots) == {"energy", "cumulative", "compare"}


def test_report_locks_down_what_the_page_may_load_and_run(runs):
    _, run, _ = runs
    page = html.render(run, [], {"markdown": statement(run)})
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', page).group(1)
    assert "default-src &#x27;none&#x27;" in csp and "img-src data:" in csp
    assert html._sha256(html.SCRIPT) in csp and html._sha256(html.STYLE) in csp
    assert f"<style>{html.STYLE}</style>" in page  # the hash covers the style exactly
    assert "http://" not in page.split("<h2>Equivalents</h2>")[0]  # nothing fetched


def test_a_run_without_intervals_has_nothing_to_report(runs, tmp_path):
    _, run, _ = runs
    with pytest.raises(ValueError, match="no recorded interval"):
        write_report(dataclasses.replace(run, intervals=[]), tmp_path)


# -- figures a person reads --------------------------------------------------------------

ENERGY_SYMBOL = re.compile(r"(?<![\w/])[µmkMG]?Wh(?![\w/])")


def page_text(page: str) -> str:
    """The page's text a reader compares figures in: the statements (the paper's fixed units)
    and the citations of the equivalents' factors left out, intensities (g CO2e/kWh) too."""
    page = re.sub(
        r"<pre>.*?</pre>|<ol class=\"small\">.*?</ol>|<style>.*?</style>", "", page, flags=re.S
    )
    page = re.sub(r"<[^>]+>", " ", page, flags=re.S)
    return re.sub(r"g CO2e/kWh|g/kWh", "", page)


def test_a_page_shows_every_energy_in_one_unit_and_every_mass_in_one(runs):
    path, run, other = runs
    with Ledger(path) as ledger:
        comparison = compare(run.id, other.id, target="val_accuracy>=0.9", ledger=ledger)
    units = html.page_units(run, comparison)
    for kg in (run.co2_kg, 0.3, 2.0):  # micrograms, and enough for everyday equivalents
        scaled = dataclasses.replace(run, co2_kg=kg)
        text = page_text(html.render(scaled, [], {"markdown": statement(run)}, comparison))
        assert set(ENERGY_SYMBOL.findall(text)) == {units.energy.symbol}, text
        masses = set(re.findall(r"\d ([µm]?g|kg|k?t) CO2\b|CO2 ([µm]?g|kg|k?t)\b", text))
        shown = {m for pair in masses for m in pair if m}
        assert shown == {html.page_units(scaled, comparison).mass.symbol}, text
        assert not re.search(r"\d[eE][-+]?\d", text), text


def test_equivalents_are_shown_only_where_they_picture_something(runs):
    _, run, _ = runs
    tiny = html.render(run, [], {})  # micrograms of CO2
    assert "too little for an everyday equivalent: under 1% of one smartphone charge" in tiny
    assert "Paris-London" not in tiny.split("<h2>Run</h2>")[0]
    some = html.render(dataclasses.replace(run, co2_kg=0.3), [], {})
    section = some.split("<h2>Equivalents</h2>")[1].split("<h2>Run</h2>")[0]
    assert "like driving 2.8 km" in section and "smartphone 36 times" in section
    assert "Paris-London" not in section  # 0.006 flights pictures nothing
    assert section.count("<sup>") == 3 and section.count("</li>") == 6  # 3 items, 3 notes


def no_epoch_run(path: Path, stage: str):
    """A standalone stage: the tracker started and stopped, one closing interval."""
    tracker = Tracker(
        location="FR",
        power_w=WATTS,
        ledger=str(path),
        run_name="bert",
        run_info={"framework": "lightning", "stage": stage},
    ).start()
    time.sleep(0.01)
    run_id = tracker.stop().run_id
    with Ledger(path) as store:
        return store.run(run_id)


@pytest.mark.parametrize("stage", ["validate", "fit"])
def test_a_run_of_no_epoch_says_its_stage_and_its_one_interval(tmp_path, stage):
    run = no_epoch_run(tmp_path / "ledger.sqlite3", stage)
    assert interval_rows(run.intervals, run.stage)[0].name == stage
    page = html.render(run, [], {})
    cards = page.split('<div class="cards">')[1].split("</div></div>\n")[0]
    assert "epochs" not in cards and ">0<" not in cards
    assert f'<div class="value">{stage}</div><div class="name">stage: 1 interval, no epoch' in cards
    table = page.split("<h2>Intervals</h2>")[1]
    assert f"<tr><td>{stage}</td>" in table and "<td>end</td>" not in table
    assert f"lightning, {stage}, " in page  # the subtitle


@needs_matplotlib
def test_the_plots_label_their_axes_in_the_pages_units(runs, tmp_path, monkeypatch):
    path, run, other = runs
    with Ledger(path) as ledger:
        comparison = compare(run.id, other.id, target="val_accuracy>=0.9", ledger=ledger)
    labels, save = [], plots._save

    def keep_labels(figure, where):
        labels.extend(label for ax in figure.axes for label in (ax.get_xlabel(), ax.get_ylabel()))
        labels.extend(ax.get_xticklabels()[0].get_text() for ax in figure.axes[1:2])
        return save(figure, where)

    monkeypatch.setattr(plots, "_save", keep_labels)
    write_report(run, tmp_path / "out", other=other, comparison=comparison)
    units = html.page_units(run, comparison)
    assert f"energy ({units.energy.symbol})" in labels and f"CO2 ({units.mass.symbol})" in labels
    assert f"cumulative CO2 ({units.mass.symbol})" in labels  # the cumulative and compare plots
    assert labels.count(f"cumulative CO2 ({units.mass.symbol})") == 2
    assert not [label for label in labels if re.search(r"\((J|kWh|g)\)", label)]
    validate = no_epoch_run(tmp_path / "other.sqlite3", "validate")
    labels.clear()
    plots.energy_by_component(validate, tmp_path / "v.png")
    assert "validate: no epoch" in labels and "validate" in labels  # the bar's own label
