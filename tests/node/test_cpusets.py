"""``node.cpusets.read_allowed`` on small /proc + cgroup trees built under tmp_path: cgroup v2
(inherited from a parent), v1 (effective before configured), the legacy cpuset filesystem,
a container seeing only its own sub-tree, /proc/self/status, and missing files."""
from __future__ import annotations

import os
from pathlib import Path

from hrvs_ray.node.cpusets import read_allowed

V2_MOUNT = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
V1_MOUNT = "33 25 0:29 / /sys/fs/cgroup/cpuset rw,nosuid shared:10 - cgroup cgroup rw,cpuset\n"
OTHER = ("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
         "34 25 0:30 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n")


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)
    return root


def test_nothing_to_read_restricts_nothing(tmp_path):
    a = read_allowed(tmp_path, live=False)
    assert (a.cpus, a.mems, a.sources) == (None, None, ())


def test_v2_reads_the_effective_set_not_the_configured_one(tmp_path):
    _write(tmp_path, {"proc/self/mountinfo": OTHER + V2_MOUNT, "proc/self/cgroup": "0::/job\n",
                      "sys/fs/cgroup/job/cpuset.cpus": "0-7\n",              # asked for
                      "sys/fs/cgroup/job/cpuset.cpus.effective": "2-3\n",    # granted
                      "sys/fs/cgroup/job/cpuset.mems.effective": "1\n"})
    a = read_allowed(tmp_path, live=False)
    assert (a.cpus, a.mems) == ({2, 3}, {1})
    assert a.sources == ("cgroup v2 /sys/fs/cgroup/job: cpus 2-3, mems 1",)


def test_v2_a_cgroup_without_the_cpuset_controller_inherits_its_nearest_parents(tmp_path):
    _write(tmp_path, {"proc/self/mountinfo": V2_MOUNT, "proc/self/cgroup": "0::/slurm/job9/step0/task\n",
                      "sys/fs/cgroup/cpuset.cpus.effective": "0-63\n",
                      "sys/fs/cgroup/slurm/job9/cpuset.cpus.effective": "8-11,40-43\n",
                      "sys/fs/cgroup/slurm/job9/cpuset.mems.effective": "0-1\n"})
    (tmp_path / "sys/fs/cgroup/slurm/job9/step0/task").mkdir(parents=True)
    a = read_allowed(tmp_path, live=False)
    assert a.cpus == {8, 9, 10, 11, 40, 41, 42, 43} and a.mems == {0, 1}
    assert a.sources[0].startswith("cgroup v2 /sys/fs/cgroup/slurm/job9: ")


def test_v1_prefers_effective_cpus_and_treats_an_empty_file_as_not_configured(tmp_path):
    _write(tmp_path, {"proc/self/mountinfo": OTHER + V1_MOUNT,
                      "proc/self/cgroup": "5:memory:/other\n4:cpuset:/slurm/job1\n1:name=systemd:/x\n",
                      "sys/fs/cgroup/cpuset/slurm/job1/cpuset.effective_cpus": "1,3\n",
                      "sys/fs/cgroup/cpuset/slurm/job1/cpuset.cpus": "0-3\n",
                      "sys/fs/cgroup/cpuset/slurm/job1/cpuset.effective_mems": "\n",
                      "sys/fs/cgroup/cpuset/slurm/job1/cpuset.mems": "0\n"})
    a = read_allowed(tmp_path, live=False)
    assert (a.cpus, a.mems) == ({1, 3}, {0})
    assert a.sources == ("cgroup v1 /sys/fs/cgroup/cpuset/slurm/job1: cpus 1,3, mems 0",)


def test_v1_from_proc_mounts_when_there_is_no_mountinfo(tmp_path):
    _write(tmp_path, {"proc/mounts": "cgroup /sys/fs/cgroup/cpuset cgroup rw,nosuid,cpuset 0 0\n",
                      "proc/self/cgroup": "4:cpuset:/job\n",
                      "sys/fs/cgroup/cpuset/job/cpuset.cpus": "4-5\n"})
    a = read_allowed(tmp_path, live=False)
    assert (a.cpus, a.mems) == ({4, 5}, None)


def test_a_container_sees_its_own_sub_tree_at_the_mount_point(tmp_path):
    # the hierarchy path /docker/abc is mounted at /sys/fs/cgroup inside the container, so the
    # process's /docker/abc/app is /sys/fs/cgroup/app there (not /sys/fs/cgroup/docker/abc/app,
    # which does not exist: reading it would walk up to the container's root cpuset instead)
    mount = "30 23 0:26 /docker/abc /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw\n"
    _write(tmp_path, {"proc/self/mountinfo": mount, "proc/self/cgroup": "0::/docker/abc/app\n",
                      "sys/fs/cgroup/cpuset.cpus.effective": "0-63\n",
                      "sys/fs/cgroup/app/cpuset.cpus.effective": "6-7\n"})
    a = read_allowed(tmp_path, live=False)
    assert a.cpus == {6, 7} and a.sources == ("cgroup v2 /sys/fs/cgroup/app: cpus 6-7",)


def test_the_legacy_cpuset_filesystem(tmp_path):
    _write(tmp_path, {"proc/mounts": "none /dev/cpuset cpuset rw 0 0\n", "proc/self/cpuset": "/batch/7",
                      "dev/cpuset/batch/7/cpus": "0-1\n", "dev/cpuset/batch/7/mems": "0\n"})
    a = read_allowed(tmp_path, live=False)
    assert (a.cpus, a.mems) == ({0, 1}, {0}) and a.sources[0].startswith("cgroup legacy /dev/cpuset/batch/7")


def test_every_source_is_intersected(tmp_path):
    status = "Name:\tpython\nCpus_allowed:\tff\nCpus_allowed_list:\t0-2,6\nMems_allowed_list:\t0-3\n"
    _write(tmp_path, {"proc/self/mountinfo": V2_MOUNT + V1_MOUNT, "proc/self/cgroup": "4:cpuset:/j\n0::/j\n",
                      "sys/fs/cgroup/j/cpuset.cpus.effective": "0-5\n",
                      "sys/fs/cgroup/cpuset/j/cpuset.cpus": "1-7\n", "sys/fs/cgroup/cpuset/j/cpuset.mems": "1\n",
                      "proc/self/status": status})
    a = read_allowed(tmp_path, live=False)
    assert (a.cpus, a.mems) == ({1, 2}, {1})
    assert len(a.sources) == 3 and a.sources[-1].startswith("/proc/self/status")


def test_a_malformed_status_line_is_skipped_not_fatal(tmp_path):
    _write(tmp_path, {"proc/self/status": "Cpus_allowed_list:\tgarbage\nMems_allowed_list:\t0\n"})
    a = read_allowed(tmp_path, live=False)
    assert (a.cpus, a.mems) == (None, {0})


def test_a_missing_cgroup_directory_restricts_nothing(tmp_path):
    _write(tmp_path, {"proc/self/mountinfo": V1_MOUNT, "proc/self/cgroup": "4:cpuset:/gone\n"})
    assert read_allowed(tmp_path, live=False) == read_allowed(tmp_path / "nowhere", live=False)


def test_the_live_mask_applies_to_the_live_node_only(tmp_path):
    mine = set(os.sched_getaffinity(0))
    assert read_allowed(tmp_path, live=True).cpus == mine
    assert read_allowed(tmp_path, live=False).cpus is None
    _write(tmp_path, {"proc/self/status": "Cpus_allowed_list:\t100000\n"})   # a CPU this machine lacks
    assert read_allowed(tmp_path, live=True).cpus == set()
