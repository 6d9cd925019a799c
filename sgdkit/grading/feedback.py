"""Feedback without hidden tests: a preprocessor for ``nbgrader generate_feedback``.

nbgrader 0.9 renders the autograded notebook as it ran, and autograding put the hidden tests
back into the test cells; its feedback HTML therefore shows them, and so do the tracebacks of the
hidden tests that failed. ``HideHiddenTests`` runs last in ``GenerateFeedback.preprocessors``:

- it cuts every ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS`` region out of the cells;
- it drops every traceback frame that quotes a hidden line (the ``AssertionError`` and its
  message stay: that message is written for the student);
- it replaces any other output that quotes a hidden line (a student's code could print the
  cells it sees run).

A line counts as hidden when it is at least 8 characters long once stripped and appears nowhere
outside the hidden regions.

It also makes the page safe to open, whatever the student wrote or printed:

- a test cell shows its verdict only: the test's own error (type and message) when it failed,
  nothing when it passed; whatever the student's code printed or displayed while the test ran
  is dropped;
- a markdown cell the student wrote (the written answer) is shown verbatim, as text in a code
  block: no HTML, scripts, images or fake headings render from it;
- other outputs keep only plain text and PNG/JPEG images (no HTML, SVG, JavaScript, Markdown
  or LaTeX representations), and ``HTMLExporter.sanitize_html`` is on for the rest.

The grading command sets this up; an instructor can do the same for plain
``nbgrader generate_feedback`` with, in ``nbgrader_config.py``::

    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades
    from sgdkit.grading.feedback import HideHiddenTests
    c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
"""

import re

from jinja2 import BytecodeCache
from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_output
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Bool

from .text import clean

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MIN_LINE = 8
REMOVED = "[output removed from the feedback: it quoted hidden test code]\n"
NOT_SHOWN = "# (hidden tests: not shown in the feedback)"
SAFE_DATA = ("text/plain", "image/png", "image/jpeg")


def verbatim(text: str) -> str:
    """Markdown that shows text as it is (a fence longer than any run of backticks in it)."""
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", text)), default=0))
    return f"{fence}text\n{text}\n{fence}"


def _is_test(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade") and not meta.get("solution") and cell.cell_type == "code")


def safe(cell) -> None:
    """Outputs and markdown of one cell reduced to what renders safely (module docstring)."""
    if cell.cell_type == "markdown" and cell.metadata.get("nbgrader", {}).get("solution"):
        cell.source = verbatim(cell.source)
    if cell.cell_type != "code":
        return
    if _is_test(cell):
        errors = [o for o in cell.outputs if o.get("output_type") == "error"]
        cell.outputs = [new_output("error", ename=clean(e.get("ename", ""), 200),
                                   evalue=clean(e.get("evalue", ""), 2000),
                                   traceback=[clean(line, 4000) for line in
                                              e.get("traceback", [])[-20:]])
                        for e in errors[-1:]]
        return
    for output in cell.outputs:
        if "data" in output:
            output.data = {k: v for k, v in output.data.items() if k in SAFE_DATA}
            output.metadata = {}
        if "text" in output:
            output.text = clean(output.text)


def _split(source: str, begin: str, end: str) -> tuple[list[str], list[str]]:
    """(visible lines, hidden lines) of one cell's source."""
    visible, hidden, inside = [], [], False
    for line in source.split("\n"):
        if begin in line:
            inside = True
            visible.append(NOT_SHOWN)
        elif end in line:
            inside = False
        else:
            (hidden if inside else visible).append(line)
    return visible, hidden


def _text(output) -> str:
    """Everything an output would show, without colour codes."""
    parts = [output.get("text", ""), output.get("evalue", "")]
    parts += output.get("traceback", [])
    parts += [v if isinstance(v, str) else "".join(v) for v in output.get("data", {}).values()
              if isinstance(v, (str, list))]
    return ANSI.sub("", "\n".join(str(p) for p in parts))


class HideHiddenTests(Preprocessor):
    """Remove hidden tests, and any output quoting them, from a notebook before rendering.

    ``HideHiddenTests.removed`` counts the outputs, other than tracebacks of failed hidden
    tests, that it had to cut (per process): a student's code that printed hidden tests.
    """

    enabled = Bool(True)  # nbconvert preprocessors are off unless enabled
    removed = 0

    def preprocess(self, nb, resources):
        delimiters = ClearHiddenTests(config=self.config)
        begin, end = delimiters.begin_test_delimeter, delimiters.end_test_delimeter
        visible_lines, hidden_lines = set(), set()
        for cell in nb.cells:
            visible, hidden = _split(cell.source, begin, end)
            visible_lines.update(line.strip() for line in visible)
            hidden_lines.update(line.strip() for line in hidden)
            cell.source = "\n".join(visible)
        secret = {line for line in hidden_lines - visible_lines if len(line) >= MIN_LINE}
        leaks = 0

        def quotes(text: str) -> bool:
            return any(line in text for line in secret)

        for cell in nb.cells:
            kept = []
            for output in cell.get("outputs", []):
                if output.get("output_type") == "error":
                    frames = [f for f in output.traceback if not quotes(ANSI.sub("", f))]
                    if len(frames) < len(output.traceback):  # a failed hidden test: routine
                        output.traceback = frames or [f"{output.ename}: {output.evalue}"]
                    if quotes(output.evalue):
                        output.evalue, output.traceback = "(not shown)", [output.ename]
                elif quotes(_text(output)):
                    leaks += 1
                    output = new_output("stream", name="stdout", text=REMOVED)
                kept.append(output)
            if "outputs" in cell:
                cell.outputs = kept
            safe(cell)
        type(self).removed += leaks
        return nb, resources


class CompiledTemplates(BytecodeCache):
    """Jinja's compiled feedback templates, kept in this process (issue 16).

    nbconvert makes a new Jinja environment for every exporter, so every feedback page compiled
    its nine templates again (0.15 s of a 1.4 s job). The worker renders one page while warming
    up; the jobs it forks start with the compiled code. A template's key includes a checksum of
    its source: an edited template compiles anew.
    """

    store: dict = {}

    def load_bytecode(self, bucket) -> None:
        code = self.store.get(bucket.key)
        if code is not None:
            bucket.bytecode_from_string(code)

    def dump_bytecode(self, bucket) -> None:
        self.store[bucket.key] = bucket.bytecode_to_string()


def keep_compiled_templates() -> None:
    """Give every nbconvert template environment of this process ``CompiledTemplates``."""
    from nbconvert.exporters.templateexporter import TemplateExporter

    if getattr(TemplateExporter, "_sgdkit_compiled", False):
        return
    create = TemplateExporter._create_environment

    def with_cache(self):
        environment = create(self)
        environment.bytecode_cache = CompiledTemplates()
        return environment

    TemplateExporter._create_environment = with_cache
    TemplateExporter._sgdkit_compiled = True
