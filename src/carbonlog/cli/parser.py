"""The `carbonlog` command line: one subparser per command, bound to its command and view.

Each subcommand sets `act` (the function of carbonlog.cli.commands that returns its data) and
`render` (the function of the same name in carbonlog.cli.views that prints it); `main` calls
one, then the other.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Sequence
from typing import NoReturn

from carbonlog._version import __version__
from carbonlog.cli import commands, views
from carbonlog.report.statement import FORMATS
from carbonlog.report.text import terminal_safe

MOST_EPOCHS = 10_000
MOST_DEVICES = 1_000_000
MOST_RUNS = 1_000_000_000
MOST_HOURS = 1_000_000.0  # per device: over a century
MOST_TDP_W = 100_000.0  # a wafer-scale system draws about 25 kW
"""Bounds of the numeric options: absurd values are refused in one line (exit 2), and the
calculator's product of them stays finite."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line (exit 2) pointing at --help."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {terminal_safe(message)} (see {self.prog} --help)\n")


def _command(
    subparsers,
    name: str,
    summary: str,
    parents: Sequence[argparse.ArgumentParser] = (),
    key: str | None = None,
) -> argparse.ArgumentParser:
    """The subcommand `name`: commands.KEY does it, views.KEY shows it (KEY defaults to name)."""
    parser = subparsers.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".", parents=parents
    )
    parser.set_defaults(act=getattr(commands, key or name), render=getattr(views, key or name))
    return parser


def _shown(text: str) -> str:
    """An argument as an error message quotes it: repr (escapes included), cut at 40 chars."""
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _whole(most: int) -> Callable[[str], int]:
    """An argparse type: a whole number from 1 to `most`."""

    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not 1 <= value <= most:
            raise argparse.ArgumentTypeError(
                f"must be a whole number >= 1 and <= {most:,}, got {_shown(text)}"
            )
        return value

    return whole


