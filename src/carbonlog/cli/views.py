"""How each subcommand shows what it found: JSON for --json, else text through carbonlog.report.

Each view takes the command's data and the parsed arguments and prints to stdout through
`_show` or `_print_json`, which escape what a terminal would act on (a run name holding an
escape sequence prints as text).
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict

from carbonlog.cli.commands import run_filters
from carbonlog.report.rows import head_and_tail, interval_rows, run_band, run_methods
from carbonlog.report.text import (
    Units,
    dominance,
    format_co2,
    format_summary,
    format_time,
    json_safe,
    pairs,
    paragraphs,
    per_unit,
    plus_minus,
    significant,
    summary_table,
    table,
    terminal_lines,
    terminal_width,
)

MOST_ROWS = 40
"""Interval rows `runs show` prints: a longer run shows its first and last 20."""
NESTED = "  "
"""What a run of another stage is indented by, in the stage column, under the fit it follows."""


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
    """`value` as indented JSON, NaN and infinity as null."""
    print(json_safe(json.dumps(_finite(value), indent=2, default=str, ensure_ascii=False)))


def _show(text: object) -> None:
    """`text` on stdout, every line terminal_safe."""
    print(terminal_lines(str(text)))


def _source(source: str | None, year: int | None) -> str | None:
    """`Ember, 2023`: a figure's source with its year, when known."""
    return f"{source}, {year}" if year else source


def demo(summary, args: argparse.Namespace) -> None:
    """The demo run's table of intervals, then its totals line."""
    _show(summary_table(summary))
    _show(format_summary(summary, "demo"))


def estimate(found, args: argparse.Namespace) -> None:
    """The Estimate's facts and equivalents, the cleanest region, other hardware, the statement;
    every energy in one unit and every mass in one."""
    from carbonlog.equivalents import describe_all, equivalents

    if args.json:
        statements = {f: found.statement(f) for f in ("markdown", "latex")}
        extra = {"equivalents": equivalents(found.co2_kg, found.dataset), "statement": statements}
        _print_json({**found.to_dict(), **extra})
        return
    grid = found.grid
    units = Units.of(found, *found.comparisons)
    offset = f", {found.offset_ratio:.0%} offset by the provider" if found.offset_ratio else ""
    counts = f", {grid.convention}" if grid.convention else ""
    source = _source(grid.source, grid.year)
    facts = [
        ("hardware", f"{found.count} x {found.hardware.name} (TDP {found.tdp_w:g} W)"),
        ("matched", _matched(args.hardware, found.hardware, found.dataset)),
        ("time", f"{found.hours:g} h, {found.device_hours:g} device-hours"),
        ("location", f"{grid.code}: {grid.name}"),
        ("intensity", f"{grid.g_per_kwh:.4g} g CO2e/kWh{counts} ({source})"),
        ("dataset", "the ML CO2 Impact calculator's" if found.dataset == "mlco2" else None),
        ("PUE", f"{found.pue:g} ({found.pue_source})"),
        ("energy", f"{units.energy(found.energy_kwh)} at the facility"),
        ("CO2", f"{units.mass(found.co2_kg)}{offset}"),
        ("that is", "; ".join(describe_all(found.co2_kg, found.dataset))),
        (
            "embodied",
            found.embodied_source and f"{found.embodied_kg:.3g} kg ({found.embodied_source})",
        ),
        ("water", found.water_source and f"{found.water_l:.3g} L ({found.water_source})"),
    ]
    _show(pairs(facts))
    if found.cleanest is not None:
        factor = found.cleanest_factor
        times = "the same" if factor is None or factor <= 1 else f"{factor:.3g}x less"
        cleanest = found.cleanest
        line = (
            f"cleanest {grid.provider} region: {cleanest.code} ({cleanest.name}): "
            f"{units.mass(found.cleanest_co2_kg)}, {times}"
        )
        _show("\n" + paragraphs(line))
    if found.comparisons:
        _show(f"\nthe same work (same FLOPs at peak) on other hardware at {grid.code}:")
        rows = [
            (
                c.hardware.name,
                c.precision,
                f"{c.device_hours:.4g}",
                units.energy.number(c.energy_kwh),
                units.mass.number(c.co2_kg),
                f"{c.factor:.2f}x",
            )
            for c in found.comparisons
        ]
        headers = ("hardware", "peak", "device-h", units.energy.symbol, f"CO2 {units.mass.symbol}")
        headers += ("vs " + found.hardware.name,)
        _show(table(headers, rows, right=(2, 3, 4, 5), shrink=(0, 5)))
    _show("\nstatement:\n" + found.statement(args.format))


