"""The batch: a folder of submissions in, ``grades.csv`` and feedback out (the parent process).

1. find the course, build the template (``course.py``) and check every submission without
   running it (``submissions.py``);
2. start ``workers`` worker processes (``worker.py``), each warmed up on the blank notebook;
3. give each submission to a free worker as a job folder holding only its notebooks; one thread
   per worker waits for the answer with a deadline of its own and replaces a worker that hangs
   or dies, so nothing a student does can stop the batch;
4. as results arrive, merge them into the real gradebook (only this process writes it), and copy
   the autograded notebooks and feedback into the course (for formgrader) and ``OUT/feedback``;
5. write ``OUT/logs/<student>.txt`` and, after every result, ``OUT/grades.csv`` (atomically:
   a new file renamed over the old one, so a killed batch leaves every finished grade, never
   half a row). Rows already in ``OUT/grades.csv`` stay unless this batch regrades their
   student; return one ``Result`` per student.

Anything that goes wrong with one submission, a bug of the grader's included, ends as that
student's row (status ``error`` with the exception, when nothing else fits); every text taken
from a student passes through ``text.clean`` before it is stored.
"""

import csv
import itertools
import json
import os
import queue
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import limits, probes, sandbox, zygote
from .course import (
    GradingError,
    Template,
    extensions,
    fast_gradebooks,
    find_course,
    make_template,
    record,
    register,
)
from .submissions import Submission, discover
from .text import clean, load_json
from .worker import hunt

COLUMNS = ("student", "assignment", "score", "max_score", "status", "flags", "message")
SLACK_S = 60  # per job, on top of its limits: kernel start, nbgrader, feedback
MAX_REPLY_BYTES = 64_000_000  # a worker's reply (probe records included)


@dataclass
class Result:
    student: str
    assignment: str
    score: float | None
    max_score: float
    status: str
    flags: list = field(default_factory=list)
    message: str = ""

    def row(self) -> dict:
        score = "" if self.score is None else f"{self.score:g}"
        return dict(student=self.student, assignment=self.assignment, score=score,
                    max_score=f"{self.max_score:g}", status=self.status,
                    flags=";".join(self.flags), message=clean(self.message, 2000))


