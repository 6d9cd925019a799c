"""Kernels forked from a warm process: one fork server ("zygote") per worker slot (issue 16).

Starting a kernel the plain way costs three Python start-ups (the launcher, the process in
bubblewrap, ipykernel) and the imports every assignment repeats (numpy, torch). Instead, each
worker starts one process, Z, that has imported ipykernel and what the assignment's notebooks
import, and nothing else: it is started with ``python -m sgdkit.grading.zygote`` (never forked
from the worker, whose memory holds the solution's probe records and hidden tests). For each
kernel Z forks

    Z ── K (job's cgroup; new PID, mount, network, IPC, UTS and cgroup namespaces)
           └─ I (PID 1 there: builds the allow-list file system, then reaps and forwards)
                └─ kernel (the student's: rlimits, the slot's uid, no_new_privs)

so each submission gets a clean copy of Z's memory and nothing of any other student's. The
file system the kernel sees is the one ``sandbox.bwrap_args`` spells out for bubblewrap (the same
allow-list, built here by ``sandbox.build_root``); the limits are those of ``sandbox.enter``. K
leaves the job's namespaces, gives up root and waits: it forwards interrupts to the kernel and
writes how it ended to the job's ``exits`` folder, as the bubblewrap launcher does.

The worker (trusted) registers each job with Z over a control socket: the job's sandbox spec,
its cgroup and one end of a socket pair made for that job. nbgrader, in the job's process J,
asks for kernels over the other end (``ForkProvisioner``, a jupyter_client provisioner named by
the job's kernelspec) and gets back a pidfd of K: polling, interrupting and killing the kernel go
through it, across J's PID namespace. When the job ends the worker tells Z, which kills what is
left of it.

Only mode ``root`` forks kernels (it needs root for the namespaces). Elsewhere, when Z cannot
start, or when it has more than one thread after its imports (forking would copy a lock held by
another thread), kernels start the plain way and the summary says why.
"""

import ast
import asyncio
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from jupyter_client.provisioning import LocalProvisioner

from . import limits, sandbox

# ipykernel.debugger: imported when a kernel starts (debugpy, 0.2 s), as numpy by the seed file
BASE = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.debugger", "numpy", "sgdkit")
# what sgdkit's modules import inside their functions (to keep `import sgdkit.x` light)
LAZY = {"sgdkit.data": ("sklearn.datasets", "sklearn.model_selection")}
SKIP = ("matplotlib", "sgdkit.plot")  # caches its fonts in a home the kernel does not have
MAX_MESSAGE = 1 << 20
CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWCGROUP = 0x08000000, 0x04000000, 0x02000000
KERNEL_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)  # what J may send its kernels
START_S = 120  # Z's imports (torch takes seconds on a loaded machine)
# COVERAGE: K, init and the kernel run as the slot's uid or after pivot_root, where no coverage
# data can be written; tests/test_zygote.py checks what they do from the kernel's side.


def imports(sources) -> list[str]:
    """The modules the notebooks' code cells import at top level (dotted names), sorted."""
    found = set()
    for source in sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                found.add(node.module)
    return sorted(name for name in found if not name.startswith(SKIP))


def _send(sock: socket.socket, message: dict, fds=()) -> None:
    socket.send_fds(sock, [json.dumps(message).encode()], list(fds))


def _receive(sock: socket.socket, fds: int = 0):
    data, got, _, _ = socket.recv_fds(sock, MAX_MESSAGE, max(fds, 1))
    if not data:
        raise EOFError("the other end closed the socket")
    return json.loads(data), got


