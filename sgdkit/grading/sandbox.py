"""The student's kernel, sandboxed: the command behind the grading kernelspec.

nbgrader starts each kernel through jupyter_client, which runs the kernelspec's argv

    python -m sgdkit.grading.sandbox CONNECTION_FILE SPEC_JSON

(``SPEC_JSON`` is written by the grading job, see ``worker.py``). This launcher, still privileged,
turns that into a kernel that cannot harm the batch, then waits for it and writes down how it
ended (exit code or signal) so the report can say why a kernel died:

- a mount namespace of its own: the course, the submissions, the output folder, the grading work
  area, ``/tmp``, ``/dev/shm`` and home folders are covered by empty tmpfs mounts, and only the
  Python installation and the sgdkit package are mounted back, read-only. Solutions, hidden
  tests, gradebooks and other students' files are simply not there;
- a network namespace of its own with no interface up: no network. Kernel messages travel over
  unix sockets (ZMQ's ``ipc`` transport), so parallel kernels have no ports to collide on;
- the user ``nobody`` with no capabilities and ``no_new_privs`` when we are root; in a user
  namespace (not root) the kernel keeps our uid but loses every capability;
- rlimits: address space (``--memory``), no core files, file size, number of processes.

Mode ``none`` (no namespaces available) keeps only the rlimits and, as root, the switch to
``nobody``. Everything a kernel starts also lives in its grading job's PID namespace and dies
with it (``worker.py``).
"""

import ctypes
import json
import os
import pwd
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS = 1, 24, 38
# statvfs flag -> mount flag, to keep the locked flags when remounting a bind read-only
_ST_TO_MS = {1: MS_RDONLY, 2: MS_NOSUID, 4: MS_NODEV, 8: MS_NOEXEC, 1024: 1024, 2048: 2048,
             4096: 1 << 21}
TMPFS_MB = 256  # size of the kernel's private /tmp and /dev/shm
MAX_PROCESSES = 512  # RLIMIT_NPROC for user nobody (all grading kernels together)
MAX_FILE_MB = 256  # RLIMIT_FSIZE

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def _mount(source, target, fstype, flags: int, data=None) -> None:
    enc = [None if s is None else os.fsencode(s) for s in (source, target, fstype, data)]
    ret = _libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3])
    _check(ret, f"mount {target}")


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def probe() -> str:
    """Which isolation this machine allows: ``root``, ``userns`` or ``none``.

    ``root``: we are root and may create mount, network and PID namespaces (kernels then run as
    ``nobody``). ``userns``: an unprivileged user namespace gives us those namespaces.
    """
    if os.geteuid() == 0:
        pid = os.fork()
        if pid == 0:  # try in a throwaway child: unshare changes the caller
            try:
                unshare(CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID)
                os._exit(0)
            except OSError:
                os._exit(1)
        if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0:
            return "root"
    if shutil.which("unshare"):
        cmd = ["unshare", "--user", "--map-root-user", "--mount", "--net", "--pid", "--fork",
               "true"]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return "userns"
    return "none"


def nobody_can_run_python() -> bool:
    """Whether user nobody could start this Python (every folder on the way world-searchable)."""
    paths = {os.path.realpath(sys.executable), sys.prefix, sys.base_prefix,
             os.path.realpath(os.path.dirname(os.path.dirname(os.__file__)))}
    for path in paths:
        for folder in [Path(path), *Path(path).parents]:
            if folder.is_dir() and not folder.stat().st_mode & stat.S_IXOTH:
                return False
    return True


def runs_as_nobody(mode: str) -> bool:
    """Root switches kernels to nobody; without namespaces only if nobody can run Python."""
    return os.geteuid() == 0 and (mode == "root" or (mode == "none" and nobody_can_run_python()))


def describe(mode: str, memory_mb: int, timeout: float) -> str:
    """One line for the report: which isolation was in force."""
    limits = f"{memory_mb} MB address space, {timeout:g} s per notebook"
    if mode == "root":
        return ("kernels run as user nobody in their own mount, network and PID namespaces "
                f"(no network; course, submissions and /tmp hidden); {limits}")
    if mode == "userns":
        return ("kernels run without capabilities in a user namespace with their own mount, "
                f"network and PID namespaces (no network; course, submissions and /tmp hidden); "
                f"{limits}")
    who = "as user nobody" if runs_as_nobody(mode) else "as the grading user"
    return (f"NO namespaces on this machine: kernels run {who}, can read the course and use the "
            f"network; only process-group cleanup and rlimits apply; {limits}")


