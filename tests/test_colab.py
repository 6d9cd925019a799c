"""Every notebook runs outside the repository: its first code cell installs sgdkit if missing.

The cell is written by book/_ext/install_cell.py. The last test runs a notebook the way Colab
would: a copy in an empty folder outside the repository, a fresh venv with the pinned
third-party packages and no sgdkit, and the cell installing sgdkit from a git URL (a local
clone here: SGDKIT_INSTALL_URL, and pip with no index, so nothing comes from the network).
"""

import importlib.util
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from conftest import ROOT

spec = importlib.util.spec_from_file_location("install_cell", ROOT / "book/_ext/install_cell.py")
install_cell = importlib.util.module_from_spec(spec)
spec.loader.exec_module(install_cell)

SOURCE = install_cell.cell_source()


def test_the_cell_installs_this_release_from_the_configured_repository():
    url = install_cell.release_url()
    assert url == "git+https://github.com/sgd-course/sgd-course@v0.1.0"
    assert f'"{url}"' in SOURCE and "find_spec(\"sgdkit\") is None" in SOURCE
    assert max(len(line) for line in SOURCE.splitlines()) <= 88
    compile(SOURCE, "install-cell", "exec")


def toy_notebook():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# 1. Title"),
                nbformat.v4.new_code_cell("import numpy as np"),
                nbformat.v4.new_code_cell("np.zeros(2)")]
    return nb


def test_add_cell_puts_it_first_once_and_replaces_a_stale_one():
    nb = toy_notebook()
    assert install_cell.add_cell(nb, SOURCE)
    assert [c.cell_type for c in nb.cells] == ["markdown", "code", "code", "code"]
    assert nb.cells[1].source == SOURCE and nb.cells[1].id == install_cell.CELL_ID
    assert nb.cells[1].metadata.tags == ["remove-cell"]
    assert install_cell.has_current_cell(nb, SOURCE)
    assert not install_cell.add_cell(nb, SOURCE)  # idempotent
    nb.cells[1].source = SOURCE.replace("v0.1.0", "v0.0.9")  # an older release
    nb.cells.insert(3, nb.cells.pop(1))  # and misplaced
    assert not install_cell.has_current_cell(nb, SOURCE)
    assert install_cell.add_cell(nb, SOURCE)
    assert [c.source for c in nb.cells[1:]] == [SOURCE, "import numpy as np", "np.zeros(2)"]
    nbformat.validate(nb)


def test_check_mode_lists_notebooks_without_the_cell(tmp_path, capsys):
    path = tmp_path / "nb.ipynb"
    nbformat.write(toy_notebook(), path)
    assert install_cell.main(["--check", str(path)]) == 1
    assert str(path) in capsys.readouterr().err
    assert install_cell.main([str(path)]) == 0
    assert install_cell.main(["--check", str(path)]) == 0


@pytest.mark.parametrize("path", install_cell.notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_notebook_starts_with_the_current_install_cell(path):
    nb = nbformat.read(path, as_version=4)
    assert install_cell.has_current_cell(nb, SOURCE), (
        f"{path.relative_to(ROOT)}: the first code cell is not the current install cell; "
        f"run `python book/_ext/install_cell.py` (then `make exercises`)")


def fresh_venv(where: Path) -> Path:
    """A venv whose site-packages see the course venv's third-party packages, not sgdkit."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where / "venv")],
                   check=True)
    python = where / "venv" / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    third = where / "third-party"
    third.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        # not sgdkit, nor its editable-install hook; .pth files would not run from here
        if not entry.name.startswith(("sgdkit", "__editable__")) and entry.suffix != ".pth":
            (third / entry.name).symlink_to(entry)
    (Path(purelib) / "third-party.pth").write_text(f"{third}\n")
    return python


def test_a_downloaded_notebook_runs_in_a_fresh_venv(tmp_path):
    python = fresh_venv(tmp_path)
    probe = [str(python), "-c", "import sgdkit; print(sgdkit.__file__)"]
    assert subprocess.run(probe, capture_output=True, cwd=tmp_path).returncode != 0, (
        "sgdkit is importable before the install cell ran")

    work = tmp_path / "downloads"  # an empty folder outside the repository
    work.mkdir()
    nb = nbformat.read(ROOT / "book/01_learning_as_optimization.ipynb", as_version=4)
    install_cell.add_cell(nb, SOURCE)
    nbformat.write(nb, work / "chapter.ipynb")
    env = {"PATH": f"{python.parent}:/usr/bin:/bin", "HOME": str(tmp_path),
           "OMP_NUM_THREADS": "1", "PYTHONNOUSERSITE": "1",
           "SGDKIT_INSTALL_URL": f"git+file://localhost{ROOT}",  # HEAD of this clone
           "PIP_NO_INDEX": "1",  # offline: everything else must already be there
           "PIP_NO_BUILD_ISOLATION": "0",  # (sic) pip reads 0 as "no isolation": no download
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    result = subprocess.run([str(python), "-m", "nbconvert", "--to", "notebook", "--execute",
                             "--output", "executed.ipynb", "chapter.ipynb"],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    installed = subprocess.run(probe, capture_output=True, text=True, env=env, cwd=work)
    assert installed.returncode == 0, installed.stderr
    assert str(tmp_path) in installed.stdout and str(ROOT) not in installed.stdout, (
        f"sgdkit came from {installed.stdout}, not from the notebook's install")


def pins(path: Path) -> dict[str, str]:
    lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
    return dict(line.split("==") for line in lines if "==" in line)


def test_binder_installs_the_course_versions():
    binder, course = pins(ROOT / "binder/requirements.txt"), pins(ROOT / "requirements.txt")
    assert {"torch", "numpy", "matplotlib", "scikit-learn", "nbgrader"} <= set(binder)
    assert {name: v for name, v in binder.items() if course.get(name) != v} == {}
    post_build = (ROOT / "binder/postBuild").read_text()
    assert "pip install --no-deps --no-build-isolation -e ." in post_build
    assert "jupyter/jupyter_server_config.py" in post_build
