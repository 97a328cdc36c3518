"""One rank's part in the one sum per interval: what it brings, what it takes back, and what
it does when the sum fails. Global rank zero owns the site (and its live source); the others
take its intensity from the sum, so every figure that drives a decision is alike everywhere.
"""

from __future__ import annotations

from carbonlog._log import warn_once
from carbonlog.distributed import Ranks, ReduceFn
from carbonlog.intensity import Site
from carbonlog.tracking.edges import Window
from carbonlog.tracking.sync import Contribution, Shared, share_interval

FROM_RANK_ZERO = "global rank 0's figure"


class Sharing:
    """The sum over ranks as one process takes part in it, interval after interval."""

    def __init__(self, reduce: ReduceFn | None, ranks: Ranks, site: Site):
        self._reduce = reduce
        self._ranks = ranks
        self._site = site
        self.owns_site = ranks.is_global_zero or reduce is None
        self.alone_from: int | None = None
        """The interval from which the sum failed and this process went on alone."""
        self.unmeasured: frozenset[str] = frozenset()
        """Components this process was asked to measure and has no meter for."""
        self._intensity_used: tuple[float, str] | None = None
        if ranks.is_distributed and reduce is None:
            warn_once(
                "no-reduce",
                f"carbonlog: this is one of {ranks.world_size} processes and the Tracker "
                "has no reduce=, so each process counts only its own GPU and node share and "
                "the ledger holds rank 0's share alone; pass reduce= (docs/distributed.md) "
                "or use a framework callback",
            )

    def share(
        self,
        window: Window,
        measuring: frozenset[str],
        index: int,
        work: tuple[float | None, float | None, float | None] = (None, None, None),
    ) -> tuple[Shared, tuple[float, str]]:
        """Interval `index` as every rank holds it, and the intensity (g/kWh, source) used;
        `work` is this process's (samples, tokens, embodied kg), None where unknown."""
        own = self._site.current_g_per_kwh() if self.owns_site else (0.0, FROM_RANK_ZERO)
        mine = Contribution(window, own[0], measuring, self.unmeasured, *work)
        shared = share_interval(self._reduce, mine)
        if shared is None:  # the sum failed: this process alone from now on (no more waits)
            own = own if self.owns_site else self._site.current_g_per_kwh()
            self._reduce, self.owns_site, self.alone_from = None, True, index
            shared = share_interval(None, mine._replace(g_per_kwh=own[0]))
        self._say_unmeasured(shared)
        self._intensity_used = (shared.g_per_kwh, own[1])
        return shared, self._intensity_used

    def last_intensity(self) -> tuple[float, str]:
        """The intensity of the last interval, else the site's table figure (for a peek)."""
        if self._intensity_used is not None:
            return self._intensity_used
        return self._site.grid.g_per_kwh, self._site.grid.source

    def _say_unmeasured(self, shared: Shared) -> None:
        missing = [
            f"{component} energy of {count} of {self._ranks.world_size} processes"
            for component, count in shared.unmeasured_by.items()
            if count
        ]
        if missing:
            warn_once(
                "unmeasured",
                f"carbonlog: {', '.join(missing)} could not be measured (no meter there); "
                "the totals leave it out and flag it as estimated",
            )
