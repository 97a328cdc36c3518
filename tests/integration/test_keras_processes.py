"""The Keras callback across processes: two torch-backend processes started with mp.spawn and no
rank variable (ranks from the initialised gloo group), and two JAX processes on the CPU (JAX's
own multi-process runtime, gloo collectives), each with the run ledger and a fake NVML whose two
idle 300 W GPUs no process drives. One ledger run, the host counted once, the same totals on
every rank, and JAX sums in float64."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from carbonlog.ledger import Ledger

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
NVML_SHIM = HERE.parent / "fakes" / "nvml_shim"
LAUNCH_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK")
J_PER_KWH = 3.6e6


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(tmp_path) -> dict[str, str]:
    """No launcher's variable; the test's ledger; NVML showing two idle 300 W GPUs."""
    env = {k: v for k, v in os.environ.items() if k not in LAUNCH_VARS}
    paths = [str(NVML_SHIM), str(HERE.parents[1]), *(p for p in sys.path if p)]
    return {
        **env,
        "PYTHONPATH": os.pathsep.join(paths),
        "CARBONLOG_HOME": str(tmp_path / "home"),
        "CARBONLOG_FAKE_NVML_GPUS": "2",
        "CARBONLOG_FAKE_NVML_WATTS": "300",
    }


def ledger_runs(tmp_path) -> list:
    with Ledger(tmp_path / "home" / "ledger.sqlite3") as ledger:
        return ledger.runs()


def assert_one_run_host_once_same_totals(tmp_path, ranks: list[dict]) -> None:
    zero, one = ranks
    for key in ("carbon/energy_kwh", "carbon/energy_kwh_total", "carbon/co2_kg_total"):
        assert zero["history"][key] == one["history"][key], key
    assert zero["history"]["carbon/gpu_kwh"] == [0.0, 0.0]  # the idle GPUs are nobody's
    # rank 1 is not local rank 0: the host's 10 W over rank 0's time, not twice that
    assert zero["cpu_j"] == pytest.approx(10.0 * zero["measured_s"], rel=0.05)
    assert [(run.id, run.status) for run in ledger_runs(tmp_path)] == [
        (zero["run_id"], "completed")
    ]


def test_mp_spawn_processes_without_rank_variables_share_one_run(tmp_path):
    out = tmp_path / "spawn"
    done = subprocess.run(
        [sys.executable, str(HERE / "keras_ddp_spawn_script.py"), str(out), str(free_port())],
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in (0, 1)]
    assert_one_run_host_once_same_totals(tmp_path, ranks)


def test_jax_processes_sum_in_float64_and_share_one_run(tmp_path):
    pytest.importorskip("jax")
    out, port = tmp_path / "jax", str(free_port())
    script = str(HERE / "keras_ddp_jax_script.py")
    workers = [
        subprocess.Popen(
            [sys.executable, script, str(out), str(rank), "2", port],
            env=environment(tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for rank in (0, 1)
    ]
    for worker in workers:
        output, _ = worker.communicate(timeout=180)
        assert worker.returncode == 0, output[-3000:]
    ranks = [json.loads(Path(f"{out}.{rank}.json").read_text()) for rank in (0, 1)]
    probe = [1.0 + 2.0**-40, 3e-12, 1e9 + 0.5]
    exact = [1 * v + 2 * v for v in probe]  # as float64 adds them, in process order
    assert ranks[0]["summed"] == ranks[1]["summed"] == exact
    assert_one_run_host_once_same_totals(tmp_path, ranks)
