"""A self-contained HTML report: one file, plots embedded as base64 PNG, nothing fetched.

Every user-supplied string (run names, tags, model and task names, metric names, hardware
names) goes through html.escape. A Content-Security-Policy allows only the embedded images,
the page's own style and its one script (by hash), so even a string that escaped escaping
could not load or run anything. The script notes, under each plot, an image the browser
could not decode, and records each image's decoded width and how wide the page lays out
against the window (tests read them). Every energy is in one unit and every mass in one
(`page_units`), named in the headers; a table wider than a phone scrolls in its own box.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from carbonlog._version import __version__
from carbonlog.equivalents import EQUIVALENTS, MEANINGFUL, meaningful
from carbonlog.report.comparison import comparison_rows, format_metric, verdict_line
from carbonlog.report.rows import (
    extent,
    head_and_tail,
    interval_rows,
    label_totals,
    run_band,
    run_methods,
)
from carbonlog.report.text import (
    SECONDS_PER_HOUR,
    Units,
    dominance,
    format_co2,
    per_unit,
    plus_minus,
    significant,
)
from carbonlog.units import kwh_from_j

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:64rem;padding:0 1rem;color:#1d2d35;line-height:1.45;overflow-wrap:break-word}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #dde3e6;padding-bottom:.2rem}
.subtitle{color:#5c6f7a;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #dde3e6;border-radius:.4rem;padding:.6rem .9rem;min-width:8rem}
.card .value{font-size:1.3rem;font-weight:600}.card .name{color:#5c6f7a;font-size:.85rem}
.wide{overflow-x:auto;margin:.5rem 0}
table{border-collapse:collapse;font-size:.85rem}
th,td{border-bottom:1px solid #e6ebee;padding:.25rem .5rem;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
.wide td{white-space:nowrap}.wide td.small{white-space:normal}.facts td{overflow-wrap:anywhere}
figure{margin:1rem 0}figure img{max-width:100%;height:auto;border:1px solid #e6ebee}
figcaption{color:#5c6f7a;font-size:.85rem}
pre{background:#f5f7f8;padding:.8rem;white-space:pre-wrap;font-size:.85rem}
.broken{color:#b00020}.small{font-size:.8rem;color:#5c6f7a}
"""
SCRIPT = (
    'addEventListener("load",()=>{for(const i of document.images){'
    "i.dataset.naturalWidth=i.naturalWidth;if(!i.naturalWidth){const p="
    'document.createElement("p");p.className="broken";'
    'p.textContent="This plot could not be decoded.";i.after(p)}}'
    "const d=document.body.dataset;d.imagesChecked=document.images.length;"
    "d.windowWidth=innerWidth;d.pageWidth=document.documentElement.scrollWidth;"
    'd.tablesScrolled=[...document.querySelectorAll(".wide")]'
    ".filter(w=>w.scrollWidth>w.clientWidth).length})"
)


def _sha256(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


CSP = (
    f"default-src 'none'; img-src data:; style-src 'sha256-{_sha256(STYLE)}'; "
    f"script-src 'sha256-{_sha256(SCRIPT)}'; base-uri 'none'; form-action 'none'"
)


MOST_ROWS = 100
"""Interval rows in the page: a longer run shows its first and last 50 (the ledger has all)."""


@dataclass(frozen=True)
class Plot:
    """One PNG to embed, with its alt text and caption (plain text; escaped here)."""

    png: bytes
    alt: str
    caption: str


def e(value) -> str:
    """Escape anything for HTML text and attribute values; None reads as a dash."""
    return "-" if value is None else html.escape(str(value), quote=True)


def _time(epoch_s: float | None) -> str:
    if not epoch_s:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(epoch_s))


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / SECONDS_PER_HOUR:.2f} h"


def page_units(run, comparison=None) -> Units:
    """The energy and mass units of a run's page: those of its largest figures, the compared
    run's included."""
    sides = (comparison.a, comparison.b) if comparison is not None else ()
    return Units.of(run, *sides)


def _wide(table: str) -> str:
    """A table in a box of its own that scrolls sideways where the window is narrower."""
    return f'<div class="wide">{table}</div>'


