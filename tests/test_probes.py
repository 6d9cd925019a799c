"""``sgdkit.grading.probes``: what a probe records, and how the grader compares and scores it.

In-process: the kernel side (``probe``, ``plain``) runs here exactly as in a student's kernel,
and the grader side (``take``, ``compare``, ``rescore``) works on notebooks built here.
"""

import contextlib
import io
import json

import nbformat
import numpy as np
import pytest
import torch
from nbformat.v4 import new_code_cell, new_notebook, new_output

from sgdkit.grading import probes


def recorded(cell, name, thunk, **tolerances):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        probes.probe(cell, name, thunk, **tolerances)
    line = out.getvalue()
    assert line.startswith(probes.RECORD) and line.endswith("\n") and line.count("\n") == 1
    return json.loads(line[len(probes.RECORD):])


def test_plain_turns_results_into_numbers():
    assert probes.plain(2) == {"shape": [], "array": [2.0]}
    assert probes.plain([1, 2]) == {"shape": [2], "array": [1.0, 2.0]}
    assert probes.plain(np.eye(2, dtype=np.float32))["shape"] == [2, 2]
    assert probes.plain(torch.ones(3, requires_grad=True) * 2)["array"] == [2.0, 2.0, 2.0]
    assert probes.plain((torch.ones(2), torch.zeros(2)))["shape"] == [2, 2]  # same shapes: stacked
    mixed = probes.plain((np.ones(2), 3.0, "sgd", True, None))
    assert [list(part) for part in mixed["parts"]] == [["shape", "array"]] * 2 + [["exact"]] * 3
    with pytest.raises(TypeError):
        probes.plain(object())


def test_a_probe_records_the_value_and_swallows_the_students_output():
    def noisy():
        print("debug output")
        import sys
        print("progress", file=sys.stderr)
        return np.arange(3)

    record = recorded("test_f", "f on [0, 1, 2]", noisy, rtol=1e-3)
    assert record == {"cell": "test_f", "name": "f on [0, 1, 2]", "rtol": 1e-3,
                      "atol": probes.ATOL, "value": {"shape": [3], "array": [0.0, 1.0, 2.0]}}


class AlwaysEqual:
    def __eq__(self, other):
        return True


def test_errors_and_fake_objects_are_recorded_not_raised():
    assert recorded("t", "n", lambda: 1 / 0)["error"].startswith("ZeroDivisionError")
    assert recorded("t", "n", AlwaysEqual)["error"].startswith("TypeError")


def test_an_interrupt_is_recorded_and_stops_the_cell():
    def interrupted():
        raise KeyboardInterrupt

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(KeyboardInterrupt):
        probes.probe("t", "n", interrupted)
    assert "KeyboardInterrupt" in out.getvalue()


def test_only_the_named_cells_probes_run(monkeypatch):
    monkeypatch.setattr(probes, "ONLY", "test_g")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        probes.probe("test_f", "skipped", lambda: 1)
        probes.probe("test_g", "kept", lambda: 2)
    assert out.getvalue().count(probes.RECORD) == 1 and '"kept"' in out.getvalue()


def test_differs_says_why():
    value = probes.plain
    assert probes.differs(value([1.0, 2.0]), value([1.0, 2.0 + 1e-9]), 1e-6, 0) == ""
    assert probes.differs(value(np.float32(1 / 3)), value(1 / 3), 1e-4, 1e-6) == ""
    assert "shape (3,) instead of (2,)" in probes.differs(value([1, 2, 3]), value([1, 2]), 1e-6, 0)
    assert "largest difference 0.5" in probes.differs(value([1.0, 2.5]), value([1.0, 2.0]),
                                                      1e-6, 0)
    assert "not finite" in probes.differs(value([np.nan]), value([1.0]), 1e-6, 0)
    assert probes.differs(value(True), value(False), 0, 0) == "True instead of False"
    assert "part 1" in probes.differs(value((np.ones(2), 1.0)), value((np.ones(2), 2.0)), 0, 0)
    assert probes.differs({"error": "x"}.get("value"), value(1.0), 0, 0) == "no value"


def test_compare_lists_what_is_missing_wrong_or_extra():
    ref = [{"name": "a", "value": probes.plain(1.0), "rtol": 0, "atol": 0},
           {"name": "b", "value": probes.plain(2.0), "rtol": 0, "atol": 0}]
    same = [dict(r) for r in ref]
    assert probes.compare(same, ref) == []
    wrong = [dict(ref[0]), {"name": "b", "error": "NameError: f"}]
    assert probes.compare(wrong, ref) == ["b: raised NameError: f"]
    assert probes.compare(same[:1], ref) == ["b: nothing recorded"]
    assert probes.compare(same + same[:1], ref) == ["1 records more than the solution makes"]


def graded_notebook(test_outputs, probe_lines, probe_error=None):
    """A graded notebook: one test cell (with its outputs), then its probe cell."""
    test = new_code_cell("assert f() == 1")
    test.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                 "grade_id": "test_f", "points": 2}
    test.outputs = test_outputs
    nb = new_notebook(cells=[test])
    nb.cells += probes.probe_cells("probe(...)", nb)
    text = "".join(probes.RECORD + json.dumps(r) + "\n" for r in probe_lines)
    nb.cells[-1].outputs = [new_output("stream", name="stdout", text=text)]
    if probe_error:
        nb.cells[-1].outputs.append(new_output("error", ename=probe_error, evalue="",
                                               traceback=[]))
    return nbformat.reads(nbformat.writes(nb), as_version=4)  # as the grader reads it


RIGHT = {"cell": "test_f", "name": "f()", "rtol": 0, "atol": 0, "value": probes.plain(1.0)}
WRONG = dict(RIGHT, value=probes.plain(0.0))
REFERENCE = {"test_f": [RIGHT]}
ERROR = [new_output("error", ename="AssertionError", evalue="", traceback=[])]
STDERR = [new_output("stream", name="stderr", text="a warning\n")]


@pytest.mark.parametrize("outputs, lines, probe_error, score, suspect", [
    ([], [RIGHT], None, 2, False),          # passed, probes agree
    (STDERR, [RIGHT], None, 2, False),      # a warning does not fail a cell
    (ERROR, [WRONG], None, 0, False),       # an honest failure
    ([], [WRONG], None, 0, True),           # passed in the kernel, wrong on the probe: faked
    ([], [], None, 0, True),                # passed, but the probe cell recorded nothing
    (ERROR, [], "KeyboardInterrupt", 0, False),  # the probes timed out: no evidence
])
def test_rescore(outputs, lines, probe_error, score, suspect):
    nb = graded_notebook(outputs, lines, probe_error)
    verdict = probes.rescore(nb, REFERENCE)
    assert [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells] == ["test_f"]
    assert verdict["cells"]["test_f"]["score"] == score
    assert bool(verdict["suspect"]) == suspect


def test_the_solutions_own_run_is_not_compared():
    verdict = probes.rescore(graded_notebook([], [RIGHT]), None)
    assert verdict["cells"]["test_f"]["score"] == 2 and verdict["records"] == REFERENCE
