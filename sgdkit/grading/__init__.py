"""Batch grading an instructor can trust: nbgrader, one submission at a time, in a sandbox.

    python -m sgdkit.grading ASSIGNMENT SUBMISSIONS --out DIR [--workers N] [--timeout S]
                             [--memory MB] [--course DIR]

(``make grade ASSIGNMENT=... SUBMISSIONS=...``). ``SUBMISSIONS`` holds one folder or zip file per
student. The command writes ``DIR/grades.csv`` (student, assignment, score, max_score, status,
flags, message), ``DIR/feedback/<student>/<notebook>.html`` and ``DIR/logs/<student>.txt``; the
scores come from nbgrader's own gradebook (``gradebook.db`` in the course directory), where the
autograded notebooks also land for manual grading in formgrader.

Every submission ends in exactly one status:

- ``graded``: nbgrader ran it to the end (the score may be anything, 0 included);
- ``timeout``: a cell ran past the limit (the cells after an interrupted one still count), or
  the whole job did (then nothing is scored);
- ``kernel_died``: the student's kernel died (``os._exit``, a segfault, killing itself);
- ``rejected``: nothing to grade (invalid JSON, missing or renamed notebook, no nbgrader cells).

A test cell earns its points only if it ran without an error (stderr is fine) *and* the
assignment's probes, run after the notebook and compared with the solution's outside the kernel,
agree (``probes.py``); a cell that passed while its probes disagree, and code or files that reach
for the grading machinery, are flagged ``cheat_suspected``.

How it is built: ``submissions.py`` (reading and checking), ``course.py`` (template and
gradebook), ``batch.py`` (the parent), ``worker.py`` (forked jobs), ``sandbox.py`` (the kernel),
``probes.py`` (verdicts outside the kernel), ``feedback.py`` (feedback without hidden tests).
This file imports none of them until used: the sandbox and the workers start as
``python -m sgdkit.grading.<module>`` and stay light.
"""

import argparse
import sys
from collections import Counter

STATUSES = ("graded", "timeout", "kernel_died", "rejected")
ROUTINE_FLAGS = {"needs_manual_grading", "output_truncated"}  # counted, not listed


def grade(assignment, submissions, out, **options):
    """Grade every submission; returns (results, isolation line). See ``batch.grade``."""
    from .batch import grade as run

    return run(assignment, submissions, out, **options)


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit code (0: the batch completed, 2: it could not run)."""
    from .course import GradingError

    parser = argparse.ArgumentParser(
        prog="python -m sgdkit.grading",
        description="Autograde a folder of submissions with nbgrader, one sandboxed job each.")
    parser.add_argument("assignment", help="assignment id, e.g. 01_gradient_descent")
    parser.add_argument("submissions", help="folder of per-student folders or zip files")
    parser.add_argument("--out", required=True, help="where grades.csv and feedback/ go")
    parser.add_argument("--course", default=".", help="course directory (nbgrader_config.py)")
    parser.add_argument("--workers", type=int, default=2, help="submissions graded at once")
    parser.add_argument("--timeout", type=float, default=120,
                        help="wall-clock seconds per notebook (default 120)")
    parser.add_argument("--memory", type=int, default=2048,
                        help="address-space limit of a student's kernel in MB (default 2048)")
    parser.add_argument("--isolation", choices=["auto", "root", "userns", "none"],
                        default="auto", help="force a weaker sandbox (for testing)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        results, isolation = grade(args.assignment, args.submissions, args.out,
                                   course=args.course, workers=args.workers,
                                   timeout=args.timeout, memory_mb=args.memory,
                                   isolation=args.isolation, progress=not args.no_progress)
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
            print(f"  {r.student}: {r.status} [{','.join(r.flags)}] {r.message[:160]}")
    print(f"grades: {args.out}/grades.csv  feedback: {args.out}/feedback/  logs: {args.out}/logs/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
