"""What this process may use, from fake cgroup v1 and v2 trees, affinity and SLURM variables."""

from __future__ import annotations

import os
from pathlib import Path

from carbonlog.meters.allocation import (
    MIB,
    allowed_cpus,
    allowed_memory_bytes,
    cgroup_cpu_s,
    installed_memory_bytes,
)

GIB = 2**30
UNLIMITED_V1 = "9223372036854771712"  # memory.limit_in_bytes with no limit set


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")


def v2_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A SLURM-like v2 hierarchy: the job limits 2.5 CPUs and 8 GiB, its step only a cpuset."""
    root = tmp_path / "cgroup"
    write(
        root,
        {
            "cgroup.controllers": "cpuset cpu memory",
            "job/cpu.max": "250000 100000",
            "job/memory.max": str(8 * GIB),
            "job/step/cpu.max": "max 100000",
            "job/step/memory.max": "max",
            "job/step/cpuset.cpus.effective": "0-3,8",
        },
    )
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/job/step\n")
    return root, proc


def v1_tree(tmp_path: Path) -> tuple[Path, Path]:
    """A v1 hierarchy, one mount per controller set, limits at the job's level."""
    root = tmp_path / "cgroup"
    job = "slurm/uid_0/job_7"
    write(
        root,
        {
            f"cpu,cpuacct/{job}/cpu.cfs_quota_us": "300000",
            f"cpu,cpuacct/{job}/cpu.cfs_period_us": "100000",
            "cpu,cpuacct/cpu.cfs_quota_us": "-1",
            "cpu,cpuacct/cpu.cfs_period_us": "100000",
            f"cpuset/{job}/cpuset.cpus": "0-7",
            f"memory/{job}/memory.limit_in_bytes": str(4 * GIB),
            "memory/memory.limit_in_bytes": UNLIMITED_V1,
        },
    )
    proc = tmp_path / "proc_cgroup"
    proc.write_text(
        f"9:name=systemd:/{job}\n7:memory:/{job}\n4:cpu,cpuacct:/{job}\n3:cpuset:/{job}\n0::/\n"
    )
    return root, proc


def test_v2_quota_and_cpuset_limit_the_cpus_up_the_hierarchy(tmp_path):
    root, proc = v2_tree(tmp_path)
    cpus = allowed_cpus(root, {}, proc, affinity=set(range(16)))
    assert cpus.amount == 2.5 and cpus.source == f"cgroup {root / 'job'}"
    (root / "job/cpu.max").write_text("max 100000\n")
    assert allowed_cpus(root, {}, proc, affinity=set(range(16))).amount == 5  # 0-3 and 8


def test_cpu_time_of_a_cgroup_v2_and_v1(tmp_path):
    write(
        tmp_path,
        {"v2/cpu.stat": "usage_usec 2500000\nuser_usec 2000000", "v1/cpuacct.usage": "1500000000"},
    )
    assert cgroup_cpu_s(tmp_path / "v2") == 2.5
    assert cgroup_cpu_s(tmp_path / "v1") == 1.5
    assert cgroup_cpu_s(tmp_path / "none") is None


def test_the_limiting_cgroup_is_named_for_its_cpu_time(tmp_path):
    root, proc = v2_tree(tmp_path)
    assert allowed_cpus(root, {}, proc, affinity=set(range(16))).cgroup == root / "job"
    assert allowed_cpus(root, {}, proc, affinity={0}).cgroup is None


def test_v2_memory_limit_is_the_smallest_up_the_hierarchy(tmp_path):
    root, proc = v2_tree(tmp_path)
    memory = allowed_memory_bytes(root, {}, proc, installed_bytes=64 * GIB)
    assert memory.amount == 8 * GIB and memory.source == f"cgroup {root / 'job'}"


def test_v1_cfs_quota_cpuset_and_memory_limit(tmp_path):
    root, proc = v1_tree(tmp_path)
    cpus = allowed_cpus(root, {}, proc, affinity=set(range(64)))
    assert cpus.amount == 3.0 and "cpu,cpuacct" in cpus.source
    memory = allowed_memory_bytes(root, {}, proc, installed_bytes=256 * GIB)
    assert memory.amount == 4 * GIB and "memory" in memory.source


def test_v1_unlimited_values_leave_the_machine_and_affinity(tmp_path):
    root, proc = v1_tree(tmp_path)
    proc.write_text("7:memory:/\n4:cpu,cpuacct:/\n0::/\n")
    assert allowed_cpus(root, {}, proc, affinity={0, 1}).source == "CPU affinity"
    memory = allowed_memory_bytes(root, {}, proc, installed_bytes=16 * GIB)
    assert (memory.amount, memory.source) == (16 * GIB, "installed memory")


def test_a_container_seeing_the_hosts_path_reads_its_own_mount(tmp_path):
    root = tmp_path / "cgroup"
    write(root, {"cpu.max": "100000 100000", "memory.max": str(2 * GIB)})
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/kubepods/burstable/pod1234/abcd\n")
    assert allowed_cpus(root, {}, proc, affinity=set(range(96))).amount == 1.0
    assert allowed_memory_bytes(root, {}, proc, installed_bytes=GIB * 512).amount == 2 * GIB


def test_affinity_alone_without_any_cgroup(tmp_path):
    missing = tmp_path / "none"
    cpus = allowed_cpus(missing, {}, missing / "cgroup", affinity={0, 2, 4})
    assert (cpus.amount, cpus.source) == (3.0, "CPU affinity")
    memory = allowed_memory_bytes(missing, {}, missing / "cgroup", installed_bytes=GIB)
    assert (memory.amount, memory.source) == (GIB, "installed memory")


def test_slurm_variables_limit_cpus_and_memory(tmp_path):
    missing = tmp_path / "none"
    proc = missing / "cgroup"
    env = {"SLURM_CPUS_ON_NODE": "6", "SLURM_MEM_PER_NODE": "2048"}
    assert allowed_cpus(missing, env, proc, affinity=set(range(64))).amount == 6.0
    memory = allowed_memory_bytes(missing, env, proc, installed_bytes=128 * GIB)
    assert (memory.amount, memory.source) == (2 * GIB, "SLURM_MEM_PER_NODE")
    per_cpu = {"SLURM_CPUS_ON_NODE": "4", "SLURM_MEM_PER_CPU": "1000"}
    memory = allowed_memory_bytes(missing, per_cpu, proc, installed_bytes=128 * GIB)
    assert memory.amount == 4000 * MIB
    all_of_it = {"SLURM_CPUS_ON_NODE": "4", "SLURM_MEM_PER_NODE": "0"}  # Slurm: the whole node
    assert allowed_memory_bytes(missing, all_of_it, proc, installed_bytes=GIB).amount == GIB


def test_a_file_it_cannot_parse_sets_no_limit(tmp_path):
    root = tmp_path / "cgroup"
    write(root, {"cpu.max": "garbage", "memory.max": "lots"})
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/\n")
    assert allowed_cpus(root, {}, proc, affinity={0, 1}).amount == 2.0
    assert allowed_memory_bytes(root, {}, proc, installed_bytes=GIB).amount == GIB


def test_this_machine_reads_within_its_affinity_and_installed_memory():
    cpus, memory = allowed_cpus(), allowed_memory_bytes()
    assert 0 < cpus.amount <= len(os.sched_getaffinity(0))
    assert 0 < memory.amount <= installed_memory_bytes()
