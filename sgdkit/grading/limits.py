"""Per-job resource limits: one cgroup per grading job, so one student cannot spend the others'.

A job (nbgrader, the student's kernel and everything it starts) lives in a cgroup of its own
that caps, for all its processes together:

- ``pids``: processes and threads (a fork bomb stops at the cap, inside its own job);
- ``memory``: resident memory *and* tmpfs pages the job wrote (no swap): ``--memory`` for the
  student plus ``GRADER_MB`` for nbgrader; past it the kernel's OOM killer ends the job's
  largest process, the student's;
- ``cpu``: ``CPUS`` cores of CPU time (busy children share them; other jobs keep theirs).

Both cgroup versions work: v2 (one unified tree; used when the controllers can be enabled for
the grader's own cgroup) and v1 (one tree per controller, as on this repository's test
machine). The groups are made inside the grader's own cgroup, so any limit above it still
holds. Creating them needs root; without them each worker slot still runs its kernels under a
uid of its own (``SLOT_UID``), so RLIMIT_NPROC is not shared between students, and
``describe`` says what is in force.
"""

import os
import signal
import time
from pathlib import Path

CONTROLLERS = ("pids", "memory", "cpu")
GRADER_MB = 768  # nbgrader and the job's Python, on top of the student's --memory
CPUS = 1.0  # CPU time per job, in cores
PERIOD_US = 100_000
SLOT_UID = 64000  # worker slot i runs its kernels as uid SLOT_UID + i (never a real user)


def _mounts() -> dict:
    """{controller or "unified": mount point} of the cgroup file systems."""
    found = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        sep = fields.index("-")
        fstype, options, point = fields[sep + 1], fields[sep + 3].split(","), fields[4]
        if fstype == "cgroup2":
            found.setdefault("unified", point)
        elif fstype == "cgroup":
            for name in set(CONTROLLERS) & set(options):
                found.setdefault(name, point)
    return found


def _own() -> dict:
    """{controller or "unified": path of this process's cgroup in that hierarchy}."""
    found = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, names, path = line.split(":", 2)
        for name in names.split(",") if names else ["unified"]:
            found[name] = path
    return found


def _write(path: Path, value) -> None:
    path.write_text(f"{value}\n")


class Cgroup:
    """One job's cgroup: the folders that stand for it (one per controller in v1)."""

    def __init__(self, version: int, folders: dict):
        self.version, self.folders = version, folders  # {controller: Path}

    @classmethod
    def create(cls, name: str, processes: int, memory_mb: int, cpus: float = CPUS,
               root: Path = Path("/")) -> "Cgroup | None":
        """A new cgroup with these limits, or None where none can be made here."""
        try:
            mounts, own = _mounts(), _own()
        except OSError:
            return None
        memory = (memory_mb + GRADER_MB) * 1024 * 1024
        quota = int(cpus * PERIOD_US)
        if all(c in mounts for c in CONTROLLERS):  # v1: one folder per controller
            folders = {c: root / mounts[c].lstrip("/") / own.get(c, "/").lstrip("/") / name
                       for c in CONTROLLERS}
            group = cls(1, folders)
            try:
                for folder in folders.values():
                    folder.mkdir()
                _write(folders["pids"] / "pids.max", processes)
                _write(folders["memory"] / "memory.limit_in_bytes", memory)
                swap = folders["memory"] / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    _write(swap, memory)
                _write(folders["cpu"] / "cpu.cfs_period_us", PERIOD_US)
                _write(folders["cpu"] / "cpu.cfs_quota_us", quota)
                return group
            except OSError:
                group.remove()
        if "unified" in mounts:  # v2: controllers enabled below the grader's own cgroup
            parent = root / mounts["unified"].lstrip("/") / own.get("unified", "/").lstrip("/")
            folder = parent / name
            group = cls(2, {"unified": folder})
            try:
                enabled = (parent / "cgroup.subtree_control").read_text().split()
                if not set(CONTROLLERS) <= set(enabled):
                    _write(parent / "cgroup.subtree_control", "+pids +memory +cpu")
                folder.mkdir()
                _write(folder / "pids.max", processes)
                _write(folder / "memory.max", memory)
                if (folder / "memory.swap.max").exists():
                    _write(folder / "memory.swap.max", 0)
                _write(folder / "cpu.max", f"{quota} {PERIOD_US}")
                return group
            except OSError:
                group.remove()
        return None

    def add(self, pid: int) -> None:
        """Move a process (and the children it starts from now on) into the group."""
        for folder in self.folders.values():
            _write(folder / "cgroup.procs", pid)

    def pids(self) -> list[int]:
        folder = next(iter(self.folders.values()))
        try:
            return [int(p) for p in (folder / "cgroup.procs").read_text().split()]
        except OSError:
            return []

    def events(self) -> set:
        """Which limits were hit: "processes", "memory"."""
        hit = set()
        try:
            if self.version == 1:
                pids = (self.folders["pids"] / "pids.events").read_text().split()
                oom = dict(line.split() for line in (self.folders["memory"] /
                                                     "memory.oom_control").read_text()
                           .splitlines())
                if pids[-1] != "0":
                    hit.add("processes")
                if int(oom.get("oom_kill", 0)):
                    hit.add("memory")
            else:
                folder = self.folders["unified"]
                events = dict(line.split() for line in (folder / "memory.events").read_text()
                              .splitlines())
                pids = dict(line.split() for line in (folder / "pids.events").read_text()
                            .splitlines())
                if int(events.get("oom_kill", 0)) or int(events.get("max", 0)):
                    hit.add("memory")
                if int(pids.get("max", 0)):
                    hit.add("processes")
        except (OSError, ValueError, IndexError):
            pass
        return hit

    def kill(self) -> None:
        """SIGKILL every process in the group, until it is empty (a bomb keeps forking)."""
        kill_file = self.folders.get("unified", Path("/nonexistent")) / "cgroup.kill"
        if kill_file.exists():
            try:
                _write(kill_file, 1)
            except OSError:
                pass
        for _ in range(200):
            pids = self.pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)

    def remove(self) -> None:
        """Kill what is left and delete the group's folders."""
        self.kill()
        for folder in self.folders.values():
            for _ in range(50):
                try:
                    folder.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # processes still leaving
                    time.sleep(0.02)


def available(processes: int, memory_mb: int) -> str:
    """Which cgroup version grading jobs get here ("v1", "v2" or ""), by making one."""
    group = Cgroup.create(f"sgdkit-probe-{os.getpid()}", processes, memory_mb) \
        if os.geteuid() == 0 else None
    if group is None:
        return ""
    group.remove()
    return f"v{group.version}"


def describe(version: str, processes: int, memory_mb: int) -> str:
    """One line for the summary: the per-job limits in force."""
    if version:
        return (f"per job (cgroup {version}): {processes} processes, {memory_mb} MB for the "
                f"student's kernel and all it starts, tmpfs included (+ {GRADER_MB} MB for "
                f"nbgrader), {CPUS:g} CPU")
    return (f"NO cgroups here: per kernel {memory_mb} MB address space per process and "
            f"{processes} processes for its own uid (one uid per worker slot)")
