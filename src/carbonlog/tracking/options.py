"""The Tracker's options, checked without building a Tracker, so bad ones fail at once."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from carbonlog.errors import ConfigurationError
from carbonlog.intensity import Site
from carbonlog.tracking.budget import Budget


@dataclass(frozen=True)
class Checked:
    """What valid options resolve to: the site, the budget and the meters' options."""

    site: Site
    budget: Budget
    meters: Mapping[str, object]


def check_options(
    location: str | None = None,
    pue: float | None = None,
    intensity: float | str | None = None,
    gpus: str | list[int] | None = "auto",
    cpu: str | None = "auto",
    ram: bool = True,
    run_name: str | None = None,
    tags: Mapping[str, str] | list[str] | None = None,
    ledger: bool | str = True,
    *,
    power_w: Mapping[str, float] | None = None,
    live=None,
    budget_kg: float | None = None,
    budget_kwh: float | None = None,
    on_budget: str = "warn",
    budget_check: str = "total",
    exporters=None,
) -> Checked:
    """A ValueError (or TypeError for an unknown option) naming what is wrong, else the
    resolved options. Opens no meter and makes no network call."""
    from carbonlog.export import check_exporters
    from carbonlog.intensity import resolve_site
    from carbonlog.meters import check_meter_options

    budget = Budget(kg=budget_kg, kwh=budget_kwh, action=on_budget, check=budget_check)
    site = resolve_site(location=location, intensity=intensity, pue=pue, live=live)
    meters = {"gpus": gpus, "cpu": cpu, "ram": ram, "power_w": power_w}
    check_meter_options(**meters)
    check_exporters(exporters)
    if run_name is not None and not isinstance(run_name, str):
        raise ConfigurationError(f"run_name must be a string or None, got {run_name!r}")
    if not isinstance(ledger, bool | str | os.PathLike):
        raise ConfigurationError(f"ledger must be True, False or a file path, got {ledger!r}")
    if tags is not None and not isinstance(tags, Mapping | list | tuple | str):
        raise ConfigurationError(f"tags must be a mapping, a list of strings or None, got {tags!r}")
    return Checked(site=site, budget=budget, meters=meters)
