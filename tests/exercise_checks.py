"""The nbgrader assignments, for every ``solutions/<id>/<id>.ipynb``:

- the committed student version ``exercises/<id>/`` is what ``nbgrader generate_assignment``
  makes from the source now (student versions are generated, never hand-edited);
- the source notebook is well formed: nbgrader metadata, points as declared, hidden tests and
  solutions present, none of them in the student version;
- the solution passes its own tests; the blank student notebook fails every autograded test
  (by ``NotImplementedError``, not by a crash of the test itself);
- each typical wrong submission of ``tests/fixtures/exercises/<id>.json`` fails the public tests
  it should, with a message that points at the mistake;
- the probes (``solutions/<id>/<id>.probes.py``, see ``sgdkit.grading.probes``) back every
  autograded test cell, and on the solution and every wrong submission they fail exactly the
  cells the tests fail: never stricter (no false ``cheat_suspected``), never laxer (a student
  who fakes a passing test gets no points for a wrong answer);
- each correct variant of the fixture (``"correct_variants"``: e.g. the solution computed in
  float32 where the task allows floats, or written differently) passes the public and hidden
  tests and agrees with the probes: tests check behaviour, never one way of writing it;
- end to end: the grading command (``python -m sgdkit.grading``: nbgrader in a sandbox, with the
  probes) gives a correct, a blank, the correct variants (full marks) and the wrong submissions
  of ``tests/fixtures/exercises/<id>.json`` their exact expected scores, and flags none of them.

Fixture format (``tests/fixtures/exercises/<id>.json``): ``autograded_points``,
``manual_points``, ``wrong_submissions`` {name: {mistake, edits, messages, failed, score?}} and
the optional ``correct_variants`` {name: {about, edits}}. An edit is ``{"cell", "old", "new"}``
(replace text that occurs exactly once in that solution cell) or ``{"cell", "source"}`` (replace
the whole cell, as a student who wrote it from scratch would).

Each nbgrader run gets its own course directory and Jupyter runtime directory, so the tests run
in parallel (``pytest -n 2``) without colliding.
"""

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

SOLUTIONS = ROOT / "solutions"
FIXTURES = ROOT / "tests" / "fixtures" / "exercises"
ASSIGNMENTS = sorted(p.name for p in SOLUTIONS.glob("*/") if (p / f"{p.name}.ipynb").exists())
BIN = Path(sys.executable).parent  # nbgrader shells out to alembic: both live here
MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS",
           "BEGIN MARK SCHEME", "END MARK SCHEME"]


def test_there_are_assignments():
    assert ASSIGNMENTS, "no solutions/<id>/<id>.ipynb found: the course has no assignments"
    shares = [shard(i, 4) for i in range(4)]
    assert sorted(sum(shares, [])) == ASSIGNMENTS, "the test_exercises_* shares miss one"


# ---------------------------------------------------------------------------------- helpers


def env_for(tmp: Path) -> dict[str, str]:
    """The environment of one nbgrader run: this venv first on PATH, a private runtime dir."""
    runtime = tmp / "jupyter_runtime"
    runtime.mkdir(exist_ok=True)
    return dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
                JUPYTER_RUNTIME_DIR=str(runtime), MPLBACKEND="Agg", PYTHONDONTWRITEBYTECODE="1")


def run_nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "nbgrader"), *args, "--log-level=WARN"], cwd=course,
                          env=env_for(course.parent), capture_output=True, text=True,
                          timeout=600)


