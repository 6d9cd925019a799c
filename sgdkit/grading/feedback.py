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
outside the hidden regions. The grading command sets this up; an instructor can do the same for
plain ``nbgrader generate_feedback`` with, in ``nbgrader_config.py``::

    from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor
    from nbgrader.preprocessors import GetGrades
    from sgdkit.grading.feedback import HideHiddenTests
    c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]
"""

import re

from nbconvert.preprocessors import Preprocessor
from nbformat.v4 import new_output
from nbgrader.preprocessors import ClearHiddenTests
from traitlets import Bool

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
MIN_LINE = 8
REMOVED = "[output removed from the feedback: it quoted hidden test code]\n"
NOT_SHOWN = "# (hidden tests: not shown in the feedback)"


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
        type(self).removed += leaks
        return nb, resources
