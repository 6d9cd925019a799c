"""Grading workers: one long-lived process per ``--workers`` slot, one forked job per submission.

A worker imports nbgrader once and grades a warm-up submission (the blank student notebook)
in-process, so that every job it forks starts warm and a broken setup shows before any student
is graded. For each submission it forks

    worker ── C (own session, own cgroup) ── J (PID 1 of new PID and mount namespaces)

C first joins a cgroup made for this job (``limits.py``: processes, memory with tmpfs, CPU), so
everything the job starts is counted against its own limits only. J mounts its own ``/proc``
and, in mode ``root``, gives up root for the worker slot's uid (``_drop``): from there on
nothing runs privileged, neither nbgrader nor the code that reads the student's output. J runs
nbgrader's own
``Autograde`` and ``GenerateFeedback`` converters on a private course holding only this
student's notebook(s) and a copy of the template gradebook; the kernels they start go through
``sandbox.py``. Each cell has ``--timeout`` seconds and the student's cells together
``--job-timeout`` (``execute.py``); past either, the cell is interrupted and the cells that
finished keep their points. When J ends, or the worker kills C at the hard deadline, the
worker kills the cgroup and Linux every process left in J's namespace. Without namespaces
(mode ``none``) the worker kills C's process group and then every process that still carries
the job's environment token.

The parent (``batch.py``) talks to a worker in JSON lines over file descriptors that student
code never inherits.
"""

import copy
import json
import os
import select
import signal
import sys
import time
import traceback
from pathlib import Path

from . import execute, limits, probes, sandbox
from .feedback import HideHiddenTests, keep_compiled_templates
from .text import clean

KERNEL_NAME = "sgdkit-sandbox"
GRADER_MEMORY_MB = 4096  # address-space limit of J itself (nbgrader holds all kernel output)
SIGNALS = {signal.SIGSEGV: "crashed with a segmentation fault (SIGSEGV)",
           signal.SIGKILL: "was killed (SIGKILL): its own code, or out of memory",
           signal.SIGABRT: "aborted (SIGABRT), often a failed allocation under the memory limit",
           signal.SIGBUS: "crashed with a bus error (SIGBUS)",
           signal.SIGXFSZ: "wrote a file past the size limit (SIGXFSZ)"}


def _config(base, job: dict):
    """The course's nbgrader config, pointed at the job's private course and sandbox kernel."""
    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades

    cfg = copy.deepcopy(base)
    course = Path(job["job_dir"]) / "course"
    cfg.CourseDirectory.root = str(course)
    cfg.CourseDirectory.source_directory = job["source_dir"]  # absolute: the template's copy
    cfg.CourseDirectory.db_url = f"sqlite:///{course / 'gradebook.db'}"
    for name in ("submitted_directory", "autograded_directory", "feedback_directory"):
        setattr(cfg.CourseDirectory, name, name.split("_")[0])
    cfg.Execute.timeout = int(job["timeout"])
    cfg.Execute.timeout_func = execute.Budget(job["timeout"], job["job_timeout"])
    cfg.Execute.kernel_name = KERNEL_NAME
    # The kernel serves this one notebook and dies with J's PID namespace: kill it at the end
    # instead of asking it to shut down and waiting (0.5-0.8 s of a 4 s job, issue 16)
    cfg.Execute.shutdown_kernel = "immediate"
    cfg.KernelManager.transport = "ipc"  # unix sockets in the job's runtime folder: no ports
    cfg.KernelManager.ip = str(Path(job["job_dir"]) / "runtime" / "kernel")
    cfg.OverwriteCells.add_missing_cells = True
    cfg.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
    cfg.HTMLExporter.template_name = "feedback"
    cfg.HTMLExporter.sanitize_html = True
    return cfg


def _env(job: dict) -> dict:
    """The kernel's environment (less the job's token)."""
    bin_dir = str(Path(sys.executable).parent)
    return {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8",
            "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "MALLOC_ARENA_MAX": "2",  # fewer malloc arenas: far less address space per thread
            "NBGRADER_EXECUTION": "autograde"}