def make_course(tmp: Path, assignment: str) -> Path:
    """A course directory holding the repo's nbgrader_config.py and one assignment's source."""
    course = tmp / "course"
    course.mkdir()
    shutil.copy(ROOT / "nbgrader_config.py", course)
    shutil.copytree(SOLUTIONS / assignment, course / "solutions" / assignment,
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return course


def generate(course: Path, assignment: str, *flags: str) -> Path:
    result = run_nbgrader(course, "generate_assignment", assignment, "--force", *flags)
    assert result.returncode == 0, f"generate_assignment {assignment} failed:\n{result.stderr}"
    return course / "exercises" / assignment


def files(folder: Path) -> dict[str, Path]:
    return {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*")) if p.is_file()
            and ".ipynb_checkpoints" not in p.parts and "__pycache__" not in p.parts}


def meta(cell) -> dict:
    return cell.metadata.get("nbgrader", {})


def autograded(nb) -> dict[str, int]:
    """grade_id -> points of the autograded test cells."""
    return {meta(c)["grade_id"]: meta(c)["points"] for c in nb.cells
            if meta(c).get("grade") and not meta(c).get("solution")}


def manual(nb) -> dict[str, int]:
    """grade_id -> points of the manually graded answer cells."""
    return {meta(c)["grade_id"]: meta(c)["points"] for c in nb.cells
            if meta(c).get("grade") and meta(c).get("solution")}


def source_nb(assignment: str):
    return nbformat.read(SOLUTIONS / assignment / f"{assignment}.ipynb", as_version=4)


def fixture(assignment: str) -> dict:
    path = FIXTURES / f"{assignment}.json"
    assert path.exists(), (
        f"{path.relative_to(ROOT)} is missing: every assignment needs sample wrong submissions "
        f"(see tests/fixtures/exercises/01_gradient_descent.json for the format)")
    return json.loads(path.read_text())


def strip_markers(source: str) -> str:
    """A solution region as a student would type it: the nbgrader delimiter lines removed."""
    return "\n".join(line for line in source.split("\n")
                     if not any(m in line for m in MARKERS))


def correct_submission(student_nb, solution_nb):
    """The student notebook with every solution cell filled in from the solution notebook."""
    answers = {meta(c)["grade_id"]: c for c in solution_nb.cells if meta(c).get("solution")}
    nb = nbformat.from_dict(json.loads(json.dumps(student_nb)))  # a deep copy
    for cell in nb.cells:
        if meta(cell).get("solution"):
            cell.source = strip_markers(answers[meta(cell)["grade_id"]].source)
    return nb


def apply_edits(nb, edits: list[dict], where: str):
    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    cells = {meta(c).get("grade_id"): c for c in nb.cells}
    for edit in edits:
        cell = cells.get(edit["cell"])
        if "source" in edit:  # the whole cell, written from scratch
            assert cell is not None, f"{where}: no cell {edit['cell']!r}; update the fixture"
            cell.source = edit["source"]
            continue
        assert cell is not None and cell.source.count(edit["old"]) == 1, (
            f"{where}: the edit {edit} no longer applies to the solution (no cell "
            f"{edit['cell']!r} holding that text exactly once); update the fixture")
        cell.source = cell.source.replace(edit["old"], edit["new"])
    return nb


def strip_hidden(source: str) -> str:
    """A test cell as the student sees it: the hidden tests region removed."""
    lines, hidden = [], False
    for line in source.split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            hidden = True
        elif "END HIDDEN TESTS" in line:
            hidden = False
        elif not hidden:
            lines.append(line)
    return "\n".join(lines)


@contextlib.contextmanager
def torch_defaults():
    """The cells run with torch's global defaults of a fresh kernel, and leave them as they
    were: this process runs many notebooks, and one that sets ``torch.set_default_dtype``
    (08 works in float64) must not change the next one's models or another test module's."""
    import torch

    dtype, grad = torch.get_default_dtype(), torch.is_grad_enabled()
    torch.set_default_dtype(torch.float32)
    torch.set_grad_enabled(True)
    try:
        yield
    finally:
        torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)


def run_cells(nb, hidden: bool) -> tuple[dict[str, str], dict]:
    """Run the code cells in order in one namespace; (grade_id -> 'ExceptionType: message' for
    each test cell that failed, the namespace). hidden=False: hidden tests removed, as a student
    runs the notebook, and a warning in a test cell counts as a failure (``nbgrader validate``
    fails a cell that writes to stderr). hidden=True: as the grader runs it, warnings allowed.
    (Plain Python: a notebook whose cells use IPython magics needs a kernel instead.)"""
    tests, failures = autograded(nb), {}
    namespace = {"__name__": "__main__"}
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        grade_id = meta(cell).get("grade_id")
        source = cell.source if hidden else strip_hidden(cell.source)
        with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            try:
                exec(compile(source, f"<cell {i}>", "exec"), namespace)
            except Exception as err:  # the student's cells may fail; only test cells count
                if grade_id in tests:
                    failures[grade_id] = f"{type(err).__name__}: {err}"
                continue
        if grade_id in tests and w and not hidden:
            failures[grade_id] = f"a warning (stderr): {w[0].category.__name__}: {w[0].message}"
    return failures, namespace


def public_test_failures(nb) -> dict[str, str]:
    with torch_defaults():
        return run_cells(nb, hidden=False)[0]


