"""Batch grading: `python -m sgdkit.grading` (2 workers) against plain sequential nbgrader.

    python benchmarks/bench_grading.py [--n 100] [--assignment ID ...] [--workers 2]

Builds N submissions of one assignment (default: 01_gradient_descent, else the toy test
assignment) from its student notebook: 60% correct, 30% partly wrong (one answer left as the
stub), 10% broken (invalid JSON, a SyntaxError, os._exit). Grades them twice, each in a fresh
copy of the course:

1. plain nbgrader: the notebooks in submitted/, then one `nbgrader autograde ID` run;
2. the command: `python -m sgdkit.grading ID SUBMISSIONS --out OUT --workers 2` (which also
   writes every feedback page).

The command runs twice: as it is (kernels forked from a warm process per worker, see
``sgdkit/grading/zygote.py``) and with ``--no-fork-server`` (each kernel started afresh, as
before issue 16). Prints wall times, time per submission, the ratios, and whether the scores
agree on every well-formed submission; the median time of each phase of one job in both modes
(from ``SGDKIT_GRADING_PROFILE``: kernel start, the cells, nbgrader's own work, the grader's
checks, the feedback page); then the single-submission time after start-up: one correct
submission graded alone, from its job folder's making to its grade and feedback page stored
(the command's start-up, workers importing nbgrader, the template and grading the solution,
comes before), the median of ``--single-runs`` (3), with the command's whole wall time. Several
assignments (``--assignment 01_gradient_descent 05_pytorch``) print one block each, and the
load average is printed with them. Target (issue 16): >= 3x, and a single submission under 2 s.
"""

import argparse
import csv
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
TOY = ROOT / "tests" / "fixtures" / "grading" / "course"


def course_for(assignment: str | None) -> tuple[Path, str]:
    if assignment is None:
        real = ROOT / "solutions" / "01_gradient_descent"
        return (ROOT, "01_gradient_descent") if real.is_dir() else (TOY, "toy")
    return (TOY if assignment == "toy" else ROOT), assignment


def make_submissions(course: Path, assignment: str, n: int, folder: Path) -> dict:
    """{student: kind}; writes folder/<student>/<notebook>.ipynb."""
    source = sorted((course / "solutions" / assignment).glob("*.ipynb"))[0]
    student = course / "exercises" / assignment / source.name
    answers = {c.metadata["nbgrader"]["grade_id"]: re.sub(r".*### (BEGIN|END) SOLUTION.*\n?", "",
                                                         c.source)
               for c in nbformat.read(source, 4).cells
               if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"}
    rng = random.Random(0)
    kinds = {}
    for i in range(n):
        kind = "correct" if i % 10 < 6 else "partly_wrong" if i % 10 < 9 else "broken"
        nb = nbformat.read(student, 4)
        cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") in answers]
        stub = rng.choice(cells) if kind == "partly_wrong" else None
        for cell in cells:
            if cell is not stub:
                cell.source = answers[cell.metadata["nbgrader"]["grade_id"]]
        raw = nbformat.writes(nb)
        if kind == "broken":
            broken = ["json", "syntax", "exit"][i // 10 % 3]
            kind = f"broken_{broken}"
            if broken == "json":
                raw = raw[: len(raw) // 2]
            else:
                cells[0].source = ("def oops(:\n" if broken == "syntax" else
                                   "import os\nos._exit(1)\n") + cells[0].source
                raw = nbformat.writes(nb)
        name = f"s{i:03d}"
        (folder / name).mkdir(parents=True)
        (folder / name / source.name).write_text(raw)
        kinds[name] = kind
    return kinds


def fresh_course(course: Path, assignment: str, where: Path) -> Path:
    where.mkdir(parents=True)
    shutil.copy(course / "nbgrader_config.py", where)
    for sub in ("solutions", "exercises"):
        shutil.copytree(course / sub / assignment, where / sub / assignment)
    return where


def plain_nbgrader(course: Path, assignment: str, subs: Path) -> tuple[float, dict]:
    for student in subs.iterdir():
        dest = course / "submitted" / student.name / assignment
        shutil.copytree(student, dest)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    nbgrader = [sys.executable, "-m", "nbgrader"]
    subprocess.run(nbgrader + ["generate_assignment", assignment, "--force", "--log-level=ERROR"],
                   cwd=course, env=env, check=True, capture_output=True)
    start = time.perf_counter()
    subprocess.run(nbgrader + ["autograde", assignment, "--log-level=ERROR"], cwd=course,
                   env=env, capture_output=True)  # exits 1: some submissions fail
    seconds = time.perf_counter() - start
    from nbgrader.api import Gradebook, MissingEntry

    scores = {}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student in subs.iterdir():
            try:
                scores[student.name] = gb.find_submission(assignment, student.name).score
            except MissingEntry:
                scores[student.name] = None
    return seconds, scores


def command(course: Path, assignment: str, subs: Path, out: Path, workers: int,
            *extra: str, profile: Path | None = None):
    env = dict(os.environ, SGDKIT_GRADING_PROFILE=str(profile)) if profile else None
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sgdkit.grading", assignment, str(subs), "--out",
                    str(out), "--course", str(course), "--workers", str(workers),
                    "--no-progress", *extra], check=True, capture_output=True, env=env)
    seconds = time.perf_counter() - start
    with open(out / "grades.csv") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    return seconds, rows


def phases(profile: Path) -> dict:
    """Median seconds per phase over the jobs in a SGDKIT_GRADING_PROFILE file."""
    jobs = [json.loads(line) for line in profile.read_text().splitlines()]
    keys = [k for k in jobs[0] if k != "student"]
    return {k: statistics.median(job[k] for job in jobs) for k in keys}


def single(source: Path, assignment: str, tmp: Path, workers: int, runs: int,
           *options: str) -> tuple[float, float]:
    """One correct submission graded alone: (seconds from its job folder's making to its grade
    and feedback page stored, the command's whole wall time), medians of runs."""
    alone, whole, tmp = [], [], tmp / f"single{len(options)}"
    for i in range(runs):
        kinds = make_submissions(source, assignment, 1, tmp / f"one{i}")
        assert kinds == {"s000": "correct"}
        profile = tmp / f"profile{i}.jsonl"
        seconds, _ = command(fresh_course(source, assignment, tmp / f"c{i}"), assignment,
                             tmp / f"one{i}", tmp / f"o{i}", workers, *options, profile=profile)
        alone.append(json.loads(profile.read_text())["end_to_end"])
        whole.append(seconds)
    return statistics.median(alone), statistics.median(whole)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--assignment", nargs="*", default=[None])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--single-runs", type=int, default=3)
    args = parser.parse_args()
    for name in args.assignment:
        bench(args, *course_for(name))


