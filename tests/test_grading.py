"""Batch grading (``python -m sgdkit.grading``) on a matrix of faulty and hostile submissions.

Every submission is built from the toy assignment's real student notebook
(tests/fixtures/grading/course, rebuilt by make_toy.py): the correct answers, then one fault
each. One batch grades them all (2 workers, 10 s per notebook, 512 MB per kernel); each case
asserts its status, score and flags in grades.csv, and the tests after it check what must not
have happened (a lost grade, a leaked hidden test, a surviving process).
"""

import csv
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import nbformat
import pytest

from sgdkit.grading import main
from sgdkit.grading.sandbox import probe

FIXTURE = Path(__file__).parent / "fixtures" / "grading" / "course"
CANARY = f"ORPHAN-{uuid.uuid4().hex}"  # in the command line of every process a student starts

ANSWERS = {
    "mse": "def mse(y, y_hat):\n    y, y_hat = np.asarray(y, float), np.asarray(y_hat, float)\n"
           "    return float(np.mean((y - y_hat) ** 2))",
    "gd_step": "def gd_step(w, grad, lr):\n"
               "    return np.asarray(w, float) - lr * np.asarray(grad, float)",
    "running_mean": "def running_mean(xs):\n    xs = np.asarray(xs, float)\n"
                    "    return np.cumsum(xs) / np.arange(1, len(xs) + 1)",
    "why_copy": "So that the caller's array is left alone.",
}
WRONG_MSE = "def mse(y, y_hat):\n    return 0.0"
KILL_PARENT = """import os, signal
for kill in (lambda: os.kill(os.getppid(), signal.SIGKILL), lambda: os.killpg(0, signal.SIGKILL)):
    try:
        kill()
    except OSError:
        pass"""


# the tricks that earn plain nbgrader 0.9.6 full marks without a working answer; each comes
# with a wrong answer here, and must earn nothing for it
SKIP_CELLS = """get_ipython().input_transformers_cleanup.append(lambda lines: ["pass\\n"])
""" + WRONG_MSE
NO_ASSERTS = """import ast


class _NoAsserts(ast.NodeTransformer):
    def visit_Assert(self, node):
        return ast.Pass()


get_ipython().ast_transformers.append(_NoAsserts())
""" + WRONG_MSE
WRONG_STEP = "def gd_step(w, grad, lr):\n    return np.asarray(w, float)"
FAKE_ALLCLOSE = """import math
np.allclose = lambda *args, **kwargs: True
math.isclose = lambda *args, **kwargs: True
""" + WRONG_STEP
SWALLOW = """get_ipython().set_custom_exc((AssertionError,), lambda *args, **kwargs: None)
""" + WRONG_MSE
ALWAYS_EQUAL = """class _Anything:
    def __eq__(self, other):
        return True

    def __lt__(self, other):
        return True

    def __sub__(self, other):
        return self

    def __abs__(self):
        return self


def mse(y, y_hat):
    return _Anything()"""
WHEN_GRADED = """import os
if os.environ.get("NBGRADER_EXECUTION"):
    np.allclose = lambda *args, **kwargs: True
""" + WRONG_STEP
# correct answers that warn, write to stderr, show a progress bar, or differ from the solution in
# harmless ways (float32, a loop, a list): full marks, no flag
NOISY_MSE = """import sys
import warnings

from tqdm import tqdm


def mse(y, y_hat):
    warnings.warn("mse: converting to float32")
    print("mse called", file=sys.stderr)
    for _ in tqdm(range(3), desc="mse"):
        pass
    y, y_hat = np.asarray(y, np.float32), np.asarray(y_hat, np.float32)
    return np.mean((y - y_hat) ** 2)"""
OTHER_STEP = """def gd_step(w, grad, lr):
    return np.array([wi - lr * gi for wi, gi in zip(w, grad)], dtype=np.float32)"""
OTHER_MEAN = """def running_mean(xs):
    means, total = [], 0.0
    for k, x in enumerate(xs):
        total += x
        means.append(total / (k + 1))
    return np.array(means)"""


def notebook(**cells):
    """The student notebook with the correct answers, except cells given as grade_id=source."""
    nb = nbformat.read(FIXTURE / "exercises" / "toy" / "toy.ipynb", as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in cells:
            cell.source = cells[grade_id]
        elif grade_id in ANSWERS:
            cell.source = ANSWERS[grade_id]
    return nb


def cell_of(nb, grade_id):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == grade_id)


