"""Rank and node facts from every launcher's variables, and the shape of the one sum.

Launchers (torchrun, Lightning, Accelerate, SLURM, Open MPI, MPICH/Intel MPI's PMI) export
the rank through the environment; carbonlog reads it there, or from a torch.distributed
group already initialised (processes started with mp.spawn export nothing), so the core
never imports a framework. The sum itself goes through the framework's own backend:
adapters pass a `reduce` callable.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

ReduceFn = Callable[[Sequence[float]], Sequence[float]]
"""Sums a vector of floats over all processes and returns the sum on every process."""

RANK_VARS = ("RANK", "SLURM_PROCID", "OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK")
LOCAL_RANK_VARS = (
    "LOCAL_RANK",
    "SLURM_LOCALID",
    "OMPI_COMM_WORLD_LOCAL_RANK",
    "MPI_LOCALRANKID",
    "PMI_LOCAL_RANK",
)
WORLD_SIZE_VARS = ("WORLD_SIZE", "SLURM_NTASKS", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE")
LOCAL_WORLD_SIZE_VARS = (
    "LOCAL_WORLD_SIZE",
    "SLURM_NTASKS_PER_NODE",
    "OMPI_COMM_WORLD_LOCAL_SIZE",
    "MPI_LOCALNRANKS",
    "PMI_LOCAL_SIZE",
)
NODE_RANK_VARS = ("NODE_RANK", "GROUP_RANK", "SLURM_NODEID")
"""torchrun exports GROUP_RANK (its node's index), Lightning NODE_RANK, SLURM SLURM_NODEID."""


def _env_int(env: Mapping[str, str], names: Sequence[str]) -> int | None:
    for name in names:
        value = env.get(name, "").strip()
        if value:
            try:
                return int(value.split("(")[0])  # SLURM_NTASKS_PER_NODE may read "4(x2)"
            except ValueError:
                continue
    return None


def _torch_group() -> tuple[int, int] | None:
    """(rank, world size) of an initialised torch.distributed group, if torch is loaded."""
    torch = sys.modules.get("torch")
    dist = getattr(torch, "distributed", None) if torch is not None else None
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except (RuntimeError, ValueError):
        return None
    return None


LAUNCH_VARS = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_step_id": "SLURM_STEP_ID",
    "slurm_job_name": "SLURM_JOB_NAME",
    "slurm_nodelist": "SLURM_JOB_NODELIST",
    "torchelastic_run_id": "TORCHELASTIC_RUN_ID",
}
"""What the ledger keeps of a launch, so a run joins with the scheduler's own accounting."""


def launch_facts(ranks: Ranks, env: Mapping[str, str] | None = None) -> dict[str, object]:
    """The number of processes and the scheduler's job, step and nodes, where set."""
    env = os.environ if env is None else env
    facts: dict[str, object] = {"world_size": ranks.world_size}
    facts.update({key: env[name] for key, name in LAUNCH_VARS.items() if env.get(name)})
    return facts


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

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Ranks:
        """This process's place, from the launcher's variables or an initialised torch group.

        Without a local rank, it is the rank's place on its node: rank - node rank x processes
        per node, or rank modulo processes per node; with neither, every process is taken to
        be on one node, so the host is measured once (never once per process).
        """
        env = os.environ if env is None else env
        rank = _env_int(env, RANK_VARS)
        world_size = _env_int(env, WORLD_SIZE_VARS)
        group = _torch_group() if rank is None or world_size is None else None
        if group is not None:
            rank, world_size = group
        rank, world_size = rank or 0, max(world_size or 1, 1)
        local_rank = _env_int(env, LOCAL_RANK_VARS)
        if local_rank is None:
            per_node = _env_int(env, LOCAL_WORLD_SIZE_VARS)
            node = _env_int(env, NODE_RANK_VARS)
            if per_node and node is not None:
                local_rank = rank - node * per_node
            elif per_node:
                local_rank = rank % per_node
            else:
                local_rank = rank
        return cls(rank=rank, local_rank=max(local_rank, 0), world_size=world_size)