def _spec(job: dict, forked: bool) -> dict:
    """What the sandbox of this job's kernels is (``sandbox.py``, ``zygote.py``)."""
    jd = Path(job["job_dir"])
    slot_uid = limits.SLOT_UID + job["slot"] if sandbox.switches_uid(job["mode"]) else None
    drop = slot_uid is not None and job["mode"] == "root" and not job.get("warmup")
    # dropped, bubblewrap's kernel keeps J's uid (a user namespace); forked, it leaves root
    uid = slot_uid if forked or not drop else None
    isolated = job["mode"] in ("root", "userns")
    return {"mode": job["mode"], "memory_mb": job["memory_mb"], "uid": uid,
            "nproc": slot_uid is not None, "keep_ro": job["keep_ro"],
            "runtime_dir": str(jd / "runtime"), "exit_dir": str(jd / "exits"),
            "files_dir": str(jd / "files"), "startup": job["startup"],
            "env": dict(_env(job), SGDKIT_GRADING_JOB=job["token"]),
            "home": "/tmp/home" if isolated else str(jd / "scratch" / "home")}


def _prepare(job: dict) -> None:
    """Sandbox spec, kernelspec and environment for one job (run in J, as root). In mode root,
    J then gives up root for the job slot's uid (``_drop``): nbgrader runs the student's
    notebook, and the grader reads its output, unprivileged. With a fork server
    (``zygote.py``, SGDKIT_ZYGOTE_FD set) the kernelspec names its provisioner."""
    jd = Path(job["job_dir"])
    runtime = jd / "runtime"
    for sub in ("runtime", "exits", "jupyter/kernels/" + KERNEL_NAME, "jupyter-config"):
        (jd / sub).mkdir(parents=True, exist_ok=True)
    forked = "SGDKIT_ZYGOTE_FD" in os.environ
    slot_uid = limits.SLOT_UID + job["slot"] if sandbox.switches_uid(job["mode"]) else None
    drop = slot_uid is not None and job["mode"] == "root" and not job.get("warmup")
    spec = _spec(job, forked)
    if spec["uid"] is not None and not drop:
        os.chown(runtime, spec["uid"], spec["uid"])
        os.chown(jd / "scratch", spec["uid"], spec["uid"])
    runtime.chmod(0o700)
    (jd / "sandbox.json").write_text(json.dumps(spec))
    kernelspec = {"argv": [sys.executable, "-m", "sgdkit.grading.sandbox", "{connection_file}",
                           str(jd / "sandbox.json")],
                  "display_name": "Python 3 (grading sandbox)", "language": "python",
                  "interrupt_mode": "signal"}
    if forked:
        kernelspec["metadata"] = {"kernel_provisioner": {"provisioner_name": "sgdkit-fork"}}
    (jd / "jupyter" / "kernels" / KERNEL_NAME / "kernel.json").write_text(json.dumps(kernelspec))
    bin_dir = str(Path(sys.executable).parent)
    os.environ.update(JUPYTER_PATH=str(jd / "jupyter"), JUPYTER_DATA_DIR=str(jd / "jupyter"),
                      JUPYTER_CONFIG_DIR=str(jd / "jupyter-config"),
                      JUPYTER_RUNTIME_DIR=str(runtime), SGDKIT_GRADING_JOB=job["token"],
                      PATH=f"{bin_dir}:{os.environ.get('PATH', '/usr/bin:/bin')}")
    if drop:
        _drop(job, slot_uid)


def _drop(job: dict, uid: int) -> None:
    """J gives up root for uid: its job folder becomes uid's, Python stays reachable (J has a
    mount namespace of its own), then setuid (every capability is gone)."""
    jd = Path(job["job_dir"])
    sandbox.reachable(job["keep_ro"])
    for root, dirs, files in os.walk(jd):
        for name in [root, *(os.path.join(root, n) for n in dirs + files)]:
            os.chown(name, uid, uid, follow_symlinks=False)
    os.setgroups([])
    os.setgid(uid)
    os.setuid(uid)
    sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)  # setuid cleared it
    os.environ["HOME"] = str(jd / "scratch")


def _outputs(path: Path):
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for index, cell in enumerate(nb.cells):
        name = cell.metadata.get("nbgrader", {}).get("grade_id", f"#{index + 1}")
        for output in cell.get("outputs", []):
            yield name, output