def hog():
    return ("def _hog():\n    blocks = []\n    while True:\n"
            "        blocks.append(bytearray(64 * 2**20))\n_hog()\n" + ANSWERS["mse"])


def submissions(folder: Path, course: Path, port: int) -> dict:
    """Write every case into folder; returns {student: (status, score, flags that must be set)}."""
    secret = course / "solutions" / "toy" / "toy.ipynb"
    hostile = f'''import os
for path in ["../../../gradebook.db", "../../gradebook.db", "{course}/gradebook.db",
             "{folder}/correct/toy.ipynb", "{course}/solutions/toy/toy.ipynb"]:
    try:
        with open(path, "w") as f:
            f.write("overwritten by a student")
    except OSError:
        pass
try:
    LEAK = "HIDDEN" in open("{secret}").read()
except OSError:
    LEAK = False
''' + ANSWERS["mse"].replace("return float", "return 0.0 if not LEAK else float")
    network = f'''import socket
try:
    socket.create_connection(("127.0.0.1", {port}), timeout=3).close()
    NET = True
except OSError:
    NET = False
''' + ANSWERS["mse"].replace("return float", "return 99.0 if NET else float")
    daemon = "import os, time; os.fork() or (os.setsid(), os.fork() or time.sleep(600))"
    orphan = f'''import subprocess, sys
for code, flags in [("import time; time.sleep(600)", {{}}),
                    ("import time; time.sleep(600)", {{"start_new_session": True}}),
                    ("{daemon}", {{}})]:
    subprocess.Popen([sys.executable, "-c", code + "  # {CANARY}"], **flags)
''' + ANSWERS["mse"]
    leaker = ("get_ipython().events.register('pre_run_cell', "
              "lambda info: print(info.raw_cell))\n" + ANSWERS["mse"])
    seeded = ("SEEDED = np.random.rand() == 0.5488135039273248  # first draw after seed(0)\n"
              + ANSWERS["mse"].replace("return float", "return -1.0 if not SEEDED else float"))

    copied = notebook()
    test_mse = cell_of(copied, "test_mse")
    copied.cells.insert(copied.cells.index(test_mse) + 1, nbformat.from_dict(
        json.loads(json.dumps(test_mse))))
    schema = notebook()
    cell_of(schema, "test_mse").metadata["nbgrader"]["schema_version"] = 99
    edited = notebook(mse=WRONG_MSE, test_mse="pass")
    deleted = notebook(running_mean="def running_mean(xs):\n    return xs")
    deleted.cells.remove(cell_of(deleted, "test_running_mean"))
    retyped = notebook(gd_step=WRONG_STEP)
    test = cell_of(retyped, "test_gd_step")  # as Jupyter saves a code cell turned into markdown
    test.cell_type = "markdown"
    del test["outputs"], test["execution_count"]
    repointed = notebook(mse=WRONG_MSE)
    cell_of(repointed, "test_mse").metadata["nbgrader"]["grade_id"] = "my_test"
    noisy = notebook(mse=NOISY_MSE, gd_step=OTHER_STEP, running_mean=OTHER_MEAN)

    cases = {
        # student: (notebook or raw bytes, file name, status, score, flags)
        "correct": (notebook(), "toy.ipynb", "graded", 7, {"needs_manual_grading"}),
        "blank": (nbformat.read(FIXTURE / "exercises/toy/toy.ipynb", 4), "toy.ipynb", "graded",
                  0, set()),
        "partly_wrong": (notebook(mse=WRONG_MSE), "toy.ipynb", "graded", 5, set()),
        "syntax_error": (notebook(gd_step="def gd_step(w, grad, lr)\n    return w"),
                         "toy.ipynb", "graded", 5, set()),
        "loop_top": (notebook(mse="while True:\n    pass"), "toy.ipynb", "timeout", 5, set()),
        "loop_in_function": (notebook(mse="def mse(y, y_hat):\n    while True:\n        pass"),
                             "toy.ipynb", "timeout", 5, set()),
        "loop_ignores_sigint": (notebook(mse="import signal\nsignal.signal(signal.SIGINT, "
                                         "signal.SIG_IGN)\nwhile True:\n    pass"),
                                "toy.ipynb", "timeout", None, set()),
        "os_exit": (notebook(gd_step="import os\nos._exit(3)"), "toy.ipynb", "kernel_died",
                    None, set()),
        "segfault": (notebook(gd_step="import ctypes\nctypes.string_at(0)"), "toy.ipynb",
                     "kernel_died", None, set()),
        "sys_exit": (notebook(mse="import sys\nsys.exit('bye')\n" + ANSWERS["mse"]),
                     "toy.ipynb", "graded", 5, set()),
        "memory_hog": (notebook(mse=hog()), "toy.ipynb", "graded", 5, {"memory_limit"}),
        "invalid_json": (b'{"cells": [{"cell_type": "code",', "toy.ipynb", "rejected", None,
                         set()),
        "renamed": (notebook(), "toy_final.ipynb", "rejected", None, set()),
        "missing": (b"print('my answers')\n", "answers.py", "rejected", None, set()),
        "orphans": (notebook(mse=orphan), "toy.ipynb", "graded", 7, set()),
        "huge_output": (notebook(gd_step="for i in range(200_000):\n    print('x' * 99)\n"
                                 + ANSWERS["gd_step"]), "toy.ipynb", "graded", 7,
                        {"output_truncated"}),
        "gradebook_writer": (notebook(mse=hostile), "toy.ipynb", "graded", 5, set()),
        "kill_parent": (notebook(gd_step=KILL_PARENT),
                        "toy.ipynb", "kernel_died", None, set()),
        "network": (notebook(mse=network), "toy.ipynb", "graded", 7, set()),
        "leaker": (notebook(mse=leaker), "toy.ipynb", "graded", 7,
                   {"feedback_redacted", "cheat_suspected"}),
        "seeded": (notebook(mse=seeded), "toy.ipynb", "graded", 7, set()),
        "copy_pasted_test": (copied, "toy.ipynb", "graded", 7, {"tampered"}),
        "schema_99": (schema, "toy.ipynb", "graded", 7, {"tampered"}),
        "edited_test": (edited, "toy.ipynb", "graded", 5, {"tampered"}),
        "deleted_test": (deleted, "toy.ipynb", "graded", 4, {"tampered"}),
        "shadowing": (notebook(gd_step=WRONG_STEP), "toy.ipynb", "graded", 5,
                      {"cheat_suspected"}),
        "retyped_test": (retyped, "toy.ipynb", "graded", 5, {"tampered"}),
        "repointed_test": (repointed, "toy.ipynb", "graded", 5, {"tampered"}),
        "skips_cells": (notebook(mse=SKIP_CELLS), "toy.ipynb", "graded", 0, {"cheat_suspected"}),
        "no_asserts": (notebook(mse=NO_ASSERTS), "toy.ipynb", "graded", 5, {"cheat_suspected"}),
        "fake_allclose": (notebook(gd_step=FAKE_ALLCLOSE), "toy.ipynb", "graded", 5,
                          {"cheat_suspected"}),
        "swallows_errors": (notebook(mse=SWALLOW), "toy.ipynb", "graded", 5,
                            {"cheat_suspected"}),
        "always_equal": (notebook(mse=ALWAYS_EQUAL), "toy.ipynb", "graded", 5,
                         {"cheat_suspected"}),
        "when_graded": (notebook(gd_step=WHEN_GRADED), "toy.ipynb", "graded", 5,
                        {"cheat_suspected"}),
        "noisy": (noisy, "toy.ipynb", "graded", 7, set()),
        "noisy_again": (noisy, "toy.ipynb", "graded", 7, set()),
        "noisy_third": (noisy, "toy.ipynb", "graded", 7, set()),
    }
    expected = {}
    for student, (content, name, status, score, flags) in cases.items():
        raw = content if isinstance(content, bytes) else nbformat.writes(content).encode()
        (folder / student).mkdir(parents=True)
        (folder / student / name).write_bytes(raw)
        expected[student] = (status, score, flags)
    for module in ("numpy", "math"):  # a fake numpy whose allclose always agrees
        (folder / "shadowing" / f"{module}.py").write_text(
            "def allclose(*args, **kwargs):\n    return True\n")
    with zipfile.ZipFile(folder / "zipped.zip", "w") as archive:  # as an LMS exports it
        archive.writestr("zipped/toy.ipynb", nbformat.writes(notebook()))
    expected["zipped"] = ("graded", 7, set())
    return expected


