"""The `carbonlog` command: one entry point, a subcommand per task.

    carbonlog estimate --hardware "A100 SXM4 80 GB" --count 8 --hours 24 --location gcp:us-central1
    carbonlog runs --task sst2          carbonlog runs show 12
    carbonlog compare 12 15 --target "val_accuracy>=0.9"
    carbonlog report 12 --out report/   carbonlog statement 12 --format latex

Every command takes --help; those that print data take --json. The ledger is
$CARBONLOG_HOME/ledger.sqlite3 (or the user's data directory), or --ledger PATH.
Exit codes: 0 done, 1 a failure to act on (no such run, no ledger, a missing extra),
2 bad arguments, 130 interrupted. Tables fit the terminal (80 columns when piped);
progress goes to stderr, results to stdout.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from carbonlog import __version__
from carbonlog.text import format_co2
from carbonlog.units import J_PER_KWH

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
ENV_INTENSITY_VARS = ("CARBONLOG_LOCATION", "CARBONLOG_INTENSITY", "CARBONLOG_PUE")


class CommandError(Exception):
    """A user-facing failure: printed as one line, no traceback, with its exit code."""

    def __init__(self, message: str, code: int = EXIT_FAILURE):
        super().__init__(message)
        self.code = code


# -- output helpers ----------------------------------------------------------------------


def _width() -> int:
    """The terminal's width ($COLUMNS, else the terminal, else 80)."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def _finite(value):
    """JSON has no NaN or infinity: they become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _print_json(value) -> None:
    print(json.dumps(_finite(value), indent=2, default=str, ensure_ascii=False))


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    right: Sequence[int] = (),
    shrink: Sequence[int] = (),
    width: int | None = None,
) -> str:
    """A fixed-width table; columns in `shrink` are cut (with an ellipsis) to fit `width`."""
    width = width or _width()
    cells = [[str(c) for c in headers]] + [["-" if c is None else str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    excess = sum(widths) + 2 * (len(widths) - 1) - width
    while excess > 0:
        cuttable = [i for i in shrink if widths[i] > max(8, len(headers[i]))]
        if not cuttable:
            break
        widest = max(cuttable, key=lambda i: widths[i])
        widths[widest] -= 1
        excess -= 1

    def fit(text: str, i: int) -> str:
        if len(text) > widths[i]:
            text = text[: widths[i] - 1] + "…"
        return text.rjust(widths[i]) if i in right else text.ljust(widths[i])

    lines = ["  ".join(fit(c, i) for i, c in enumerate(row)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _pairs(pairs: Sequence[tuple[str, object]], width: int | None = None) -> str:
    """`key  value` lines, values wrapped under themselves to fit the terminal."""
    width = width or _width()
    pairs = [(k, v) for k, v in pairs if v not in (None, "")]
    key_width = max((len(k) for k, _ in pairs), default=0) + 2
    lines = []
    for key, value in pairs:
        wrapped = textwrap.wrap(str(value), max(20, width - key_width)) or [""]
        lines.append(f"{key.ljust(key_width)}{wrapped[0]}")
        lines += [" " * key_width + more for more in wrapped[1:]]
    return "\n".join(lines)


def _paragraphs(text: str, width: int | None = None) -> str:
    """Each line of `text` filled to the terminal's width (statements are long lines)."""
    width = width or _width()
    return "\n".join(textwrap.fill(line, width) if line else "" for line in text.split("\n"))


def _progress(line: str) -> None:
    print(f"carbonlog: {line}", file=sys.stderr, flush=True)


def _kwh(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _date(epoch_s: float | None) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(epoch_s)) if epoch_s else "-"


# -- the ledger --------------------------------------------------------------------------


def _ledger_path(args: argparse.Namespace) -> Path:
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
    run = ledger.run(ref)
    if run is None:
        raise CommandError(f"no run {ref!r} in {ledger.path}; `carbonlog runs` lists them")
    return run


# -- demo --------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from carbonlog.demo import run

    options = {"location": args.location, "ledger": not args.no_ledger}
    run(epochs=args.epochs, framework=args.framework, **options)
    return 0


# -- estimate ----------------------------------------------------------------------------