def _positive(most: float) -> Callable[[str], float]:
    """An argparse type: a number above 0 and at most `most` (NaN and infinity refused)."""

    def positive(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not 0 < value <= most:
            raise argparse.ArgumentTypeError(
                f"must be a number > 0 and <= {most:,.0f}, got {_shown(text)}"
            )
        return value

    return positive


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand and option."""
    parser = _Parser(prog="carbonlog", description="Energy and CO2 of machine-learning training.")
    parser.add_argument("--version", action="version", version=f"carbonlog {__version__}")
    ledger_help = (
        "the run ledger to read: a file or a folder holding ledger.sqlite3 "
        "(default: $CARBONLOG_HOME, else the user's data directory)"
    )
    parser.add_argument("--ledger", metavar="PATH", help=ledger_help)
    # Also accepted after the subcommand; SUPPRESS keeps a value given before it.
    ledger = argparse.ArgumentParser(add_help=False)
    ledger.add_argument("--ledger", metavar="PATH", default=argparse.SUPPRESS, help=ledger_help)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON for scripts")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_demo(subparsers)
    _add_calculator(subparsers, as_json)
    _add_when(subparsers, as_json)
    _add_ledger_commands(subparsers, [as_json, ledger])
    return parser


def _add_demo(subparsers) -> None:
    """demo: a real small training, offline."""
    demo = _command(
        subparsers, "demo", "train a small model with carbonlog and print energy and CO2"
    )
    demo.add_argument(
        "--epochs", type=_whole(MOST_EPOCHS), default=5, help="epochs to train (default 5)"
    )
    demo.add_argument(
        "--framework",
        choices=("auto", "lightning", "torch"),
        default="auto",
        help="Lightning when installed (auto), or a plain PyTorch loop",
    )
    demo.add_argument(
        "--location",
        default=None,
        help="where the energy is drawn: FR, US-CA, gcp:us-central1 ... "
        "(default: $CARBONLOG_LOCATION, else the world average)",
    )
    demo.add_argument("--no-ledger", action="store_true", help="do not record the run")


def _add_calculator(subparsers, as_json: argparse.ArgumentParser) -> None:
    """estimate, intensity and regions: the tables, no ledger."""
    est = _command(
        subparsers,
        "estimate",
        "estimate a training's energy and CO2 from hardware, hours and region, "
        "as the ML CO2 Impact calculator does",
        [as_json],
    )
    est.add_argument("--hardware", required=True, help='e.g. "A100 SXM4 80 GB", T4, "TPU v3"')
    est.add_argument("--count", type=_whole(MOST_DEVICES), default=1, help="devices (default 1)")
    est.add_argument("--hours", type=_positive(MOST_HOURS), required=True, help="hours of training")
    est.add_argument("--location", help="FR, US-CA, gcp:us-central1 ... (default: environment)")
    est.add_argument("--pue", type=float, help="the facility's PUE (default: the provider's, or 1)")
    est.add_argument("--intensity", type=float, help="g CO2e/kWh, instead of the table's figure")
    est.add_argument(
        "--tdp", type=_positive(MOST_TDP_W), help="watts per device, for hardware without a TDP"
    )
    est.add_argument(
        "--compare", metavar="HW,HW", help="other hardware to price the same work on: H100,T4"
    )
    est.add_argument("--format", choices=FORMATS, default="markdown", help="of the statement")
    est.add_argument(
        "--dataset",
        choices=("carbonlog", "mlco2"),
        default="carbonlog",
        help="carbonlog's tables (default) or the ML CO2 Impact calculator's own data and formula",
    )
    est.add_argument(
        "--rounded", action="store_true", help="with --dataset mlco2: the calculator's rounding"
    )
    est.add_argument(
        "--precision",
        choices=("fp16", "fp32"),
        help="peak FLOPS of --compare: tensor FP16/BF16 or FP32 (default: fp16 where both have it)",
    )

    inten = _command(
        subparsers,
        "intensity",
        "a location's carbon intensity with its source and year; without LOCATION, the "
        "default this environment resolves to",
        [as_json],
    )
    inten.add_argument("location", nargs="?", help="FR, US-CA, gcp:us-central1, WORLD ...")

    regions = _command(subparsers, "regions", "list cloud regions and their intensity", [as_json])
    regions.add_argument("--provider", help="gcp, aws, azure ... (default: all)")
    regions.add_argument("--sort", action="store_true", help="cleanest first, by g CO2e/kWh x PUE")


def _time(text: str):
    """An argparse type: an ISO 8601 time with its zone (Z or an offset), as an aware datetime."""
    from carbonlog.intensity.forecast import ForecastError, parse_time

    try:
        return parse_time(text)
    except ForecastError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _add_when(subparsers, as_json: argparse.ArgumentParser) -> None:
    """when: the greenest start in a forecast, from a file or a live source asked for."""
    when = _command(
        subparsers,
        "when",
        "the start time in a carbon-intensity forecast that gives a run the least CO2, and "
        "what it saves against starting now",
        [as_json],
    )
    when.add_argument(
        "--location", help="FR, GB, azure:westeurope ... (default: $CARBONLOG_LOCATION)"
    )
    when.add_argument(
        "--hours", type=_positive(MOST_HOURS), required=True, help="how long the run lasts"
    )
    given = when.add_mutually_exclusive_group()
    given.add_argument(
        "--forecast",
        metavar="FILE",
        help="a forecast file: Carbon Aware SDK JSON, UK Carbon Intensity data[], "
        "Electricity Maps or WattTime JSON, or a CSV of timestamp,g_per_kwh",
    )
    given.add_argument(
        "--source",
        choices=("carbonintensity", "electricitymaps", "watttime"),
        help="ask a live source (network): the UK Carbon Intensity API (no key), Electricity "
        "Maps ($ELECTRICITYMAPS_TOKEN) or WattTime ($WATTTIME_USERNAME, $WATTTIME_PASSWORD)",
    )
    when.add_argument(
        "--zone", help="the live source's own name of the grid: US-CAL-CISO, CAISO_NORTH ..."
    )
    when.add_argument(
        "--regions",
        action="store_true",
        help="also the provider's other regions (a cloud --location), greenest first",
    )
    when.add_argument(
        "--now",
        type=_time,
        metavar="TIME",
        help="the earliest start, ISO 8601 with Z or an offset (default: now)",
    )
    when.add_argument(
        "--finish-by",
        type=_time,
        metavar="TIME",
        help="the latest end, ISO 8601 with Z or an offset",
    )


def _add_ledger_commands(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """runs, runs show, compare, report and statement: they read the ledger."""
    runs = _command(subparsers, "runs", "list the runs of the ledger, newest first", parents)
    runs.add_argument("--task", help="only runs of this task")
    runs.add_argument("--model", help="only runs of this model or base model")
    runs.add_argument("--status", help="completed, failed, interrupted, budget, running")
    runs.add_argument("--tag", help="only runs with this tag (key=value for mapped tags)")
    runs.add_argument(
        "--limit", type=_whole(MOST_RUNS), default=50, help="at most N runs (default 50)"
    )
    runs.add_argument(
        "--by",
        choices=("task", "tag", "model", "base_model", "framework", "status", "search"),
        help="totals per task (or tag, model...): the cost of experimenting; per "
        "hyperparameter search, with its best trial",
    )
    runs.add_argument(
        "--objective",
        metavar="METRIC",
        help="with --by search: the metric that ranks trials (its last value in each)",
    )
    runs.add_argument(
        "--direction",
        choices=("minimize", "maximize"),
        help="with --objective: the better way (default: minimize a *loss or *error, "
        "else maximize)",
    )
    runs_commands = runs.add_subparsers(dest="runs_command", metavar="show")
    show = _command(
        runs_commands, "show", "one run: its facts and intervals", parents, key="runs_show"
    )
    show.add_argument("run", help="run id or name")

    cmp = _command(
        subparsers,
        "compare",
        "two runs side by side, and what each took to reach a target",
        parents,
    )
    cmp.add_argument("a", help="run id or name")
    cmp.add_argument("b", help="run id or name")
    cmp.add_argument("--target", help='a metric threshold: "val_accuracy>=0.9"')
    cmp.add_argument("--metric", help="the metric to show (default: one both runs logged)")

    rep = _command(
        subparsers, "report", "write a self-contained HTML report and PNG plots of a run", parents
    )
    rep.add_argument("run", help="run id or name")
    rep.add_argument(
        "--out", metavar="DIR", help="folder to write (default: carbonlog-report-runID)"
    )
    rep.add_argument("--compare", metavar="RUN", help="a second run to compare against")
    rep.add_argument("--target", help='with --compare: "val_accuracy>=0.9"')
    rep.add_argument("--metric", help="with --compare: the metric to plot against CO2")

    stm = _command(
        subparsers, "statement", "the paper-style emissions statement of a measured run", parents
    )
    stm.add_argument("run", help="run id or name")
    stm.add_argument("--format", choices=FORMATS, default="markdown")
    stm.add_argument("--bibtex", action="store_true", help="also print the BibTeX to cite")
