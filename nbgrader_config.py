"""nbgrader configuration for the course (the repo root is the course directory)."""

c = get_config()  # noqa: F821  (injected by nbgrader)

c.CourseDirectory.course_id = "sgd-course"
# Solutions (with hidden tests) are the nbgrader *source*; student notebooks are generated into
# exercises/ by `make exercises` and committed.
c.CourseDirectory.source_directory = "solutions"
c.CourseDirectory.release_directory = "exercises"

# Per-cell execution limit when validating and autograding (seconds).
# Execute.timeout is what nbgrader's preprocessors read; it wins over ExecutePreprocessor.timeout.
c.Execute.timeout = 60
c.ExecutePreprocessor.timeout = 60
# `nbgrader validate` (and the Validate button) agree with the course's grader, for which a
# test cell passes when it raises no error: what it writes to stderr (a warning, a progress
# bar) goes to stdout in the validating kernel, instead of failing the cell. Binds no name.
c.Validator.Execute.extra_arguments = [
    "--IPKernelApp.exec_lines=__import__('sys').stderr = __import__('sys').stdout"]

# Student notebooks carry no outputs.
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
c.ClearSolutions.text_stub = "YOUR ANSWER HERE"

# Feedback must not show hidden tests (nbgrader's own generate_feedback quotes them in
# tracebacks): the course's preprocessor cuts them out, also for plain `nbgrader generate_feedback`.
from nbconvert.preprocessors import CSSHTMLHeaderPreprocessor  # noqa: E402
from nbgrader.preprocessors import GetGrades  # noqa: E402

from sgdkit.grading.feedback import HideHiddenTests  # noqa: E402

c.GenerateFeedback.preprocessors = [GetGrades, CSSHTMLHeaderPreprocessor, HideHiddenTests]

# Probes (solutions/<id>/<notebook>.probes.py) are the grader's own checks: never released.
c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback",
                            "*.probes.py"]