# -- in the worker ------------------------------------------------------------------------------
class Zygote:
    """The worker's handle on its fork server."""

    def __init__(self, proc, control: socket.socket, ready: dict):
        self.proc, self.control, self.ready = proc, control, ready

    @classmethod
    def start(cls, preload, env: dict) -> "Zygote":
        """Start Z with these imports in the kernels' environment; raises OSError with the
        reason when it cannot serve (then kernels start the plain way)."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cmd = [sys.executable, "-m", "sgdkit.grading.zygote", str(theirs.fileno()), *preload]
        proc = subprocess.Popen(cmd, pass_fds=[theirs.fileno()], env=env, stdin=subprocess.DEVNULL,
                                stdout=sys.stderr.fileno())
        theirs.close()
        ready, _, _ = select.select([ours], [], [], START_S)
        try:
            reply = _receive(ours)[0] if ready else {"error": f"not ready in {START_S} s"}
        except (OSError, EOFError, ValueError) as err:
            reply = {"error": f"it ended while importing ({err})"}
        if "error" in reply:
            proc.kill()
            proc.wait()
            ours.close()
            raise OSError(f"no fork server: {reply['error']}")
        return cls(proc, ours, reply)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def register(self, token: str, spec: dict, group) -> int:
        """A job's socket end for J (inheritable by fork only); Z holds the other end."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        cgroup = None if group is None else {"version": group.version,
                                             "folders": {k: str(v) for k, v in
                                                         group.folders.items()}}
        _send(self.control, {"op": "job", "token": token, "spec": spec, "cgroup": cgroup},
              [theirs.fileno()])
        theirs.close()
        return ours.detach()

    def end(self, token: str) -> None:
        """The job is over: Z kills whatever is left of its kernels."""
        try:
            _send(self.control, {"op": "end", "token": token})
        except OSError:
            pass

    def stop(self) -> None:
        self.control.close()
        try:
            self.proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- in J: nbgrader's side ----------------------------------------------------------------------
class _Kernel:
    """What jupyter_client's provisioner needs of a process, for K through its pidfd."""

    stdin = stdout = stderr = None

    def __init__(self, pidfd: int, exit_file: Path, kernel_id: str):
        self.pidfd, self.exit_file, self.kernel_id, self.pid = pidfd, exit_file, kernel_id, None
        self.code = None

    def poll(self) -> int | None:
        if self.code is None and select.select([self.pidfd], [], [], 0)[0]:
            try:
                self.code = int(json.loads(self.exit_file.read_text())["exitcode"])
            except (OSError, ValueError, KeyError, TypeError):
                self.code = -signal.SIGKILL  # killed before it could say
            os.close(self.pidfd)
        return self.code

    def wait(self, timeout: float | None = None) -> int | None:
        if self.code is None:
            select.select([self.pidfd], [], [], timeout)
        return self.poll()

    def send_signal(self, signum: int) -> None:
        """Through Z: J's PID namespace may not signal K (pidfd_send_signal says EINVAL)."""
        if self.poll() is None:
            with socket.socket(fileno=os.dup(int(os.environ["SGDKIT_ZYGOTE_FD"]))) as sock:
                _send(sock, {"signal": int(signum), "kernel_id": self.kernel_id})

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    terminate = kill


class ForkProvisioner(LocalProvisioner):
    """Kernels from the job's fork server: the job's kernelspec names this provisioner (entry
    point ``sgdkit-fork``), and J's environment holds its socket (SGDKIT_ZYGOTE_FD)."""

    async def kill(self, restart=False):
        """SIGKILL, then until K has ended (the manager would poll every 0.1 s)."""
        if self.process is not None:
            self.process.kill()
            for _ in range(2500):
                if self.process.poll() is not None:
                    break
                await asyncio.sleep(0.002)

    async def wait(self):
        while self.process is not None and self.process.poll() is None:
            await asyncio.sleep(0.002)
        code, self.process = (self.process.code if self.process else 0), None
        return code

    async def pre_launch(self, **kwargs):
        kwargs.pop("env", None)  # the kernel's environment is the sandbox spec's
        return await super().pre_launch(**kwargs)

    async def launch_kernel(self, cmd, **kwargs):
        sock = socket.socket(fileno=os.dup(int(os.environ["SGDKIT_ZYGOTE_FD"])))
        try:
            _send(sock, {"connection": Path(self.parent.connection_file).read_text(),
                         "kernel_id": self.kernel_id})
            reply, fds = _receive(sock, 1)
        finally:
            sock.close()
        if "error" in reply or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise RuntimeError("the fork server could not start a kernel: "
                               f"{reply.get('error', 'no process handle came back')}")
        self.process = _Kernel(fds[0], Path(reply["exit_file"]), self.kernel_id)
        self.pid = self.pgid = None
        return self.connection_info