def _rows(pairs: Sequence[tuple[str, object]]) -> str:
    return "".join(f"<tr><th>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in pairs)


def _devices(hardware: Mapping[str, list]) -> list[tuple[str, str]]:
    """(component, `name (method)`) for each device the run measured."""
    rows = []
    for component in ("gpu", "cpu", "ram"):
        for device in hardware.get(component, []):
            how = device.get("method") or (
                f"constant {device['power_w']:g} W" if "power_w" in device else None
            )
            name = device.get("name") or component.upper()
            rows.append((component.upper(), f"{name} ({how})" if how else str(name)))
    return rows


def _facts(run) -> str:
    site = run.site or {}
    where = site.get("name") or site.get("location")
    intensity = site.get("g_per_kwh")
    source = f"{site.get('source')}, {site.get('year')}" if site.get("year") else site.get("source")
    pairs = [
        ("run", f"{run.id}" + (f" ({run.name})" if run.name else "")),
        ("status", run.status + (f": {run.stop_reason}" if run.stop_reason else "")),
        ("framework", run.framework),
        ("stage", run.stage),
        ("model", run.model),
        ("base model", run.base_model),
        ("pretrained", None if run.pretrained is None else ("yes" if run.pretrained else "no")),
        ("task", run.task),
        ("tags", ", ".join(run.tags) if run.tags else None),
        ("started", _time(run.started_at)),
        ("location", f"{where} ({site.get('location')})" if where else None),
        ("intensity", f"{intensity:g} g CO2e/kWh ({source})" if intensity is not None else None),
        ("PUE", f"{site.get('pue') or 1.0:g} ({site.get('pue_source') or 'default'})"),
        *_devices(run.hardware),
        ("band", dominance(run_band(run))),
        ("measured by", ", ".join(f"{c.upper()} {m}" for c, m in run_methods(run).items())),
        ("per unit of work", per_unit(run)),
    ]
    return (
        f'<table class="facts">{_rows([(k, v) for k, v in pairs if v not in (None, "")])}</table>'
    )


def _cards(run, units: Units) -> str:
    """The run's headline figures: energy and CO2 with their bands, its length, its device
    energy, and where known its embodied emissions (next to, not inside, the CO2) and water."""
    length, what = extent(run)
    band = run_band(run)
    cards = [
        ("energy (facility)", plus_minus(run.energy_kwh, band.energy_kwh, units.energy)),
        ("CO2", plus_minus(run.co2_kg, band.co2_kg, units.mass)),
        ("duration", _duration(_run_seconds(run))),
        (what, length),
        ("device energy", units.energy(kwh_from_j(run.gpu_j + run.cpu_j + run.ram_j))),
    ]
    if run.embodied_kg is not None:
        cards.append(("embodied CO2e, amortised", format_co2(run.embodied_kg)))
    if run.water_l is not None:
        cards.append(("water", f"{significant(run.water_l)} L"))
    return (
        '<div class="cards">'
        + "".join(
            f'<div class="card"><div class="value">{e(v)}</div><div class="name">{e(k)}</div></div>'
            for k, v in cards
        )
        + "</div>"
    )


def _run_seconds(run) -> float:
    return run.duration_s or sum(iv.duration_s for iv in run.intervals)


def _equivalents(kg: float, units: Units) -> str:
    """The run's CO2 as the everyday equivalents it is at least MEANINGFUL units of, cited."""
    shown = list(enumerate(meaningful(kg), start=1))
    if not shown:
        smallest = min(EQUIVALENTS, key=lambda eq: eq.kg_per_unit)
        return (
            f"<p>{e(units.mass(kg))} CO2 is too little for an everyday equivalent: under "
            f"{MEANINGFUL:.0%} of one {e(smallest.unit)}, the smallest here.<sup>1</sup></p>"
            f'<ol class="small"><li>{e(smallest.cite())}</li></ol>'
        )
    items = "".join(f"<li>{e(eq.describe(kg))}<sup>{n}</sup></li>" for n, eq in shown)
    notes = "".join(f"<li>{e(eq.cite())}</li>" for _, eq in shown)
    return f'<p>{e(units.mass(kg))} CO2 is</p><ul>{items}</ul><ol class="small">{notes}</ol>'


def _intervals(run, units: Units) -> str:
    """The interval table; a run of more than MOST_ROWS intervals shows its first and last,
    after its label totals."""
    rows = interval_rows(run.intervals, run.stage)
    energy, mass = units.energy.symbol, units.mass.symbol
    head = ["interval", "s", f"GPU {energy}", f"CPU {energy}", f"RAM {energy}"]
    head += [f"energy {energy}", f"± {energy}", f"CO2 {mass}", "g/kWh", "estimated"]
    table = _long_table(run, rows, head, set(range(1, 9)), lambda row: _interval_cells(row, units))
    return (_label_totals(run, units) if len(rows) > MOST_ROWS else "") + table


def _metrics(run, most: int = 8) -> str:
    """Up to `most` of the framework's metrics per interval, a column each; empty when the run
    reported none."""
    rows = interval_rows(run.intervals, run.stage)
    keys = sorted({k for row in rows for k in row.metrics})[:most]
    if not keys:
        return ""
    numeric = set(range(1, len(keys) + 1))

    def cells(row) -> list[str]:
        return [row.name, *(format_metric(row.metrics.get(k)) for k in keys)]

    table = _long_table(run, rows, ["interval", *keys], numeric, cells, names=True)
    return "<h2>Metrics</h2>" + table


def _long_table(
    run, rows: list, head: list[str], numeric: set[int], cells, names: bool = False
) -> str:
    """A table of `cells(row)` per interval row under `head` (metric `names`, see _tr): the
    first and last of a run of more than MOST_ROWS, and a note of how many are left out."""
    first, left_out, last = head_and_tail(rows, MOST_ROWS)
    body = [_tr(cells(row), numeric) for row in first]
    if left_out:
        note = (
            f"{left_out:,} intervals not shown; the ledger holds every one "
            f"(carbonlog runs show {run.id} --json)"
        )
        body.append(f'<tr><td class="small" colspan="{len(head)}">{e(note)}</td></tr>')
        body += [_tr(cells(row), numeric) for row in last]
    header = _tr(head, numeric, "th", names)
    return _wide(f"<table><thead>{header}</thead><tbody>{''.join(body)}</tbody></table>")


def _tr(cells: Sequence[object], numeric: set[int], tag: str = "td", names: bool = False) -> str:
    """One <tr> of `tag` cells, those of the `numeric` columns right-aligned; `names` (metric
    names: one long word each) may break after each `_` and `/`."""

    def text(value: object) -> str:
        return re.sub(r"([_/])", r"\1<wbr>", e(value)) if names else e(value)

    return (
        "<tr>"
        + "".join(
            f'<{tag} class="num">{text(c)}</{tag}>' if i in numeric else f"<{tag}>{text(c)}</{tag}>"
            for i, c in enumerate(cells)
        )
        + "</tr>"
    )


def _interval_cells(row, units: Units) -> list[str]:
    """One row of the interval table."""
    g_per_kwh = row.intensity_g_per_kwh
    return [
        row.name,
        f"{row.duration_s:.2f}",
        *(units.energy.number(v) for v in (row.gpu_kwh, row.cpu_kwh, row.ram_kwh, row.energy_kwh)),
        units.energy.number(row.energy_band_kwh),
        units.mass.number(row.co2_kg),
        "-" if g_per_kwh is None else f"{g_per_kwh:.0f}",
        ", ".join(row.estimated) or "-",
    ]


def _label_totals(run, units: Units) -> str:
    """Each interval label's count, duration, energy and CO2, for a run too long to list."""
    numeric = {1, 2, 3, 4}
    head = ["label", "intervals", "duration", f"energy {units.energy.symbol}"]
    head.append(f"CO2 {units.mass.symbol}")
    body = "".join(
        _tr(
            [
                t.label,
                f"{t.count:,}",
                _duration(t.duration_s),
                units.energy.number(t.energy_kwh),
                units.mass.number(t.co2_kg),
            ],
            numeric,
        )
        for t in label_totals(run.intervals)
    )
    table = f"<table><thead>{_tr(head, numeric, 'th')}</thead><tbody>{body}</tbody></table>"
    return _wide(table)


def _figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure><img alt="{e(plot.alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{e(plot.caption)}</figcaption></figure>"
    )


