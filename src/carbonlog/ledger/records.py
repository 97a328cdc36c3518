"""What the ledger is given (RunInfo) and what it returns (RunRecord, IntervalRecord,
GroupTotal), with the helpers that turn loose user values into what it stores."""

from __future__ import annotations

import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from carbonlog.errors import CarbonlogError

STATUSES = ("running", "completed", "failed", "interrupted", "budget", "incomplete")
"""A run's status: "running" until it ends; then "completed", "failed" (the training raised),
"interrupted" (stopped by hand, or its process ended without closing it), "budget" (stopped
by its budget), or "incomplete": it ended, but some of its writes could not be made (the
ledger stayed locked or its disk full), so its stored intervals do not add up to the run.
Only "completed" runs serve as baselines."""

FIT_STAGE = "fit"
"""The stage that trains; a run of another stage (validate, test, predict, evaluate) that
follows a fit is linked to it (RunRecord.fit_run_id)."""


class LedgerError(CarbonlogError, RuntimeError):
    """The ledger cannot be opened or used; the tracker goes on without it."""


class LedgerBusy(LedgerError):
    """The ledger cannot take a write now (another process holds its lock past the busy
    timeout, or its disk is full); the same write may succeed later."""


@dataclass(frozen=True)
class RunInfo:
    """A run as the ledger stores it at its start: what it trains, where, and its budget.

    `hardware` is the devices by component; `site` is what `Site.describe()` returns
    (location, g_per_kwh, pue...); `tags` come from `normalize_tags`; `started_at` (seconds
    since the epoch) is when the run began, the time of the write if not given; `launch` is
    what `carbonlog.distributed.launch_facts()` finds (world size, SLURM job id...).
    """

    name: str | None = None
    framework: str | None = None
    stage: str | None = None
    model: str | None = None
    base_model: str | None = None
    pretrained: bool | None = None
    task: str | None = None
    tags: tuple[str, ...] = ()
    hardware: Mapping = field(default_factory=dict)
    site: Mapping = field(default_factory=dict)
    budget_kg: float | None = None
    budget_kwh: float | None = None
    on_budget: str | None = None
    started_at: float | None = None
    launch: Mapping = field(default_factory=dict)
    """How the run was launched: processes, and the scheduler's job, step and nodes."""
    search_id: str | None = None
    """The hyperparameter search this run is a trial of (an Optuna study name...)."""
    trial: str | None = None
    """The trial's number or name within its search."""
    trial_params: Mapping = field(default_factory=dict)
    """The hyperparameters the trial tried."""


@dataclass(frozen=True)
class IntervalRecord:
    """One stored interval: joules per component, facility kWh, kg CO2 and the run's metrics."""

    label: str
    index: int
    started_at: float | None
    duration_s: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    pue: float | None
    intensity_g_per_kwh: float | None
    intensity_source: str | None
    energy_kwh: float
    co2_kg: float
    estimated: tuple[str, ...] = ()
    metrics: dict[str, float] = field(default_factory=dict)
    band_j: dict[str, float] = field(default_factory=dict)
    """Each component's uncertainty half-width (J), for the components that have one stored."""
    methods: dict[str, str] = field(default_factory=dict)
    """How each component was measured: counter, sampled or model."""
    samples: float | None = None
    tokens: float | None = None
    embodied_kg: float | None = None
    water_l: float | None = None


@dataclass(frozen=True)
class RunRecord:
    """One stored run; totals are sums over its stored intervals (killed runs included)."""

    id: int
    name: str | None
    framework: str | None
    stage: str | None
    fit_run_id: int | None  # for a run of another stage: the fit run it follows
    model: str | None
    base_model: str | None
    pretrained: bool | None
    task: str | None
    tags: list[str]
    hardware: dict
    site: dict
    launch: dict
    location: str | None
    intensity_g_per_kwh: float | None
    pue: float | None
    started_at: float
    ended_at: float | None
    duration_s: float | None
    status: str
    stop_reason: str | None
    epochs: int
    energy_kwh: float
    co2_kg: float
    gpu_j: float
    cpu_j: float
    ram_j: float
    samples: float | None = None  # sums over the intervals that counted them; None if none did
    tokens: float | None = None
    embodied_kg: float | None = None
    water_l: float | None = None
    search_id: str | None = None
    trial: str | None = None
    trial_params: dict = field(default_factory=dict)
    intervals: list[IntervalRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        """`run 12 (bert-sst2)` for messages and tables."""
        return f"run {self.id} ({self.name})" if self.name else f"run {self.id}"

    @property
    def trains(self) -> bool:
        """Whether the run is a fit (or of no stage): one whose epochs count."""
        return self.stage in (None, FIT_STAGE)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GroupTotal:
    """The cost of experimenting: every run of a task (or tag...), whatever its status."""

    by: str
    key: str | None
    runs: int
    statuses: dict[str, int]
    energy_kwh: float
    co2_kg: float
    completed_co2_kg: float

    @classmethod
    def of(cls, by: str, key: str | None, runs: list[RunRecord]) -> GroupTotal:
        """The total of `runs`, the runs grouped under `key`."""
        return cls(
            by=by,
            key=key,
            runs=len(runs),
            statuses=dict(Counter(run.status for run in runs)),
            energy_kwh=sum((run.energy_kwh for run in runs), 0.0),
            co2_kg=sum((run.co2_kg for run in runs), 0.0),
            completed_co2_kg=sum((run.co2_kg for run in runs if run.status == "completed"), 0.0),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def normalize_tags(tags: Mapping[str, str] | Iterable[str] | str | None) -> tuple[str, ...]:
    """Tags as strings: `key=value` for a mapping, the names themselves for a list."""
    if not tags:
        return ()
    if isinstance(tags, str):
        return (tags,)
    if isinstance(tags, Mapping):
        return tuple(f"{key}={value}" for key, value in tags.items())
    return tuple(str(tag) for tag in tags)


def storable_text(value: str) -> str:
    """`value` as SQLite can store it: unchanged if it is valid Unicode, else with its lone
    surrogates (the undecodable bytes of an `os.fsdecode` name) as backslash escapes."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    return value


def clean_tag(tag: str) -> str:
    """A tag as the ledger stores and matches it: control characters (a newline, an escape
    sequence) as backslash escapes, so a tag reads back as one tag and prints as one line."""
    escaped = "".join(
        ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) == "Cc" else ch
        for ch in tag
    )
    return storable_text(escaped)


def _finite_or_none(value: object) -> float | None:
    """`value` as a float, or None for what is not a finite number (tensors convert)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metric_values(metrics: Mapping[object, object] | None) -> dict[str, float]:
    """The framework's metrics that are finite numbers, by name; the rest is not stored."""
    numbers = {
        storable_text(str(key)): _finite_or_none(value) for key, value in (metrics or {}).items()
    }
    return {key: number for key, number in numbers.items() if number is not None}
