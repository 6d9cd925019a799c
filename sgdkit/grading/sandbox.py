"""The student's kernel, sandboxed: the command behind the grading kernelspec.

nbgrader starts each kernel through jupyter_client, which runs the kernelspec's argv

    python -m sgdkit.grading.sandbox CONNECTION_FILE SPEC_JSON

(``SPEC_JSON`` is written by the grading job, see ``worker.py``). This launcher starts the kernel
inside bubblewrap (``bwrap``, Debian's ``bubblewrap``), waits for it and writes down how it
ended (exit code or signal) so the report can say why a kernel died.

The kernel's file system is an allow-list, spelled out by ``bwrap_args``: read-only, ``/usr``
(and the ``/bin``, ``/lib`` links into it), a few files of ``/etc``, the Python installation and
the sgdkit package; private ``/proc`` (a PID namespace of its own: no other process is even
listed) and minimal ``/dev``; writable, only fresh tmpfs folders (``/tmp``, holding the home,
and ``/dev/shm``, ``TMPFS_MB`` each, counted in the job's memory cgroup) and the job's own
runtime folder for the kernel's sockets. Everything else, the course, the submissions, the
output folder, ``/run/lock``, ``/var/tmp``, ``/dev/mqueue``, does not exist in there. It has no
network (a network namespace with no interface), no IPC with the host, and the job's
uid of its own (``limits.SLOT_UID`` + the worker slot; as root) with no capabilities,
``no_new_privs`` and rlimits: address space (``--memory``), no core files, file size, processes.

bubblewrap replaced 130 lines of ctypes mount code that hid a list of folders (a deny-list that
missed ``/run/lock``): one argv now says what the kernel sees. Without root, bwrap uses an
unprivileged user namespace (mode ``userns``; the kernel keeps our uid). Mode ``none`` (no
namespaces) keeps only the uid switch (as root) and the rlimits.
"""

import ctypes
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x00020000, 0x40000000, 0x20000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_BIND, MS_REC, MS_PRIVATE = 4096, 16384, 1 << 18
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}  # syscall numbers (glibc has no wrapper)
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
TMPFS_MB = 256  # size of the kernel's private /tmp and /dev/shm
MAX_PROCESSES = 256  # RLIMIT_NPROC of the kernel's uid (one uid per worker slot)
MAX_FILE_MB = 256  # RLIMIT_FSIZE
ETC = ("ld.so.cache", "localtime", "nsswitch.conf", "passwd", "group", "hosts", "mime.types")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def own_proc() -> None:
    """In the first process of a new PID and mount namespace: a /proc of its own (bwrap reads
    its namespaces there; the host's /proc would show other pids)."""
    _check(_libc.mount(None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None),
           "mount --make-rprivate /")
    _check(_libc.mount(b"proc", b"/proc", b"proc",
                       ctypes.c_ulong(MS_NOSUID | MS_NODEV | MS_NOEXEC), None), "mount /proc")


def reachable(paths) -> None:
    """In a mount namespace of our own, as root: let any uid reach paths (the Python
    installation under /root, say). Each folder on the way that others may not pass is covered
    by a tmpfs (mode 0755) holding only these paths, bound back from handles taken before."""
    paths = [p for p in map(os.path.realpath, paths) if os.path.isdir(p)]
    handles = [(p, os.open(p, os.O_PATH | os.O_DIRECTORY)) for p in paths]
    closed = sorted({str(a) for p in paths for a in Path(p).parents
                     if not os.stat(a).st_mode & stat.S_IXOTH}, key=len)
    covered = []
    for folder in closed:
        if not any(folder.startswith(c + "/") for c in covered):
            _check(_libc.mount(b"tmpfs", os.fsencode(folder), b"tmpfs",
                               ctypes.c_ulong(MS_NOSUID | MS_NODEV), b"mode=755,size=1m"),
                   f"mount {folder}")
            covered.append(folder)
    for path, fd in handles:
        if not os.path.samestat(os.stat(path) if os.path.isdir(path) else os.stat("/"),
                                os.fstat(fd)):
            os.makedirs(path, mode=0o755, exist_ok=True)
            _check(_libc.mount(os.fsencode(f"/proc/self/fd/{fd}"), os.fsencode(path), None,
                               ctypes.c_ulong(MS_BIND | MS_REC), None), f"bind {path}")
        os.close(fd)


def prctl(option: int, arg: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(arg), 0, 0, 0), f"prctl({option})")


def probe() -> str:
    """Which isolation this machine allows: ``root``, ``userns`` or ``none``.

    ``root``: we are root, may create PID namespaces for the jobs, and bwrap works (kernels
    then run under a uid of their own). ``userns``: bwrap works in an unprivileged user
    namespace.
    """
    bwrap = shutil.which("bwrap")
    works = bwrap and subprocess.run([bwrap, "--unshare-all", "--dev-bind", "/", "/", "true"],
                                     capture_output=True).returncode == 0
    if os.geteuid() == 0 and works:
        pid = os.fork()
        if pid == 0:  # try in a throwaway child: unshare changes the caller
            try:
                unshare(CLONE_NEWPID | CLONE_NEWNS)
                os._exit(0)
            except OSError:
                os._exit(1)
        if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0:
            return "root"
    if works and shutil.which("unshare"):
        cmd = ["unshare", "--user", "--map-root-user", "--pid", "--mount", "--fork", "true"]
        if subprocess.run(cmd, capture_output=True).returncode == 0:
            return "userns"
    return "none"


