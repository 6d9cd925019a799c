"""The student's Jupyter: what a student who installs from requirements.txt sees.

- JupyterLab and Notebook 7 show nbgrader's Validate button, not the instructor's tools
  (formgrader, Create Assignment) nor the course list's "Error fetching courses!" (the
  Makefile's venv turns them off: `make student-jupyter`; `make instructor-jupyter` on)
- math is typeset with MathJax's own fonts, and nothing the page asks for is refused
- `nbgrader validate` agrees with the grader: stderr in a test cell does not fail it
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from test_site import CHROMIUM, CHROMIUM_ARGS

from conftest import ROOT

BIN = Path(sys.executable).parent
EXERCISE = ROOT / "exercises/01_gradient_descent/01_gradient_descent.ipynb"
INSTRUCTOR_PLUGINS = ["formgrader", "create-assignment", "course-list", "assignment-list"]


def test_instructor_plugins_are_off_in_the_venv():
    lab = subprocess.run([str(BIN / "jupyter"), "labextension", "list"],
                         capture_output=True, text=True)
    listing = lab.stdout + lab.stderr
    disabled = listing.split("Disabled extensions:")[-1] if "Disabled" in listing else ""
    missing = [p for p in INSTRUCTOR_PLUGINS if f"@jupyter/nbgrader:{p}" not in disabled]
    assert not missing, (f"nbgrader's instructor plugins {missing} are on for students; "
                         f"run `make student-jupyter`")
    assert "@jupyter/nbgrader:validate-assignment" not in disabled


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory):
    """A Jupyter server from the venv, on a folder with the student's notebook."""
    root = tmp_path_factory.mktemp("student")
    shutil.copy(EXERCISE, root / "exercise.ipynb")
    port = free_port()
    home = tmp_path_factory.mktemp("home")  # no user-level settings from this machine
    env = dict(os.environ, HOME=str(home), JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_DATA_DIR=str(home / "data"), JUPYTER_RUNTIME_DIR=str(home / "rt"))
    server = subprocess.Popen(
        [str(BIN / "jupyter"), "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
         "--IdentityProvider.token=student", f"--ServerApp.root_dir={root}", "--allow-root",
         "--LabApp.news_url=", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"],
        env=env, stdout=subprocess.DEVNULL, stderr=open(home / "server.log", "w"))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 1).close()
                break
            except OSError:
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(30)


@pytest.mark.parametrize("ui", ["lab/tree", "notebooks"])
def test_a_student_sees_validate_and_typeset_math(jupyter, ui):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        refused, fonts = [], []
        page.on("response", lambda r: r.status >= 400 and refused.append(f"{r.status} {r.url}"))
        page.on("response", lambda r: ".woff" in r.url and fonts.append(r.status))
        page.goto(f"{jupyter}/{ui}/exercise.ipynb?token=student")
        page.wait_for_selector(".jp-Notebook mjx-container", timeout=90_000)
        page.wait_for_timeout(3000)  # the plugins' panels and requests
        text = page.inner_text("body")
        browser.close()
    assert "Validate" in text, f"{ui}: no Validate button"
    shown = [t for t in ["Formgrader", "Create Assignment", "Error fetching courses",
                         "Assignment List"] if t in text]
    assert not shown, f"{ui}: a student sees instructor tools: {shown}"
    assert not refused, f"{ui}: requests refused: {refused}"
    assert fonts and set(fonts) == {200}, f"{ui}: MathJax's fonts did not load: {fonts}"


def test_validate_agrees_with_the_grader_on_stderr(tmp_path):
    """A test cell that writes to stderr passes, as with the grader; one that raises fails."""
    nb = nbformat.read(ROOT / "solutions/01_gradient_descent/01_gradient_descent.ipynb", 4)
    tests = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")
             and not c.metadata["nbgrader"].get("solution") and c.cell_type == "code"]
    tests[0].source = ("import sys\nimport warnings\nwarnings.warn('a warning')\n"
                       "print('progress bar', file=sys.stderr)\n" + tests[0].source)
    tests[1].source += "\nraise AssertionError('this test fails on purpose')"
    nbformat.write(nb, tmp_path / "submission.ipynb")
    shutil.copy(ROOT / "nbgrader_config.py", tmp_path)
    result = subprocess.run([str(BIN / "nbgrader"), "validate", "submission.ipynb"],
                            cwd=tmp_path, capture_output=True, text=True,
                            env=dict(os.environ, PATH=f"{BIN}:{os.environ['PATH']}"))
    report = result.stdout
    assert "fails on purpose" in report, report  # a real failure is still reported
    assert "progress bar" not in report and "a warning" not in report, (
        f"validate fails a test cell for its stderr, the grader does not:\n{report}")