def _hide_and_keep(spec: dict) -> None:
    """Cover the hidden folders with empty tmpfs mounts, then bind the kept ones back."""
    unshare(CLONE_NEWNS | CLONE_NEWNET)
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount leaks back to the host
    # Handles on what stays visible, taken in the new namespace (a bind needs its source there)
    keep = [(p, True) for p in spec["keep_ro"]] + [(spec["runtime_dir"], False)]
    fds = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY), ro) for p, ro in keep if os.path.isdir(p)]
    files = os.open(spec["files_dir"], os.O_PATH | os.O_DIRECTORY)
    for path in sorted(spec["hide"], key=lambda p: p.count("/")):
        if os.path.isdir(path) and not os.path.islink(path):  # an outer one may have hidden it
            wide = path in ("/tmp", "/var/tmp", "/dev/shm")
            opts = f"size={TMPFS_MB}m,mode=1777" if wide else "size=1m,mode=755"
            _mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts)
    for path, fd, ro in fds:
        if os.path.isdir(path) and os.path.samestat(os.stat(path), os.fstat(fd)):
            continue  # not under a hidden folder
        os.makedirs(path, exist_ok=True)
        _mount(f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        if ro:
            st = os.statvfs(path).f_flag
            locked = sum(ms for st_flag, ms in _ST_TO_MS.items() if st & st_flag)
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | locked)
        os.close(fd)
    try:  # a /proc of the job's PID namespace: other jobs' processes are not even listed
        _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except OSError:
        pass  # some containers forbid it; the PID namespace still confines signals
    # a fresh home for this kernel (on the private /tmp), holding the assignment's data files
    shutil.copytree(f"/proc/self/fd/{files}", spec["home"], dirs_exist_ok=False)
    os.close(files)


def _prepare_home(spec: dict, uid: int | None, gid: int | None) -> Path:
    """Seeding startup file in the kernel's (fresh, root-made) home, then hand it to the kernel."""
    home = Path(spec["home"])
    if not home.exists():  # mode none: a new folder per kernel, next to the job's files
        shutil.copytree(spec["files_dir"], home)
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-grading-seed.py").write_text(spec["startup"])
    if uid is not None:
        for root, dirs, files in os.walk(home):
            for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
                os.chown(name, uid, gid, follow_symlinks=False)
    return home


def _become_kernel(spec: dict, conn: str, home: Path, uid, gid, launcher: int) -> None:
    """In the forked child: drop everything, then exec the IPython kernel. Never returns."""
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (spec["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_MB * mb,) * 2)
    if uid is not None:
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES,) * 2)
        os.setgroups([])
        os.setgid(gid)
        os.setuid(uid)
    elif spec["mode"] == "userns":
        for cap in range(64):  # clear the bounding set: exec then grants no capability
            if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
                break
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # after setuid, which clears it
    if os.getppid() != launcher:
        os._exit(1)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python only handles SIGINT if not ignored
    os.chdir(home)
    env = dict(spec["env"], HOME=str(home), IPYTHONDIR=str(home / ".ipython"),
               MPLCONFIGDIR=str(home / ".config" / "matplotlib"), JPY_PARENT_PID=str(launcher))
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", conn,
            "--HistoryManager.hist_file=:memory:"]
    os.execve(sys.executable, argv, env)


def _private_copy(src: str, dst: str, uid: int | None, gid: int | None) -> None:
    """Copy src to a new file dst that nobody else made first (no symlink games)."""
    fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(Path(src).read_bytes())
    if uid is not None:
        os.chown(dst, uid, gid)


def main(argv: list[str] | None = None) -> None:
    conn_file, spec_file = argv if argv is not None else sys.argv[1:]
    spec = json.loads(Path(spec_file).read_text())
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the job died: so do we
    uid = gid = None
    if runs_as_nobody(spec["mode"]):
        nobody = pwd.getpwnam("nobody")
        uid, gid = nobody.pw_uid, nobody.pw_gid
    # Opened now, while the job's folder is still visible; written when the kernel has ended.
    kernel_id = Path(conn_file).stem
    exit_fd = os.open(os.path.join(spec["exit_dir"], kernel_id + ".json"),
                      os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    # The kernel may not read the connection file jupyter_client wrote (mode 0600): copy it.
    conn = os.path.join(spec["runtime_dir"], "copy-" + kernel_id + ".json")
    _private_copy(conn_file, conn, uid, gid)
    spec["home"] = f"{spec['home']}-{kernel_id}"  # each kernel gets a home nobody touched yet
    if spec["mode"] in ("root", "userns"):
        _hide_and_keep(spec)
    home = _prepare_home(spec, uid, gid)
    # jupyter_client interrupts by signalling our whole process group: the kernel gets SIGINT
    # directly, so the launcher ignores it; SIGTERM is passed on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    launcher = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(exit_fd)
            _become_kernel(spec, conn, home, uid, gid, launcher)
        finally:
            os._exit(127)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(pid, signal.SIGTERM))
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    os.write(exit_fd, json.dumps({"exitcode": code}).encode())
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
