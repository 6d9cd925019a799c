"""Finding each student's notebooks in a submissions folder, and checking them before grading.

``SUBMISSIONS`` holds one folder or one zip file per student, as learning-management systems
export them (and as ``nbgrader collect`` leaves them in ``submitted/``); the student id is the
folder name or the zip's stem, made file-name safe by an injective encoding (``text.student_id``:
``李娜`` stays ``李娜``, ``Ada Lovelace`` becomes ``Ada~20Lovelace``). Only the assignment's
notebooks are taken from it, found by name at any depth; nothing else a student sent (an
extra ``numpy.py``, data, links) is ever copied.

Nothing here runs student code. Each notebook is parsed as JSON, read as a notebook, then its
nbgrader metadata is compared with the released student version:

- a cell whose nbgrader metadata was changed (``schema_version`` 99, points, locked, ...) gets
  the released metadata back;
- a second copy of a graded cell (a copy-pasted test cell) and cells with unknown ids become
  ordinary cells;
- a graded cell turned into another kind of cell (a test cell re-typed as markdown) gets its
  kind back;
- an edited or deleted test cell is noted: nbgrader restores it from the source when grading.

Any of these sets the ``tampered`` flag, with what was found in the message. Code that reaches
for the grading machinery (input or AST transformers, a custom exception handler, replaced
comparison functions, ``__eq__``, ``NBGRADER_EXECUTION``, ...) and Python files that would
shadow a module (``numpy.py``) set ``cheat_suspected``: they are evidence for the instructor;
the score never depends on them (see probes.py). Problems that leave nothing to grade reject
the submission, with a message saying what to do.
"""

import importlib.util
import json
import re
import struct
import sys
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from .text import clean, student_id

MAX_NOTEBOOK_MB = 20  # parsing one takes the parent about 25 times that (500 MB) at most
MAX_FILES = 5000  # entries of a zip (checked before the zip is opened) or files in a folder
MAX_ARCHIVE_MB = 200  # uncompressed size of the files taken from one zip, together
SKIP_PARTS = {".ipynb_checkpoints", "__MACOSX"}
META_KEYS = ("grade", "solution", "locked", "task", "points", "schema_version")
# what `nbgrader collect` leaves next to a notebook: the submission time (late penalties) and
# the secret `nbgrader release_feedback` needs; both are carried, nothing else
EXTRAS = ("timestamp.txt", "submission_secret.txt")
# code no honest answer in this course needs, and what it can do to a grader (read as evidence)
SUSPICIOUS = {
    r"input_transformer|InputTransformer": "an IPython input transformer (rewrites cells "
                                           "before they run)",
    r"ast_transformers|NodeTransformer": "an AST transformer (rewrites code before it runs)",
    r"set_custom_exc|excepthook|showtraceback": "a custom exception handler (can swallow "
                                                "failing tests)",
    r"NBGRADER_EXECUTION|NBGRADER_": "a check of whether it is being graded (NBGRADER_*)",
    r"\b(isclose|allclose|assert_close|assert_allclose|array_equal|testing)\s*=[^=]|"
    r"setattr\(\s*(np|numpy|math|torch)\b": "a replaced comparison function",
    r"def\s+__(eq|ne|bool|abs|lt|gt|le|ge)__": "an object that redefines comparison",
    r"events\.register|pre_run_cell|post_run_cell|sys\.settrace|sys\.setprofile":
        "a hook on cell execution",
    r"sys\.modules\s*\[|import\s+builtins|__builtins__": "a rewrite of modules or builtins",
}


@dataclass
class Submission:
    student: str
    origin: str  # what the student id came from: a folder or a zip file
    notebooks: dict = field(default_factory=dict)  # notebook name -> repaired NotebookNode
    extras: dict = field(default_factory=dict)  # timestamp.txt, submission_secret.txt
    status: str = ""  # "" (to grade) or "rejected"
    message: str = ""
    flags: list = field(default_factory=list)

    def reject(self, message: str) -> "Submission":
        self.status, self.message = "rejected", message
        return self