def run_with_probes(nb, probes: str) -> tuple[set, dict]:
    """Every cell, hidden tests included, then the probes file, in one namespace (as the
    grader runs them); (the test cells that failed, {cell: probe records})."""
    from sgdkit.grading.probes import RECORD, by_cell

    with torch_defaults():  # the probes run after the cells, in the same kernel
        failures, namespace = run_cells(nb, hidden=True)
        out = io.StringIO()
        with contextlib.redirect_stdout(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            exec(compile(probes, "<probes>", "exec"), namespace)
    records = [json.loads(line[len(RECORD):]) for line in out.getvalue().splitlines()
               if line.startswith(RECORD)]
    return set(failures), by_cell(records)


# ---------------------------------------------------------------------------------- tests


def test_exercises_match_a_fresh_generate_assignment(assignment, tmp_path):
    fresh = generate(make_course(tmp_path, assignment), assignment, "--no-db")
    committed = ROOT / "exercises" / assignment
    fix = f"regenerate it with `make exercises` (nbgrader generate_assignment {assignment})"
    assert committed.is_dir(), f"exercises/{assignment} is missing: {fix}"
    new, old = files(fresh), files(committed)
    assert sorted(new) == sorted(old), (
        f"exercises/{assignment} holds {sorted(old)}, generate_assignment makes {sorted(new)}: "
        f"{fix}")
    for name, path in new.items():
        if name.endswith(".ipynb"):
            same = json.loads(path.read_text()) == json.loads(old[name].read_text())
        else:
            same = path.read_bytes() == old[name].read_bytes()
        assert same, f"exercises/{assignment}/{name} differs from its source: {fix}"


def test_source_notebook_is_a_complete_assignment(assignment):
    nb = source_nb(assignment)
    where = f"solutions/{assignment}/{assignment}.ipynb"
    expected = fixture(assignment)
    keys = {"grade", "grade_id", "locked", "schema_version", "solution", "task"}
    ids = [meta(c).get("grade_id") for c in nb.cells if meta(c)]
    assert len(ids) == len(set(ids)), f"{where}: grade_ids repeat: {ids}"
    for cell in nb.cells:
        m = meta(cell)
        if not m:
            continue
        need = keys | ({"points"} if m.get("grade") else set())
        assert need <= set(m) and m["schema_version"] == 3, (
            f"{where}: cell {m.get('grade_id')} has nbgrader metadata {m}, needs keys {need} "
            f"with schema_version 3")
        if m["grade"] and not m["solution"]:
            assert cell.cell_type == "code" and m["locked"], f"{where}: {m['grade_id']}"
            assert "BEGIN HIDDEN TESTS" in cell.source, (
                f"{where}: test cell {m['grade_id']} has no ### BEGIN HIDDEN TESTS region")
        if m["solution"] and cell.cell_type == "code":
            assert "BEGIN SOLUTION" in cell.source, f"{where}: {m['grade_id']} has no solution"
    tests, answers = autograded(nb), manual(nb)
    assert len(tests) >= 3, f"{where}: {len(tests)} autograded test cells, the course wants >= 3"
    assert answers, f"{where}: no manually graded answer cell"
    assert (sum(tests.values()), sum(answers.values())) == (
        expected["autograded_points"], expected["manual_points"]), (
        f"{where}: points {tests} and {answers} do not add up to the fixture's "
        f"{expected['autograded_points']} autograded + {expected['manual_points']} manual")
    graded = [k for k, v in expected["wrong_submissions"].items() if "score" in v]
    assert len(graded) >= 2, f"the fixture autogrades {graded}: it needs >= 2 wrong submissions"
    assert expected.get("correct_variants"), (
        f"{FIXTURES.name}/{assignment}.json has no correct_variants: add a differently written "
        f"correct solution (and a float32 one where the task allows floats); they must score full")

    student = (ROOT / "exercises" / assignment / f"{assignment}.ipynb").read_text()
    leaked = [m for m in MARKERS if m in student]
    assert not leaked, f"exercises/{assignment}: the student version still holds {leaked}"


def wrong_submissions(assignments: list[str]) -> list[tuple[str, str]]:
    return [(a, name) for a in assignments if (FIXTURES / f"{a}.json").exists()
            for name in fixture(a)["wrong_submissions"]]


def test_public_tests_point_at_the_mistake(assignment, name):
    wrong = fixture(assignment)["wrong_submissions"][name]
    where = f"{FIXTURES.name}/{assignment}.json {name}"
    nb = apply_edits(source_nb(assignment), wrong["edits"], where)
    failures = public_test_failures(nb)
    assert sorted(failures) == sorted(wrong["messages"]), (
        f"{where} ({wrong['mistake']}): the public tests {sorted(failures)} fail, expected "
        f"{sorted(wrong['messages'])}:\n{failures}")
    for cell, phrase in wrong["messages"].items():
        assert phrase in failures[cell], (
            f"{where} ({wrong['mistake']}): the message of {cell} should say {phrase!r}; "
            f"it says:\n{failures[cell]}")
    assert set(failures) <= set(wrong["failed"]), f"{where}: 'failed' misses public failures"


def correct_variants(assignments: list[str]) -> list[tuple[str, str]]:
    return [(a, name) for a in assignments if (FIXTURES / f"{a}.json").exists()
            for name in fixture(a).get("correct_variants", {})]


def test_correct_variants_pass_every_test_and_probe(assignment, name):
    """A correct answer computed in float32, or written differently, scores full: public tests,
    hidden tests and probes all accept it (tests are never stricter than the task says)."""
    from sgdkit.grading.probes import compare

    variant = fixture(assignment)["correct_variants"][name]
    where = f"{FIXTURES.name}/{assignment}.json correct variant {name}"
    solution = source_nb(assignment)
    nb = apply_edits(solution, variant["edits"], where)
    public = public_test_failures(nb)
    assert not public, f"{where} ({variant['about']}): public tests fail:\n{public}"
    probes = probes_of(assignment)
    _, reference = run_with_probes(solution, probes)
    failed, records = run_with_probes(nb, probes)
    assert not failed, f"{where} ({variant['about']}): hidden tests fail {sorted(failed)}"
    problems = {cell: found for cell in autograded(solution)
                if (found := compare(records.get(cell, []), reference[cell]))}
    assert not problems, f"{where} ({variant['about']}): the probes disagree: {problems}"


def probes_of(assignment: str) -> str:
    path = SOLUTIONS / assignment / f"{assignment}.probes.py"
    assert path.exists(), (
        f"{path.relative_to(ROOT)} is missing: every assignment needs probes, the checks the "
        "grader makes outside the student's kernel (see sgdkit/grading/probes.py)")
    return path.read_text()


def test_probes_fail_exactly_the_cells_the_tests_fail(assignment):
    from sgdkit.grading.probes import compare

    probes, solution = probes_of(assignment), source_nb(assignment)
    failed, reference = run_with_probes(solution, probes)
    tests = autograded(solution)
    assert not failed, f"the solution of {assignment} fails its tests {sorted(failed)}"
    assert set(reference) == set(tests), (
        f"{assignment}.probes.py backs the cells {sorted(reference)}; the autograded test "
        f"cells are {sorted(tests)}: every one needs a probe, and only those")
    broken = [f"{r['cell']} {r['name']}: {r['error']}" for rs in reference.values() for r in rs
              if "error" in r]
    assert not broken, f"{assignment}: probes raise on the solution:\n" + "\n".join(broken)
    student = nbformat.read(ROOT / "exercises" / assignment / f"{assignment}.ipynb", 4)
    _, blank = run_with_probes(student, probes)
    passing = [cell for cell in tests if not compare(blank.get(cell, []), reference[cell])]
    assert not passing, f"the blank {assignment} notebook passes the probes of {passing}"
    for name, wrong in fixture(assignment)["wrong_submissions"].items():
        nb = apply_edits(solution, wrong["edits"], f"{assignment}.json {name}")
        failed, records = run_with_probes(nb, probes)
        problems = {cell: compare(records.get(cell, []), reference[cell]) for cell in tests}
        caught = {cell for cell, found in problems.items() if found}
        assert caught == failed, (
            f"{assignment}, wrong submission {name!r} ({wrong['mistake']}): the tests fail "
            f"{sorted(failed)}, the probes fail {sorted(caught)}; they must agree "
            f"(probes found: {problems})")


def test_solution_passes_and_blank_notebook_fails_every_test(assignment, tmp_path, monkeypatch):
    from nbgrader.validator import Validator
    from traitlets.config import Config

    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))  # this test's kernels only
    monkeypatch.setenv("MPLBACKEND", "Agg")
    config = Config()
    config.Execute.timeout = 120
    shutil.copytree(SOLUTIONS / assignment, tmp_path / "solution")
    shutil.copytree(ROOT / "exercises" / assignment, tmp_path / "blank")
    name = f"{assignment}.ipynb"

    results = Validator(config=config).validate(str(tmp_path / "solution" / name))
    failed = [r["raw_error"] for r in results.get("failed", [])]
    assert not results, f"the solution of {assignment} fails its own tests:\n" + "\n\n".join(
        failed or [str(results)])

    nb = nbformat.read(tmp_path / "blank" / name, as_version=4)
    by_source = {c.source.strip(): meta(c)["grade_id"] for c in nb.cells if meta(c).get("grade")}
    results = Validator(config=config).validate(str(tmp_path / "blank" / name))
    errors = {by_source[r["source"]]: r["raw_error"] for r in results.get("failed", [])}
    passing = sorted(set(autograded(nb)) - set(errors))
    assert not passing, f"the blank {assignment} notebook passes the tests {passing}"
    crashed = {k: v for k, v in errors.items() if k in autograded(nb)
               and "NotImplementedError" not in v}
    assert not crashed, f"blank {assignment}: tests failed for another reason than the blank " \
                        f"solution (a bug in the test?):\n{crashed}"


