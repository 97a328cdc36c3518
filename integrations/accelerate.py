"""Hugging Face Accelerate custom loops: energy and CO2 per mark, summed once over the
processes through `accelerator.reduce`, logged through `accelerator.log` on the main process.

    from carbonlog.integrations.accelerate import track
    with track(accelerator, location="FR") as t:
        for epoch in range(epochs):
            ...  # the loop's own steps
            t.mark("epoch")
            if t.should_stop:
                break
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from carbonlog._log import warn_once
from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.integrations._common import (
    cuda_devices,
    is_available,
    new_session,
    require,
    torch_sum,
    with_options_doc,
)
from carbonlog.session import FIT, INTERRUPTED, SessionOwner


def is_accelerate_available() -> bool:
    """True when `accelerate` (and so torch) can be imported."""
    return is_available("accelerate", "torch")


@with_options_doc
class AcceleratorTracking(SessionOwner):
    """A custom Accelerate loop's run, from `track`'s entry to its exit: each `mark` closes an
    interval, sums it over the processes in one `accelerator.reduce` of a small float64
    vector, and logs its dict of `carbonlog.metrics` through `accelerator.log` on the main
    process, so every tracker of `log_with` gets it. Every process holds the same figures and
    the same `should_stop`; the main process writes the ledger, once.

    Args:
        accelerator: the loop's `accelerate.Accelerator`; it measures the device this
            process drives (`accelerator.device`), its node's CPU and RAM on local rank 0.
        {options}
        planned_epochs: the run's length in epochs, for the forecast (`budget_check=
            "forecast"` acts on it).

    Raises:
        ValueError, TypeError: a bad option, here rather than mid-training.
    """

    def __init__(
        self,
        accelerator: Any,
        location: str | None = None,
        pue: float | None = None,
        intensity: float | str | None = None,
        *,
        planned_epochs: int | None = None,
        **options: Any,
    ) -> None:
        require(is_accelerate_available(), "accelerate", "Accelerate")
        self._session = new_session("accelerate", location, pue, intensity, options)
        self._accelerator = accelerator
        self._planned_epochs = planned_epochs
        self._marks = 0
        self._failed = False

    @property
    def should_stop(self) -> bool:
        """A budget with on_budget="stop" was reached: true on every process at the same mark."""
        return self._session.should_stop

    def mark(
        self,
        label: str = "epoch",
        metrics: Mapping[str, object] | None = None,
        step: int | None = None,
    ) -> dict[str, float]:
        """Close the interval under `label` (the budget and forecast count "epoch" marks) and
        log its dict at `step` (default: the marks before this one, so 0, 1, 2... as epochs);
        `metrics` (the loop's loss...) go to the ledger with it. Every process calls it alike:
        it holds the one sum. Returns the dict, the same on every process."""
        values = self._session.epoch_end(metrics, label)
        self._log(values, self._marks if step is None else step)
        self._marks += 1
        return values

    def running_totals(self) -> dict[str, float]:
        """`<prefix>energy_kwh_total` and `<prefix>co2_kg_total` as of the last mark."""
        return self._session.running_totals()

    # -- what `track` calls ------------------------------------------------------------

    def _begin(self) -> None:
        accelerator = self._accelerator
        self._session.begin(
            FIT,
            ranks=Ranks(
                rank=accelerator.process_index,
                local_rank=accelerator.local_process_index,
                world_size=accelerator.num_processes,
            ),
            reduce=self._reduce_fn(),
            gpus=cuda_devices(accelerator.device),
            planned_epochs=self._planned_epochs,
        )

    def _end(self, status: str) -> None:
        """Close the run: its totals logged after the last mark, its ledger run closed. A
        process that raised sums no more (the others may never join)."""
        self._failed = status != "completed"
        self._log(self._session.end(status), self._marks)

    def _reduce_fn(self) -> ReduceFn | None:
        """The one sum per interval through `accelerator.reduce`; None when alone."""
        accelerator = self._accelerator
        if accelerator.num_processes <= 1:
            return None
        summed = torch_sum(accelerator.device, lambda t: accelerator.reduce(t, reduction="sum"))
        return lambda values: list(values) if self._failed else summed(values)

    def _log(self, values: Mapping[str, float], step: int) -> None:
        """`values` to every tracker of the Accelerator, from the main process."""
        accelerator = self._accelerator
        if not values or not accelerator.is_main_process:
            return
        if not accelerator.trackers:
            warn_once(
                f"accelerate-no-tracker:{id(self)}",
                "carbonlog: the Accelerator has no tracker (log_with= and init_trackers()), "
                "so energy and CO2 reach only mark()'s return and the ledger",
            )
        accelerator.log(dict(values), step=step)


@contextmanager
def track(
    accelerator: Any,
    location: str | None = None,
    pue: float | None = None,
    intensity: float | str | None = None,
    **options: Any,
) -> Iterator[AcceleratorTracking]:
    """`with track(accelerator, location="FR") as t:` measures the block, `t.mark("epoch")`
    in the loop; the run ends "completed", "failed" when the block raises, "interrupted" on
    Ctrl-C. The options are AcceleratorTracking's."""
    tracking = AcceleratorTracking(accelerator, location, pue, intensity, **options)
    tracking._begin()
    try:
        yield tracking
    except KeyboardInterrupt:
        tracking._end(INTERRUPTED)
        raise
    except BaseException:
        tracking._end("failed")
        raise
    tracking._end("completed")
