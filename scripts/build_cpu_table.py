"""Build src/carbonlog/data/cpu_tdp.csv, the rated TDP of CPU models, from reference data.

Usage: python scripts/build_cpu_table.py [REFERENCE_DATA_DIR] [--out CSV]
(reference data default: ../shared/reference-data, next to the repository)

Sources, read as shipped (see the reference dir's SOURCES.md):
- codecarbon-3.3.2/cpu_power.csv (MIT): ~4,900 models, TDP in W. Year 2026: the snapshot
  holds models added to CodeCarbon in April 2026 (Intel Core Ultra 7 155H, mlco2/codecarbon#1157).
- green-algorithms/TDP_cpu.csv (CC BY 4.0), data v3: ~90 models, each with its own URL, and
  their physical cores (n_cores). Year 2022: no release year is filled in; 2022 is the latest
  date the v3 data files cite.

Rows are keyed by carbonlog.meters.cpu_table.normalize(name). On a key both sources give,
CodeCarbon (the newer snapshot) wins; within one source, variants of a model that collapse to
one key (e.g. "Phenom II X4 945 (95W)" and "(125W)") keep the highest TDP, since a TDP is a
rating, not a measurement. Malformed TDPs (e.g. "27.29.5") are skipped. Conflicts are printed.
A row's cores (physical cores per socket, 0 where unknown) come from whichever source has them
(Green Algorithms only), whichever source's TDP is kept: the CPU model scales a VM's or
container's share of a socket by them.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "src" / "carbonlog" / "data" / "cpu_tdp.csv"
CODECARBON = ("codecarbon-3.3.2/cpu_power.csv", "codecarbon-3.3.2", 2026)
GREEN_ALGORITHMS = ("green-algorithms/TDP_cpu.csv", "green-algorithms-v3", 2022)


def _normalizer():
    """carbonlog's own key function, loaded from its file so the package need not import."""
    path = REPO / "src" / "carbonlog" / "meters" / "cpu_table.py"
    spec = importlib.util.spec_from_file_location("_cpu_table", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.normalize


normalize = _normalizer()


def _watts(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value > 0 else None


Row = tuple[str, float, str, int, int]
"""(name, tdp_w, source, year, cores); cores 0 where the source does not say."""


def _cores(text: str) -> int:
    return int(text) if text.strip().isdigit() else 0


def read_codecarbon(ref: Path) -> list[Row]:
    """(name, tdp_w, source, year, 0) rows of CodeCarbon's table (it has no core counts)."""
    path, source, year = CODECARBON
    with open(ref / path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)  # Name,TDP
        return [(n.strip(), w, source, year, 0) for n, t in reader if (w := _watts(t)) is not None]


def read_green_algorithms(ref: Path) -> list[Row]:
    """(name, tdp_w, source with the row's URL, year, cores) rows; the generic "Any" row is
    left out."""
    path, source, year = GREEN_ALGORITHMS
    with open(ref / path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader)  # units line
        next(reader)  # model,TDP,n_cores,TDP_per_core,Release_year,feature_size,die_area,source
        rows = []
        for record in reader:
            name, tdp, url = record[0].strip(), _watts(record[1]), record[7].strip()
            if tdp is not None and name != "Any":
                cited = f"{source}: {url}" if url else source
                rows.append((name, tdp, cited, year, _cores(record[2])))
        return rows


def merge(*sources: list[Row]) -> dict[str, Row]:
    """One row per normalised key; earlier sources win, a source's own variants keep the max;
    cores come from the first source that has them."""
    table: dict[str, Row] = {}
    for rows in sources:
        own: dict[str, Row] = {}
        for row in rows:
            key = normalize(row[0])
            if key and (key not in own or row[1] > own[key][1]):
                own[key] = row
        for key, row in own.items():
            kept = table.get(key)
            if kept is None:
                table[key] = row
                continue
            if not kept[4] and row[4]:
                table[key] = (*kept[:4], row[4])
            if kept[1] != row[1]:
                print(
                    f"conflict {key!r}: kept {kept[1]:g} W ({kept[2][:30]}), "
                    f"dropped {row[1]:g} W ({row[2][:30]})"
                )
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "reference", nargs="?", type=Path, default=REPO.parent / "shared" / "reference-data"
    )
    parser.add_argument("--out", type=Path, default=OUT, help="default: %(default)s")
    args = parser.parse_args(argv)
    table = merge(read_codecarbon(args.reference), read_green_algorithms(args.reference))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["key", "name", "tdp_w", "source", "year", "cores"])
        for key in sorted(table):
            name, tdp_w, source, year, cores = table[key]
            writer.writerow([key, name, f"{tdp_w:g}", source, year, cores])
    print(f"wrote {len(table)} CPU models to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