def verify(job: dict, db_url: str) -> dict:
    """Score the autograded notebooks outside the kernel (see probes.py); their verdicts.

    Takes the probe cell out of each notebook, compares its records with the solution's
    (``job["reference"]``; None when this job grades the solution itself) and writes the score
    of every autograded test cell into the job's gradebook: its points when it ran without an
    error and its probes agree, else 0. Returns {notebook: probes.rescore(...)}.
    """
    import nbformat
    from nbgrader.api import Gradebook

    reference = job.get("reference")
    folder = Path(job["job_dir"]) / "course" / "autograded" / job["student"] / job["assignment"]
    verdicts = {}
    with Gradebook(db_url) as gb:
        for path in sorted(folder.glob("*.ipynb")):
            nb = nbformat.read(path, as_version=4)
            verdict = probes.rescore(nb, None if reference is None
                                     else reference.get(path.stem, {}))
            mode = path.stat().st_mode  # nbgrader leaves it read-only; we own it
            path.chmod(mode | 0o200)
            nbformat.write(nb, path)
            path.chmod(mode)
            for grade_id, cell in verdict["cells"].items():
                grade = gb.find_grade(grade_id, path.stem, job["assignment"], job["student"])
                grade.auto_score = cell["score"]
            verdicts[path.stem] = verdict
        gb.db.commit()
    return verdicts


def classify(job: dict, ok: bool, text: str) -> tuple[str, str, list[str]]:
    """(status, message, flags) of a finished nbgrader autograde run."""
    jd = Path(job["job_dir"])
    flags = []
    if ok:
        graded = sorted((jd / "course" / "autograded" / job["student"]).rglob("*.ipynb"))
        timeouts, memory = [], []
        for path in graded:
            for cell, output in _outputs(path):
                if output.get("ename") == "CellTimeoutError":
                    timeouts.append(f"{path.stem}:{cell}")
                elif output.get("ename") == "MemoryError":
                    memory.append(cell)
                elif "Output truncated" in output.get("text", ""):
                    flags.append("output_truncated")
        if memory:
            flags.append("memory_limit")
        flags = sorted(set(flags))
        budget = job.get("budget")
        if timeouts and budget is not None and budget.limited:
            return ("timeout", f"cell {', '.join(timeouts)} was interrupted: the notebook's "
                    f"cells together ran past the job limit of {job['job_timeout']:g} s "
                    f"(--job-timeout); the cells that finished keep their points", flags)
        if timeouts:
            return ("timeout", f"cell {', '.join(timeouts)} ran past the {job['timeout']:g} s "
                    "limit per cell and was interrupted; the cells after it ran and count",
                    flags)
        message = f"MemoryError in cell {', '.join(memory)}" if memory else ""
        return "graded", message, flags
    if "DeadKernelError" in text or "Kernel died" in text:
        ends = []
        for path in (jd / "exits").glob("*.json"):
            try:
                ends.append(json.loads(path.read_text() or "{}"))
            except ValueError:
                pass
        codes = [e["exitcode"] for e in ends if e.get("exitcode", 0) != 0]
        how = "died"
        if codes and codes[0] < 0:
            how = SIGNALS.get(-codes[0], f"was killed by signal {-codes[0]}")
        elif codes:
            how = f"exited with code {codes[0]} (os._exit, or code that killed its own process)"
        return ("kernel_died", f"the Python kernel {how} while running the notebook; nothing "
                "was scored. Running the notebook top to bottom shows where.", flags)
    if "CellTimeoutError" in text or "Timeout waiting" in text or "Unresponsive" in text:
        return ("timeout", f"a cell ran past the {job['timeout']:g} s limit and did not stop "
                "when interrupted (does it catch KeyboardInterrupt or ignore SIGINT?); nothing "
                "was scored", flags)
    lines = [line for line in text.splitlines() if line.strip()]
    last = next((line for line in reversed(lines) if "Error" in line), lines[-1] if lines else "")
    return "error", f"nbgrader could not grade it: {clean(last.strip(), 300)}", flags


