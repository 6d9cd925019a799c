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
from test_notebooks import toc_files

from conftest import ROOT

OUT = ROOT / "_build" / "test-site"
MAX_PAGE_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def html() -> Path:
    OUT.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    config["execute"]["execute_notebooks"] = "force"
    extensions = config["sphinx"].get("local_extensions") or {}  # relative to the config file
    config["sphinx"]["local_extensions"] = {k: str(ROOT / v) for k, v in extensions.items()}
    extra = config["sphinx"]["config"].get("html_extra_path", [])
    config["sphinx"]["config"]["html_extra_path"] = [str(ROOT / path) for path in extra]
    (OUT / "_config.yml").write_text(yaml.safe_dump(config))
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--config", str(OUT / "_config.yml"),
         "--path-output", str(OUT), "--warningiserror", "--nitpick", "--keep-going", "--all"],
        capture_output=True, text=True, cwd=ROOT)
    log = result.stdout + result.stderr
    assert result.returncode == 0, f"jupyter-book build failed:\n{log[-6000:]}"
    # Sphinx warnings read "path: WARNING: ..."; kernels' own "[IPKernelApp] WARNING |" lines
    # (plain-TCP notices on stderr) are not about the book.
    warnings = [line for line in log.splitlines() if "WARNING:" in line]
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


def page_bytes(page: Path) -> int:
    """The HTML (inline animations included) and the local images it shows."""
    images = {(page.parent / src).resolve()
              for src in re.findall(r'<img[^>]*\ssrc="([^"#?]+)"', page.read_text())
              if not src.startswith(("http:", "https:", "data:"))}
    return page.stat().st_size + sum(i.stat().st_size for i in images if i.is_file())


def test_page_weight(html):
    weights = {str(p.relative_to(html)): page_bytes(p) for p in html.rglob("*.html")}
    heavy = {page: size for page, size in weights.items() if size > MAX_PAGE_BYTES}
    assert not heavy, f"pages over {MAX_PAGE_BYTES} bytes: {heavy}"
    largest = max(weights, key=weights.get)
    print(f"largest page: {largest}, {weights[largest] / 1e6:.2f} MB")


# --- In a real browser ------------------------------------------------------------------------
# Debian's Chromium driven by Playwright (never a downloaded browser); pages served on 127.0.0.1.

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
# The book theme logs this once on first load; it is harmless (no theme stored yet).
HARMLESS_CONSOLE = ("invalid theme mode",)


@pytest.fixture(scope="module")
def server(html):
    import functools
    import http.server
    import threading

    handler = functools.partial(QuietHandler, directory=str(html))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


class QuietHandler(__import__("http.server").server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep the test output clean
        pass


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: install it with 'apt-get install chromium' "
                    "(make test does this when it runs as root on Debian)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def visit(browser, url):
    """Open url; return (page, console errors, failed or off-site requests)."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors, failed = [], []
    page.on("console", lambda m: m.type == "error" and not any(
        h in m.text for h in HARMLESS_CONSOLE) and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(f"{r.url} ({r.failure})"))
    page.on("response", lambda r: r.status >= 400 and failed.append(f"{r.url} (HTTP {r.status})"))
    page.on("request", lambda r: not r.url.startswith(("http://127.0.0.1", "data:", "blob:"))
            and failed.append(f"off-site request {r.url}"))
    page.goto(url, wait_until="networkidle")
    return page, errors, failed


def site_pages(html):
    return sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                  if p.parent.name != "_static" and "_sources" not in p.parts
                  and p.name not in {"genindex.html", "search.html"})


def test_every_page_in_the_browser(html, server, browser):
    problems = []
    for name in site_pages(html):
        page, errors, failed = visit(browser, f"{server}/{name}")
        if name != "index.html":  # index.html is a redirect
            page.wait_for_function("() => !window.MathJax || !MathJax.startup"
                                   " || MathJax.startup.promise !== undefined")
        text = page.inner_text("article") if page.query_selector("article") else ""
        has_math = page.evaluate("() => document.querySelectorAll('.math').length")
        if has_math:
            page.wait_for_selector("mjx-container", state="attached", timeout=15000)
        if "$$" in text:
            problems.append(f"{name}: raw $$ left in the page")
        broken = page.evaluate("() => [...document.images].filter("
                               "i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")
        animations = page.evaluate("() => document.querySelectorAll('.animation').length")
        controls = page.evaluate(
            "() => document.querySelectorAll('.animation .anim-buttons button').length")
        if animations and controls < 3 * animations:
            problems.append(f"{name}: {animations} animations but {controls} control buttons")
        problems += [f"{name}: console error {e}" for e in errors]
        problems += [f"{name}: request {r}" for r in failed]
        problems += [f"{name}: image did not load {src}" for src in broken]
        page.close()
    assert not problems, "\n".join(problems)


def test_screenshots(html, server, browser):
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for label, name in [("home", "book/intro.html"),
                        ("chapter", "book/02_gradient_descent.html"),
                        ("exercise", "exercises/01_gradient_descent/01_gradient_descent.html")]:
        page, errors, failed = visit(browser, f"{server}/{name}")
        page.screenshot(path=str(shots / f"{label}.png"), full_page=False)
        assert (shots / f"{label}.png").stat().st_size > 10_000, f"blank screenshot of {name}"
        page.close()


def test_search_finds_the_momentum_chapter(html, server, browser):
    page, errors, failed = visit(browser, f"{server}/search.html?q=momentum")
    page.wait_for_selector("#search-results li", timeout=20000)
    links = page.eval_on_selector_all("#search-results li a", "els => els.map(a => a.href)")
    assert any("06_momentum_and_schedules" in link for link in links), (
        f"searching 'momentum' did not return the momentum chapter: {links[:10]}")
    assert not errors, errors
