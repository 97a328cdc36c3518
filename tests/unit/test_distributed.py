"""Ranks from every launcher's variables, and from an initialised torch.distributed group."""

from __future__ import annotations

import sys
import types

import pytest

from carbonlog.distributed import Ranks


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Ranks(0, 0, 1)),
        # torchrun: every variable, two nodes of four
        (
            {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4"},
            Ranks(5, 1, 8),
        ),
        # torchrun without LOCAL_RANK in the child's view: GROUP_RANK x LOCAL_WORLD_SIZE
        (
            {"RANK": "6", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4", "GROUP_RANK": "1"},
            Ranks(6, 2, 8),
        ),
        # Lightning's launcher on node 1 of 2, two devices each
        (
            {"RANK": "3", "WORLD_SIZE": "4", "NODE_RANK": "1", "LOCAL_WORLD_SIZE": "2"},
            Ranks(3, 1, 4),
        ),
        # RANK and WORLD_SIZE alone: one node, so only rank 0 measures the host
        ({"RANK": "1", "WORLD_SIZE": "2"}, Ranks(1, 1, 2)),
        # SLURM srun
        (
            {"SLURM_PROCID": "9", "SLURM_LOCALID": "1", "SLURM_NTASKS": "16", "SLURM_NODEID": "4"},
            Ranks(9, 1, 16),
        ),
        # SLURM without SLURM_LOCALID (an sbatch script exporting its own)
        (
            {"SLURM_PROCID": "9", "SLURM_NTASKS": "16", "SLURM_NTASKS_PER_NODE": "8"},
            Ranks(9, 1, 16),
        ),
        # Open MPI
        (
            {
                "OMPI_COMM_WORLD_RANK": "3",
                "OMPI_COMM_WORLD_LOCAL_RANK": "0",
                "OMPI_COMM_WORLD_SIZE": "4",
            },
            Ranks(3, 0, 4),
        ),
        # MPICH / Intel MPI (PMI)
        ({"PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0"}, Ranks(2, 0, 4)),
        ({"PMI_RANK": "3", "PMI_SIZE": "4", "MPI_LOCALNRANKS": "2"}, Ranks(3, 1, 4)),
        # garbage is skipped, not trusted
        ({"RANK": "one", "WORLD_SIZE": ""}, Ranks(0, 0, 1)),
    ],
)
def test_every_launcher_is_read(env, expected):
    assert Ranks.from_env(env) == expected


def test_only_one_process_per_node_measures_the_host_under_every_launcher():
    nodes = {}
    for rank in range(8):
        ranks = Ranks.from_env(
            {
                "RANK": str(rank),
                "WORLD_SIZE": "8",
                "LOCAL_WORLD_SIZE": "4",
                "GROUP_RANK": str(rank // 4),
            }
        )
        nodes.setdefault(rank // 4, []).append(ranks.measures_host)
    assert {node: sum(flags) for node, flags in nodes.items()} == {0: 1, 1: 1}


def test_processes_started_with_mp_spawn_read_the_initialised_torch_group(monkeypatch):
    dist = types.SimpleNamespace(
        is_available=lambda: True,
        is_initialized=lambda: True,
        get_rank=lambda: 1,
        get_world_size=lambda: 2,
    )
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(distributed=dist))
    assert Ranks.from_env({}) == Ranks(1, 1, 2)
    assert Ranks.from_env({"RANK": "0", "WORLD_SIZE": "2"}) == Ranks(0, 0, 2)  # env wins


def test_a_slurm_run_is_recorded_with_its_job_step_and_nodes(tmp_path, monkeypatch):
    from carbonlog.ledger import Ledger
    from carbonlog.tracking import Tracker

    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_STEP_ID": "0",
        "SLURM_JOB_NAME": "bert-sst2",
        "SLURM_JOB_NODELIST": "gpu[01-02]",
    }
    for name, value in slurm.items():
        monkeypatch.setenv(name, value)
    path = str(tmp_path / "ledger.sqlite3")
    tracker = Tracker(intensity=100.0, power_w={"cpu": 10.0}, ledger=path).start()
    run_id = tracker.stop().run_id
    with Ledger(path) as ledger:
        launch = ledger.run(run_id).launch
    assert launch == {
        "world_size": 1,
        "slurm_job_id": "4242",
        "slurm_step_id": "0",
        "slurm_job_name": "bert-sst2",
        "slurm_nodelist": "gpu[01-02]",
    }
