"""What each subcommand does, given its parsed arguments: it returns data, never prints it.

Modules load inside each command, so `carbonlog --help` stays fast. A failure the user can
act on is a CommandError, with the exit code it should end with.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from pathlib import Path

from carbonlog.errors import CarbonlogError
from carbonlog.report.text import terminal_safe

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
ENV_INTENSITY_VARS = ("CARBONLOG_LOCATION", "CARBONLOG_INTENSITY", "CARBONLOG_PUE")
DEMO_MODULE = "carbonlog.integrations.demo"  # by name: the core never imports an adapter
DEMO_NEEDS = ("torch", "lightning")  # what the demo imports that may not be installed


class CommandError(CarbonlogError):
    """A user-facing failure: printed as one line, no traceback, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


def _ledger_path(args: argparse.Namespace) -> Path:
    """The ledger file --ledger names (a file, or a folder holding one), else the default."""
    from carbonlog.ledger import FILE_NAME, default_path

    if not args.ledger:
        return default_path()
    path = Path(args.ledger).expanduser()
    return path / FILE_NAME if path.is_dir() else path


def _open_ledger(args: argparse.Namespace):
    """The ledger to read; a CommandError when there is none yet (never creates one)."""
    from carbonlog.ledger import Ledger, LedgerError

    path = _ledger_path(args)
    if not path.is_file():
        raise CommandError(
            f"no run ledger at {path}: runs are recorded there when you train with carbonlog "
            "(set CARBONLOG_HOME or pass --ledger PATH to read another)"
        )
    try:
        return Ledger(path)
    except LedgerError as exc:
        raise CommandError(str(exc)) from None


def _find_run(ledger, ref: str):
    """The run with id or name `ref`; a CommandError naming the ledger when there is none."""
    run = ledger.run(ref)
    if run is None:
        raise CommandError(f"no run {ref!r} in {ledger.path}; `carbonlog runs` lists them")
    return run


def _progress(line: str) -> None:
    """One line of progress, on stderr, so stdout holds only the result (terminal_safe: it
    can name a user's metric)."""
    print(f"carbonlog: {terminal_safe(line)}", file=sys.stderr, flush=True)


def demo(args: argparse.Namespace):
    """Train the demo model; its Summary."""
    options = {"location": args.location, "ledger": not args.no_ledger}
    try:
        training = importlib.import_module(DEMO_MODULE)
        return training.run(epochs=args.epochs, framework=args.framework, **options)
    except ModuleNotFoundError as exc:
        if (exc.name or "").partition(".")[0] not in DEMO_NEEDS:
            raise  # a module of carbonlog's own is missing: a bug, with its traceback
        raise CommandError(str(exc)) from None


def estimate(args: argparse.Namespace):
    """The calculator's Estimate for the arguments."""
    from carbonlog.estimate import estimate as calculate

    compare = [n.strip() for n in (args.compare or "").split(",") if n.strip()]
    return calculate(
        hardware=args.hardware,
        count=args.count,
        hours=args.hours,
        location=args.location,
        pue=args.pue,
        compare_hardware=compare,
        intensity=args.intensity,
        tdp_w=args.tdp,
        dataset=args.dataset,
        rounded=args.rounded,
        precision=args.precision,
    )


def intensity(args: argparse.Namespace):
    """The location's Grid; without one, the facts of the site the environment resolves to."""
    from carbonlog.intensity import intensity as grid_of
    from carbonlog.intensity import resolve_site

    if args.location:
        return grid_of(args.location)
    return {**resolve_site().describe(), "configured_by": _configured_by()}


def _configured_by() -> str:
    """Which environment variables set the default site, or the world-average fallback."""
    set_vars = [f"{v}={os.environ[v].strip()}" for v in ENV_INTENSITY_VARS if os.environ.get(v)]
    return ", ".join(set_vars) or "nothing set: the world average"


