"""The course directory, the template every job starts from, and nbgrader's gradebook.

The course directory is the folder with ``nbgrader_config.py`` (this repository's root). The
template is a private copy of one assignment's source, on which ``nbgrader generate_assignment``
builds a gradebook and the student version; each grading job gets a copy of that gradebook, so
student code never runs next to the real one. Only the parent process writes the real
gradebook: ``record`` replaces a student's submission with the grades of the new run (or
removes it when nothing could be graded), so a regrade never leaves a stale score.
"""

import copy
import functools
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
from traitlets.config.loader import PyFileConfigLoader

SEED = 0


class GradingError(Exception):
    """The grading itself could not run (bad arguments, broken course): exit code 2."""


@dataclass
class Course:
    root: Path
    config: object  # traitlets Config loaded from nbgrader_config.py
    source_dir: str
    release_dir: str
    db_url: str
    course_id: str

    def coursedir(self, **overrides):
        from nbgrader.coursedir import CourseDirectory

        cfg = copy.deepcopy(self.config)
        for key, value in overrides.items():
            setattr(cfg.CourseDirectory, key, value)
        return CourseDirectory(config=cfg), cfg


def find_course(path) -> Course:
    """The course in folder path (default: the current directory)."""
    from nbgrader.coursedir import CourseDirectory

    root = Path(path).resolve()
    if not (root / "nbgrader_config.py").is_file():
        raise GradingError(f"{root} is not a course directory (no nbgrader_config.py): run the "
                           "command from the course directory or pass --course DIR")
    cfg = PyFileConfigLoader("nbgrader_config.py", path=str(root)).load_config()
    cfg.CourseDirectory.root = str(root)
    cd = CourseDirectory(config=cfg)
    return Course(root, cfg, cd.source_directory, cd.release_directory, cd.db_url, cd.course_id)


@dataclass
class Template:
    root: Path
    source: Path  # the copied source folder of the assignment (solutions, hidden tests)
    releases: dict  # notebook name -> released student notebook
    files: Path  # the assignment's other released files (data), copied next to each kernel
    startup: str  # kernel startup code that seeds the global random generators
    max_score: float
    solutions: dict  # notebook name -> the source notebook (graded first: the reference)
    probes: dict  # notebook name -> source of <name>.probes.py (see probes.py), where one exists


@functools.cache
def alembic_head() -> str:
    """The revision nbgrader stamps on a new gradebook, asked of alembic in this process, once.

    nbgrader's ``get_alembic_version`` runs the ``alembic`` command (a new Python process, 2.3 s
    here) every time it creates a gradebook: twice per batch before any student is graded
    (issue 16). ``fast_gradebooks`` puts this in its place.
    """
    import nbgrader
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(Path(nbgrader.__file__).parent / "alembic"))
    return ScriptDirectory.from_config(config).get_current_head()


def fast_gradebooks() -> None:
    import nbgrader.api

    nbgrader.api.get_alembic_version = alembic_head


def _generate(course: Course, assignment: str, root: Path, db_url: str) -> None:
    from nbgrader.converters import GenerateAssignment
    from nbgrader.utils import capture_log

    coursedir, cfg = course.coursedir(root=str(root), db_url=db_url)
    coursedir.assignment_id = assignment
    app = GenerateAssignment(coursedir=coursedir, config=cfg)
    app.force, app.create_assignment = True, True
    run = capture_log(app)
    if not run["success"]:
        tail = (run.get("log", "") + run.get("error", ""))[-1500:]
        raise GradingError(f"nbgrader generate_assignment {assignment} failed, so nothing can be "
                           f"graded; fix the source notebook first:\n{tail}")