def _comparison(comparison, units: Units) -> str:
    """Two runs side by side, a carbonlog.compare.Comparison, and the verdict."""
    body = "".join(
        f"<tr><th>{e(k)}</th><td>{e(x)}</td><td>{e(y)}</td></tr>"
        for k, x, y in comparison_rows(comparison, units)
    )
    verdict = verdict_line(comparison)
    verdict = f"<p><strong>{e(verdict)}</strong></p>" if verdict else ""
    table = (
        f"<table><thead><tr><th></th><th>{e(comparison.a.label)}</th>"
        f"<th>{e(comparison.b.label)}</th></tr></thead><tbody>{body}</tbody></table>"
    )
    return _wide(table) + verdict


def render(
    run,
    plots: Sequence[Plot],
    statements: Mapping[str, str],
    comparison=None,
    comparison_plot: Plot | None = None,
    units: Units | None = None,
) -> str:
    """The report of a ledger run as one HTML document, its figures in `units` (default: the
    page's own, `page_units`)."""
    units = units or page_units(run, comparison)
    title = f"carbonlog report: {run.label}"
    what = ", ".join(filter(None, (run.framework or "run", run.stage)))
    sections = [
        f"<h1>{e(title)}</h1>",
        f'<p class="subtitle">{e(what)}, {e(_time(run.started_at))}</p>',
        _cards(run, units),
        "<h2>Equivalents</h2>",
        _equivalents(run.co2_kg, units),
        "<h2>Run</h2>",
        _facts(run),
        "<h2>Plots</h2>",
        *(_figure(plot) for plot in plots),
    ]
    if comparison is not None:
        sections += ["<h2>Comparison</h2>", _comparison(comparison, units)]
        if comparison_plot is not None:
            sections.append(_figure(comparison_plot))
    sections += ["<h2>Intervals</h2>", _intervals(run, units), _metrics(run)]
    sections.append("<h2>Emissions statement</h2>")
    sections += [f"<h3>{e(fmt)}</h3><pre>{e(text)}</pre>" for fmt, text in statements.items()]
    sections.append(
        f'<p class="small">Generated by carbonlog {e(__version__)} on '
        f"{e(_time(time.time()))}. Figures: the run ledger; intensities and PUE with their "
        "sources above.</p>"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{e(CSP)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(title)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(sections)
        + f"\n<script>{SCRIPT}</script>\n</body></html>\n"
    )