def bench(args, source: Path, assignment: str) -> None:
    modes = {"forked": (), "afresh": ("--no-fork-server",)}
    with tempfile.TemporaryDirectory(prefix="bench-grading-") as tmp:
        tmp = Path(tmp)
        kinds = make_submissions(source, assignment, args.n, tmp / "subs")
        plain_s, plain = plain_nbgrader(fresh_course(source, assignment, tmp / "plain"),
                                        assignment, tmp / "subs")
        ours, profiles, one = {}, {}, {}
        for mode, options in modes.items():
            ours[mode] = command(fresh_course(source, assignment, tmp / f"ours-{mode}"),
                                 assignment, tmp / "subs", tmp / f"out-{mode}", args.workers,
                                 *options, profile=tmp / f"profile-{mode}.jsonl")
            profiles[mode] = phases(tmp / f"profile-{mode}.jsonl")
        for mode, options in modes.items():
            one[mode] = single(source, assignment, tmp, args.workers, args.single_runs,
                               *options)
    n = args.n
    wellformed = [s for s, k in kinds.items() if not k.startswith("broken")]
    print(f"assignment {assignment}: {n} submissions ({sum(k == 'correct' for k in kinds.values())}"
          f" correct, {sum(k == 'partly_wrong' for k in kinds.values())} partly wrong, "
          f"{sum(k.startswith('broken') for k in kinds.values())} broken), {os.cpu_count()} CPUs")
    print(f"plain nbgrader autograde (sequential): {plain_s:7.1f} s  "
          f"{plain_s / n:5.2f} s/submission")
    for mode, (seconds, rows) in ours.items():
        statuses = {}
        for row in rows.values():
            statuses[row["status"]] = statuses.get(row["status"], 0) + 1
        agree = [s for s in wellformed
                 if rows[s]["status"] == "graded" and plain[s] is not None
                 and abs(float(rows[s]["score"]) - plain[s]) < 1e-9]
        print(f"python -m sgdkit.grading, kernels {mode} ({args.workers} workers): "
              f"{seconds:7.1f} s  {seconds / n:5.2f} s/submission (feedback included)  "
              f"speed-up {plain_s / seconds:.2f}x (target >= 3x)")
        print(f"  statuses: {statuses}; scores agree with plain nbgrader on "
              f"{len(agree)}/{len(wellformed)} well-formed submissions")
        if len(agree) != len(wellformed):
            bad = [s for s in wellformed if s not in agree][:5]
            print("  disagree: " + ", ".join(f"{s} plain={plain[s]} ours={rows[s]['score']} "
                                             f"({rows[s]['status']})" for s in bad))
    print("median seconds per phase of one job (2 jobs at once):")
    print("  " + " ".join(f"{k:>12s}" for k in ["mode", *profiles["forked"]]))
    for mode, profile in profiles.items():
        print("  " + " ".join([f"{mode:>12s}", *(f"{v:12.3f}" for v in profile.values())]))
    for mode, (alone, whole) in one.items():
        print(f"single submission, kernels {mode}: graded and its feedback written in "
              f"{alone:.2f} s after the command's start-up (target < 2 s); the whole command "
              f"{whole:.1f} s")
    print(f"forked vs afresh: {ours['afresh'][0] / ours['forked'][0]:.2f}x faster")
    print(f"load average (1, 5, 15 min) at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