def read_csv(path: Path) -> dict:
    with open(path) as f:
        return {row["student"]: row for row in csv.DictReader(f)}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    course = root / "course"
    shutil.copytree(FIXTURE, course)
    server = socket.create_server(("127.0.0.1", 0))  # what a student could reach without netns
    server.listen()
    expected = submissions(root / "subs", course, server.getsockname()[1])
    before = {p: digest(p) for p in [course / "solutions/toy/toy.ipynb",
                                     root / "subs/correct/toy.ipynb"]}
    code = main(["toy", str(root / "subs"), "--out", str(root / "out"), "--course", str(course),
                 "--workers", "2", "--timeout", "10", "--memory", "512", "--no-progress"])
    server.close()
    return {"code": code, "root": root, "course": course, "expected": expected,
            "before": before, "rows": read_csv(root / "out" / "grades.csv")}


CASES = ["correct", "blank", "partly_wrong", "syntax_error", "loop_top", "loop_in_function",
         "loop_ignores_sigint", "os_exit", "segfault", "sys_exit", "memory_hog", "invalid_json",
         "renamed", "missing", "orphans", "huge_output", "gradebook_writer", "kill_parent",
         "network", "leaker", "seeded", "copy_pasted_test", "schema_99", "edited_test",
         "deleted_test", "shadowing", "zipped", "retyped_test", "repointed_test", "skips_cells",
         "no_asserts", "fake_allclose", "swallows_errors", "always_equal", "when_graded", "noisy",
         "noisy_again", "noisy_third"]