def make_template(course: Course, assignment: str, where: Path) -> Template:
    """Copy the assignment's source into where and generate it there, with its own gradebook."""
    from nbgrader.api import Gradebook, MissingEntry

    source = course.root / course.source_dir / assignment
    if not source.is_dir() or not list(source.glob("*.ipynb")):
        known = sorted(p.name for p in (course.root / course.source_dir).glob("*") if p.is_dir())
        raise GradingError(f"no assignment '{assignment}' in {course.root / course.source_dir} "
                           f"(found: {', '.join(known) or 'none'})")
    copied = where / course.source_dir / assignment
    shutil.copytree(source, copied, ignore=shutil.ignore_patterns(".ipynb_checkpoints",
                                                                   "__pycache__"))
    _generate(course, assignment, where, f"sqlite:///{where / 'gradebook.db'}")
    release = where / course.release_dir / assignment
    releases = {p.stem: nbformat.read(p, as_version=4) for p in sorted(release.glob("*.ipynb"))}
    leaked = sorted(p.name for p in release.rglob("*.probes.py"))
    if leaked:
        raise GradingError(f"generate_assignment would release the probes {', '.join(leaked)} "
                           "to students: add '*.probes.py' to c.CourseDirectory.ignore in "
                           "nbgrader_config.py (see this repository's)")
    solutions = {name: nbformat.read(copied / f"{name}.ipynb", as_version=4) for name in releases}
    probe_files = {name: copied / f"{name}.probes.py" for name in releases}
    probes = {name: path.read_text() for name, path in probe_files.items() if path.is_file()}
    files = where / "files"
    shutil.copytree(release, files, ignore=shutil.ignore_patterns("*.ipynb"))
    sources = " ".join(p.read_text() for p in copied.glob("*.ipynb"))
    startup = ["import random as _r", f"_r.seed({SEED})", "del _r", "try:",
               "    import numpy as _np", f"    _np.random.seed({SEED})", "    del _np",
               "except ImportError:", "    pass"]
    if "torch" in sources:  # importing torch costs a second: only when the assignment uses it
        startup += ["import torch as _t", f"_t.manual_seed({SEED})", "del _t"]
    with Gradebook(course.db_url, course.course_id) as gb:  # the due date set by the course
        try:
            duedate = gb.find_assignment(assignment).duedate
        except MissingEntry:
            duedate = None
    with Gradebook(f"sqlite:///{where / 'gradebook.db'}", course.course_id) as gb:
        max_score = gb.update_or_create_assignment(assignment, duedate=duedate).max_score
    return Template(where, copied, releases, files, "\n".join(startup) + "\n", max_score,
                    solutions, probes)


def register(course: Course, template: Template, assignment: str) -> None:
    """Make the real gradebook know the assignment (nbgrader generate_assignment into it)."""
    _generate(course, assignment, template.root, course.db_url)


def extensions(course: Course, assignment: str) -> dict:
    """{student: seconds} of the extensions the gradebook grants (nbgrader grant_extension)."""
    from nbgrader.api import Gradebook, MissingEntry

    with Gradebook(course.db_url, course.course_id) as gb:
        try:
            subs = gb.find_assignment(assignment).submissions
        except MissingEntry:
            return {}
        return {s.student.id: s.extension.total_seconds() for s in subs if s.extension}


def record(course: Course, assignment: str, student: str, private_db: Path | None,
           late: list | None = None):
    """Replace student's submission in the real gradebook by the one graded in private_db.

    private_db None: the submission could not be graded; any earlier one is removed.
    Returns (score or None, max_score, needs_manual_grade); the score is nbgrader export's,
    late penalty deducted (appended to late, when given).
    """
    late = [] if late is None else late
    from nbgrader.api import Gradebook, MissingEntry
    from sqlalchemy.exc import SAWarning

    warnings.simplefilter("ignore", SAWarning)  # nbgrader's add_submission is noisy, not wrong
    with Gradebook(course.db_url, course.course_id) as gb:
        gb.update_or_create_student(student)
        try:
            kept = {"extension": gb.find_submission(assignment, student).extension}
            gb.remove_submission(assignment, student)
        except MissingEntry:
            kept = {}
        max_score = gb.find_assignment(assignment).max_score
        if private_db is None:
            return None, max_score, False
        with Gradebook(f"sqlite:///{private_db}", course.course_id) as private:
            graded = private.find_submission(assignment, student)
            sub = gb.add_submission(assignment, student, timestamp=graded.timestamp, **kept)
            for nb in graded.notebooks:
                target = gb.find_submission_notebook(nb.name, assignment, student)
                target.flagged = nb.flagged
                target.late_submission_penalty = nb.late_submission_penalty
                for grade in nb.grades:
                    new = gb.find_grade(grade.name, nb.name, assignment, student)
                    for key in ("auto_score", "manual_score", "extra_credit",
                                "needs_manual_grade"):
                        setattr(new, key, getattr(grade, key))
                for comment in nb.comments:
                    new = gb.find_comment(comment.name, nb.name, assignment, student)
                    new.auto_comment = comment.auto_comment
                    new.manual_comment = comment.manual_comment
            gb.db.commit()
            score = max(0.0, sub.score - (sub.late_submission_penalty or 0.0))  # as in export
            if sub.late_submission_penalty:
                late.append(sub.late_submission_penalty)
            return score, max_score, bool(sub.needs_manual_grade)
