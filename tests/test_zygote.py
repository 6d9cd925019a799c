"""Kernels forked from the fork server (``sgdkit.grading.zygote``): the same sandbox as the
bubblewrap path, nothing shared between two students' kernels, and the plain path when asked.

One worker grades two students one after the other, so both kernels come from the same warm
process; each reports what its kernel can see and whether anything the other left behind is
there, then sets markers of its own (a module attribute, a file in /tmp, an environment variable).
"""

import json
import os
import shutil
import sys
from pathlib import Path

import nbformat
from test_grading import ANSWERS, FIXTURE, notebook, read_csv

from sgdkit.grading import main, zygote
from sgdkit.grading.limits import SLOT_UID
from sgdkit.grading.sandbox import probe

# the top folders of the sandbox: the system's, and those holding Python and sgdkit
ALLOWED = {"usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "proc", "dev", "tmp"}
ALLOWED |= {os.path.realpath(p).split("/")[1] for p in (sys.prefix, sys.base_prefix,
                                                        Path(zygote.__file__).parents[1])}
LOOK = """import json, os, socket, sys
import numpy, sgdkit
seen = {"uid": os.getuid(), "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()),
        "root": sorted(os.listdir("/")), "course": os.path.exists(%r),
        "tmp": sorted(os.listdir("/tmp")), "env": os.environ.get("LEFT_BY_A_STUDENT"),
        "module": getattr(sgdkit, "left_by_a_student", None),
        "numpy": getattr(numpy, "left_by_a_student", None),
        "interfaces": [name for _, name in socket.if_nameindex()],
        "usr_writable": os.access("/usr", os.W_OK)}
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2)
    seen["network"] = True
except OSError:
    seen["network"] = False
print("SEEN" + json.dumps(seen))
sgdkit.left_by_a_student = numpy.left_by_a_student = %r
os.environ["LEFT_BY_A_STUDENT"] = %r
open("/tmp/left-by-a-student", "w").write("x")
"""


def grade(tmp_path, capsys, *extra):
    course = tmp_path / "course"
    shutil.copytree(FIXTURE, course)
    for student in ("first", "second"):
        look = LOOK % (str(course), student, student) + ANSWERS["mse"]
        (tmp_path / "subs" / student).mkdir(parents=True)
        nbformat.write(notebook(mse=look), tmp_path / "subs" / student / "toy.ipynb")
    code = main(["toy", str(tmp_path / "subs"), "--out", str(tmp_path / "out"), "--course",
                 str(course), "--workers", "1", "--timeout", "20", "--memory", "512",
                 "--no-progress", *extra])
    printed = capsys.readouterr().out
    seen = {}
    for student in ("first", "second"):
        nb = nbformat.read(course / "autograded" / student / "toy" / "toy.ipynb", as_version=4)
        text = "".join(o.get("text", "") for c in nb.cells for o in c.get("outputs", []))
        seen[student] = json.loads(text.split("SEEN", 1)[1].splitlines()[0])
    return code, printed, read_csv(tmp_path / "out" / "grades.csv"), seen


def test_forked_kernels_are_sandboxed_and_share_nothing(tmp_path, capsys):
    assert probe() == "root", "the fork server needs root (as the course's tests run)"
    code, printed, rows, seen = grade(tmp_path, capsys)
    assert code == 0
    assert "kernels: forked from a warm process per worker" in printed
    assert [(r["status"], r["score"]) for r in rows.values()] == [("graded", "7")] * 2
    for student, facts in seen.items():
        assert facts["uid"] == SLOT_UID, facts  # worker slot 0, never root
        assert facts["pids"][0] == 1 and len(facts["pids"]) <= 4, facts  # its own PID namespace
        assert not facts["course"] and not facts["usr_writable"], facts
        assert set(facts["root"]) <= ALLOWED, facts  # the allow-list, nothing else
        assert facts["interfaces"] == ["lo"] and not facts["network"], facts
        # nothing the other student's kernel left: module state, environment, files
        assert facts["module"] is None and facts["numpy"] is None and facts["env"] is None, facts
        assert "left-by-a-student" not in facts["tmp"], facts


def test_without_the_fork_server_the_same_sandbox_and_scores(tmp_path, capsys):
    code, printed, rows, seen = grade(tmp_path, capsys, "--no-fork-server")
    assert code == 0
    assert "kernels: started afresh for each notebook (--no-fork-server)" in printed
    assert [(r["status"], r["score"]) for r in rows.values()] == [("graded", "7")] * 2
    assert all(f["uid"] == SLOT_UID and not f["course"] and f["module"] is None
               for f in seen.values()), seen


def test_imports_are_the_notebooks_top_level_ones():
    sources = ["import numpy as np\nfrom sgdkit.check import grad_check\nimport os, torch.nn",
               "def f():\n    import secret_inside_a_function\n", "from . import x",
               "import matplotlib.pyplot as plt", "this is not python("]
    assert zygote.imports(sources) == ["numpy", "os", "sgdkit.check", "torch.nn"]


def test_the_fork_server_preloads_what_sgdkit_imports_lazily():
    """sgdkit imports scikit-learn inside its functions (``import sgdkit.data`` stays light);
    LAZY names those imports, so a kernel forked for a notebook that uses sgdkit.data does not
    import scikit-learn again (a second of every job). Torch is left to the notebooks' own
    imports: it would cost a notebook that does not use it its address space."""
    import ast

    for path in sorted(Path(zygote.__file__).parents[1].glob("*.py")):
        lazy = set()
        for function in ast.walk(ast.parse(path.read_text())):
            if isinstance(function, ast.FunctionDef):
                for node in ast.walk(function):
                    if isinstance(node, ast.ImportFrom) and node.module == "sklearn":
                        lazy |= {f"sklearn.{alias.name}" for alias in node.names}
                    elif isinstance(node, ast.ImportFrom) and node.module:
                        lazy.add(node.module)
        heavy = {name for name in lazy if name.startswith("sklearn")}
        assert heavy <= set(zygote.LAZY.get(f"sgdkit.{path.stem}", ())), (path.stem, heavy)