def _estimate(args: argparse.Namespace) -> int:
    from carbonlog.equivalents import describe_all, equivalents
    from carbonlog.estimate import estimate

    compare = [n.strip() for n in (args.compare or "").split(",") if n.strip()]
    found = estimate(
        hardware=args.hardware,
        count=args.count,
        hours=args.hours,
        location=args.location,
        pue=args.pue,
        compare_hardware=compare,
        intensity=args.intensity,
        tdp_w=args.tdp,
    )
    if args.json:
        _print_json(
            {
                **found.to_dict(),
                "equivalents": equivalents(found.co2_kg),
                "statement": {f: found.statement(f) for f in ("markdown", "latex")},
            }
        )
        return 0
    grid = found.grid
    source = f"{grid.source}, {grid.year}" if grid.year else grid.source
    offset = f", {found.offset_ratio:.0%} offset by the provider" if found.offset_ratio else ""
    print(
        _pairs(
            [
                ("hardware", f"{found.count} x {found.hardware.name} (TDP {found.tdp_w:g} W)"),
                ("time", f"{found.hours:g} h, {found.device_hours:g} device-hours"),
                ("location", f"{grid.code}: {grid.name}"),
                ("intensity", f"{grid.g_per_kwh:.4g} g CO2e/kWh ({source})"),
                ("PUE", f"{found.pue:g} ({found.pue_source})"),
                ("energy", f"{found.energy_kwh:.4g} kWh at the facility"),
                ("CO2", f"{format_co2(found.co2_kg)}{offset}"),
                ("that is", "; ".join(describe_all(found.co2_kg))),
            ]
        )
    )
    if found.cleanest is not None:
        factor = found.cleanest_factor
        times = "the same" if factor is None or factor <= 1 else f"{factor:.3g}x less"
        print(
            "\n"
            + _paragraphs(
                f"cleanest {grid.provider} region: {found.cleanest.code} "
                f"({found.cleanest.name}): {format_co2(found.cleanest_co2_kg)}, {times}"
            )
        )
    if found.comparisons:
        print(f"\nthe same work (same FLOPs at peak) on other hardware at {grid.code}:")
        rows = [
            (
                c.hardware.name,
                c.precision,
                f"{c.device_hours:.4g}",
                f"{c.energy_kwh:.4g}",
                format_co2(c.co2_kg),
                f"{c.factor:.2f}x",
            )
            for c in found.comparisons
        ]
        headers = ("hardware", "peak", "device-h", "kWh", "CO2", "vs " + found.hardware.name)
        print(table(headers, rows, right=(2, 3, 4, 5), shrink=(0, 5)))
    print("\nstatement:\n" + found.statement(args.format))
    return 0


# -- intensity and regions ---------------------------------------------------------------


