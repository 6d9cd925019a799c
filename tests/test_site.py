"""The website: build it from scratch with every notebook executed, then check the pages.

The build goes to _build/test-site (not _build/html, which `make book` owns) with
`execute_notebooks: force`, so a stale cache can never hide a broken chapter.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT
from test_notebooks import toc_files

OUT = ROOT / "_build" / "test-site"
MAX_PAGE_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def html() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "force"
    (OUT / "_config.yml").write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--config", str(OUT / "_config.yml"),
         "--path-output", str(OUT), "--warningiserror", "--nitpick", "--keep-going", "--all"],
        capture_output=True, text=True, cwd=ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    warnings = [line for line in log.splitlines() if "WARNING" in line]
    assert not warnings, "the build printed warnings:\n" + "\n".join(warnings)
    return OUT / "_build" / "html"


def page(html: Path, name: str) -> str:
    return (html / f"{name}.html").read_text(encoding="utf-8")


def test_every_toc_page_is_built(html):
    assert (html / "index.html").exists()
    missing = [f for f in toc_files() if not (html / f"{f}.html").exists()]
    assert not missing, f"pages missing from the built site: {missing}"


def test_solutions_are_not_published(html):
    assert not (html / "solutions").exists(), "solutions/ must not be published"
    leaks = [str(p.relative_to(html)) for p in html.rglob("*")
             if p.is_file() and p.suffix in {".html", ".ipynb", ".txt", ".js"}
             and re.search(r"BEGIN (HIDDEN TESTS|SOLUTION|MARK SCHEME)",
                           p.read_text(errors="ignore"))]
    assert not leaks, f"solution or hidden-test text published in {leaks}"


def test_chapters_are_executed_with_figures(html):
    for f in toc_files():
        if re.match(r"book/\d\d_", f):
            text = page(html, f)
            assert "<img" in text, f"{f}: no figure on the executed page"
            assert "cell_output" in text, f"{f}: no executed outputs on the page"


def test_gradient_descent_page_has_an_animation(html):
    text = page(html, "book/02_gradient_descent")
    # matplotlib's jshtml player: a slider and play buttons, frames embedded as images
    assert "anim-slider" in text or "_anim_slider" in text or 'class="anim' in text, (
        "no animation player on the gradient descent page")


def test_launch_and_download_buttons(html):
    for f in toc_files():
        if f.endswith(".md") or not re.match(r"(book/\d\d_|exercises/)", f):
            continue
        text = page(html, f)
        assert "colab.research.google.com" in text, f"{f}: no Colab launch button"
        assert "mybinder.org" in text, f"{f}: no Binder launch button"
        assert f"_sources/{f}.ipynb" in text, f"{f}: no download button for the notebook"


def test_math_is_served_offline(html):
    index = page(html, "book/02_gradient_descent")
    scripts = re.findall(r'<script[^>]+src="([^"]+)"', index)
    remote = [s for s in scripts if s.startswith(("http:", "https:", "//"))]
    assert not remote, f"pages load scripts from the network: {remote}"
    assert any("mathjax" in s.lower() for s in scripts), "MathJax is not loaded locally"


def test_page_weight(html):
    heavy = {str(p.relative_to(html)): p.stat().st_size for p in html.rglob("*.html")
             if p.stat().st_size > MAX_PAGE_BYTES}
    assert not heavy, f"pages over {MAX_PAGE_BYTES} bytes: {heavy}"