def suspicious(nb, release) -> list[str]:
    """What the student's code (cells not in the released notebook) reaches for."""
    given = {cell.source for cell in release.cells}
    code = "\n".join(cell.source for cell in nb.cells
                     if cell.cell_type == "code" and cell.source not in given)
    return [what for pattern, what in SUSPICIOUS.items() if re.search(pattern, code)]


def shadowing(names) -> list[str]:
    """The .py files among names that would shadow a module if imported (numpy.py, math.py)."""
    found = []
    for name in names:
        path = Path(name)
        module = path.parent.name if path.name == "__init__.py" else path.stem
        if module.isidentifier() and (module in sys.stdlib_module_names
                                      or importlib.util.find_spec(module) is not None):
            found.append(str(path))
    return sorted(found)


def zip_entries(path: Path) -> int:
    """The number of entries a zip declares, read from its end record without opening it
    (opening a zip of a million entries costs a gigabyte); -1 when there is no end record."""
    with open(path, "rb") as f:
        f.seek(0, 2)
        size = f.tell()
        f.seek(max(0, size - 65557))
        tail = f.read()
    end = tail.rfind(zipfile.stringEndArchive)
    if end < 0 or len(tail) - end < zipfile.sizeEndCentDir:
        return -1
    count = struct.unpack(zipfile.structEndArchive, tail[end:end + zipfile.sizeEndCentDir])[4]
    return size if count == 0xFFFF else count  # zip64: at most one entry per byte


def _files(entry: Path) -> dict:
    """{relative path: loader} of the .ipynb files (and EXTRAS) in a student's folder or zip."""
    found = {}
    if entry.is_dir():
        paths = []
        for count, path in enumerate(entry.rglob("*")):
            if count >= MAX_FILES:
                raise ValueError(f"holds more than {MAX_FILES} files")
            if path.suffix in (".ipynb", ".py") or path.name in EXTRAS:
                paths.append(path)
        for path in sorted(paths):
            parts = set(path.relative_to(entry).parts)
            if not parts & SKIP_PARTS and path.is_file() and not path.is_symlink():
                found[str(path.relative_to(entry))] = path
        return found
    if zip_entries(entry) > MAX_FILES:
        raise ValueError(f"holds more than {MAX_FILES} entries")
    total = 0
    with zipfile.ZipFile(entry) as archive:
        for info in archive.infolist():
            parts = Path(info.filename).parts
            is_link = (info.external_attr >> 16) & 0o170000 == 0o120000
            wanted = (info.filename.endswith((".ipynb", ".py"))
                      or Path(info.filename).name in EXTRAS)
            if (wanted and not info.is_dir() and not is_link
                    and not set(parts) & SKIP_PARTS and ".." not in parts):
                found[info.filename] = info
                total += info.file_size
    if total > MAX_ARCHIVE_MB * 1024 * 1024:
        raise ValueError(f"unpacks to more than {MAX_ARCHIVE_MB} MB")
    return found


def _read(entry: Path, source) -> bytes:
    """The bytes of one file, refusing anything over MAX_NOTEBOOK_MB."""
    limit = MAX_NOTEBOOK_MB * 1024 * 1024
    if isinstance(source, Path):
        if source.stat().st_size > limit:
            raise ValueError(f"is over {MAX_NOTEBOOK_MB} MB")
        return source.read_bytes()
    if source.file_size > limit:
        raise ValueError(f"is over {MAX_NOTEBOOK_MB} MB")
    with zipfile.ZipFile(entry) as archive, archive.open(source) as member:
        data = member.read(limit + 1)  # a wrong declared size cannot make it read more
    if len(data) > limit:
        raise ValueError(f"is over {MAX_NOTEBOOK_MB} MB")
    return data


def _unreadable(err: Exception) -> str:
    """Why a damaged or unusual zip entry cannot be read, in words."""
    kinds = {NotImplementedError: "an unsupported compression method (save it as a plain "
             "zip)", RuntimeError: "an encrypted entry", zipfile.BadZipFile: "damaged"}
    what = next((w for kind, w in kinds.items() if isinstance(err, kind)), "damaged")
    return f"cannot be read ({what}: {clean(err, 120) or type(err).__name__})"


