"""A self-contained HTML report: one file, plots embedded as base64 PNG, nothing fetched.

Every user-supplied string (run names, tags, model and task names, metric names, hardware
names) goes through html.escape. A Content-Security-Policy allows only the embedded images,
the page's own style and its one script (by hash), so even a string that escaped escaping
could not load or run anything. The script notes, under each plot, an image the browser
could not decode, and records each image's decoded width (tests read it).
"""

from __future__ import annotations

import base64
import hashlib
import html
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from carbonlog._version import __version__
from carbonlog.equivalents import EQUIVALENTS
from carbonlog.report.comparison import comparison_rows, format_metric, verdict_line
from carbonlog.report.rows import head_and_tail, interval_rows, label_totals
from carbonlog.report.text import SECONDS_PER_HOUR, format_co2
from carbonlog.units import G_PER_KG, kwh_from_j

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;
max-width:60rem;padding:0 1rem;color:#1d2d35;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;
border-bottom:1px solid #dde3e6;padding-bottom:.2rem}
.subtitle{color:#5c6f7a;margin-top:0}
.cards{display:flex;flex-wrap:wrap;gap:.8rem}
.card{border:1px solid #dde3e6;border-radius:.4rem;padding:.6rem .9rem;min-width:9rem}
.card .value{font-size:1.3rem;font-weight:600}.card .name{color:#5c6f7a;font-size:.85rem}
table{border-collapse:collapse;font-size:.85rem;margin:.5rem 0}
th,td{border-bottom:1px solid #e6ebee;padding:.25rem .6rem;text-align:left;vertical-align:top}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
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
    "document.body.dataset.imagesChecked=document.images.length})"
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


def _kwh(value: float) -> str:
    return f"{value:.4g} kWh"


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
    ]
    return f"<table>{_rows([(k, v) for k, v in pairs if v not in (None, '')])}</table>"


def _cards(run) -> str:
    cards = [
        ("energy (facility)", _kwh(run.energy_kwh)),
        ("CO2", format_co2(run.co2_kg)),
        ("duration", _duration(_run_seconds(run))),
        ("epochs", str(run.epochs)),
        ("device energy", _kwh(kwh_from_j(run.gpu_j + run.cpu_j + run.ram_j))),
    ]
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


def _equivalents(kg: float) -> str:
    items = "".join(f"<li>{e(eq.describe(kg))}<sup>{n}</sup></li>" for n, eq in _numbered())
    notes = "".join(f"<li>{e(eq.cite())}</li>" for _, eq in _numbered())
    return f'<p>{e(format_co2(kg))} CO2 is</p><ul>{items}</ul><ol class="small">{notes}</ol>'


def _numbered():
    return enumerate(EQUIVALENTS, start=1)


def _intervals(run, most_metrics: int = 6) -> str:
    """The interval table, with up to `most_metrics` of the framework's metrics as columns; a
    run of more than MOST_ROWS intervals shows its first and last, after its label totals."""
    rows = interval_rows(run.intervals)
    keys = sorted({k for row in rows for k in row.metrics})[:most_metrics]
    head = ["interval", "duration s", "GPU kWh", "CPU kWh", "RAM kWh", "energy kWh", "CO2 g"]
    head += ["g/kWh", "estimated", *keys]
    numeric = set(head) - {"interval", "estimated"}
    first, left_out, last = head_and_tail(rows, MOST_ROWS)
    body = [_interval_row(row, keys, head, numeric) for row in first]
    if left_out:
        note = (
            f"{left_out:,} intervals not shown; the ledger holds every one "
            f"(carbonlog runs show {run.id} --json)"
        )
        body.append(f'<tr><td class="small" colspan="{len(head)}">{e(note)}</td></tr>')
        body += [_interval_row(row, keys, head, numeric) for row in last]
    header = "".join(
        f'<th class="num">{e(h)}</th>' if h in numeric else f"<th>{e(h)}</th>" for h in head
    )
    table = f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return (_label_totals(run) if left_out else "") + table


def _interval_row(row, keys: list[str], head: list[str], numeric: set[str]) -> str:
    """One <tr> of the interval table."""
    g_per_kwh = row.intensity_g_per_kwh
    cells = [
        row.name,
        f"{row.duration_s:.2f}",
        f"{row.gpu_kwh:.3e}",
        f"{row.cpu_kwh:.3e}",
        f"{row.ram_kwh:.3e}",
        f"{row.energy_kwh:.3e}",
        f"{row.co2_kg * G_PER_KG:.4g}",
        "-" if g_per_kwh is None else f"{g_per_kwh:.0f}",
        ", ".join(row.estimated) or "-",
        *(format_metric(row.metrics.get(k)) for k in keys),
    ]
    return (
        "<tr>"
        + "".join(
            f'<td class="num">{e(c)}</td>' if h in numeric else f"<td>{e(c)}</td>"
            for h, c in zip(head, cells, strict=True)
        )
        + "</tr>"
    )


def _label_totals(run) -> str:
    """Each interval label's count, duration, energy and CO2, for a run too long to list."""
    body = "".join(
        f'<tr><td>{e(t.label)}</td><td class="num">{t.count:,}</td>'
        f'<td class="num">{e(_duration(t.duration_s))}</td>'
        f'<td class="num">{t.energy_kwh:.4g}</td>'
        f'<td class="num">{t.co2_kg * G_PER_KG:.4g}</td></tr>'
        for t in label_totals(run.intervals)
    )
    head = '<tr><th>label</th><th class="num">intervals</th><th class="num">duration</th>'
    head += '<th class="num">energy kWh</th><th class="num">CO2 g</th></tr>'
    return f"<table><thead>{head}</thead><tbody>{body}</tbody></table>"


def _figure(plot: Plot) -> str:
    data = base64.b64encode(plot.png).decode("ascii")
    return (
        f'<figure><img alt="{e(plot.alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{e(plot.caption)}</figcaption></figure>"
    )


def _comparison(comparison) -> str:
    """Two runs side by side, a carbonlog.compare.Comparison, and the verdict."""
    body = "".join(
        f"<tr><th>{e(k)}</th><td>{e(x)}</td><td>{e(y)}</td></tr>"
        for k, x, y in comparison_rows(comparison)
    )
    verdict = verdict_line(comparison)
    verdict = f"<p><strong>{e(verdict)}</strong></p>" if verdict else ""
    return (
        f"<table><thead><tr><th></th><th>{e(comparison.a.label)}</th>"
        f"<th>{e(comparison.b.label)}</th></tr></thead><tbody>{body}</tbody></table>{verdict}"
    )


def render(
    run,
    plots: Sequence[Plot],
    statements: Mapping[str, str],
    comparison=None,
    comparison_plot: Plot | None = None,
) -> str:
    """The report of a ledger run as one HTML document."""
    title = f"carbonlog report: {run.label}"
    sections = [
        f"<h1>{e(title)}</h1>",
        f'<p class="subtitle">{e(run.framework or "run")}, {e(_time(run.started_at))}</p>',
        _cards(run),
        "<h2>Equivalents</h2>",
        _equivalents(run.co2_kg),
        "<h2>Run</h2>",
        _facts(run),
        "<h2>Plots</h2>",
        *(_figure(plot) for plot in plots),
    ]
    if comparison is not None:
        sections += ["<h2>Comparison</h2>", _comparison(comparison)]
        if comparison_plot is not None:
            sections.append(_figure(comparison_plot))
    sections += ["<h2>Intervals</h2>", _intervals(run), "<h2>Emissions statement</h2>"]
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
