"""Verdicts that do not trust the student's kernel: probes, compared outside it.

A test cell runs in the student's kernel, next to the student's code, which can rewrite cells
before they run, remove ``assert`` statements, replace ``numpy.allclose``, swallow exceptions or
return objects that equal anything. So a passing test cell proves little by itself. Probes add
evidence that such tricks cannot fake:

1. the instructor writes ``solutions/<id>/<notebook>.probes.py`` (never released to students:
   ``nbgrader_config.py`` ignores ``*.probes.py``). It calls the student's functions on inputs
   of its own and hands each result to ``probe``, named after the test cell it backs::

       from sgdkit.grading.probes import probe

       probe("test_gd", "gd on a 3-d quadratic", lambda: gd(lambda w: a * w, w0, 0.05, 7))

   It computes no expected values: they exist nowhere in the student's kernel.
2. the grader appends that file to every notebook it grades, the solution included, as one
   cell per test cell (``ONLY`` says which test cell's probes it runs: a function that loops
   forever costs the points of its own cells only). ``probe`` prints each result as one line
   of plain numbers (``RECORD`` + JSON);
3. outside the kernel, ``rescore`` reads those lines from the graded notebook, removes the cells,
   and compares them with the solution's (``compare``, with the solution's tolerances). A test
   cell earns its points only if it ran without an error *and* its probes agree. A cell that
   "passed" in the kernel while its probes disagree, or recorded nothing, is the evidence
   behind the ``cheat_suspected`` flag.

Getting the probes right needs a working solution; a student's code can still rewrite the probe
cell, print anything or patch ``probe``, but not know what numbers to print without solving the
task. Writes to stderr (warnings, progress bars) do not fail a cell: only an error does.
"""

import contextlib
import io
import json
import re

from .text import clean, load_json

RECORD = "@sgdkit-probe "
CELL_ID = "sgdkit-probes"  # the id of the appended cell
RTOL, ATOL = 1e-4, 1e-6  # defaults: float32 answers pass, wrong ones do not
MAX_RECORD_BYTES = 4_000_000  # one record line; longer ones are not read (nothing recorded)
ONLY = None  # run the probes of this test cell only (set by each appended cell)


# -- in the kernel ---------------------------------------------------------------------------
def plain(value):
    """value as JSON-able plain data: numbers become {"shape", "array"} of float64."""
    import numpy as np

    from sgdkit.check import _to_numpy  # torch tensors: detached, on the CPU

    if value is None or isinstance(value, (bool, np.bool_, str)):
        return {"exact": value if not isinstance(value, np.bool_) else bool(value)}
    if isinstance(value, (tuple, list)) and value and not all(
            isinstance(v, (int, float)) for v in value):
        try:
            parts = [np.asarray(_to_numpy(v), dtype=np.float64) for v in value]
        except (TypeError, ValueError, RuntimeError):
            parts = None
        if parts is None or len({p.shape for p in parts}) > 1:
            return {"parts": [plain(v) for v in value]}
        value = np.stack(parts)
    array = np.array(_to_numpy(value), dtype=np.float64)  # a copy: later changes do not matter
    return {"shape": list(array.shape), "array": array.ravel().tolist()}


def probe(cell: str, name: str, thunk, rtol: float = RTOL, atol: float = ATOL) -> None:
    """Call thunk() and print its result for the grader; an error is recorded, not raised
    (except an interrupt: a cell past its time limit stops).

    cell: the grade_id of the test cell this backs; name: what is checked (shown to the
    instructor); rtol, atol: how close to the solution's value counts as the same.
    The student code's own prints and warnings are swallowed, so they cannot push the record
    out of the cell's output.
    """
    if ONLY is not None and cell != ONLY:
        return
    record = {"cell": cell, "name": name, "rtol": rtol, "atol": atol}
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            result = thunk()
            record["value"] = plain(result)
    except Exception as err:
        record["error"] = f"{type(err).__name__}: {str(err)[:200]}"
        record["not_numbers"] = "value" not in record and "result" in locals()
    except BaseException as err:  # interrupted (the cell timed out) or SystemExit: stop here
        record["error"] = f"{type(err).__name__}: {str(err)[:200]}"
        print(RECORD + json.dumps(record), flush=True)
        raise
    print(RECORD + json.dumps(record), flush=True)


# -- outside the kernel ----------------------------------------------------------------------
def is_test(cell) -> bool:
    """An autograded test cell (nbgrader: graded, not a solution, code)."""
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("grade") and not meta.get("solution") and cell.cell_type == "code")


def probe_cells(source: str, release) -> list:
    """The cells the grader appends to a notebook: the probes file once per test cell of the
    released notebook."""
    from nbformat.v4 import new_code_cell

    tests = [cell.metadata["nbgrader"]["grade_id"] for cell in release.cells if is_test(cell)]
    cells = []
    for i, grade_id in enumerate(tests):
        cell = new_code_cell(f"import sgdkit.grading.probes\n\nsgdkit.grading.probes.ONLY = "
                             f"{grade_id!r}\n{source}")
        cell.id = f"{CELL_ID}-{i}"
        cells.append(cell)
    return cells