TRICKS = {  # student -> what the message must name
    "skips_cells": "input transformer", "no_asserts": "AST transformer",
    "fake_allclose": "replaced comparison", "swallows_errors": "exception handler",
    "always_equal": "redefines comparison", "when_graded": "NBGRADER_", "shadowing": "numpy.py",
}


def test_this_machine_isolates_kernels():
    """The hostile cases below need namespaces (root, or user namespaces) to be contained."""
    assert probe() in ("root", "userns"), (
        "no mount/network/PID namespaces here: student code would run unconfined; allow user "
        "namespaces (sysctl kernel.unprivileged_userns_clone=1) or run the tests as root")


def test_batch_completes_with_exit_code_0_and_one_row_per_student(batch):
    assert batch["code"] == 0
    assert sorted(batch["rows"]) == sorted(batch["expected"]) == sorted(CASES)
    assert all(row["max_score"] == "8" for row in batch["rows"].values())


@pytest.mark.parametrize("student", CASES)
def test_status_score_and_flags(batch, student):
    status, score, flags = batch["expected"][student]
    row = batch["rows"][student]
    assert row["status"] == status, row
    assert row["score"] == ("" if score is None else f"{score:g}"), row
    assert flags <= set(filter(None, row["flags"].split(";"))), row
    if status != "graded":
        assert row["message"], "a status other than graded must say why"


@pytest.mark.parametrize("student", CASES)
def test_cheat_suspected_exactly_where_a_trick_was_played(batch, student):
    row = batch["rows"][student]
    flagged = "cheat_suspected" in row["flags"].split(";")
    assert flagged == ("cheat_suspected" in batch["expected"][student][2]), row
    if student in TRICKS:
        assert TRICKS[student] in row["message"], row


def test_tricks_are_caught_outside_the_kernel(batch):
    """Whatever the source scan sees, the score comes from checks the kernel cannot fake."""
    rows = batch["rows"]
    for student in ("skips_cells", "no_asserts", "always_equal"):
        assert "test_mse passed in the kernel, but the grader's own check disagrees" in (
            rows[student]["message"]), rows[student]
    assert "nothing recorded" in rows["skips_cells"]["message"]
    assert "raised TypeError" in rows["always_equal"]["message"]
    assert "test_gd_step passed in the kernel" in rows["fake_allclose"]["message"]


def test_feedback_is_flagged_redacted_only_when_the_students_output_quoted_hidden_tests(batch):
    """A failed hidden test's traceback is cut from the feedback as a matter of course."""
    redacted = {s for s, row in batch["rows"].items() if "feedback_redacted" in row["flags"]}
    assert redacted == {"leaker"}, redacted
    assert "feedback_redacted" not in batch["rows"]["partly_wrong"]["flags"]


