"""Unit tests of the grader's building blocks that need no batch: text, limits, execute,
feedback and submissions helpers (issue 15)."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from sgdkit.grading import execute, feedback, limits, submissions, text
from sgdkit.grading.course import alembic_head


def test_clean_makes_any_text_printable():
    dirty = "ok \ud800 \x1b[31mred\x1b[0m \x07bell\u202e tab\tline\n"
    assert text.clean(dirty) == "ok \\ud800 red bell tab\tline\n"
    assert text.clean(b"bytes") == "b'bytes'"
    assert text.clean("x" * 10, 4) == "xxxx..."


def test_depth_ignores_brackets_in_strings():
    assert text.depth('["[[[[", {"a": [1]}]') == 3
    assert text.depth("[" * 40 + "]" * 40) == 40


def fake_tree(tmp_path, version):
    """A cgroup file system of plain folders, as the kernel would lay it out."""
    if version == 2:
        parent = tmp_path / "unified" / "grader"
        parent.mkdir(parents=True)
        (parent / "cgroup.subtree_control").write_text("")
        return ({"unified": "/unified"}, {"unified": "/grader"})
    for name in limits.CONTROLLERS:
        (tmp_path / name / "grader").mkdir(parents=True)
    return ({n: f"/{n}" for n in limits.CONTROLLERS}, {n: "/grader" for n in limits.CONTROLLERS})


@pytest.mark.parametrize("version", [1, 2])
def test_a_cgroup_gets_every_limit(tmp_path, monkeypatch, version):
    mounts, own = fake_tree(tmp_path, version)
    monkeypatch.setattr(limits, "_mounts", lambda: mounts)
    monkeypatch.setattr(limits, "_own", lambda: own)
    group = limits.Cgroup.create("job", 64, 256, cpus=0.5, root=tmp_path)
    assert group.version == version
    memory = str((256 + limits.GRADER_MB) * 2**20)
    if version == 2:
        folder = tmp_path / "unified" / "grader" / "job"
        assert (folder / "pids.max").read_text() == "64\n"
        assert (folder / "memory.max").read_text() == memory + "\n"
        assert (folder / "cpu.max").read_text() == "50000 100000\n"
        assert "+memory" in (tmp_path / "unified" / "grader" / "cgroup.subtree_control").read_text()
        (folder / "memory.events").write_text("low 0\nmax 3\noom_kill 1\n")
        (folder / "pids.events").write_text("max 0\n")
        assert group.events() == {"memory"}
    else:
        assert (tmp_path / "pids" / "grader" / "job" / "pids.max").read_text() == "64\n"
        assert (tmp_path / "memory" / "grader" / "job" / "memory.limit_in_bytes"
                ).read_text() == memory + "\n"
        assert (tmp_path / "cpu" / "grader" / "job" / "cpu.cfs_quota_us").read_text() == "50000\n"
        (tmp_path / "pids" / "grader" / "job" / "pids.events").write_text("max 5\n")
        (tmp_path / "memory" / "grader" / "job" / "memory.oom_control").write_text(
            "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n")
        assert group.events() == {"processes"}
    group.add(12345)
    assert group.pids() == [12345]


def test_no_cgroup_where_none_can_be_made(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "_mounts", lambda: {})
    monkeypatch.setattr(limits, "_own", lambda: {})
    assert limits.Cgroup.create("job", 64, 256, root=tmp_path) is None
    assert "NO cgroups" in limits.describe("", 64, 256)
    assert "cgroup v1" in limits.describe("v1", 64, 256)


@pytest.mark.skipif(os.geteuid() != 0 or not limits.available(64, 256),
                    reason="needs root and a writable cgroup hierarchy")
def test_a_real_cgroup_stops_a_fork_bomb_and_is_removed():
    group = limits.Cgroup.create(f"sgdkit-test-{os.getpid()}", 16, 128)
    bomb = ("import os, time\nfor _ in range(40):\n    try:\n"
            "        os.fork() or (time.sleep(30), os._exit(0))\n"
            "    except OSError:\n        break\ntime.sleep(30)")
    proc = subprocess.Popen([sys.executable, "-c", bomb],
                            preexec_fn=lambda: group.add(os.getpid()))
    for _ in range(100):
        if "processes" in group.events():
            break
        subprocess.run(["sleep", "0.05"])
    assert "processes" in group.events() and len(group.pids()) <= 16
    group.remove()
    assert proc.wait() == -9 and not any(f.exists() for f in group.folders.values())


def test_the_budget_splits_the_job_limit_between_cells(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(execute.time, "monotonic", lambda: now[0])
    budget = execute.Budget(per_cell=10, per_job=25)
    cell = new_code_cell("x")
    assert budget(cell) == 10
    now[0] += 20
    assert budget(cell) == 5 and budget.limited == [f"#{cell.id}"]
    now[0] += 30
    assert budget(cell) == execute.MIN_S
    probe = new_code_cell("probe")
    probe.id = "sgdkit-probes-0"
    assert budget(probe) == 10  # the grader's checks always get a full cell's time
    import copy

    assert copy.deepcopy(budget) is budget


def test_feedback_shows_verdicts_and_text_only():
    test = new_code_cell("assert f() == 1")
    test.metadata["nbgrader"] = {"grade": True, "solution": False, "grade_id": "t", "points": 1}
    test.outputs = [new_output("stream", name="stdout", text="student print"),
                    new_output("error", ename="AssertionError", evalue="f() should be 1 \ud800",
                               traceback=["\x1b[31mTraceback\x1b[0m"])]
    answer = new_markdown_cell("<script>x</script> ```` fence")
    answer.metadata["nbgrader"] = {"grade": True, "solution": True, "grade_id": "a"}
    code = new_code_cell("show()")
    code.outputs = [new_output("display_data", data={"text/html": "<script>x</script>",
                                                     "text/plain": "shown"})]
    for cell in (test, answer, code):
        feedback.safe(cell)
    assert [o.output_type for o in test.outputs] == ["error"]
    assert test.outputs[0].evalue == "f() should be 1 \\ud800"
    assert answer.source.startswith("`````text\n<script>")
    assert code.outputs[0].data == {"text/plain": "shown"}


def test_contain_is_installed_once():
    execute.contain()
    execute.contain()
    from nbclient import NotebookClient

    assert NotebookClient._sgdkit_contained


def test_zip_entries_are_counted_without_opening_the_zip(tmp_path):
    path = tmp_path / "a.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for i in range(7):
            archive.writestr(f"{i}.txt", "x")
    assert submissions.zip_entries(path) == 7
    (tmp_path / "b.zip").write_bytes(b"not a zip")
    assert submissions.zip_entries(tmp_path / "b.zip") == -1


def test_a_folder_with_too_many_files_is_rejected(tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "MAX_FILES", 3)
    for i in range(5):
        (tmp_path / "s" / f"{i}.txt").parent.mkdir(exist_ok=True)
        (tmp_path / "s" / f"{i}.txt").write_text("x")
    release = new_notebook()
    sub = submissions.load(tmp_path / "s", {"toy": release})
    assert sub.status == "rejected" and "more than 3 files" in sub.message


def test_an_unforeseen_error_rejects_that_entry_only(tmp_path, monkeypatch):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        nbformat.write(new_notebook(), tmp_path / name / "toy.ipynb")

    def broken(entry, releases):
        if entry.name == "a":
            raise RecursionError("a bug of ours")
        return submissions.Submission("b", "b")

    monkeypatch.setattr(submissions, "load", broken)
    found = submissions.discover(Path(tmp_path), {"toy": new_notebook()})
    assert [(s.student, s.status) for s in found] == [("a", "rejected"), ("b", "")]
    assert "RecursionError" in found[0].message


def graded_job(tmp_path, outputs, **extra):
    """A job folder whose autograded notebook has one cell with these outputs."""
    folder = tmp_path / "course" / "autograded" / "s" / "toy"
    folder.mkdir(parents=True)
    cell = new_code_cell("x")
    cell.metadata["nbgrader"] = {"grade_id": "slow"}
    cell.outputs = outputs
    nbformat.write(new_notebook(cells=[cell]), folder / "toy.ipynb")
    (tmp_path / "exits").mkdir()
    return dict({"job_dir": str(tmp_path), "student": "s", "timeout": 10, "job_timeout": 30},
                **extra)


def test_classify_names_the_cell_and_the_limit(tmp_path):
    from sgdkit.grading.worker import classify

    timeout = [new_output("error", ename="CellTimeoutError", evalue="", traceback=[])]
    budget = execute.Budget(10, 30)
    budget.limited.append("slow")
    status, message, _ = classify(graded_job(tmp_path / "a", timeout, budget=budget), True, "")
    assert status == "timeout" and "toy:slow" in message and "--job-timeout" in message
    status, message, _ = classify(graded_job(tmp_path / "b", timeout), True, "")
    assert status == "timeout" and "limit per cell" in message
    memory = [new_output("error", ename="MemoryError", evalue="", traceback=[]),
              new_output("stream", name="stdout", text=execute.TRUNCATED)]
    status, message, flags = classify(graded_job(tmp_path / "c", memory), True, "")
    assert (status, flags) == ("graded", ["memory_limit", "output_truncated"])


def test_classify_says_how_a_kernel_died_or_why_nbgrader_failed(tmp_path):
    from sgdkit.grading.worker import classify

    job = graded_job(tmp_path, [])
    (tmp_path / "exits" / "k.json").write_text('{"exitcode": -11}')
    (tmp_path / "exits" / "broken.json").write_text("{")
    assert "segmentation fault" in classify(job, False, "DeadKernelError")[1]
    (tmp_path / "exits" / "k.json").write_text('{"exitcode": 3}')
    assert "code 3" in classify(job, False, "Kernel died")[1]
    assert classify(job, False, "CellTimeoutError")[0] == "timeout"
    status, message, _ = classify(job, False, "line\nValueError: \ud800 bad\n")
    assert status == "error" and "ValueError: \\ud800 bad" in message


@pytest.mark.skipif(os.geteuid() != 0, reason="mount namespaces need root")
def test_reachable_lets_another_uid_reach_a_closed_folder(tmp_path):
    """In a mount namespace of its own, a folder under a closed one (mode 0700) is reachable
    by another uid; outside, nothing changed."""
    from sgdkit.grading import sandbox

    closed = tmp_path / "closed"
    (closed / "inner" / "python").mkdir(parents=True)
    (closed / "secret.txt").write_text("x")
    closed.chmod(0o700)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            sandbox.unshare(sandbox.CLONE_NEWNS)
            sandbox._check(sandbox._libc.mount(None, b"/", None, sandbox.ctypes.c_ulong(
                sandbox.MS_REC | sandbox.MS_PRIVATE), None), "private")
            sandbox.reachable([str(closed / "inner" / "python")])
            listed = sorted(os.listdir(closed))
            code = 0 if listed == ["inner"] and os.stat(closed).st_mode & 0o005 else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert sorted(os.listdir(closed)) == ["inner", "secret.txt"]


def test_describe_names_every_mode():
    from sgdkit.grading import sandbox

    assert "root only sets up" in sandbox.describe("root")
    assert "user namespace" in sandbox.describe("userns")
    assert "NO namespaces" in sandbox.describe("none")
    args = sandbox.bwrap_args({"keep_ro": [sys.prefix], "runtime_dir": "/tmp/a/run",
                               "files_dir": "/tmp/a/files", "uid": 64000})
    assert args[0] == "bwrap" and "--cap-add" in args
    assert args[-4:] == ["--remount-ro", "/", "--chdir", "/tmp"]
    assert args.index("--tmpfs") < args.index("/tmp/a/run")  # binds after the tmpfs over /tmp


def test_help_says_the_timeout_is_per_cell_and_names_the_job_limit(capsys):
    from sgdkit.grading import main

    with pytest.raises(SystemExit):
        main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "seconds per cell" in shown and "--job-timeout" in shown and "per notebook" not in shown


def test_the_gradebook_revision_is_the_one_the_alembic_command_prints():
    """course.alembic_head replaces nbgrader's call of the `alembic` command (2 s a gradebook):
    it must name the same schema revision."""
    bin_dir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    printed = subprocess.run([sys.executable, "-c", "import nbgrader.api; "
                              "print(nbgrader.api.get_alembic_version())"],
                             capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert printed and alembic_head() == printed
