"""Rank and node facts from the environment, and the one sum per interval.

Launchers (torchrun, Lightning, Accelerate, SLURM, JAX multi-host) export the rank through
the environment; carbonlog reads it there so the core never imports a framework. The sum
itself goes through the framework's own backend: adapters pass a `reduce` callable.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

ReduceFn = Callable[[Sequence[float]], Sequence[float]]
"""Sums a vector of floats over all processes and returns the sum on every process."""


def _env_int(*names: str, default: int) -> int:
    for name in names:
        value = os.environ.get(name)
        if value not in (None, ""):
            try:
                return int(value)
            except ValueError:
                continue
    return default


@dataclass(frozen=True)
class Ranks:
    """Where this process sits: global rank, local rank on its node, and the world size."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_global_zero(self) -> bool:
        """The one process that writes files (ledger, model card, reports)."""
        return self.rank == 0

    @property
    def measures_host(self) -> bool:
        """Local rank 0 of each node measures the host's CPU and RAM, so no node counts twice."""
        return self.local_rank == 0

    @classmethod
    def from_env(cls) -> Ranks:
        """Read RANK/LOCAL_RANK/WORLD_SIZE (torchrun, Lightning) or their SLURM/MPI forms."""
        return cls(
            rank=_env_int("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", default=0),
            local_rank=_env_int(
                "LOCAL_RANK", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", default=0
            ),
            world_size=_env_int("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", default=1),
        )