# -- Z ------------------------------------------------------------------------------------------
def _connection(spec: dict, text: str) -> dict:
    """The kernel's connection info as J sent it, if its sockets lie in the runtime folder."""
    info = json.loads(text)
    ip = str(info.get("ip", ""))
    if info.get("transport") != "ipc" or os.path.dirname(ip) != spec["runtime_dir"]:
        raise ValueError("a kernel was asked for with sockets outside the job's runtime folder")
    return info


def _kernel_main(spec: dict, conn: str) -> None:  # pragma: no cover (see COVERAGE)
    """The kernel process: limits, uid and home of the sandbox, then IPython's kernel here."""
    coverage = sys.modules.get("coverage")  # the grader's own tests measure Z, not students
    if coverage is not None and coverage.Coverage.current() is not None:
        coverage.Coverage.current().stop()
    env = sandbox.enter(spec)
    os.environ.clear()
    os.environ.update(env)
    sys.argv = ["ipykernel_launcher", "-f", conn, "--HistoryManager.hist_file=:memory:"]
    from ipykernel.kernelapp import IPKernelApp

    IPKernelApp.launch_instance(argv=sys.argv[1:])
    os._exit(0)


def _init(spec: dict, conn: str, new_root: str) -> None:  # pragma: no cover (see COVERAGE)
    """PID 1 of the kernel's namespace: build its file system, start it, forward signals to
    it, reap orphans, and end (taking the namespace with it) when the kernel ends."""
    sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
    sandbox.build_root(spec, new_root)
    kernel = os.fork()
    if kernel == 0:
        try:
            os.setpgid(0, 0)
            _kernel_main(spec, conn)
        finally:
            os._exit(70)
    _become(spec.get("uid"))

    def forward(signum, _):
        try:
            os.killpg(kernel, signum)
        except OSError:
            pass

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, forward)
    while True:
        try:
            pid, status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(70)
        if pid == kernel:
            code = os.waitstatus_to_exitcode(status)
            os._exit(code if code >= 0 else 128 - code)


def _become(uid) -> None:  # pragma: no cover (see COVERAGE)
    if uid is not None:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)  # a change of uid clears it


def _start(job: dict, request: dict, new_root: str) -> tuple[int, str]:
    """Fork K for one kernel; (K's pid, its exit file)."""
    spec, kernel_id = job["spec"], str(request.get("kernel_id", ""))
    if not KERNEL_ID.fullmatch(kernel_id):
        raise ValueError("a kernel id must be letters, digits, '-' and '_'")
    info = _connection(spec, str(request.get("connection", "")))
    spec = dict(spec, home=f"{spec['home']}-{kernel_id}")  # a home nobody touched yet
    exit_file = os.path.join(spec["exit_dir"], kernel_id + ".json")
    pid = os.fork()
    if pid:
        return pid, exit_file
    _k(job, spec, info, kernel_id, exit_file, new_root)