def python_is_world_readable() -> bool:
    """Whether another uid could start this Python (every folder on the way searchable)."""
    paths = {os.path.realpath(sys.executable), sys.prefix, sys.base_prefix,
             os.path.realpath(os.path.dirname(os.path.dirname(os.__file__)))}
    for path in paths:
        for folder in [Path(path), *Path(path).parents]:
            if folder.is_dir() and not folder.stat().st_mode & stat.S_IXOTH:
                return False
    return True


def switches_uid(mode: str) -> bool:
    """Root gives kernels a uid of their own; without namespaces only if it can run Python."""
    return os.geteuid() == 0 and (mode == "root"
                                  or (mode == "none" and python_is_world_readable()))


def describe(mode: str) -> str:
    """One line for the report: which isolation was in force."""
    if mode == "root":
        return ("root only sets up each job (cgroup, namespaces): nbgrader and the kernel then "
                "run under the worker slot's own uid; kernels run in bubblewrap without "
                "capabilities, in their own PID, network and IPC namespaces; their file system "
                "is an allow-list (read-only Python and /usr, private tmpfs /tmp)")
    if mode == "userns":
        return ("kernels run in bubblewrap in a user namespace without capabilities, in their "
                "own PID, network and IPC namespaces; their file system is an allow-list")
    who = "under a uid of their own" if switches_uid(mode) else "as the grading user"
    return (f"NO namespaces on this machine: kernels run {who}, can read the course and use the "
            "network; only process-group cleanup and rlimits apply")


def bwrap_args(spec: dict) -> list[str]:
    """The bwrap command line: everything the kernel's file system holds, and nothing else."""
    args = ["bwrap", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-pid",
            "--unshare-cgroup-try", "--die-with-parent", "--ro-bind", "/usr", "/usr"]
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), str(path)]
        elif path.is_dir():
            args += ["--ro-bind", str(path), str(path)]
    args += [arg for name in ETC for arg in ("--ro-bind-try", f"/etc/{name}", f"/etc/{name}")]
    args += ["--proc", "/proc", "--dev", "/dev"]
    for tmp in ("/tmp", "/dev/shm"):  # first: the job's folders may lie under /tmp
        args += ["--perms", "1777", "--size", str(TMPFS_MB * 1024 * 1024), "--tmpfs", tmp]
    keep = sorted({str(Path(p).resolve()) for p in spec["keep_ro"] if os.path.isdir(p)})
    binds = keep + [spec["runtime_dir"], spec["files_dir"]]
    parents = sorted({str(p) for b in binds for p in Path(b).parents
                      if str(p) not in ("/", "/tmp")})
    for parent in parents:  # bwrap would make them 0700: the kernel's uid could not pass
        args += ["--perms", "0755", "--dir", parent]
    for path in keep:
        args += ["--ro-bind", path, path]
    args += ["--ro-bind", spec["files_dir"], spec["files_dir"],
             "--bind", spec["runtime_dir"], spec["runtime_dir"]]
    if spec.get("uid") is not None:  # bwrap as root drops every capability but these two
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    # the new root and /dev are tmpfs folders the kernel's user namespace would own: read-only
    return args + ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", "/tmp"]


def _prepare_home(spec: dict) -> Path:  # pragma: no cover (sandboxed)
    """A fresh home holding the assignment's files and the seeding startup file."""
    home = Path(spec["home"])
    shutil.copytree(spec["files_dir"], home)
    startup = home / ".ipython" / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    (startup / "00-grading-seed.py").write_text(spec["startup"])
    return home


def enter(spec: dict) -> dict:  # pragma: no cover (sandboxed)
    """The last root step inside the sandbox: limits, the job slot's uid, no new privileges, a
    fresh home as the working folder; returns the kernel's environment."""
    mb = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (spec["memory_mb"] * mb,) * 2)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (MAX_FILE_MB * mb,) * 2)
    if spec.get("nproc"):  # the worker slot's own uid: a limit no other student shares
        resource.setrlimit(resource.RLIMIT_NPROC, (MAX_PROCESSES,) * 2)
    if spec.get("uid") is not None:
        os.setgroups([])
        os.setgid(spec["uid"])
        os.setuid(spec["uid"])  # from root to another uid: every capability is gone
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Python only handles SIGINT if not ignored
    home = _prepare_home(spec)
    os.chdir(home)
    return dict(spec["env"], HOME=str(home), IPYTHONDIR=str(home / ".ipython"),
                MPLCONFIGDIR=str(home / ".config" / "matplotlib"))