def run_job(job: dict, base_config) -> dict:
    """Autograde and feedback for one student in the job's private course; writes result.json."""
    from nbgrader.converters import Autograde, GenerateFeedback
    from nbgrader.coursedir import CourseDirectory
    from nbgrader.utils import capture_log

    start = time.monotonic()
    execute.PHASES.clear()
    _prepare(job)
    prepared = time.monotonic()
    execute.contain()
    keep_compiled_templates()
    cfg = _config(base_config, job)
    job["budget"] = cfg.Execute.timeout_func
    coursedir = CourseDirectory(config=cfg)
    coursedir.assignment_id, coursedir.student_id = job["assignment"], job["student"]
    if job.get("extension_s"):  # granted in the real gradebook: late penalties must see it
        from datetime import timedelta

        from nbgrader.api import Gradebook

        with Gradebook(cfg.CourseDirectory.db_url) as gb:
            gb.update_or_create_student(job["student"])
            gb.update_or_create_submission(job["assignment"], job["student"],
                                           extension=timedelta(seconds=job["extension_s"]))
    app = Autograde(coursedir=coursedir, config=cfg)
    app.force, app.create_student = True, True
    run = capture_log(app)
    graded_at = time.monotonic()
    text = run.get("log", "") + "\n" + run.get("error", "")
    verdicts = verify(job, cfg.CourseDirectory.db_url) if run["success"] else {}
    verified = time.monotonic()
    status, message, flags = classify(job, run["success"], text)
    suspect = [line for v in verdicts.values() for line in v["suspect"]]
    unfinished = [f"{cell} ({error.strip(': ')})" for v in verdicts.values()
                  for cell, error in v["errors"].items()]
    if suspect:
        flags.append("cheat_suspected")
    notes = [f"cheat suspected: {line}" for line in suspect]
    notes += [f"the grader's own checks of {line} ended early; what they did not record "
              "scored 0" for line in unfinished]
    message = "; ".join(m for m in [message, *notes] if m)
    if run["success"]:
        HideHiddenTests.removed = 0
        app = GenerateFeedback(coursedir=coursedir, config=cfg)
        app.force = True
        made = capture_log(app)
        if not made["success"]:
            flags.append("no_feedback")
            text += "\n" + made.get("log", "") + made.get("error", "")
        if HideHiddenTests.removed:  # the student's outputs quoted hidden tests
            flags.append("feedback_redacted")
    checks = [f"{cell}: {problem}" for v in verdicts.values() for cell, c in v["cells"].items()
              for problem in c["problems"]]
    text = "".join(f"grader's check failed: {line}\n" for line in checks[:50]) + text
    result = {"status": status, "message": message, "flags": flags, "log": text[-8000:],
              "scored": run["success"], "verdicts": verdicts,
              "seconds": _phases(start, prepared, graded_at, verified)}
    (Path(job["job_dir"]) / "result.json").write_text(json.dumps(result))
    return result


def _phases(start: float, prepared: float, graded: float, verified: float) -> dict:
    """Seconds per phase of one job (the profile ``benchmarks/bench_grading.py`` prints)."""
    ran = {k: execute.PHASES.get(k, 0.0) for k in ("kernel_start", "cells", "kernel_stop")}
    seconds = {"prepare": prepared - start, **ran,
               "nbgrader": graded - prepared - sum(ran.values()),
               "verify": verified - graded, "feedback": time.monotonic() - verified,
               "total": time.monotonic() - start}
    return {k: round(v, 3) for k, v in seconds.items()}


def hunt(*tokens: str) -> int:
    """Kill every process whose environment still carries a job's token; how many."""
    needles, killed = {f"SGDKIT_GRADING_JOB={token}".encode() for token in tokens}, 0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if needles & set((entry / "environ").read_bytes().split(b"\0")):
                    os.kill(int(entry.name), signal.SIGKILL)
                    killed += 1
            except OSError:
                pass
    return killed


def run_isolated(job: dict, base_config, forks=None) -> dict:
    """Fork C (and J) in the job's cgroup, wait for them up to the job's deadline, then clean
    up everything. forks: the worker's fork server, if any (``zygote.py``)."""
    start = time.monotonic()
    group = None
    if job.get("cgroups"):
        group = limits.Cgroup.create(f"sgdkit-{os.getpid()}-{job['token'][:12]}",
                                     job["processes"], job["memory_mb"])
    fd = _register(forks, job, group)
    pid = os.fork()
    if pid == 0:
        code = 70
        try:
            sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)  # the worker died: so do we
            os.setsid()
            if group is not None:
                group.add(os.getpid())
            import resource

            limit = max(GRADER_MEMORY_MB, 2 * job["memory_mb"]) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            if job["mode"] in ("root", "userns"):
                sandbox.unshare(sandbox.CLONE_NEWPID)
                child = os.fork()
                if child == 0:
                    sandbox.prctl(sandbox.PR_SET_PDEATHSIG, signal.SIGKILL)
                    try:
                        sandbox.unshare(sandbox.CLONE_NEWNS)  # J's own: C keeps the host's
                        sandbox.own_proc()
                        run_job(job, base_config)
                    except BaseException as err:
                        traceback.print_exc()
                        Path(job["job_dir"], "error.txt").write_text(
                            f"{type(err).__name__}: {err}")
                        os._exit(70)
                    os._exit(0)
                code = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
            else:
                run_job(job, base_config)
                code = 0
        except BaseException as err:  # a bug of the grader's: the parent reports it
            traceback.print_exc()
            Path(job["job_dir"], "error.txt").write_text(f"{type(err).__name__}: {err}")
        finally:
            os._exit(code if code >= 0 else 128 - code)
    pidfd = os.pidfd_open(pid)
    ready, _, _ = select.select([pidfd], [], [], job["deadline"])
    if not ready:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            os.kill(pid, signal.SIGKILL)
    os.close(pidfd)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    _unregister(forks, job, fd)
    if job["mode"] == "none":
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    hit, left = [], 0
    if group is not None:
        hit = sorted(group.events())
        left = len(group.pids()) if job["mode"] == "none" else 0  # else: gone with J's PID ns
        group.remove()
    leftovers = left + hunt(job["token"])
    return {"exit": code, "timed_out": not ready, "leftovers": leftovers, "limits_hit": hit,
            "seconds": round(time.monotonic() - start, 3)}