def regions(args: argparse.Namespace):
    """The cloud regions of the provider asked for (all without one), cleanest first if asked."""
    from carbonlog.intensity.tables import tables

    t = tables()
    provider = args.provider.strip().lower() if args.provider else None
    if provider and provider not in t.providers:
        raise CommandError(
            f"unknown provider {args.provider!r}; choose one of {', '.join(sorted(t.providers))}",
            EXIT_USAGE,
        )
    found = [g for g in t.clouds.values() if not provider or g.provider == provider]
    if args.sort:
        found.sort(key=lambda g: (g.g_per_kwh * (g.pue or 1.0), g.code))
    return found


def when(args: argparse.Namespace):
    """The Plan: the greenest start at the location (and its provider's regions, asked), from
    the --forecast file or the live --source."""
    from carbonlog.intensity import intensity as grid_of
    from carbonlog.intensity import planning
    from carbonlog.intensity.live import LiveError

    if not (args.forecast or args.source):
        raise CommandError("give a forecast: --forecast FILE, or --source to ask one", EXIT_USAGE)
    location = args.location or os.environ.get("CARBONLOG_LOCATION", "").strip() or None
    if args.source == "carbonintensity":
        location = location or "GB"
    grid = grid_of(location) if location else None
    try:
        if args.forecast:
            forecast_for, forecast = planning.from_file(args.forecast, grid)
        else:
            live = (args.source, grid, args.zone, args.now, args.regions)
            forecast_for, forecast = planning.from_source(*live), None
        options = {"regions": args.regions, "now": args.now, "finish_by": args.finish_by}
        return planning.plan(grid, forecast_for, args.hours, forecast=forecast, **options)
    except LiveError as exc:  # the network or the source failed: nothing wrong in the call
        raise CommandError(str(exc)) from None


def runs(args: argparse.Namespace):
    """The ledger's runs that match the filters, newest first; with --by, totals per group."""
    if (args.objective or args.direction) and args.by != "search":
        raise CommandError("--objective and --direction go with --by search", EXIT_USAGE)
    with _open_ledger(args) as ledger:
        if args.by == "search":
            chosen = {"objective": args.objective, "direction": args.direction}
            return ledger.searches(**chosen, **run_filters(args))
        if args.by:
            return ledger.totals(by=args.by, **run_filters(args))
        return ledger.runs(**run_filters(args), limit=args.limit)


def run_filters(args: argparse.Namespace) -> dict[str, str | None]:
    """The --task, --model, --status and --tag filters, by the ledger's names."""
    return {"task": args.task, "model": args.model, "status": args.status, "tag": args.tag}


def runs_show(args: argparse.Namespace):
    """One run of the ledger, with its intervals."""
    with _open_ledger(args) as ledger:
        return _find_run(ledger, args.run)


def _comparison(args: argparse.Namespace, ledger, a, b):
    """The Comparison of runs a and b with the --target and --metric asked for."""
    from carbonlog.compare import compare as compare_runs

    return compare_runs(a.id, b.id, target=args.target, metric=args.metric, ledger=ledger)


def compare(args: argparse.Namespace):
    """The Comparison of runs a and b."""
    with _open_ledger(args) as ledger:
        a, b = _find_run(ledger, args.a), _find_run(ledger, args.b)
        return _comparison(args, ledger, a, b)


def report(args: argparse.Namespace):
    """Write the run's report (progress on stderr unless --json); the files written."""
    from carbonlog.report import write_report

    if (args.target or args.metric) and not args.compare:
        raise CommandError("--target and --metric need --compare OTHER_RUN", EXIT_USAGE)
    with _open_ledger(args) as ledger:
        run = _find_run(ledger, args.run)
        other = comparison = None
        if args.compare:
            other = _find_run(ledger, args.compare)
            comparison = _comparison(args, ledger, run, other)
    if not run.intervals:
        raise CommandError(f"{run.label} has no recorded interval yet: nothing to report")
    out = Path(args.out) if args.out else Path(f"carbonlog-report-run{run.id}")
    progress = None if args.json else _progress
    try:
        return write_report(run, out, other=other, comparison=comparison, progress=progress)
    except ImportError as exc:  # matplotlib is not installed: the message names the extra
        raise CommandError(str(exc)) from None


def statement(args: argparse.Namespace):
    """The run whose statement is asked for."""
    with _open_ledger(args) as ledger:
        return _find_run(ledger, args.run)