def _k(job, spec, info, kernel_id, exit_file, new_root) -> None:  # pragma: no cover (COVERAGE)
    """K: see the module docstring."""
    code = 70
    try:
        sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
        os.setsid()
        if job["cgroup"]:
            folders = {k: Path(v) for k, v in job["cgroup"]["folders"].items()}
            limits.Cgroup(job["cgroup"]["version"], folders).add(os.getpid())
        exit_fd = os.open(exit_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        conn = os.path.join(spec["runtime_dir"], "copy-" + kernel_id + ".json")
        sandbox.write_private(conn, json.dumps(info).encode(), spec.get("uid"))
        if spec.get("uid") is not None:
            os.fchown(exit_fd, spec["uid"], spec["uid"])  # J reads it, unprivileged
        os.closerange(3, exit_fd)  # nothing of Z's (its sockets) reaches the kernel
        os.closerange(exit_fd + 1, 1 << 16)
        sandbox.unshare(sandbox.CLONE_NEWPID | sandbox.CLONE_NEWNS | sandbox.CLONE_NEWNET
                        | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP)
        init = os.fork()
        if init == 0:
            os.close(exit_fd)
            try:
                _init(spec, conn, new_root)
            finally:
                os._exit(70)
        _become(spec.get("uid"))

        def forward(signum, _):
            try:
                os.kill(init, signum)
            except OSError:  # init is still root for a moment after the fork
                pass

        signal.signal(signal.SIGINT, forward)
        signal.signal(signal.SIGTERM, forward)
        code = os.waitstatus_to_exitcode(os.waitpid(init, 0)[1])
        if code > 128:  # init reports a kernel killed by signal N as 128 + N
            code = 128 - code
        os.write(exit_fd, json.dumps({"exitcode": code}).encode())
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(code if code >= 0 else 128 - code)


def serve(control: socket.socket) -> None:
    """Z's loop: jobs registered by the worker, kernels asked for by their J."""
    new_root = tempfile.mkdtemp(prefix="root-", dir=os.environ["HOME"])  # a mount point
    jobs, kernels = {}, {}  # {socket: job}, {token: {kernel id: pid of K}}
    while True:
        ready, _, _ = select.select([control, *jobs], [], [], 1.0)
        while True:  # reap the K of finished kernels
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if not pid:
                break
        for sock in ready:
            if sock is control:
                try:
                    message, fds = _receive(control, 1)
                except (EOFError, ConnectionError):
                    os.rmdir(new_root)
                    return
                if message["op"] == "job":
                    job = dict(message, socket=socket.socket(fileno=fds[0]))
                    jobs[job["socket"]] = job
                    kernels[message["token"]] = {}
                elif message["op"] == "end":
                    for pid in kernels.pop(message["token"], {}).values():
                        try:
                            os.kill(pid, signal.SIGKILL)
                        except ProcessLookupError:
                            pass
                    for sock_, job in list(jobs.items()):
                        if job["token"] == message["token"]:
                            del jobs[sock_]
                            sock_.close()
                continue
            job = jobs.get(sock)
            if job is None:  # ended by a message read just before
                continue
            try:
                request, _ = _receive(sock)
                if "signal" in request:  # interrupt or kill one of this job's kernels
                    pid = kernels[job["token"]].get(request.get("kernel_id"))
                    if pid and request["signal"] in SIGNALS:
                        os.kill(pid, request["signal"])
                    continue
                pid, exit_file = _start(job, request, new_root)
            except ProcessLookupError:
                continue
            except (EOFError, ConnectionError):
                del jobs[sock]
                sock.close()
                continue
            except (OSError, ValueError) as err:
                _send(sock, {"error": str(err)})
                continue
            pidfd = os.pidfd_open(pid)
            kernels[job["token"]][request["kernel_id"]] = pid
            try:
                _send(sock, {"exit_file": exit_file}, [pidfd])
            except OSError:
                pass
            os.close(pidfd)


def main(argv: list[str]) -> None:
    control = socket.socket(fileno=int(argv[0]))
    sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker died: so do we
    wanted = [*BASE, *argv[1:]]
    wanted += [lazy for name in wanted for lazy in LAZY.get(name, ())]
    failed, modules = [], list(dict.fromkeys(wanted))
    for name in modules:
        try:
            __import__(name)
        except Exception as err:  # noqa: BLE001 - a module the kernel will import itself
            failed.append(name)
            print(f"fork server: cannot import {name}: {err!r}", file=sys.stderr)
    threads = len(os.listdir("/proc/self/task"))
    if threads > 1 or threading.active_count() > 1:
        _send(control, {"error": f"{threads} threads after importing {', '.join(argv[1:])}"})
        return
    _send(control, {"modules": [m for m in modules if m not in failed], "failed": failed,
                    "seconds": round(time.process_time(), 2)})
    serve(control)
    os._exit(0)  # what it imported needs no tearing down


if __name__ == "__main__":
    main(sys.argv[1:])
