"""Plain text for the terminal: figures, an interval's and a run's lines, tables and pairs.

Everything carbonlog prints goes through here, so a figure reads the same in a log line, a
table and the CLI: `format_co2` for masses, `table` for columns, `pairs` for facts.
"""

from __future__ import annotations

import shutil
import textwrap
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from carbonlog.report.rows import interval_rows
from carbonlog.units import G_PER_KG, kwh_from_j

if TYPE_CHECKING:
    from carbonlog.interval import Interval, Summary

KG_PER_TONNE = 1000.0
SECONDS_PER_HOUR = 3600.0

UNSAFE_CODEPOINTS = (
    *range(0x00, 0x20),  # C0 controls: ESC starts a sequence, CR rewrites the line
    0x7F,  # DEL
    *range(0x80, 0xA0),  # C1 controls: 0x9B is a one-byte CSI, 0x9D a one-byte OSC
    0x061C,  # the Arabic letter mark and the bidi marks, embeddings, overrides and isolates
    0x200E,
    0x200F,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
    0x2028,  # line and paragraph separators
    0x2029,
)
"""Characters a terminal acts on rather than shows: a run name holding them could clear the
screen, retitle the window, rewrite earlier lines or reorder what is read."""
_ESCAPES = {c: f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}" for c in UNSAFE_CODEPOINTS}
_ESCAPES |= {ord("\t"): "\\t", ord("\n"): "\\n", ord("\r"): "\\r"}
_JSON_ESCAPES = {c: f"\\u{c:04x}" for c in UNSAFE_CODEPOINTS if c >= 0x7F}


def terminal_safe(text: str) -> str:
    """`text` with every character of UNSAFE_CODEPOINTS (newlines too) as a visible escape:
    `\\x1b[2J` prints as those six characters and does nothing."""
    return text.translate(_ESCAPES)


def terminal_lines(text: str) -> str:
    """Lines of text made terminal_safe each, the newlines between them kept."""
    return "\n".join(terminal_safe(line) for line in text.split("\n"))


def json_safe(text: str) -> str:
    """JSON text with the UNSAFE_CODEPOINTS json.dumps leaves raw (DEL, C1, bidi) as `\\u`
    escapes, which read back as the same strings; it escapes C0 controls itself."""
    return text.translate(_JSON_ESCAPES)


def format_co2(kg: float) -> str:
    """Three significant digits: grams below 1 kg (small runs never print as 0.000 kg), then kg,
    then tonnes."""
    if abs(kg) < 1:
        return f"{kg * G_PER_KG:.3g} g"
    return f"{kg:.3g} kg" if abs(kg) < KG_PER_TONNE else f"{kg / KG_PER_TONNE:.3g} t"


def format_kwh(value: float | None) -> str:
    """Three significant digits of kWh for table cells; a dash when unknown."""
    return "-" if value is None else f"{value:.3g}"


def format_date(epoch_s: float | None) -> str:
    """The local date of a timestamp, `2024-05-17`; a dash when unknown."""
    return time.strftime("%Y-%m-%d", time.localtime(epoch_s)) if epoch_s else "-"


def format_interval(interval: Interval) -> str:
    """`epoch 3: 0.0012 kWh, 0.54 g CO2 (gpu 0.001, cpu 0.0001, ram 1e-05 kWh) in 12.3 s, 45 W`."""
    parts = ", ".join(
        f"{name} {kwh_from_j(joules):.3g}"
        for name, joules in (
            ("gpu", interval.gpu_j),
            ("cpu", interval.cpu_j),
            ("ram", interval.ram_j),
        )
        if joules
    )
    estimated = f" [estimated: {', '.join(interval.estimated)}]" if interval.estimated else ""
    return (
        f"{terminal_safe(interval.label)} {interval.index}: {interval.energy_kwh:.4g} kWh, "
        f"{format_co2(interval.co2_kg)} CO2 ({parts or 'nothing measured'} kWh) in "
        f"{interval.duration_s:.1f} s, {interval.power_w:.0f} W{estimated}"
    )


