"""All of carbonlog's text and pictures: terminal text (text, rows, comparison), the
emissions statements, PNG plots, a self-contained HTML page, the model-card metadata.

    from carbonlog.ledger import Ledger
    from carbonlog.report import write_report
    with Ledger() as ledger:
        files = write_report(ledger.run("bert-sst2"), "report/")

Plots need matplotlib (pip install "carbonlog[report]"); the rest needs nothing. Importing
the package is cheap: the HTML page and the plots load when a report is written.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from carbonlog.errors import ConfigurationError
from carbonlog.report.statement import FORMATS, statement

__all__ = ["FORMATS", "ReportFiles", "statement", "write_report"]

HTML_NAME = "report.html"
PLOT_NAMES = {
    "energy": "energy_by_component.png",
    "cumulative": "cumulative_co2.png",
    "compare": "co2_vs_metric.png",
}


@dataclass
class ReportFiles:
    """What write_report() wrote: the HTML page and each PNG, by plot name."""

    html: Path
    plots: dict[str, Path] = field(default_factory=dict)


def write_report(
    run,
    out_dir: str | os.PathLike,
    other=None,
    comparison=None,
    progress: Callable[[str], None] | None = None,
) -> ReportFiles:
    """Write the PNG plots and the HTML report of a ledger run (with its intervals) to `out_dir`.

    With `other` (a second run) and `comparison` (carbonlog.compare.Comparison of the two),
    the report adds the comparison and both runs' metric against their cumulative CO2.
    `progress` receives one line per step (the CLI prints them on stderr).
    """
    from carbonlog.report import html, plots

    say = progress or (lambda _line: None)
    if not run.intervals:
        raise ConfigurationError(f"{run.label} has no recorded interval: nothing to report")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = ReportFiles(html=out / HTML_NAME)
    units = html.page_units(run, comparison)
    compared = comparison is not None and other is not None and comparison.metric is not None
    steps = 3 + compared
    say(f"[1/{steps}] energy and CO2 per interval by component")
    files.plots["energy"] = plots.energy_by_component(run, out / PLOT_NAMES["energy"], units)
    say(f"[2/{steps}] cumulative CO2")
    files.plots["cumulative"] = plots.cumulative_co2(run, out / PLOT_NAMES["cumulative"], units)
    figures = [
        html.Plot(
            files.plots["energy"].read_bytes(),
            "Stacked bars of energy and CO2 per interval, by component",
            "Facility energy (device energy x PUE) and CO2 of each interval, by component; "
            "on a long run, each bar is the mean of a group of consecutive intervals.",
        ),
        html.Plot(
            files.plots["cumulative"].read_bytes(),
            "Line of cumulative CO2 against elapsed time",
            "CO2 emitted so far against elapsed time; a marker at each interval's end.",
        ),
    ]
    comparison_plot = None
    if compared:
        say(f"[3/{steps}] {comparison.metric} against cumulative CO2, both runs")
        target = comparison.target.value if comparison.target is not None else None
        try:
            path = plots.co2_vs_metric(
                [run, other], comparison.metric, out / PLOT_NAMES["compare"], target, units
            )
        except ValueError as exc:  # neither run logged the metric: the table still compares
            say(f"      skipped: {exc}")
        else:
            files.plots["compare"] = path
            comparison_plot = html.Plot(
                path.read_bytes(),
                f"Lines of {comparison.metric} against cumulative CO2 for both runs",
                f"{comparison.metric} of each run against the CO2 it had emitted by then.",
            )
    say(f"[{steps}/{steps}] {files.html.name}")
    statements = {fmt: statement(run, fmt) for fmt in FORMATS}
    page = html.render(run, figures, statements, comparison, comparison_plot, units)
    files.html.write_text(page, encoding="utf-8")
    return files