class Worker:
    """One worker process (worker.py) and the JSON-lines conversation with it."""

    def __init__(self, index: int, course_root: Path, mode: str, log: Path):
        self.index = index
        cmd = [sys.executable, "-m", "sgdkit.grading.worker", str(course_root)]
        if mode == "userns":
            cmd = ["unshare", "--user", "--map-root-user", *cmd]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
        with open(log, "ab") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=err, env=env, start_new_session=True)

    def ask(self, request: dict, timeout: float) -> dict | None:
        """Send one request; the reply, or None if the worker died or missed the deadline."""
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            line = self.proc.stdout.readline(MAX_REPLY_BYTES) if ready else b""
            return load_json(line, MAX_REPLY_BYTES, 256) if line else None
        except (OSError, ValueError, RecursionError):
            return None

    def close(self) -> None:
        """Ask the worker to exit once it is idle (its stdin closes)."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def stop(self, graceful: bool = True) -> None:
        """End the worker: with graceful, a clean exit if it is idle (its stdin closes); then
        SIGKILL for its whole process group."""
        try:
            if graceful:
                self.proc.stdin.close()
                self.proc.wait(timeout=3)
        except (OSError, subprocess.TimeoutExpired):
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()


class Batch:
    def __init__(self, course, assignment, submissions, out, workers, timeout, memory_mb,
                 mode, progress, job_timeout=600, processes=256, cgroups="", fork=True):
        self.course, self.assignment = course, assignment
        self.submissions, self.out = submissions, out
        self.workers, self.timeout, self.memory_mb = workers, timeout, memory_mb
        self.job_timeout, self.processes, self.cgroups = job_timeout, processes, cgroups
        self.mode, self.progress = mode, progress
        self.fork, self.preload = fork and mode == "root", []
        self.kernels = ""  # how kernels were started (the workers' answer), for the summary
        self.rows = {}  # (student, assignment) -> row of OUT/grades.csv
        self.tmp = Path(tempfile.mkdtemp(prefix="sgdkit-grading-"))
        self.tmp.chmod(0o711)
        self.template: Template | None = None
        self.reference = None  # {notebook: {cell: probe records}} of the solution
        self.extensions = {}
        self.jobs, self.started, self.stopping, self.tokens = itertools.count(1), [], False, []
        coursedir, _ = course.coursedir()
        self.autograded_dir = course.root / coursedir.autograded_directory
        self.feedback_dir = course.root / coursedir.feedback_directory

    # -- jobs -------------------------------------------------------------------------------
    def job(self, sub: Submission, slot: int, warmup: bool | str = False) -> dict:
        """A job folder holding only this student's notebooks, and its description."""
        made = time.monotonic()
        jd = self.tmp / "jobs" / f"{next(self.jobs):04d}-{sub.student}"
        submitted = jd / "course" / "submitted" / sub.student / self.assignment
        submitted.mkdir(parents=True)
        for name, nb in sub.notebooks.items():
            if name in self.template.probes:  # the grader's own checks run last (probes.py)
                nb = nbformat.from_dict(json.loads(json.dumps(nb)))
                nb.cells += probes.probe_cells(self.template.probes[name],
                                               self.template.releases[name])
            nbformat.write(nb, submitted / f"{name}.ipynb")
        for name, text in sub.extras.items():
            (submitted / name).write_text(text)
        shutil.copy(self.template.root / "gradebook.db", jd / "course" / "gradebook.db")
        shutil.copytree(self.template.files, jd / "files")
        (jd / "scratch").mkdir()
        for path, mode in ((self.tmp / "jobs", 0o711), (jd, 0o711), (jd / "course", 0o700)):
            path.chmod(mode)
        keep = [sys.prefix, sys.base_prefix, str(Path(__file__).resolve().parents[1])]
        probe_cells = sum(len(probes.probe_cells(self.template.probes[name], release))
                          for name, release in self.template.releases.items()
                          if name in self.template.probes)
        deadline = SLACK_S + self.job_timeout + self.timeout * probe_cells
        token = uuid.uuid4().hex  # marks every process of the job (see worker.hunt)
        self.tokens.append(token)
        return {"assignment": self.assignment, "student": sub.student, "job_dir": str(jd),
                "source_dir": str(self.template.source.parent), "timeout": self.timeout,
                "job_timeout": self.job_timeout, "processes": self.processes,
                "cgroups": bool(self.cgroups), "slot": slot,
                "memory_mb": self.memory_mb, "mode": self.mode, "token": token,
                "keep_ro": keep,
                "startup": self.template.startup, "deadline": deadline, "warmup": warmup,
                "extension_s": self.extensions.get(sub.student),
                "fork": self.fork, "preload": self.preload, "made": made,
                "reference": None if warmup == "reference" else self.reference}

    def start_worker(self, index: int, worker: Worker | None = None,
                     reference: bool = False) -> Worker:
        """A worker (new, or started earlier), warmed up on the blank notebook, which must grade;
        with reference, on the solution instead, which must earn every point (self.reference)."""
        log = self.tmp / f"worker-{index}.log"
        if worker is None:
            worker = Worker(index, self.course.root, self.mode, log)
            self.started.append(worker)
        notebooks = self.template.solutions if reference else self.template.releases
        first = Submission(f"_warmup{index}", "warm-up", dict(notebooks))
        job = self.job(first, index, warmup="reference" if reference else True)
        reply = worker.ask(job, timeout=job["deadline"] + 90)  # + importing nbgrader
        if reply and reply.get("kernels"):
            self.kernels = reply["kernels"]
        if reference and reply and reply.get("status") == "graded":
            self.reference = self.check_reference(reply)
        if not reply or reply.get("status") != "graded":
            worker.stop(graceful=False)
            detail = (reply or {}).get("log", "")[-2000:] + log.read_text(errors="replace")[-2000:]
            raise GradingError("a grading worker could not grade the blank student notebook, "
                               "so the setup is broken, not the students (if the sandbox is "
                               "what fails, --isolation userns or none grades with less of it):"
                               f"\n{detail}")
        return worker

    def check_reference(self, reply: dict) -> dict:
        """The solution's probe records, once the solution has earned every autograded point."""
        verdicts, wrong = reply.get("verdicts", {}), []
        for name, verdict in verdicts.items():
            wrong += [f"{name}: {cell} scored {v['score']:g} of {v['points']:g}"
                      for cell, v in verdict["cells"].items() if v["score"] != v["points"]]
            wrong += [f"{name}: probe {r['cell']} / {r['name']} raised {r['error']}"
                      for records in verdict["records"].values() for r in records
                      if "error" in r]
            if name in self.template.probes:
                wrong += [f"{name}: no probe backs {cell} (add one to {name}.probes.py)"
                          for cell in verdict["cells"] if cell not in verdict["records"]]
                wrong += [f"{name}: the probes of {cell} ended with {error}"
                          for cell, error in verdict["errors"].items()]
        if wrong or set(verdicts) != set(self.template.releases):
            raise GradingError("the solution notebook does not earn every point when graded, so "
                               "students cannot either; fix the assignment (or its probes):\n"
                               + "\n".join(wrong or [f"graded only {sorted(verdicts)}"]))
        return {name: verdict["records"] for name, verdict in verdicts.items()}

    def run_job(self, idle: queue.Queue, sub: Submission) -> tuple:
        """Grade one submission on the next free worker (run in a thread)."""
        worker = idle.get()
        try:
            job = self.job(sub, worker.index)
            reply = worker.ask(job, timeout=job["deadline"] + 30)
            self.kernels = (reply or {}).get("kernels") or self.kernels
            if reply is None and not self.stopping:  # the worker hung or died: replace it
                worker.stop(graceful=False)
                worker = self.start_worker(worker.index)
        finally:
            idle.put(worker)
        return sub, job, reply

    # -- results ----------------------------------------------------------------------------
    def finish(self, sub: Submission, job: dict, reply: dict | None) -> Result:
        """Status of one graded job; its grades into the gradebook, its files into place."""
        jd = Path(job["job_dir"])
        found, failed = jd / "result.json", jd / "error.txt"
        done = load_json(found.read_text(), MAX_REPLY_BYTES, 256) if found.exists() else None
        hit = set((reply or {}).get("limits_hit", []))
        if reply is None:
            status, message, done = "kernel_died", "the grading worker died; rerun to retry", None
        elif reply.get("timed_out"):
            status, done = "timeout", None
            message = (f"grading ran past its hard limit of {job['deadline']:g} s (the job "
                       f"limit, {self.timeout:g} s per probe cell and {SLACK_S} s) and was "
                       "stopped; nothing was scored")
        elif done is None and (failed.exists() or reply.get("error")):
            status = "error"
            why = failed.read_text() if failed.exists() else reply["error"]
            message = f"the grader failed on this submission: {why[-500:]}"
        elif done is None:
            status = "kernel_died"
            message = f"the grading job ended without a result (exit {reply.get('exit')}); rerun"
        else:
            status, message = done["status"], done["message"]
        if hit and (done is None or status != "graded"):
            what = {"memory": f"its memory limit ({self.memory_mb} MB for the kernel and all "
                              "it started, tmpfs included)",
                    "processes": f"its limit of {self.processes} processes"}
            message = f"the job hit {' and '.join(what[h] for h in sorted(hit))}; " + message
        graded = done is not None and done["scored"]  # nbgrader ran it to the end
        flags = (done or {}).get("flags", []) + (["processes_killed"]
                                                   if (reply or {}).get("leftovers") else [])
        flags += [{"memory": "memory_limit", "processes": "process_limit"}[h] for h in hit]
        result = self.store(sub, status, message, flags, jd if graded else None,
                            (done or {}).get("log", ""))
        profile = os.environ.get("SGDKIT_GRADING_PROFILE")  # benchmarks/bench_grading.py
        if profile and done is not None and isinstance(done.get("seconds"), dict):
            # the job's phases, and from its folder's making to its grade and feedback stored
            stored = round(time.monotonic() - job["made"], 3)
            with open(profile, "a") as f:
                f.write(json.dumps({"student": sub.student, **done["seconds"],
                                    "end_to_end": stored}) + "\n")
        return result

    def settle(self, sub: Submission, outcome) -> Result:
        """finish() or store() for one submission; whatever fails becomes its "error" row."""
        try:
            return outcome()
        except Exception as err:
            message = f"the grader failed on this submission: {type(err).__name__}: {err}"
            try:
                return self.store(sub, "error", message, [], None)
            except Exception:
                return Result(sub.student, self.assignment, None, self.template.max_score,
                              "error", [], clean(message, 500))

    def store(self, sub: Submission, status: str, message: str, flags: list,
              graded: Path | None, log: str = "") -> Result:
        """Record one student's outcome: gradebook, course folders, OUT/feedback, OUT/logs."""
        private_db = graded / "course" / "gradebook.db" if graded else None
        late = []
        score, max_score, manual = record(self.course, self.assignment, sub.student, private_db,
                                          late)
        flags = sub.flags + flags + (["needs_manual_grading"] if manual else [])
        flags = sorted(set(flags + (["late"] if late else [])))
        if late:
            message = "; ".join(m for m in (message, f"late: {late[0]:g} points deducted") if m)
        self.publish(sub.student, graded)
        text = clean("; ".join(m for m in (sub.message, message) if m))
        log_file = self.out / "logs" / f"{sub.student}.txt"
        log_file.write_text(f"{status}: {text}\n\n{clean(log)}", encoding="utf-8")
        return Result(sub.student, self.assignment, score, max_score, status, flags, text)

    def write_grades(self, result: Result | None = None) -> None:
        """OUT/grades.csv with result's row added or replaced, written atomically."""
        if result is not None:
            self.rows[(result.student, result.assignment)] = result.row()
        path = self.out / "grades.csv"
        fd, tmp = tempfile.mkstemp(dir=self.out, prefix=".grades-", suffix=".csv")
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(row for _, row in sorted(self.rows.items()))
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)

    def read_grades(self) -> None:
        """The rows of an earlier batch into the same OUT (kept unless regraded)."""
        path = self.out / "grades.csv"
        if not path.exists():
            return
        with open(path, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or set(COLUMNS) - set(reader.fieldnames):
                raise GradingError(f"{path} is not a grades.csv of this command; choose another "
                                   "--out (or move that file away)")
            for row in reader:
                self.rows[(row["student"], row["assignment"])] = {k: row[k] for k in COLUMNS}

    def publish(self, student: str, jd: Path | None) -> None:
        """Autograded notebooks and feedback into the course and OUT/feedback (or none)."""
        places = [(self.autograded_dir / student / self.assignment, "autograded"),
                  (self.feedback_dir / student / self.assignment, "feedback")]
        out = self.out / "feedback" / student
        for path in [out] + [p for p, _ in places]:
            shutil.rmtree(path, ignore_errors=True)
        if jd is None:
            return
        for dest, kind in places:
            src = jd / "course" / kind / student / self.assignment
            if src.is_dir():
                shutil.copytree(src, dest)
        for page in (jd / "course" / "feedback" / student / self.assignment).glob("*.html"):
            out.mkdir(parents=True, exist_ok=True)
            shutil.copy(page, out / page.name)

    # -- the whole batch --------------------------------------------------------------------
    def run(self) -> list[Result]:
        from tqdm.auto import tqdm

        results = []
        pool = ThreadPoolExecutor(self.workers)
        try:
            # workers import nbgrader while the template is built
            for index in range(self.workers):
                log = self.tmp / f"worker-{index}.log"
                self.started.append(Worker(index, self.course.root, self.mode, log))
            self.template = make_template(self.course, self.assignment, self.tmp / "template")
            self.preload = zygote.imports(cell.source for nb in self.template.solutions.values()
                                          for cell in nb.cells if cell.cell_type == "code")
            subs = discover(self.submissions, self.template.releases)
            self.extensions = extensions(self.course, self.assignment)
            (self.out / "logs").mkdir(parents=True, exist_ok=True)
            self.read_grades()
            bar = tqdm(total=len(subs), desc=f"grading {self.assignment}", unit="submission",
                       disable=not self.progress, file=sys.stderr)
            todo = [s for s in subs if s.status != "rejected"]
            count = min(self.workers, len(todo))
            # worker 0 grades the solution first: the reference every probe is compared with
            warming = [pool.submit(self.start_worker, i, self.started[i], i == 0)
                       for i in range(max(count, 1))]
            register(self.course, self.template, self.assignment)  # meanwhile, here
            for sub in subs:
                if sub.status == "rejected":
                    results.append(self.settle(sub, lambda s=sub: self.store(s, "rejected", "",
                                                                             [], None)))
                    self.write_grades(results[-1])
                    bar.update()
            idle = queue.Queue()
            for future in warming:
                idle.put(future.result())
            futures = {pool.submit(self.run_job, idle, sub): sub for sub in todo}
            for future in as_completed(futures):
                sub = futures[future]
                results.append(self.settle(sub, lambda f=future: self.finish(*f.result())))
                self.write_grades(results[-1])
                bar.update()
            bar.close()
        finally:  # also on Ctrl-C: no worker, job or kernel outlives the command
            self.stopping = True
            for worker in self.started:  # all at once: each takes a moment to exit
                worker.close()
            for worker in self.started:
                worker.stop()
            pool.shutdown(wait=True, cancel_futures=True)
            hunt(*self.tokens)  # what a job in mode none may have left behind
            shutil.rmtree(self.tmp, ignore_errors=True)
        results.sort(key=lambda r: r.student)
        self.write_grades()
        return results


def grade(assignment: str, submissions, out, *, course=".", workers: int = 2,
          timeout: float = 120, job_timeout: float = 600, memory_mb: int = 2048,
          processes: int = 256, isolation: str = "auto", progress: bool = True,
          fork: bool = True) -> tuple[list[Result], str]:
    """Grade every submission of assignment; returns (results, the isolation and limits
    lines). timeout: seconds per cell; job_timeout: seconds for all of a notebook's cells."""
    if workers < 1 or timeout <= 0 or job_timeout <= 0 or memory_mb < 128 or processes < 16:
        raise GradingError("--workers must be >= 1, --timeout and --job-timeout > 0, "
                           "--memory >= 128 (MB) and --processes >= 16")
    bin_dir = str(Path(sys.executable).parent)  # nbgrader runs `alembic` for new gradebooks
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}"
    fast_gradebooks()
    found = find_course(course)
    submissions, out = Path(submissions).resolve(), Path(out).resolve()
    if not submissions.is_dir():
        raise GradingError(f"{submissions} is not a folder: SUBMISSIONS must be a folder of "
                           "per-student folders or zip files")
    if out == submissions or submissions in out.parents or out in submissions.parents:
        raise GradingError("--out must not be inside SUBMISSIONS (or the other way round)")
    if not list((found.root / found.source_dir / assignment).glob("*.ipynb")):
        known = sorted({p.parent.name for p in (found.root / found.source_dir).glob("*/*.ipynb")})
        raise GradingError(f"no assignment '{assignment}' in {found.root / found.source_dir} "
                           f"(found: {', '.join(known) or 'none'})")
    out.mkdir(parents=True, exist_ok=True)
    mode = sandbox.probe() if isolation == "auto" else isolation
    cgroups = limits.available(processes, memory_mb)
    line = (f"{sandbox.describe(mode)}\nlimits: {limits.describe(cgroups, processes, memory_mb)}"
            f"; {timeout:g} s per cell, {job_timeout:g} s per notebook")
    batch = Batch(found, assignment, submissions, out, workers, timeout, memory_mb, mode,
                  progress, job_timeout, processes, cgroups, fork)
    results = batch.run()
    return results, line + (f"\nkernels: {batch.kernels}" if batch.kernels else "")