def test_grading_the_same_submission_three_times_gives_the_same_result(batch):
    rows = [batch["rows"][s] for s in ("noisy", "noisy_again", "noisy_third")]
    assert len({(r["score"], r["status"], r["flags"]) for r in rows}) == 1, rows


def test_tampering_is_restored_graded_and_recorded(batch):
    rows = batch["rows"]
    assert "turned into a markdown cell; restored" in rows["retyped_test"]["message"]
    assert "'test_mse' was deleted" in rows["repointed_test"]["message"]


def test_messages_say_what_happened(batch):
    rows = batch["rows"]
    assert "not valid JSON" in rows["invalid_json"]["message"]
    assert "toy_final.ipynb" in rows["renamed"]["message"]
    assert "segmentation fault" in rows["segfault"]["message"]
    assert "code 3" in rows["os_exit"]["message"]
    assert "interrupted" in rows["loop_top"]["message"]
    assert "second copy" in rows["copy_pasted_test"]["message"]
    assert "test_running_mean" in rows["deleted_test"]["message"]


def test_nothing_lost_and_nothing_overwritten(batch):
    """The correct student's grade survives the hostile ones; no file outside the job changed."""
    from nbgrader.api import Gradebook

    course = batch["course"]
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "toy-course") as gb:
        assert gb.find_submission("toy", "correct").score == 7
        assert gb.find_submission("toy", "zipped").score == 7
    for path, before in batch["before"].items():
        assert digest(path) == before, f"{path} was changed by a student"
    assert (course / "autograded" / "correct" / "toy" / "toy.ipynb").is_file()


def test_no_process_outlives_the_batch(batch):
    alive = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and CANARY.encode() in (entry / "cmdline").read_bytes():
                alive.append(entry.name)
        except OSError:
            pass
    assert not alive, f"processes started by a student still run: {alive}"


def test_feedback_does_not_reveal_hidden_tests(batch):
    feedback = batch["root"] / "out" / "feedback"
    pages = sorted(feedback.glob("*/toy.html"))
    assert {p.parent.name for p in pages} >= {"correct", "partly_wrong", "leaker", "zipped"}
    hidden = ["HIDDEN-CANARY", "mse([0.0, 0.0], [1.0, 3.0])", "rng.normal(size=5)"]
    for page in pages:
        html = page.read_text()
        assert not [h for h in hidden if h in html], f"{page} shows hidden tests"
    wrong = (feedback / "partly_wrong" / "toy.html").read_text()
    assert "mse of equal arrays must be 0" in wrong or "AssertionError" in wrong
    assert (feedback / "huge_output" / "toy.html").stat().st_size < 2_000_000
    assert not (feedback / "os_exit").exists()


def test_regrading_replaces_the_earlier_result(batch, tmp_path):
    """A crashing resubmission after a good one leaves no stale score anywhere."""
    from nbgrader.api import Gradebook, MissingEntry

    subs = tmp_path / "subs"
    (subs / "correct").mkdir(parents=True)
    nbformat.write(notebook(gd_step="import os\nos._exit(1)"), subs / "correct" / "toy.ipynb")
    (subs / "blank").mkdir()
    nbformat.write(notebook(mse=WRONG_MSE), subs / "blank" / "toy.ipynb")
    out, course = tmp_path / "out", batch["course"]
    assert main(["toy", str(subs), "--out", str(out), "--course", str(course), "--workers", "2",
                 "--timeout", "10", "--memory", "512", "--no-progress"]) == 0
    rows = read_csv(out / "grades.csv")
    assert (rows["correct"]["status"], rows["correct"]["score"]) == ("kernel_died", "")
    assert (rows["blank"]["status"], rows["blank"]["score"]) == ("graded", "5")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "toy-course") as gb:
        with pytest.raises(MissingEntry):
            gb.find_submission("toy", "correct")
        assert gb.find_submission("toy", "blank").score == 5
        assert gb.find_submission("toy", "orphans").score == 7  # other students untouched
    assert not (course / "autograded" / "correct" / "toy").exists()
    assert not (out / "feedback" / "correct").exists()