def _matched(asked: str, row, dataset: str) -> str | None:
    """For a name that is not the row's own (an alias, a part of a name): which row it is, and
    the other rows it could have meant, with their TDP."""
    from carbonlog.hardware import candidates

    if row.named(asked):
        return None
    others = [c for c in candidates(asked, dataset) if c != row]
    also = ", ".join(f"{c.name} ({c.tdp_w:g} W)" if c.tdp_w else c.name for c in others)
    return f"{asked!r} is the {row.name} row" + (f"; the table also has {also}" if also else "")


def intensity(found, args: argparse.Namespace) -> None:
    """A location's Grid, or the environment's site facts (a dict with `configured_by`)."""
    if isinstance(found, dict):
        facts = found
        shown = [
            ("location", f"{facts['location']}: {facts['name']}"),
            ("intensity", f"{facts['g_per_kwh']:.4g} g CO2e/kWh"),
            ("source", _source(facts["source"], facts["year"])),
            ("PUE", f"{facts['pue']:g} ({facts['pue_source']})"),
            ("set by", facts["configured_by"]),
        ]
    else:
        grid, facts = found, asdict(found)
        shown = [
            ("location", f"{grid.code}: {grid.name}"),
            ("intensity", f"{grid.g_per_kwh:.4g} g CO2e/kWh"),
            ("source", _source(grid.source, grid.year)),
            ("convention", grid.convention),
        ]
        if grid.kind == "cloud":
            shown += [
                ("grid", grid.location),
                ("PUE", f"{grid.pue:g} ({grid.pue_source})" if grid.pue else "not published"),
                ("offset", f"{grid.offset_ratio:.0%} by the provider"),
            ]
    if args.json:
        _print_json(facts)
    else:
        _show(pairs(shown))


def regions(found, args: argparse.Namespace) -> None:
    """The regions as a table, with how they are sorted."""
    if args.json:
        _print_json([asdict(g) for g in found])
        return
    rows = [
        (
            g.code,
            g.name.split(" (", 1)[1].rstrip(")") if " (" in g.name else g.location,
            f"{g.g_per_kwh:.0f}",
            f"{g.pue:g}" if g.pue else "-",
            f"{g.g_per_kwh * (g.pue or 1.0):.0f}",
            g.year,
        )
        for g in found
    ]
    headers = ("region", "where", "g/kWh", "PUE", "x PUE", "year")
    _show(table(headers, rows, right=(2, 3, 4, 5), shrink=(0, 1)))
    order = "cleanest first (g/kWh x PUE)" if args.sort else "by name; --sort for cleanest first"
    _show(f"{len(rows)} regions, {order}")


def when(found, args: argparse.Namespace) -> None:
    """The greenest start, what it saves against starting now, and the regions compared."""
    if args.json:
        _print_json(found.to_dict())
        return
    w = found.window
    where = f"{found.grid.code}: {found.grid.name}" if found.grid else w.location
    saving = "unknown (the forecast has a gap at the start)"
    if w.saving_ratio is not None:
        saving = f"{w.saving_ratio:.0%} less CO2 than starting now, for the same energy"
    signal = f" ({w.signal} intensity)" if w.signal else ""
    facts = [
        ("location", where),
        ("run", f"{w.hours:g} h, starting {_utc(w.now)} at the earliest"),
        ("greenest", f"{_utc(w.start)} to {_utc(w.end)}: {w.mean_g_per_kwh:.4g} g CO2e/kWh"),
        ("now", _now_mean(w)),
        ("saving", saving),
        ("forecast", f"{w.source}, to {_utc(w.horizon_end)}{signal}"),
    ]
    _show(pairs(facts))
    if found.regions:
        rows = [
            (
                r.grid.code,
                _utc(r.window.start) if r.window else "-",
                f"{r.window.mean_g_per_kwh:.0f}" if r.window else "-",
                f"{r.grid.pue:g}" if r.grid.pue else "-",
                f"{r.effective_g_per_kwh:.0f}" if r.window else (r.problem or "-"),
            )
            for r in found.regions
        ]
        headers = ("region", "greenest start", "g/kWh", "PUE", "x PUE")
        _show("\n" + table(headers, rows, right=(2, 3, 4), shrink=(0, 4)))
        _show(f"{len(rows)} regions with a forecast, greenest first (g/kWh x PUE)")


def _utc(when) -> str:
    """`2026-12-02 03:00 UTC`."""
    return f"{when:%Y-%m-%d %H:%M} UTC"


def _now_mean(window) -> str:
    """Starting now's mean intensity, or why it is unknown."""
    if window.now_mean_g_per_kwh is None:
        return "not covered by the forecast"
    return f"{window.now_mean_g_per_kwh:.4g} g CO2e/kWh, starting {_utc(window.now)}"