def format_summary(summary: Summary, stage: str = "run") -> str:
    """One line of totals with the intensity and PUE that produced them."""
    site = summary.site
    return (
        f"carbonlog: {stage} used {summary.energy_kwh:.4g} kWh and {format_co2(summary.co2_kg)} "
        f"CO2 in {summary.duration_s:.1f} s (gpu {kwh_from_j(summary.gpu_j):.3g}, "
        f"cpu {kwh_from_j(summary.cpu_j):.3g}, ram {kwh_from_j(summary.ram_j):.3g} kWh; "
        f"{site.get('location', '?')}, {site.get('g_per_kwh', float('nan')):.0f} g/kWh, "
        f"PUE {site.get('pue', 1.0):.2f})"
    )


def terminal_width() -> int:
    """The terminal's width ($COLUMNS, else the terminal, else 80), at least 40."""
    return max(40, shutil.get_terminal_size((80, 24)).columns)


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    right: Sequence[int] = (),
    shrink: Sequence[int] = (),
    width: int | None = None,
    rule: bool = True,
) -> str:
    """A fixed-width table, a dashed rule under the headers unless `rule` is False; columns
    in `right` are right-aligned, those in `shrink` cut (with an ellipsis) to fit `width`.
    Cells are terminal_safe: a name cannot move the cursor or forge a row."""
    width = width or terminal_width()
    cells = [[terminal_safe(str(c)) for c in headers]]
    cells += [["-" if c is None else terminal_safe(str(c)) for c in r] for r in rows]
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
    if rule:
        lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def pairs(facts: Sequence[tuple[str, object]], width: int | None = None) -> str:
    """`key  value` lines, values wrapped under themselves to fit the terminal; empty values
    are left out. Keys and values are terminal_safe."""
    width = width or terminal_width()
    facts = [(terminal_safe(k), terminal_safe(str(v))) for k, v in facts if v not in (None, "")]
    key_width = max((len(k) for k, _ in facts), default=0) + 2
    lines = []
    for key, value in facts:
        wrapped = textwrap.wrap(value, max(20, width - key_width)) or [""]
        lines.append(f"{key.ljust(key_width)}{wrapped[0]}")
        lines += [" " * key_width + more for more in wrapped[1:]]
    return "\n".join(lines)


def paragraphs(text: str, width: int | None = None) -> str:
    """Each line of `text`, terminal_safe, filled to the terminal's width (statements are long
    lines)."""
    width = width or terminal_width()
    lines = (terminal_safe(line) for line in text.split("\n"))
    return "\n".join(textwrap.fill(line, width) if line else "" for line in lines)


def summary_table(summary: Summary) -> str:
    """A run's energy and CO2 per interval, then the total, and its device energy before PUE."""
    rows: list[tuple[object, ...]] = [
        (
            row.name,
            f"{row.duration_s:.2f}",
            f"{row.energy_kwh:.3e}",
            f"{row.co2_kg * G_PER_KG:.3e}",
            "-" if row.power_w is None else f"{row.power_w:.1f}",
            ",".join(row.estimated) or "-",
        )
        for row in interval_rows(summary.intervals)
    ]
    mean_w = summary.device_j / summary.duration_s if summary.duration_s > 0 else 0.0
    rows.append(
        (
            "total",
            f"{summary.duration_s:.2f}",
            f"{summary.energy_kwh:.3e}",
            f"{summary.co2_kg * G_PER_KG:.3e}",
            f"{mean_w:.1f}",
            "",
        )
    )
    headers = ("interval", "seconds", "kWh", "g CO2", "W", "estimated")
    body = table(headers, rows, right=(1, 2, 3, 4))
    return f"{body}\n(device energy {kwh_from_j(summary.device_j):.3e} kWh before PUE)"
