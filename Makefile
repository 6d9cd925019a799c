# The course's two commands are `make book` and `make test`; both set up .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
# nbgrader shells out to `alembic` (and jupyter to its own scripts): every recipe sees the venv.
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1
# pytest workers for the suites that parallelise well (2 cores here; 3 were not faster and made
# chapter 5's throughput assertion fail)
JOBS ?= 2
# grading workers for make grade (one per core)
WORKERS ?= 2

STAMP := $(VENV)/.installed
PORT ?= 8000
ASSIGNMENT ?=
SUBMISSIONS ?=
OUT ?= grades

.PHONY: help venv chromium cjk-font bubblewrap book translations test lint exercises \
        grade bench serve clean student-jupyter instructor-jupyter

help:
	@echo "make book       build the site into _build/html (the Chinese edition into _build/html/zh)"
	@echo "make translations  refresh locales/zh_CN/LC_MESSAGES/*.po from the English pages"
	@echo "make test       run every test (unit, notebooks, exercises, site)"
	@echo "make exercises  regenerate exercises/ from solutions/ (nbgrader generate_assignment)"
	@echo "make grade ASSIGNMENT=01_gradient_descent SUBMISSIONS=path/to/submissions [OUT=grades]"
	@echo "make bench      run the benchmarks in benchmarks/"
	@echo "make serve      serve _build/html on http://127.0.0.1:$(PORT)"
	@echo "make clean      remove build outputs (keeps .venv)"
	@echo "make instructor-jupyter  nbgrader's formgrader and Create Assignment in Jupyter"

venv: $(STAMP)

# Create the venv once; reinstall only when requirements.txt or pyproject.toml change.
$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -r requirements.txt
	@$(MAKE) --no-print-directory student-jupyter
	@touch $@

# A student's JupyterLab / Notebook 7 shows nbgrader's Validate button, not the instructor's
# tools (formgrader, Create Assignment) nor the course and assignment lists, which need a
# JupyterHub exchange and otherwise show "Error fetching courses!". `make instructor-jupyter`
# turns them on in this venv; `make student-jupyter` turns them off again.
NBGRADER_LAB := formgrader create-assignment course-list assignment-list
NBGRADER_SERVER := formgrader course_list assignment_list

student-jupyter:
	@mkdir -p $(VENV)/etc/jupyter && cp jupyter/jupyter_server_config.py $(VENV)/etc/jupyter/
	@$(BIN)/jupyter labextension disable --level=sys_prefix \
	  $(addprefix @jupyter/nbgrader:,$(NBGRADER_LAB)) >/dev/null 2>&1
	@$(BIN)/jupyter server extension disable --sys-prefix \
	  $(addprefix nbgrader.server_extensions.,$(NBGRADER_SERVER)) >/dev/null 2>&1
	@echo "Jupyter set up for students: nbgrader's Validate only"

instructor-jupyter: $(STAMP)
	@$(BIN)/jupyter labextension enable --level=sys_prefix \
	  $(addprefix @jupyter/nbgrader:,$(NBGRADER_LAB)) >/dev/null 2>&1
	@$(BIN)/jupyter server extension enable --sys-prefix \
	  $(addprefix nbgrader.server_extensions.,$(NBGRADER_SERVER)) >/dev/null 2>&1
	@echo "Jupyter set up for instructors: formgrader, Create Assignment, course lists"

book: $(STAMP)
	jupyter-book build . --warningiserror --nitpick --keep-going
	@# The Chinese edition: same notebooks, same execution cache, catalogs from locales/zh_CN
	python locales/build.py zh _build/zh --warningiserror --nitpick --keep-going
	rm -rf _build/html/zh && cp -r _build/zh/_build/html _build/html/zh
	@echo "Open file://$(CURDIR)/_build/html/index.html"

# The message catalogs of the Chinese edition: every paragraph, heading, caption and table cell
# of the English pages (gettext, reusing the execution cache), merged into locales/zh_CN by
# sphinx-intl; new or changed messages come out empty or fuzzy until they are translated.
translations: $(STAMP)
	python locales/build.py gettext _build/gettext
	sphinx-intl update -p _build/gettext/_build/gettext -l zh_CN -d locales

# Every layer in one pytest run: sgdkit units, exercises and grading, nbval over every notebook in
# book/ and solutions/, and the site (built from scratch, then checked in Chromium).
# --dist loadfile keeps each notebook's cells, and each test module, on one worker.
# One BLAS/torch thread per process: two workers on 2 cores, and no oversubscription.
# Line coverage of sgdkit (test processes, grading workers and jobs, notebook kernels) >= 90%.
test: export OMP_NUM_THREADS := 1
test: $(STAMP) chromium cjk-font bubblewrap
	ruff check sgdkit tests benchmarks $(wildcard solutions/*/*.probes.py) nbgrader_config.py \
	  book jupyter
	pytest -n $(JOBS) --dist loadfile -p no:cacheprovider --durations=25 \
	  --cov=sgdkit --cov-report=term:skip-covered --cov-fail-under=90 \
	  tests book solutions --ignore=tests/fixtures --nbval-lax --nbval-current-env

# The browser tests use Debian's Chromium (never a downloaded browser), and DejaVu fonts: the
# site test measures that 88 columns of code fit, in DejaVu Sans Mono.
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-dejavu-core; \
	  else \
	    echo "Chromium is missing: install it with 'sudo apt-get install chromium' and rerun"; exit 1; \
	  fi; }

# The Chinese edition's pages are checked in Chromium with a CJK font from Debian.
cjk-font:
	@fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's fonts-wqy-microhei for the Chinese pages"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-microhei; \
	  else \
	    echo "a CJK font is missing: install it with 'sudo apt-get install fonts-wqy-microhei'"; exit 1; \
	  fi; }

# The grader runs each student's kernel in Debian's bubblewrap (an allow-list file system).
bubblewrap:
	@command -v bwrap >/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's bubblewrap for the grading sandbox"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap; \
	  else \
	    echo "bubblewrap is missing: install it with 'sudo apt-get install bubblewrap' and rerun"; \
	    exit 1; \
	  fi; }

lint: $(STAMP)
	ruff check sgdkit tests benchmarks $(wildcard solutions/*/*.probes.py) nbgrader_config.py \
	  book jupyter

exercises: $(STAMP)
	@for d in solutions/*/; do \
	  id=$$(basename $$d); echo "generating exercises/$$id"; \
	  nbgrader generate_assignment "$$id" --no-db --force --log-level=WARN || exit 1; \
	done

grade: $(STAMP) bubblewrap
	@test -n "$(ASSIGNMENT)" -a -n "$(SUBMISSIONS)" || \
	  { echo "usage: make grade ASSIGNMENT=01_gradient_descent SUBMISSIONS=dir [OUT=grades]"; exit 2; }
	python -m sgdkit.grading "$(ASSIGNMENT)" "$(SUBMISSIONS)" --out "$(OUT)" --workers $(WORKERS)

bench: $(STAMP)
	@for f in benchmarks/bench_*.py; do echo "== $$f"; python $$f || exit 1; done

serve:
	@test -f _build/html/index.html || { echo "no site yet: run 'make book' first"; exit 1; }
	python -m http.server $(PORT) --bind 127.0.0.1 --directory _build/html

clean:
	rm -rf _build .pytest_cache
	find . -name __pycache__ -not -path "./$(VENV)/*" -prune -exec rm -rf {} +