def runs(found, args: argparse.Namespace) -> None:
    """The runs, or with --by the totals per group."""
    if args.json:
        _print_json([r.to_dict() for r in found])
    elif args.by == "search" and not found:
        filtered = any(run_filters(args).values())
        _show("no run of a search matches" if filtered else "no run of a search recorded")
    elif args.by == "search":
        _show(searches_table(found))
    elif args.by:
        units = Units.of(*found)
        rows = [
            (
                "-" if g.key is None else g.key,
                g.runs,
                ", ".join(f"{n} {s}" for s, n in sorted(g.statuses.items())),
                units.energy.number(g.energy_kwh),
                units.mass.number(g.co2_kg),
                units.mass.number(g.completed_co2_kg),
            )
            for g in found
        ]
        mass = units.mass.symbol
        headers = (args.by, "runs", "statuses", units.energy.symbol, f"CO2 {mass}")
        headers += (f"completed {mass}",)
        _show(table(headers, rows, right=(1, 3, 4, 5), shrink=(0, 2)))
    elif not found:
        _show("no runs match" if any(run_filters(args).values()) else "no runs recorded yet")
    else:
        _show(runs_table(found))


def searches_table(found: list) -> str:
    """Each search's trials, statuses, CO2 in all and per trial, and what its best trial alone
    cost; then, per search, how the best was chosen (or why there is none)."""
    units = Units.of(*found)
    rows = [
        (
            s.search_id,
            s.trials,
            ", ".join(f"{n} {status}" for status, n in sorted(s.statuses.items())),
            units.energy.number(s.energy_kwh),
            units.mass.number(s.co2_kg),
            units.mass.number(s.co2_kg_per_trial),
            "-" if s.best_trial is None else s.best_trial,
            "-" if s.best_co2_kg is None else units.mass.number(s.best_co2_kg),
        )
        for s in found
    ]
    mass = units.mass.symbol
    headers = ("search", "trials", "statuses", units.energy.symbol, f"CO2 {mass}")
    headers += (f"{mass}/trial", "best", f"best {mass}")
    notes = []
    for s in found:
        if s.best_trial is None:
            notes.append(f"{s.search_id}: {s.no_best}")
            continue
        times = f": the search cost {s.co2_kg / s.best_co2_kg:.3g}x" if s.best_co2_kg else ""
        notes.append(
            f"{s.search_id}: best by {s.objective} ({s.direction}) is trial {s.best_trial} "
            f"({s.best_value:.4g}), {units.mass(s.best_co2_kg)} alone{times}"
        )
    shown = table(headers, rows, right=(1, 3, 4, 5, 7), shrink=(0, 2, 6))
    return shown + "\n" + paragraphs("\n".join(notes))


def runs_table(found: list, width: int | None = None) -> str:
    """The runs, newest first, each run of another stage under the fit it follows (indented in
    the stage column; `test of 3` when its fit is not listed); energy and CO2 in one unit each.
    The task and model columns are left out, model first, where the terminal is too narrow."""
    width = width or terminal_width()
    units = Units.of(*found)
    listed = {r.id for r in found}
    followers: dict[int, list] = {}
    for run in reversed(found):  # oldest first under each fit
        if run.fit_run_id in listed:
            followers.setdefault(run.fit_run_id, []).append(run)
    rows = []
    for run in found:
        if run.fit_run_id in listed:
            continue  # shown under its fit
        rows.append(_run_cells(run, units, _stage(run)))
        rows += [_run_cells(r, units, NESTED + str(r.stage)) for r in followers.get(run.id, [])]
    headers = ("id", "name", "stage", "task", "model", "status", "ep", units.energy.symbol)
    headers += (f"CO2 {units.mass.symbol}", "started")
    columns = list(range(len(headers)))
    for optional in (None, 4, 3):  # every column, then without model, then without task
        if optional is not None:
            columns.remove(optional)
        shown = table(
            [headers[i] for i in columns],
            [[row[i] for i in columns] for row in rows],
            right=[n for n, i in enumerate(columns) if i in (0, 6, 7, 8)],
            shrink=[n for n, i in enumerate(columns) if i in (1, 3, 4)],
            width=width,
        )
        if max(map(len, shown.splitlines())) <= width:
            break
    return shown


def _stage(run) -> str:
    """A run's stage cell: `fit`; `test of 3` for one whose fit is not listed above it."""
    stage = run.stage or "-"
    return f"{stage} of {run.fit_run_id}" if run.fit_run_id is not None else stage


def _run_cells(run, units: Units, stage: str) -> tuple:
    """A run's cells in `runs`: epochs only for a fit (or a run of no stage)."""
    return (
        run.id,
        run.name,
        stage,
        run.task,
        run.model,
        run.status,
        run.epochs if run.trains else "-",
        units.energy.number(run.energy_kwh),
        units.mass.number(run.co2_kg),
        format_time(run.started_at),
    )