def _intensity(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from carbonlog.intensity import intensity, resolve_site

    if args.location:
        grid = intensity(args.location)
        facts = asdict(grid)
        pairs = [
            ("location", f"{grid.code}: {grid.name}"),
            ("intensity", f"{grid.g_per_kwh:.4g} g CO2e/kWh"),
            ("source", f"{grid.source}, {grid.year}" if grid.year else grid.source),
        ]
        if grid.kind == "cloud":
            pairs += [
                ("grid", grid.location),
                ("PUE", f"{grid.pue:g} ({grid.pue_source})" if grid.pue else "not published"),
                ("offset", f"{grid.offset_ratio:.0%} by the provider"),
            ]
    else:
        site = resolve_site()
        facts = {**site.describe(), "configured_by": _configured_by()}
        pairs = [
            ("location", f"{facts['location']}: {facts['name']}"),
            ("intensity", f"{facts['g_per_kwh']:.4g} g CO2e/kWh"),
            ("source", f"{facts['source']}, {facts['year']}" if facts["year"] else facts["source"]),
            ("PUE", f"{facts['pue']:g} ({facts['pue_source']})"),
            ("set by", facts["configured_by"]),
        ]
    if args.json:
        _print_json(facts)
    else:
        print(_pairs(pairs))
    return 0


def _configured_by() -> str:
    """Which environment variables set the default site, or the world-average fallback."""
    set_vars = [f"{v}={os.environ[v].strip()}" for v in ENV_INTENSITY_VARS if os.environ.get(v)]
    return ", ".join(set_vars) or "nothing set: the world average"


def _regions(args: argparse.Namespace) -> int:
    from carbonlog.intensity.tables import tables

    t = tables()
    provider = args.provider.strip().lower() if args.provider else None
    if provider and provider not in t.providers:
        raise CommandError(
            f"unknown provider {args.provider!r}; choose one of {', '.join(sorted(t.providers))}",
            EXIT_USAGE,
        )
    regions = [g for g in t.clouds.values() if not provider or g.provider == provider]
    if args.sort:
        regions.sort(key=lambda g: (g.g_per_kwh * (g.pue or 1.0), g.code))
    if args.json:
        from dataclasses import asdict

        _print_json([asdict(g) for g in regions])
        return 0
    rows = [
        (
            g.code,
            g.name.split(" (", 1)[1].rstrip(")") if " (" in g.name else g.location,
            f"{g.g_per_kwh:.0f}",
            f"{g.pue:g}" if g.pue else "-",
            f"{g.g_per_kwh * (g.pue or 1.0):.0f}",
            g.year,
        )
        for g in regions
    ]
    headers = ("region", "where", "g/kWh", "PUE", "x PUE", "year")
    print(table(headers, rows, right=(2, 3, 4, 5), shrink=(0, 1)))
    order = "cleanest first (g/kWh x PUE)" if args.sort else "by name; --sort for cleanest first"
    print(f"{len(rows)} regions, {order}")
    return 0


# -- runs --------------------------------------------------------------------------------


def _runs(args: argparse.Namespace) -> int:
    with _open_ledger(args) as ledger:
        filters = {"task": args.task, "model": args.model, "status": args.status, "tag": args.tag}
        if args.by:
            groups = ledger.totals(by=args.by, **filters)
            if args.json:
                _print_json([g.to_dict() for g in groups])
                return 0
            rows = [
                (
                    "-" if g.key is None else g.key,
                    g.runs,
                    ", ".join(f"{n} {s}" for s, n in sorted(g.statuses.items())),
                    _kwh(g.energy_kwh),
                    format_co2(g.co2_kg),
                    format_co2(g.completed_co2_kg),
                )
                for g in groups
            ]
            headers = (args.by, "runs", "statuses", "kWh", "CO2", "completed")
            print(table(headers, rows, right=(1, 3, 4, 5), shrink=(0, 2)))
            return 0
        runs = ledger.runs(**filters, limit=args.limit)
    if args.json:
        _print_json([r.to_dict() for r in runs])
        return 0
    if not runs:
        print("no runs match" if any(filters.values()) else "no runs recorded yet")
        return 0
    rows = [
        (
            r.id,
            r.name,
            r.task,
            r.model,
            r.status,
            r.epochs,
            _kwh(r.energy_kwh),
            format_co2(r.co2_kg),
            _date(r.started_at),
        )
        for r in runs
    ]
    headers = ("id", "name", "task", "model", "status", "ep", "kWh", "CO2", "started")
    print(table(headers, rows, right=(0, 5, 6, 7), shrink=(1, 2, 3)))
    return 0


def _runs_show(args: argparse.Namespace) -> int:
    from carbonlog.report.plots import interval_labels
    from carbonlog.report.statement import hardware_phrase

    with _open_ledger(args) as ledger:
        run = _find_run(ledger, args.run)
    if args.json:
        _print_json(run.to_dict())
        return 0
    site = run.site or {}
    source = f"{site.get('source')}, {site.get('year')}" if site.get("year") else site.get("source")
    print(
        _pairs(
            [
                ("run", run.label),
                ("status", run.status + (f" ({run.stop_reason})" if run.stop_reason else "")),
                ("framework", " / ".join(filter(None, (run.framework, run.stage)))),
                ("model", run.model),
                ("base model", run.base_model),
                ("task", run.task),
                ("tags", ", ".join(run.tags)),
                ("started", _date(run.started_at)),
                ("hardware", hardware_phrase(run.hardware)),
                ("location", f"{run.location}: {site.get('name')}" if run.location else None),
                ("intensity", f"{site.get('g_per_kwh') or 0:.4g} g CO2e/kWh ({source})"),
                ("PUE", f"{site.get('pue') or 1.0:g} ({site.get('pue_source') or 'default'})"),
                ("energy", f"{run.energy_kwh:.4g} kWh at the facility"),
                ("CO2", format_co2(run.co2_kg)),
            ]
        )
    )
    if run.intervals:
        rows = [
            (
                label,
                f"{iv.duration_s:.1f}",
                _kwh(iv.gpu_j / J_PER_KWH),
                _kwh(iv.cpu_j / J_PER_KWH),
                _kwh(iv.ram_j / J_PER_KWH),
                _kwh(iv.energy_kwh),
                format_co2(iv.co2_kg),
                ",".join(iv.estimated) or "-",
            )
            for label, iv in zip(interval_labels(run.intervals), run.intervals, strict=True)
        ]
        headers = ("epoch", "s", "GPU kWh", "CPU kWh", "RAM kWh", "kWh", "CO2", "estimated")
        print("\n" + table(headers, rows, right=range(1, 7), shrink=(0, 7)))
    return 0


# -- compare, report, statement ----------------------------------------------------------


def _comparison(args: argparse.Namespace, ledger, a, b):
    from carbonlog.compare import compare

    return compare(a.id, b.id, target=args.target, metric=args.metric, ledger=ledger)


def _compare(args: argparse.Namespace) -> int:
    with _open_ledger(args) as ledger:
        a, b = _find_run(ledger, args.a), _find_run(ledger, args.b)
        comparison = _comparison(args, ledger, a, b)
    if args.json:
        _print_json(comparison.to_dict())
    else:
        print(comparison.table())
    return 0


def _report(args: argparse.Namespace) -> int:
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
    files = write_report(run, out, other=other, comparison=comparison, progress=progress)
    if args.json:
        _print_json({"html": str(files.html), "plots": {k: str(p) for k, p in files.plots.items()}})
    else:
        print(files.html)
    return 0


def _statement(args: argparse.Namespace) -> int:
    from carbonlog.report.statement import BIBTEX, statement

    with _open_ledger(args) as ledger:
        run = _find_run(ledger, args.run)
    text = statement(run, args.format)
    if args.json:
        _print_json({"run": run.id, "format": args.format, "statement": text, "bibtex": BIBTEX})
        return 0
    print(text)
    if args.bibtex:
        print("\n" + BIBTEX)
    return 0


# -- the parser --------------------------------------------------------------------------


def _command(
    commands,
    name: str,
    handler: Callable[[argparse.Namespace], int],
    summary: str,
    parents: Sequence[argparse.ArgumentParser] = (),
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name, help=summary, description=summary[0].upper() + summary[1:] + ".", parents=parents
    )
    parser.set_defaults(handler=handler)
    return parser


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = _command(
        commands, "demo", _demo, "train a small model with carbonlog and print energy and CO2"
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

    est = _command(
        commands,
        "estimate",
        _estimate,
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
    est.add_argument(
        "--format", choices=("markdown", "latex"), default="markdown", help="of the statement"
    )

    inten = _command(
        commands,
        "intensity",
        _intensity,
        "a location's carbon intensity with its source and year; without LOCATION, the "
        "default this environment resolves to",
        [as_json],
    )
    inten.add_argument("location", nargs="?", help="FR, US-CA, gcp:us-central1, WORLD ...")

    regions = _command(
        commands, "regions", _regions, "list cloud regions and their intensity", [as_json]
    )
    regions.add_argument("--provider", help="gcp, aws, azure ... (default: all)")
    regions.add_argument("--sort", action="store_true", help="cleanest first, by g CO2e/kWh x PUE")

    runs = _command(
        commands, "runs", _runs, "list the runs of the ledger, newest first", [as_json, ledger]
    )
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
        runs_commands, "show", _runs_show, "one run: its facts and intervals", [as_json, ledger]
    )
    show.add_argument("run", help="run id or name")

    cmp = _command(
        commands,
        "compare",
        _compare,
        "two runs side by side, and what each took to reach a target",
        [as_json, ledger],
    )
    cmp.add_argument("a", help="run id or name")
    cmp.add_argument("b", help="run id or name")
    cmp.add_argument("--target", help='a metric threshold: "val_accuracy>=0.9"')
    cmp.add_argument("--metric", help="the metric to show (default: one both runs logged)")

    rep = _command(
        commands,
        "report",
        _report,
        "write a self-contained HTML report and PNG plots of a run",
        [as_json, ledger],
    )
    rep.add_argument("run", help="run id or name")
    rep.add_argument(
        "--out", metavar="DIR", help="folder to write (default: carbonlog-report-runID)"
    )
    rep.add_argument("--compare", metavar="RUN", help="a second run to compare against")
    rep.add_argument("--target", help='with --compare: "val_accuracy>=0.9"')
    rep.add_argument("--metric", help="with --compare: the metric to plot against CO2")

    stm = _command(
        commands,
        "statement",
        _statement,
        "the paper-style emissions statement of a measured run",
        [as_json, ledger],
    )
    stm.add_argument("run", help="run id or name")
    stm.add_argument("--format", choices=("markdown", "latex"), default="markdown")
    stm.add_argument("--bibtex", action="store_true", help="also print the BibTeX to cite")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from carbonlog.ledger import LedgerError

    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except CommandError as exc:
        code, message = exc.code, str(exc)
    except (ValueError, LookupError) as exc:
        code, message = EXIT_USAGE, str(exc)
    except BrokenPipeError:  # `carbonlog regions | head`: the reader has all it wants
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (LedgerError, ImportError, OSError) as exc:
        code, message = EXIT_FAILURE, str(exc)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    print(f"carbonlog: error: {message}", file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
