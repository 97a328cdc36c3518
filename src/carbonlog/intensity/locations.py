"""Location strings -> table rows, case-insensitively, never by a silent guess.

Accepted: ISO 3166 alpha-2 and alpha-3 codes and English country names ("FR", "FRA",
"France"), subdivisions ("US-CA", "CA-QC", "AU-NSW", or their names where unambiguous),
cloud regions ("gcp:us-central1", "aws:eu-north-1", "azure:westeurope") and "WORLD".
Anything else is a ConfigurationError (a ValueError) that lists the closest matches.
`resolve_calculator` reads the ML CO2 Impact calculator's regions, which are cloud regions only.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache

from carbonlog.errors import ConfigurationError
from carbonlog.intensity.tables import Grid, mlco2_regions, tables

# Names users reach for that are not the provider codes or ISO codes of the tables.
PROVIDER_ALIASES = {"google": "gcp", "gce": "gcp", "amazon": "aws", "microsoft": "azure"}
CODE_ALIASES = {"UK": "GB", "EL": "GR"}  # ISO "exceptionally reserved" codes


def _fold(text: str) -> str:
    """Lower-case, accents and punctuation dropped: "Côte d'Ivoire" -> "cotedivoire"."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", text.lower())


@cache
def _index() -> tuple[dict[str, str], dict[str, str]]:
    """(folded name -> grid code, folded "provider:region" -> cloud code)."""
    t = tables()
    names: dict[str, str] = {}
    ambiguous: set[str] = set()
    # Countries first: "Georgia" is the country; the US state stays reachable as "US-GA".
    for kind in ("world", "country", "subdivision"):
        for code, grid in t.grids.items():
            if grid.kind != kind:
                continue
            key = _fold(grid.name)
            if key in names and names[key] != code:
                if kind == "subdivision" and t.grids[names[key]].kind == "subdivision":
                    ambiguous.add(key)
                continue
            names[key] = code
    for key in ambiguous:
        del names[key]
    clouds = {f"{g.provider}:{_fold(code.split(':', 1)[1])}": code for code, g in t.clouds.items()}
    return names, clouds


def _candidates() -> list[str]:
    t = tables()
    names = [g.name for g in t.grids.values()]
    return [*t.grids, *t.clouds, *names]


def _unknown(location: str) -> ConfigurationError:
    folded = {c.lower(): c for c in _candidates()}
    import difflib

    close = difflib.get_close_matches(location.lower(), list(folded), n=5, cutoff=0.6)
    bare = location.lower()
    close += [c for c in tables().clouds if c.split(":", 1)[1] == bare and c not in close]
    hint = f"; closest matches: {', '.join(repr(folded.get(c, c)) for c in close)}" if close else ""
    return ConfigurationError(
        f"unknown location {location!r}{hint}. Use an ISO country code ('FR'), a subdivision "
        "('US-CA', 'CA-QC') or a cloud region ('gcp:us-central1', 'aws:eu-north-1', "
        "'azure:westeurope')"
    )


def resolve(location: str) -> Grid:
    """The table row for `location`; ConfigurationError listing the closest matches if unknown."""
    if not isinstance(location, str) or not location.strip():
        raise ConfigurationError(f"location must be a non-empty string, got {location!r}")
    text = location.strip()
    t = tables()
    if ":" in text:
        provider, region = (part.strip() for part in text.split(":", 1))
        provider = PROVIDER_ALIASES.get(provider.lower(), provider.lower())
        code = _index()[1].get(f"{provider}:{_fold(region)}")
        if code is None:
            raise _unknown(text)
        return t.clouds[code]
    upper = CODE_ALIASES.get(text.upper(), text.upper())
    if upper in t.grids:
        return t.grids[upper]
    if upper in t.alpha3:
        return t.grids[t.alpha3[upper]]
    code = _index()[0].get(_fold(text))
    if code is None:
        raise _unknown(text)
    return t.grids[code]


def resolve_calculator(location: str) -> Grid:
    """The calculator's row for a cloud region ("gcp:us-central1", "coreweave:lga1"); a
    ConfigurationError listing its closest regions otherwise."""
    if not isinstance(location, str) or ":" not in location:
        raise ConfigurationError(
            f"the ML CO2 Impact calculator knows cloud regions only ('gcp:us-central1'), got "
            f"{location!r}; for another site pass intensity= (g CO2e/kWh)"
        )
    provider, region = (part.strip() for part in location.split(":", 1))
    provider = PROVIDER_ALIASES.get(provider.lower(), provider.lower())
    regions = mlco2_regions()
    by_fold = {f"{g.provider}:{_fold(code.split(':', 1)[1])}": g for code, g in regions.items()}
    grid = by_fold.get(f"{provider}:{_fold(region)}")
    if grid is None:
        import difflib

        close = difflib.get_close_matches(location.strip().lower(), list(regions), n=5, cutoff=0.6)
        hint = f"; closest matches: {', '.join(repr(c) for c in close)}" if close else ""
        raise ConfigurationError(f"the ML CO2 Impact calculator has no region {location!r}{hint}")
    return grid