def take(nb) -> tuple[list, dict]:
    """Remove the appended probe cells from nb; (their records, {test cell: the error its probe
    cell ended with})."""
    records, errors = [], {}
    while nb.cells and str(nb.cells[-1].get("id", "")).startswith(CELL_ID):
        cell = nb.cells.pop()
        source = cell.source if isinstance(cell.source, str) else "".join(cell.source)
        only = re.search(r"ONLY = '([^']*)'", source)
        only = only.group(1) if only else "?"
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream" and output.get("name") == "stdout":
                for line in output.get("text", "").split("\n"):
                    if line.startswith(RECORD):
                        try:  # bounded: the student's code shaped it (a 980-deep list...)
                            records.append(load_json(line[len(RECORD):], MAX_RECORD_BYTES))
                        except ValueError:
                            pass
            elif output.get("output_type") == "error":
                errors[only] = clean(f"{output.get('ename')}: {output.get('evalue', '')}", 200)
    return records, errors


def by_cell(records: list) -> dict:
    """{cell: [record, ...]} in the order they were printed."""
    cells = {}
    for record in records:
        if isinstance(record, dict) and isinstance(record.get("cell"), str):
            cells.setdefault(record["cell"], []).append(record)
    return cells


def differs(got, want, rtol: float, atol: float) -> str:
    """Why the value got is not want ('' when they agree); both made by ``plain``."""
    import numpy as np

    if not isinstance(got, dict):
        return "no value"
    if "exact" in want:
        return "" if got.get("exact", object()) == want["exact"] else (
            f"{str(got.get('exact', 'a number'))[:40]} instead of {str(want['exact'])[:40]}")
    if "parts" in want:
        parts = got.get("parts")
        if not isinstance(parts, list) or len(parts) != len(want["parts"]):
            return f"not {len(want['parts'])} values"
        return next((f"part {i}: {why}" for i, (g, w) in enumerate(zip(parts, want["parts"]))
                     if (why := differs(g, w, rtol, atol))), "")
    try:
        a = np.array(got["array"], dtype=np.float64).reshape(got["shape"])
    except (KeyError, TypeError, ValueError):
        return "not an array of numbers"
    e = np.array(want["array"], dtype=np.float64).reshape(want["shape"])
    if a.shape != e.shape:
        return f"shape {a.shape} instead of {e.shape}"
    bad = ~np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return ""
    with np.errstate(invalid="ignore", over="ignore"):
        gaps = np.where(bad & np.isfinite(a) & np.isfinite(e), np.abs(a - e), -1.0)
        worst = float(gaps.max())
    largest = f", largest difference {worst:.3g}" if worst >= 0 else ", not finite"
    return f"{int(bad.sum())} of {a.size} numbers differ{largest}"


def compare(got: list, want: list) -> list[str]:
    """Problems of one cell's records against the solution's (an empty list: they agree)."""
    problems = []
    for i, ref in enumerate(want):
        mine = got[i] if i < len(got) else None
        if mine is None or mine.get("name") != ref.get("name"):
            problems.append(f"{ref['name']}: nothing recorded")
        elif "error" in mine:
            problems.append(f"{ref['name']}: raised {mine['error']}")
        elif why := differs(mine.get("value"), ref["value"], ref["rtol"], ref["atol"]):
            problems.append(f"{ref['name']}: {why}")
    if len(got) > len(want):
        problems.append(f"{len(got) - len(want)} records more than the solution makes")
    return problems


def _ran_ok(cell) -> bool:
    """Did a test cell run without an error? (stderr output does not count against it.)"""
    return not any(o.get("output_type") == "error" for o in cell.get("outputs", []))


def rescore(nb, reference: dict | None) -> dict:
    """Verdict per autograded test cell of one graded notebook (the probe cell is removed).

    reference: {cell: [records]} of the solution, or None (this is the solution: no
    comparison). Returns {"cells": {grade_id: {"points", "score", "problems", "ran_ok"}},
    "records": {cell: [records]}, "suspect": [lines], "errors": {cell: the error its probe
    cell ended with}}.
    """
    records, errors = take(nb)
    mine = by_cell(records)
    cells, suspect = {}, []
    for cell in filter(is_test, nb.cells):
        meta = cell.metadata["nbgrader"]
        grade_id, points = meta["grade_id"], float(meta.get("points", 0))
        ran_ok = _ran_ok(cell)
        problems = []
        if reference is not None and reference.get(grade_id):
            problems = compare(mine.get(grade_id, []), reference[grade_id])
        cells[grade_id] = {"points": points, "ran_ok": ran_ok, "problems": problems,
                           "score": points if ran_ok and not problems else 0.0}
        # a cell that passed although its probes disagree: the kernel's verdict was faked, or
        # the check was skipped (unless the probe cell itself ended with an error, e.g. a
        # timeout). A student's function that raised on a probe's input failed honestly on an
        # input the test did not try: no evidence of a trick (a result that is not numbers is).
        honest = {f"{r.get('name')}: raised {r['error']}" for r in mine.get(grade_id, [])
                  if "error" in r and not r.get("not_numbers")}
        if ran_ok and set(problems) - honest and not (
                grade_id in errors and all("nothing recorded" in p for p in problems)):
            suspect.append(f"{grade_id} passed in the kernel, but the grader's own check "
                           f"disagrees ({'; '.join(problems)[:300]})")
    return {"cells": cells, "records": mine, "suspect": suspect, "errors": errors}
