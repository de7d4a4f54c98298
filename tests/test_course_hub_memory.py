"""course_hub.memory: which memory controller a machine offers, and what course-status says of it.

The mount tables below are the lines of real machines (this one, a container booted by
systemd-nspawn, a cgroup v2 server) fed to the parser; a cgroup v2 root cannot be mounted here,
so its ``cgroup.controllers`` is a file in a temporary folder (a stand-in, said so where used).
The real cgroups are tested on real hubs in tests/hub/test_hub_memory.py.
"""
import pathlib

import pytest
from course_hub import memory

#: This machine: v1 controllers read-write, v2 mounted beside them without controllers.
HYBRID = """\
35 30 0:30 / /sys/fs/cgroup/memory rw,relatime shared:12 - cgroup cgroup rw,memory
36 30 0:31 / /sys/fs/cgroup/cpu rw,relatime shared:13 - cgroup cgroup rw,cpu
40 30 0:35 / /sys/fs/cgroup/unified rw,relatime shared:17 - cgroup2 cgroup2 rw
"""
#: Inside a container booted by systemd-nspawn: the v1 controllers read-only.
NSPAWN = """\
35 30 0:30 / /sys/fs/cgroup/memory ro,nosuid,nodev,noexec,relatime - cgroup cgroup rw,memory
40 30 0:35 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw
"""


def test_this_kind_of_machine_uses_the_v1_memory_controller():
    assert memory.memory_hierarchy(HYBRID) == (1, pathlib.Path("/sys/fs/cgroup/memory"))


def test_a_read_only_controller_counts_as_none():
    assert memory.memory_hierarchy(NSPAWN) is None


def test_cgroup_v2_with_its_memory_controller_comes_first(tmp_path):
    # A stand-in for a v2 root: only its cgroup.controllers file is read.
    (tmp_path / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    table = f"30 24 0:26 / {tmp_path} rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw\n" + HYBRID
    assert memory.memory_hierarchy(table) == (2, tmp_path)
    (tmp_path / "cgroup.controllers").write_text("cpu pids\n")
    assert memory.memory_hierarchy(table) == (1, pathlib.Path("/sys/fs/cgroup/memory"))


def test_mount_points_with_spaces_are_unescaped(tmp_path):
    folder = tmp_path / "with space"
    folder.mkdir()
    (folder / "cgroup.controllers").write_text("memory\n")
    escaped = str(folder).replace(" ", "\\040")
    assert memory.memory_hierarchy(f"1 0 0:1 / {escaped} rw - cgroup2 cgroup2 rw\n") == (2, folder)


@pytest.mark.parametrize("scope, words", [
    (memory.CGROUP_V1, "memory limit 2G per student: server and kernels together (memory cgroup v1)"),
    (memory.SYSTEMD, "memory limit 2G per student: server and kernels together (systemd MemoryMax)"),
    (memory.PER_PROCESS, "memory limit 2G per process (no memory cgroup on this machine"),
])
def test_course_status_says_what_the_limit_covers(scope, words):
    assert memory.describe_limit("2G", scope).startswith(words)
