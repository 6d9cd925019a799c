"""Batch grading an instructor can trust: nbgrader, one submission at a time, in a sandbox.

    python -m sgdkit.grading ASSIGNMENT SUBMISSIONS --out DIR [--workers N] [--timeout S]
                             [--job-timeout S] [--memory MB] [--processes N] [--course DIR]

(``make grade ASSIGNMENT=... SUBMISSIONS=...``). ``SUBMISSIONS`` holds one folder or zip file per
student. The command writes ``DIR/grades.csv`` (student, assignment, score, max_score, status,
flags, message), ``DIR/feedback/<student>/<notebook>.html`` and ``DIR/logs/<student>.txt``; the
scores come from nbgrader's own gradebook (``gradebook.db`` in the course directory), where the
autograded notebooks also land for manual grading in formgrader. A second batch into the same
``DIR`` merges: a regraded student's row replaces theirs, the others stay.

Every submission ends in exactly one status:

- ``graded``: nbgrader ran it to the end (the score may be anything, 0 included);
- ``timeout``: a cell ran past ``--timeout``, or the notebook's cells together past
  ``--job-timeout``; the interrupted cell is named, the cells that finished keep their points
  (only a job that would not stop at all scores nothing);
- ``kernel_died``: the student's kernel died (``os._exit``, a segfault, killing itself, or
  its job hit the memory or process limit);
- ``rejected``: nothing to grade (invalid JSON, missing or renamed notebook, no nbgrader cells,
  a damaged or oversized archive, a duplicate);
- ``error``: the grader itself failed on this submission (the message holds the exception);
  the batch went on.

A test cell earns its points only if it ran without an error (stderr is fine) *and* the
assignment's probes, run after the notebook and compared with the solution's outside the kernel,
agree (``probes.py``); a cell that passed while its probes disagree, and code or files that reach
for the grading machinery, are flagged ``cheat_suspected``.

How it is built: ``submissions.py`` (reading and checking), ``course.py`` (template and
gradebook), ``batch.py`` (the parent), ``worker.py`` (forked jobs), ``limits.py`` (a cgroup
per job), ``execute.py`` (time limits, bounded output), ``sandbox.py`` (the kernel, in
bubblewrap), ``probes.py`` (verdicts outside the kernel), ``feedback.py`` (safe feedback without
hidden tests), ``text.py`` (student ids, safe text and JSON).
This file imports none of them until used: the sandbox and the workers start as
``python -m sgdkit.grading.<module>`` and stay light.
"""

import argparse
import sys
from collections import Counter

STATUSES = ("graded", "timeout", "kernel_died", "rejected", "error")
ROUTINE_FLAGS = {"needs_manual_grading", "output_truncated"}  # counted, not listed


def grade(assignment, submissions, out, **options):
    """Grade every submission; returns (results, isolation line). See ``batch.grade``."""
    from .batch import grade as run

    return run(assignment, submissions, out, **options)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (0: the batch completed, 2: it could not run)."""
    from .course import GradingError
    from .text import clean

    parser = argparse.ArgumentParser(
        prog="python -m sgdkit.grading",
        description="Autograde a folder of submissions with nbgrader, one sandboxed job each.")
    parser.add_argument("assignment", help="assignment id, e.g. 01_gradient_descent")
    parser.add_argument("submissions", help="folder of per-student folders or zip files")
    parser.add_argument("--out", required=True, help="where grades.csv and feedback/ go")
    parser.add_argument("--course", default=".", help="course directory (nbgrader_config.py)")
    parser.add_argument("--workers", type=int, default=2, help="submissions graded at once")
    parser.add_argument("--timeout", type=float, default=120,
                        help="wall-clock seconds per cell (default 120); a cell past it is "
                        "interrupted, the others still count")
    parser.add_argument("--job-timeout", type=float, default=600,
                        help="wall-clock seconds for all cells of a submission together "
                        "(default 600); cells that finished before it keep their points")
    parser.add_argument("--memory", type=int, default=2048,
                        help="memory of a student's kernel and all it starts, tmpfs included, "
                        "in MB (default 2048; per process where no cgroup can be made)")
    parser.add_argument("--processes", type=int, default=256,
                        help="processes and threads per job (default 256)")
    parser.add_argument("--isolation", choices=["auto", "root", "userns", "none"],
                        default="auto", help="force a weaker sandbox (for testing)")
    parser.add_argument("--no-fork-server", action="store_true",
                        help="start each kernel afresh instead of forking it from a warm "
                        "process per worker (slower; the same sandbox and limits)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        results, isolation = grade(args.assignment, args.submissions, args.out,
                                   course=args.course, workers=args.workers,
                                   timeout=args.timeout, job_timeout=args.job_timeout,
                                   memory_mb=args.memory, processes=args.processes,
                                   isolation=args.isolation, progress=not args.no_progress,
                                   fork=not args.no_fork_server)
    except GradingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    counts, flags = Counter(r.status for r in results), Counter(f for r in results for f in r.flags)
    print(f"isolation: {isolation}")
    print(f"{len(results)} submissions: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES))
    if flags:
        print("flags: " + ", ".join(f"{n} {flag}" for flag, n in sorted(flags.items())))
    for r in results:  # the ones an instructor should look at
        if r.status != "graded" or set(r.flags) - ROUTINE_FLAGS:
            print(f"  {r.student}: {r.status} [{','.join(r.flags)}] {clean(r.message, 160)}")
    print(f"grades: {args.out}/grades.csv  feedback: {args.out}/feedback/  logs: {args.out}/logs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