def _extra(entry: Path, source, name: str, notes: list) -> str:
    """The text of timestamp.txt or submission_secret.txt, or "" if it is not usable."""
    from nbgrader.utils import parse_utc

    try:
        text = _read(entry, source).decode("utf-8").strip()
        if name == "timestamp.txt":
            parse_utc(text)
        elif len(text) > 200 or not text.isprintable():
            raise ValueError(text)
        return text
    except Exception:
        notes.append(f"{name} is not usable; ignored")
        return ""


def parse(raw: bytes, name: str):
    """A notebook from bytes, or ValueError saying what is wrong with it."""
    try:
        text = raw.decode("utf-8-sig")
        data = json.loads(text)
    except UnicodeDecodeError:
        raise ValueError(f"{name} is not text (not UTF-8): the file is damaged") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{name} is not valid JSON (line {err.lineno}, column {err.colno}): "
                         "the file is damaged or was edited outside Jupyter") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise ValueError(f"{name} is JSON but not a Jupyter notebook")
    try:
        nb = nbformat.reader.reads(text)  # joins multi-line sources, like nbformat.read
        if nb.nbformat != 4:
            nb = nbformat.convert(nb, 4)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nbformat.validate(nb)  # also gives copy-pasted cells new cell ids
    except Exception as err:  # nbformat raises several kinds; all mean "not a valid notebook"
        first = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
        raise ValueError(f"{name} is not a valid Jupyter notebook ({first})") from None
    return nb


def repair(nb, release) -> list[str]:
    """Give nb the released nbgrader metadata back; returns notes on what was found."""
    expected = {c.metadata["nbgrader"]["grade_id"]: c for c in release.cells
                if "grade_id" in c.metadata.get("nbgrader", {})}
    notes, seen = [], set()
    for index, cell in enumerate(nb.cells):
        meta = cell.metadata.get("nbgrader")
        if meta is None:
            continue
        grade_id = meta.get("grade_id") if isinstance(meta, dict) else None
        if grade_id not in expected or grade_id in seen:
            del cell.metadata["nbgrader"]
            if grade_id in seen:
                notes.append(f"cell {index + 1} is a second copy of '{grade_id}' and was ignored")
            elif meta:
                notes.append(f"cell {index + 1} has nbgrader metadata of no known cell; removed")
            continue
        seen.add(grade_id)
        want = expected[grade_id]
        wanted_meta = want.metadata["nbgrader"]
        if cell.cell_type != want.cell_type:
            notes.append(f"'{grade_id}' was turned into a {cell.cell_type} cell; restored")
            restored = nbformat.from_dict(json.loads(json.dumps(want)))
            if not wanted_meta.get("locked"):
                restored.source = cell.source
            nb.cells[index] = cell = restored
            meta = cell.metadata["nbgrader"]
        if any(meta.get(key) != wanted_meta.get(key) for key in META_KEYS):
            notes.append(f"the nbgrader metadata of '{grade_id}' was changed; restored")
            cell.metadata["nbgrader"] = dict(wanted_meta)
        if wanted_meta.get("locked") and cell.source != want.source:
            notes.append(f"test cell '{grade_id}' was edited; nbgrader restores it")
    for grade_id, cell in expected.items():
        if grade_id not in seen:
            meta = cell.metadata["nbgrader"]
            what = "test cell" if meta.get("locked") else "answer cell"
            fate = "nbgrader adds it back" if meta.get("grade") else "its answer is missing"
            notes.append(f"{what} '{grade_id}' was deleted; {fate}")
    return notes


