"""The `carbonlog` command line: one subparser per command, bound to its command and view.

Each subcommand sets `act` (the function of carbonlog.cli.commands that returns its data) and
`render` (the function of the same name in carbonlog.cli.views that prints it); `main` calls
one, then the other.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from carbonlog._version import __version__
from carbonlog.cli import commands, views
from carbonlog.report.statement import FORMATS


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


def _positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand and option."""
    parser = argparse.ArgumentParser(
        prog="carbonlog", description="Energy and CO2 of machine-learning training."
    )
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
    _add_ledger_commands(subparsers, [as_json, ledger])
    return parser


def _add_demo(subparsers) -> None:
    """demo: a real small training, offline."""
    demo = _command(
        subparsers, "demo", "train a small model with carbonlog and print energy and CO2"
    )
    demo.add_argument("--epochs", type=_positive_int, default=5, help="epochs to train (default 5)")
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
    est.add_argument("--count", type=_positive_int, default=1, help="devices (default 1)")
    est.add_argument("--hours", type=float, required=True, help="hours of training")
    est.add_argument("--location", help="FR, US-CA, gcp:us-central1 ... (default: environment)")
    est.add_argument("--pue", type=float, help="the facility's PUE (default: the provider's, or 1)")
    est.add_argument("--intensity", type=float, help="g CO2e/kWh, instead of the table's figure")
    est.add_argument("--tdp", type=float, help="watts per device, for hardware without a TDP")
    est.add_argument(
        "--compare", metavar="HW,HW", help="other hardware to price the same work on: H100,T4"
    )
    est.add_argument("--format", choices=FORMATS, default="markdown", help="of the statement")

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


def _add_ledger_commands(subparsers, parents: list[argparse.ArgumentParser]) -> None:
    """runs, runs show, compare, report and statement: they read the ledger."""
    runs = _command(subparsers, "runs", "list the runs of the ledger, newest first", parents)
    runs.add_argument("--task", help="only runs of this task")
    runs.add_argument("--model", help="only runs of this model or base model")
    runs.add_argument("--status", help="completed, failed, interrupted, budget, running")
    runs.add_argument("--tag", help="only runs with this tag (key=value for mapped tags)")
    runs.add_argument("--limit", type=_positive_int, default=50, help="at most N runs (default 50)")
    runs.add_argument(
        "--by",
        choices=("task", "tag", "model", "base_model", "framework", "status"),
        help="totals per task (or tag, model...): the cost of experimenting",
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