def test_autograde_gives_the_expected_scores(assignment, tmp_path):
    from nbgrader.api import Gradebook, MissingEntry

    from sgdkit.grading import main

    course = make_course(tmp_path, assignment)
    release = generate(course, assignment, "--no-db")  # the student version
    name = f"{assignment}.ipynb"
    blank = nbformat.read(release / name, as_version=4)
    correct = correct_submission(blank, source_nb(assignment))
    expected = fixture(assignment)
    tests, answers = autograded(blank), manual(blank)
    full = sum(tests.values())

    # student -> (notebook, the test cells it must fail, its autograded score)
    submissions = {"correct": (correct, [], full), "blank": (blank, list(tests), 0)}
    for student, wrong in expected["wrong_submissions"].items():
        if "score" not in wrong:  # checked by test_public_tests_point_at_the_mistake only
            continue
        nb = apply_edits(correct, wrong["edits"], f"{FIXTURES.name}/{assignment}.json {student}")
        submissions[student] = (nb, wrong["failed"], wrong["score"])
    for student, variant in expected.get("correct_variants", {}).items():  # full marks
        nb = apply_edits(correct, variant["edits"], f"{FIXTURES.name}/{assignment}.json {student}")
        submissions[student] = (nb, [], full)
    for student, (nb, _, _) in submissions.items():
        folder = tmp_path / "submissions" / student
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / name)

    # the course's grading command: sandboxed kernels, probes compared outside the kernel
    code = main([assignment, str(tmp_path / "submissions"), "--out", str(tmp_path / "out"),
                 "--course", str(course), "--workers", "1", "--no-progress"])
    assert code == 0, f"grading {assignment} could not run"
    with open(tmp_path / "out" / "grades.csv") as f:
        rows = {row["student"]: row for row in csv.DictReader(f)}
    for student, row in rows.items():  # honest mistakes are never taken for cheating
        assert row["status"] == "graded" and "cheat_suspected" not in row["flags"], row
    said = "\n".join(map(str, rows.values()))  # grades.csv, for the messages below
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        for student, (_, failed, score) in submissions.items():
            try:
                graded = gb.find_submission_notebook(assignment, assignment, student)
            except MissingEntry:
                pytest.fail(f"{assignment}: submission {student!r} was not graded:\n{said}")
            auto = {g.name: g.auto_score for g in graded.grades}
            want = {k: (0.0 if k in failed else float(p)) for k, p in tests.items()}
            got = {k: auto[k] for k in tests}
            assert got == want, (f"{assignment}, submission {student!r}: autograded scores "
                                 f"{got}, expected {want}\ngrades.csv:\n{said}")
            assert sum(got.values()) == score, f"{student}: total {sum(got.values())} != {score}"
            for grade in graded.grades:
                if grade.name in answers:  # blank answers score 0, written ones await a human
                    assert (grade.auto_score, grade.needs_manual_grade) == (
                        (0.0, False) if student == "blank" else (None, True)), (
                        f"{student}: manual cell {grade.name} has auto_score "
                        f"{grade.auto_score}, needs_manual_grade {grade.needs_manual_grade}")


# ------------------------------------------------------------------------ parametrization


def shard(index: int, count: int) -> list[str]:
    """Every ``count``-th assignment from ``index``: the share of one ``test_exercises_*``
    module. ``pytest -n --dist loadfile`` keeps a module on one worker, so the assignments are
    split over several modules to spread their (slow, end-to-end) checks over the workers."""
    return ASSIGNMENTS[index::count]


def pytest_generate_tests(metafunc):
    """Each test runs for the assignments of the module that collected it (``SHARD``)."""
    if "assignment" not in metafunc.fixturenames:
        return
    assignments = getattr(metafunc.module, "SHARD", ASSIGNMENTS)
    pairs = {"test_public_tests_point_at_the_mistake": wrong_submissions,
             "test_correct_variants_pass_every_test_and_probe": correct_variants}
    if metafunc.function.__name__ in pairs:
        metafunc.parametrize("assignment, name", pairs[metafunc.function.__name__](assignments))
    else:
        metafunc.parametrize("assignment", assignments)