def load(entry: Path, releases: dict) -> Submission:
    """Read and check one student's submission (a folder or a zip file)."""
    is_zip = entry.suffix.lower() == ".zip" and entry.is_file()
    origin = clean(entry.name)
    sub = Submission(student_id(entry.stem if is_zip else entry.name), origin)
    if entry.is_symlink() or not (entry.is_dir() or is_zip):
        return sub.reject(f"{origin} is neither a folder nor a .zip file: put each "
                          "student's files in a folder (or zip) named after the student")
    try:
        files = _files(entry)
    except ValueError as err:
        return sub.reject(f"{origin} {err}: it was not graded; ask for the notebook alone")
    except Exception as err:  # zipfile.BadZipFile, OSError, ...: a damaged archive
        return sub.reject(f"{origin} cannot be opened ({clean(err, 200)}): ask for it again")
    notes = []
    for name, release in releases.items():
        wanted = f"{name}.ipynb"
        matches = [path for path in files if Path(path).name == wanted]
        if len(matches) > 1:
            return sub.reject(f"{len(matches)} copies of {wanted} ({', '.join(matches)}): keep "
                              "the one to grade and grade again")
        if not matches:
            continue
        try:
            raw = _read(entry, files[matches[0]])
        except ValueError as err:
            return sub.reject(f"{wanted} {err}: ask for it without outputs (Clear All Outputs)")
        except Exception as err:  # zlib.error, RuntimeError, NotImplementedError, BadZipFile
            return sub.reject(f"{wanted} in {origin} {_unreadable(err)}: ask for it again")
        try:
            nb = parse(raw, wanted)
        except ValueError as err:
            return sub.reject(f"{err}; ask the student to open it in Jupyter, save and resubmit")
        found = repair(nb, release)
        if found:
            sub.flags.append("tampered")
        if not any("nbgrader" in cell.metadata for cell in nb.cells):
            return sub.reject(f"{wanted} holds none of the assignment's cells (their nbgrader "
                              "metadata is gone): the student must copy their answers into a "
                              "fresh copy of the assignment")
        for cell in nb.cells:  # outputs are never graded: drop them (and their megabytes) now
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        sub.notebooks[name] = nb
        notes += found
        seen = suspicious(nb, release)
        if seen:
            sub.flags.append("cheat_suspected")
            notes.append(f"{wanted} uses {', '.join(seen)}")
        for extra in EXTRAS:
            path = str(Path(matches[0]).parent / extra).removeprefix("./")
            if path in files and not sub.extras.get(extra):
                sub.extras[extra] = _extra(entry, files[path], extra, notes)
    shadows = shadowing(path for path in files if path.endswith(".py"))
    if shadows:
        sub.flags.append("cheat_suspected")
        notes.append(f"ships {', '.join(shadows)}, which would shadow a module of the same name "
                     "(only notebooks are graded: it was not used)")
    if not sub.notebooks:
        others = sorted(Path(path).name for path in files if path.endswith(".ipynb"))
        expected = ", ".join(f"{name}.ipynb" for name in releases)
        if others:
            return sub.reject(f"expected {expected} but found {', '.join(others)}: rename the "
                              "notebook to the assignment's name and grade again")
        return sub.reject(f"no notebook in it (expected {expected})")
    sub.extras = {name: text for name, text in sub.extras.items() if text}
    missing = [f"{name}.ipynb" for name in releases if name not in sub.notebooks]
    if missing:
        sub.flags.append("missing_notebook")
        notes.append(f"{', '.join(missing)} not submitted (scored 0)")
    sub.flags = sorted(set(sub.flags))
    sub.message = "; ".join(notes)
    return sub


def discover(folder: Path, releases: dict) -> list[Submission]:
    """Every student's submission in folder, checked. A true duplicate (a folder and a zip of
    the same name) is rejected, every copy, naming all of them. Nothing about one entry stops
    the others."""
    subs = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith(".") or entry.name in SKIP_PARTS:
            continue
        try:
            sub = load(entry, releases)
        except Exception as err:  # a bug of ours, or something unforeseen: this entry only
            sub = Submission(student_id(entry.name), clean(entry.name)).reject(
                f"could not be read: {type(err).__name__}: {clean(err, 200)}")
        subs.append(sub)
    by_id = {}
    for sub in subs:
        by_id.setdefault(sub.student, []).append(sub)
    for student, copies in by_id.items():
        for i, sub in enumerate(copies if len(copies) > 1 else []):
            sub.reject(f"{' and '.join(c.origin for c in copies)} are all submissions of "
                       f"student {student}: keep one and grade again")
            sub.flags = []
            if i:  # one row per entry; the first keeps the id
                sub.student = f"{student}~~duplicate{i}"
    return subs