def runs_show(run, args: argparse.Namespace) -> None:
    """A run's facts (energy and CO2 each with its band, what dominates the band, embodied
    emissions, water, energy per unit of work), then its intervals as a table, energy and CO2
    in one unit each."""
    from carbonlog.report.statement import hardware_phrase

    band = run_band(run)
    if args.json:
        _print_json({**run.to_dict(), "band": asdict(band)})
        return
    site = run.site or {}
    source = _source(site.get("source"), site.get("year"))
    units = Units.of(run)
    methods = run_methods(run)
    facts = [
        ("run", run.label),
        ("status", run.status + (f" ({run.stop_reason})" if run.stop_reason else "")),
        ("framework", " / ".join(filter(None, (run.framework, run.stage)))),
        ("follows", None if run.fit_run_id is None else f"the fit of run {run.fit_run_id}"),
        ("model", run.model),
        ("base model", run.base_model),
        ("task", run.task),
        ("tags", ", ".join(run.tags)),
        ("search", _trial_of(run)),
        ("started", format_time(run.started_at)),
        ("hardware", hardware_phrase(run.hardware)),
        ("location", f"{run.location}: {site.get('name')}" if run.location else None),
        ("intensity", f"{site.get('g_per_kwh') or 0:.4g} g CO2e/kWh ({source})"),
        ("PUE", f"{site.get('pue') or 1.0:g} ({site.get('pue_source') or 'default'})"),
        ("energy", f"{plus_minus(run.energy_kwh, band.energy_kwh, units.energy)} at the facility"),
        ("CO2", plus_minus(run.co2_kg, band.co2_kg, units.mass)),
        ("band", dominance(band)),
        ("measured by", ", ".join(f"{c.upper()} {m}" for c, m in methods.items())),
        ("embodied", None if run.embodied_kg is None else f"{format_co2(run.embodied_kg)} CO2e"),
        ("water", None if run.water_l is None else f"{significant(run.water_l)} L"),
        ("per unit", per_unit(run)),
    ]
    _show(pairs(facts))
    if not run.intervals:
        return
    rows = interval_rows(run.intervals, run.stage)
    first, left_out, last = head_and_tail(rows, MOST_ROWS)
    energy = units.energy.symbol
    first_header = "epoch" if any(row.label.isdigit() for row in rows) else "interval"
    headers = (first_header, "s", f"GPU {energy}", f"CPU {energy}", f"RAM {energy}", energy)
    headers += (f"± {energy}", f"CO2 {units.mass.symbol}", "estimated")
    cells = [_interval_cells(row, units) for row in (*first, *last)]
    lines = table(headers, cells, right=range(1, 8), shrink=(0, 8)).split("\n")
    if left_out:  # between the first rows and the last, under the headers and their rule
        lines.insert(2 + len(first), f"... {left_out:,} more")
    _show("\n" + "\n".join(lines))
    if left_out:
        _show(f"(every interval: carbonlog runs show {run.id} --json)")


def _trial_of(run) -> str | None:
    """`lr-search, trial 3 (lr=0.01, batch=32)`: the search a run is a trial of, if any."""
    if run.search_id is None:
        return None
    shown = {k: f"{v:.4g}" if isinstance(v, float) else v for k, v in run.trial_params.items()}
    params = ", ".join(f"{k}={v}" for k, v in sorted(shown.items()))
    trial = f", trial {run.trial}" if run.trial is not None else ""
    return run.search_id + trial + (f" ({params})" if params else "")


def _interval_cells(row, units: Units) -> tuple[str, ...]:
    """An interval's cells in `runs show`."""
    return (
        row.label,
        f"{row.duration_s:.1f}",
        *(units.energy.number(v) for v in (row.gpu_kwh, row.cpu_kwh, row.ram_kwh, row.energy_kwh)),
        units.energy.number(row.energy_band_kwh),
        units.mass.number(row.co2_kg),
        ",".join(row.estimated) or "-",
    )


def compare(comparison, args: argparse.Namespace) -> None:
    """Both runs side by side, and the verdict."""
    if args.json:
        _print_json(comparison.to_dict())
    else:
        _show(comparison.table())


def report(files, args: argparse.Namespace) -> None:
    """Where the HTML page (and, with --json, each plot) was written."""
    if args.json:
        _print_json({"html": str(files.html), "plots": {k: str(p) for k, p in files.plots.items()}})
    else:
        _show(files.html)


def statement(run, args: argparse.Namespace) -> None:
    """The run's emissions statement, with the BibTeX to cite when asked."""
    from carbonlog.report.statement import BIBTEX
    from carbonlog.report.statement import statement as measured

    text = measured(run, args.format)
    if args.json:
        _print_json({"run": run.id, "format": args.format, "statement": text, "bibtex": BIBTEX})
        return
    _show(text)
    if args.bibtex:
        _show("\n" + BIBTEX)
