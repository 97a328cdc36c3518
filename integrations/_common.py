"""What the adapters share: their options, the framework check, the sum over processes, the
CUDA device a process drives, and the lookup of a hook's caller up the stack.

No ML framework is imported here at module import time; torch only inside the functions that
need it, called once the adapter has checked that its framework is installed.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from carbonlog.distributed import ReduceFn
from carbonlog.session import Session

OPTIONS_DOC = """location, pue, intensity: where the energy is drawn (see `carbonlog.Tracker`).
        prefix: the key prefix, `carbon/` by default.
        metrics: the keys published per interval: "compact" (default) the energy and CO2 of
            the interval, their running totals and mean power, plus the saving against
            scratch when known; "full" the whole schema of docs/metrics.md (components,
            intensity, duration, forecast).
        verbose: a line per epoch and the summary at the end on the "carbonlog" logger;
            False silences both (warnings are still said).
        pretrained, base_model, task: what the run is, for the ledger and the savings
            figures; they win over what is detected from the model.
        search, trial, trial_params: the hyperparameter search this run is a trial of, for
            `carbonlog runs --by search`: `trial=trial` (an Optuna Trial: its study, number
            and params), or a search name with a trial number and parameters.
        intensity_forecast: a carbon-intensity forecast you have (a file `carbonlog when`
            reads, or a Forecast): the fit's summary adds the greenest start it held.
        tracker_options: any other `carbonlog.Tracker` option (gpus, cpu, ram, power_w,
            run_name, tags, ledger, budget_kg, budget_kwh, on_budget, budget_check, live,
            exporters: see docs/monitoring.md);
            `on_budget="stop"` asks the framework to stop at the epoch that reaches it."""
"""The shared options, as every adapter's docstring lists them where it says `{options}`."""

_Documented = TypeVar("_Documented", bound=type)


def with_options_doc(cls: _Documented) -> _Documented:
    """Write the shared options' description (OPTIONS_DOC) into the class docstring."""
    cls.__doc__ = (cls.__doc__ or "").replace("{options}", OPTIONS_DOC)
    return cls


def new_session(
    framework: str,
    location: str | None,
    pue: float | None,
    intensity: float | str | None,
    options: Mapping[str, Any],
) -> Session:
    """The adapter's Session from the shared options (Session's own keywords: prefix, verbose,
    pretrained, base_model, task and the Tracker's), every one checked now, not mid-training."""
    return Session(framework, location=location, pue=pue, intensity=intensity, **options)


def is_available(*modules: str) -> bool:
    """True when every one of `modules` is installed (found, not imported)."""
    return all(importlib.util.find_spec(name) is not None for name in modules)


def require(available: bool, extra: str, needs: str) -> None:
    """The adapter's ImportError naming the pip extra to install, unless `available`."""
    if not available:
        raise ImportError(
            f'carbonlog.integrations.{extra} needs {needs}: pip install "carbonlog[{extra}]"'
        )


def torch_sum(device: Any, collective: Callable[[Any], Any] | None = None) -> ReduceFn:
    """The one sum over processes: the values as a float64 tensor on `device` (where the
    backend communicates), summed by the framework's `collective` (else
    torch.distributed.all_reduce), back as floats on every process."""
    import torch

    def reduce(values: Sequence[float]) -> list[float]:
        local = torch.tensor(list(values), dtype=torch.float64, device=device)
        if collective is None:
            torch.distributed.all_reduce(local)
            return local.tolist()
        return collective(local).tolist()

    return reduce


def cuda_devices(device: Any) -> list[int]:
    """The CUDA device a torch `device` names, as [index] (a bare "cuda" is the current
    device); [] off CUDA."""
    if device.type != "cuda":
        return []
    if device.index is not None:
        return [device.index]
    import torch

    return [torch.cuda.current_device()]


def find_caller(is_wanted: Callable[[Any], bool], depth: int, local: str = "self") -> Any | None:
    """The nearest `self` (or other `local` variable) up the stack, within `depth` frames above
    the function that asks, for which `is_wanted` is true: what called a hook, where the
    framework hands it nothing."""
    frame = sys._getframe(1)
    for _ in range(depth):
        frame = frame.f_back
        if frame is None:
            return None
        owner = frame.f_locals.get(local)
        if owner is not None and is_wanted(owner):
            return owner
    return None