def _register(forks, job: dict, group) -> int | None:
    """Give the job's kernels to the fork server: its socket end for J, in J's environment."""
    if forks is None:
        return None
    fd = forks.register(job["token"], _spec(job, True), group)
    os.environ["SGDKIT_ZYGOTE_FD"] = str(fd)
    return fd


def _unregister(forks, job: dict, fd: int | None) -> None:
    if fd is not None:
        forks.end(job["token"])
        os.close(fd)
        os.environ.pop("SGDKIT_ZYGOTE_FD", None)


class Forks:
    """The worker's fork server, started on the first job that asks for one (or why not)."""

    def __init__(self):
        self.server, self.why, self.home = None, "not asked for", None

    def get(self, job: dict):
        from . import zygote

        if not job.get("fork"):
            self.why = "--no-fork-server" if job["mode"] == "root" else \
                f"isolation {job['mode']} (forking sandboxed kernels needs root)"
            return None
        if self.server is not None and not self.server.alive():
            self.server, self.why = None, "the fork server died (restarted)"
        if self.server is None:
            import tempfile

            # in the batch's folder (removed with it): the fork server's home
            batch_dir = Path(job["job_dir"]).parents[1]
            self.home = self.home or tempfile.mkdtemp(prefix="zygote-", dir=batch_dir)
            env = dict(_env(job), HOME=self.home, MPLCONFIGDIR=self.home,
                       PYDEVD_DISABLE_FILE_VALIDATION="1")  # quiet debugpy's import
            if "COVERAGE_PROCESS_CONFIG" in os.environ:  # the grader's tests measure Z too
                env["COVERAGE_PROCESS_CONFIG"] = os.environ["COVERAGE_PROCESS_CONFIG"]
            try:
                self.server = zygote.Zygote.start(job.get("preload", []), env)
                self.why = ""
            except OSError as err:
                self.why = str(err)
                job["fork"] = False  # no retry per job: the rest of the batch starts kernels
        return self.server

    def line(self) -> str:
        if self.server is not None:
            ready = self.server.ready
            return (f"forked from a warm process per worker (imports {', '.join(ready['modules'])};"
                    f" {ready['seconds']:g} CPU-s once)")
        return f"started afresh for each notebook ({self.why})"


def main() -> None:
    """Serve jobs: ``python -m sgdkit.grading.worker COURSE_ROOT`` (started by batch.py)."""
    from traitlets.config.loader import PyFileConfigLoader

    requests = os.fdopen(os.dup(0), "r")
    replies = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    os.dup2(2, 1)  # anything printed by nbgrader or a kernel goes to the worker's log
    base = PyFileConfigLoader("nbgrader_config.py", path=sys.argv[1]).load_config()
    forks = Forks()
    for line in requests:
        request = json.loads(line)
        try:
            server = forks.get(request)
            if request.get("warmup"):
                fd = _register(server, request, None)
                try:
                    reply = run_job(request, base)
                finally:
                    _unregister(server, request, fd)
            else:
                reply = run_isolated(request, base, server)
        except Exception:
            reply = {"status": "error", "log": traceback.format_exc(), "exit": 70,
                     "timed_out": False, "error": traceback.format_exc(limit=3)[-2000:]}
        reply["kernels"] = forks.line()
        replies.write(json.dumps(reply) + "\n")
        replies.flush()
    if forks.server is not None:
        forks.server.stop()
    os._exit(0)  # nothing to tear down: the batch waits for this process to end


if __name__ == "__main__":
    main()