def test_grading_that_cannot_run_exits_2(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    code = main(["nope", str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                 "--course", str(FIXTURE), "--no-progress"])
    assert code == 2
    assert "no assignment 'nope'" in capsys.readouterr().err
    assert main(["toy", str(tmp_path / "subs"), "--out", str(tmp_path / "o"),
                 "--course", str(tmp_path), "--no-progress"]) == 2


@pytest.mark.parametrize("isolation", ["userns", "none"])
def test_weaker_isolation_modes_still_grade_and_clean_up(isolation, tmp_path):
    """Without root (a user namespace) or without namespaces at all, grading still works and
    every process a student started still dies (in mode none, found by the job's token)."""
    course = tmp_path / "course"
    shutil.copytree(FIXTURE, course)
    canary = f"ORPHAN-{uuid.uuid4().hex}"
    orphan = (f"import subprocess, sys\nsubprocess.Popen([sys.executable, '-c', 'import time; "
              f"time.sleep(600)  # {canary}'], start_new_session=True)\n" + ANSWERS["mse"])
    for student, nb in {"correct": notebook(), "orphans": notebook(mse=orphan)}.items():
        (tmp_path / "subs" / student).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "subs" / student / "toy.ipynb")
    out = tmp_path / "out"
    assert main(["toy", str(tmp_path / "subs"), "--out", str(out), "--course", str(course),
                 "--isolation", isolation, "--timeout", "10", "--memory", "512",
                 "--no-progress"]) == 0
    rows = read_csv(out / "grades.csv")
    assert [(r["status"], r["score"]) for r in rows.values()] == [("graded", "7")] * 2
    if isolation == "none":
        assert "processes_killed" in rows["orphans"]["flags"]
    alive = [p for p in Path("/proc").glob("[0-9]*") if p.joinpath("cmdline").exists()
             and canary.encode() in p.joinpath("cmdline").read_bytes()]
    assert not alive


def test_collected_submissions_keep_timestamps_extensions_and_release_feedback(tmp_path,
                                                                                monkeypatch):
    """The `nbgrader collect` layout: late penalties as nbgrader computes them, an extension
    granted after a first grading honoured by the regrade, and feedback that
    `nbgrader release_feedback` can release."""
    from nbgrader.api import Gradebook

    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}:{os.environ['PATH']}")  # alembic
    course = tmp_path / "course"
    shutil.copytree(FIXTURE, course)
    with open(course / "nbgrader_config.py", "a") as f:
        f.write('c.LateSubmissionPlugin.penalty_method = "zero"\n'
                f'c.Exchange.root = "{tmp_path / "exchange"}"\n')
    (tmp_path / "exchange").mkdir()
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "toy-course") as gb:
        gb.update_or_create_assignment("toy", duedate="2024-01-02 00:00:00 UTC")
    for student, day in {"on_time": 1, "late": 3, "late_excused": 3}.items():
        folder = tmp_path / "submitted" / student / "toy"
        folder.mkdir(parents=True)
        nbformat.write(notebook(), folder / "toy.ipynb")
        (folder / "timestamp.txt").write_text(f"2024-01-0{day} 10:00:00.000000 UTC")
        (folder / "submission_secret.txt").write_text(f"secret-{student}")
    args = ["toy", str(tmp_path / "submitted"), "--out", str(tmp_path / "out"), "--course",
            str(course), "--timeout", "10", "--no-progress"]
    assert main(args) == 0
    rows = read_csv(tmp_path / "out" / "grades.csv")
    assert {s: r["score"] for s, r in rows.items()} == {"on_time": "7", "late": "0",
                                                        "late_excused": "0"}
    assert "late" in rows["late"]["flags"].split(";")
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "toy-course") as gb:
        gb.grant_extension("toy", "late_excused", days=2)
    assert main(args) == 0
    rows = read_csv(tmp_path / "out" / "grades.csv")
    assert {s: r["score"] for s, r in rows.items()} == {"on_time": "7", "late": "0",
                                                        "late_excused": "7"}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", "toy-course") as gb:
        assert gb.find_submission("toy", "late_excused").extension.days == 2
    released = subprocess.run([sys.executable, "-m", "nbgrader", "release_feedback", "toy"],
                              cwd=course, capture_output=True, text=True)
    assert released.returncode == 0, released.stderr
    assert len(list((tmp_path / "exchange").rglob("*.html"))) == 3