def kernel(spec: dict, conn: str) -> None:  # pragma: no cover (sandboxed)
    """Inside bubblewrap: enter the sandbox, then exec the IPython kernel."""
    env = enter(spec)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", conn,
            "--HistoryManager.hist_file=:memory:"]
    os.execve(sys.executable, argv, env)


def _mount(source, target, fstype=None, flags=0, data=None) -> None:  # pragma: no cover (sandboxed)
    enc = [None if v is None else os.fsencode(v) for v in (source, target, fstype, data)]
    _check(_libc.mount(enc[0], enc[1], enc[2], ctypes.c_ulong(flags), enc[3]),
           f"mount {target}")


def build_root(spec: dict, root: str) -> None:  # pragma: no cover (sandboxed)
    """The file system of ``bwrap_args``, built by hand (for kernels forked by the fork server,
    ``zygote.py``): in the first process of new PID and mount namespaces, as root, a tmpfs at
    root gets the same read-only binds, /proc, minimal /dev, tmpfs /tmp and /dev/shm, the job's
    folders, and becomes / (read-only)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m")

    def inside(path):
        return os.path.join(root, str(path).lstrip("/"))

    def bind(src, dst=None, writable=False, flags=MS_NOSUID | MS_NODEV):
        target = inside(dst or src)
        if os.path.isdir(src):
            os.makedirs(target, 0o755, exist_ok=True)
        else:
            os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
            open(target, "a").close()
        _mount(src, target, None, MS_BIND)
        if not writable:
            _mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | flags)

    def tmpfs(path, mode, size):
        os.makedirs(inside(path), 0o755, exist_ok=True)
        _mount("tmpfs", inside(path), "tmpfs", MS_NOSUID | MS_NODEV, f"mode={mode},size={size}")

    bind("/usr")
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        path = Path("/") / name
        if path.is_symlink():
            os.symlink(os.readlink(path), inside(path))
        elif path.is_dir():
            bind(str(path))
    for name in ETC:
        if os.path.exists(f"/etc/{name}"):
            bind(os.path.realpath(f"/etc/{name}"), f"/etc/{name}")
    os.makedirs(inside("/proc"), 0o555)
    _mount("proc", inside("/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(inside("/dev"))
    _mount("tmpfs", inside("/dev"), "tmpfs", MS_NOSUID, "mode=0755,size=64k")
    for node in ("null", "zero", "full", "random", "urandom", "tty"):
        bind(f"/dev/{node}", writable=True)
    for name, to in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                     ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(to, inside(f"/dev/{name}"))
    for tmp in ("/tmp", "/dev/shm"):  # first: the job's folders may lie under /tmp
        tmpfs(tmp, "1777", TMPFS_MB * 1024 * 1024)
    for path in sorted({str(Path(p).resolve()) for p in spec["keep_ro"] if os.path.isdir(p)}):
        bind(path)
    bind(spec["files_dir"])
    bind(spec["runtime_dir"], writable=True)
    os.chdir(root)
    _check(_libc.syscall(PIVOT_ROOT[os.uname().machine], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", 2), "umount the old root")  # MNT_DETACH
    os.chdir("/")
    _mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _mount(None, "/dev", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID)
    os.chdir("/tmp")


def write_private(path: str, data: bytes, uid: int | None) -> None:
    """Write data to a new file that nobody else made first (no symlink games), for uid."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    if uid is not None:
        os.chown(path, uid, uid)


def main(argv: list[str] | None = None) -> None:
    argv = argv if argv is not None else sys.argv[1:]
    if argv[0] == "--kernel":  # inside the sandbox (or directly, in mode none)
        spec = json.loads(argv[2])
        kernel(spec, argv[1])
    conn_file, spec_file = argv
    spec = json.loads(Path(spec_file).read_text())
    prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # the job died: so do we
    kernel_id = Path(conn_file).stem
    exit_fd = os.open(os.path.join(spec["exit_dir"], kernel_id + ".json"),
                      os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    # The kernel may not read the connection file jupyter_client wrote (mode 0600): copy it.
    conn = os.path.join(spec["runtime_dir"], "copy-" + kernel_id + ".json")
    write_private(conn, Path(conn_file).read_bytes(), spec.get("uid"))
    spec["home"] = f"{spec['home']}-{kernel_id}"  # each kernel gets a home nobody touched yet
    inner = [sys.executable, "-m", "sgdkit.grading.sandbox", "--kernel", conn, json.dumps(spec)]
    isolated = spec["mode"] in ("root", "userns")
    command = bwrap_args(spec) + ["--", *inner] if isolated else inner
    # jupyter_client interrupts by signalling our whole process group: the kernel gets SIGINT
    # directly, so the launcher (and bwrap) ignore it; SIGTERM is passed on.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    proc = subprocess.Popen(command, close_fds=True)
    signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
    code = proc.wait()
    if isolated and code > 128:  # bwrap reports a kernel killed by signal N as 128 + N
        code = 128 - code
    os.write(exit_fd, json.dumps({"exitcode": code}).encode())
    os._exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
