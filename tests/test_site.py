"""The website: build it from scratch with every notebook executed, then check the pages.

Both editions are built once into _build/test-site (not _build/html, which `make book` owns),
laid out as `make book` does: English at html/, Chinese at html/zh/. The English build executes
every notebook into a fresh execution cache, so a stale cache can never hide a broken chapter;
the Chinese build reuses that cache (same notebooks: nothing executes twice). The Chinese
edition's own checks are in site_zh.py, collected here (at the end of this module) so that
they run after this build, on the same pytest worker.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_notebooks import toc_files

from conftest import ROOT

OUT = ROOT / "_build" / "test-site"
MAX_PAGE_BYTES = 5 * 1024 * 1024


BUILD = [sys.executable, str(ROOT / "locales" / "build.py")]


def build(kind: str) -> str:
    """One edition (locales/build.py), executing with the session's cache; its log."""
    env = {**os.environ, "CACHE": str(OUT / ".jupyter_cache")}
    result = subprocess.run(BUILD + [kind, str(OUT / kind), "--warningiserror", "--nitpick",
                                     "--keep-going"], capture_output=True, text=True, cwd=ROOT,
                            env=env)
    log = result.stdout + result.stderr
    (OUT / f"{kind}.log").write_text(log)
    assert result.returncode == 0, f"the {kind} build failed:\n{log[-6000:]}"
    return log


@pytest.fixture(scope="module")
def html() -> Path:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    log = build("en")
    # Sphinx warnings read "path: WARNING: ..."; kernels' own "[IPKernelApp] WARNING |" lines
    # (plain-TCP notices on stderr) are not about the book.
    warnings = [line for line in log.splitlines() if "WARNING:" in line]
    assert not warnings, "the build printed warnings:\n" + "\n".join(warnings)
    build("zh")  # site_zh.py checks its warnings
    site = OUT / "html"
    shutil.copytree(OUT / "en" / "_build" / "html", site)
    shutil.copytree(OUT / "zh" / "_build" / "html", site / "zh")
    return site


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


def visit(browser, url, width=1280):
    """Open url; return (page, console errors, failed or off-site requests)."""
    page = browser.new_page(viewport={"width": width, "height": 900})
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


def site_pages(html, chinese=False):
    """The English pages (or, with chinese, those of the Chinese edition under zh/)."""
    return sorted(str(p.relative_to(html)) for p in html.rglob("*.html")
                  if p.parent.name != "_static" and "_sources" not in p.parts
                  and p.name not in {"genindex.html", "search.html"}
                  and (p.relative_to(html).parts[0] == "zh") == chinese)


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


PAGES_TO_SHOW = [("home", "book/intro.html"),
                 ("chapter", "book/02_gradient_descent.html"),  # with an animation
                 ("exercise", "exercises/01_gradient_descent/01_gradient_descent.html")]


def test_screenshots(html, server, browser):
    """_build/screenshots/<page>-<width>.png, desktop and phone, for a person to look at."""
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    for label, name in PAGES_TO_SHOW:
        for width in (1280, 390):
            page, errors, failed = visit(browser, f"{server}/{name}", width)
            if label == "chapter":  # the animation, not the title
                page.locator(".animation").first.scroll_into_view_if_needed()
            path = shots / f"{label}-{width}.png"
            page.screenshot(path=str(path), full_page=False)
            assert path.stat().st_size > 10_000, f"blank screenshot of {name} at {width} px"
            page.close()


@pytest.mark.parametrize("width", [390, 800])
def test_phone_navigation_reaches_the_chapters(html, server, browser, width):
    """The visible toggle opens the chapter list (pydata-sphinx-theme issue 2451)."""
    page, errors, failed = visit(browser, f"{server}/book/02_gradient_descent.html", width)
    toggle = page.locator("button.primary-toggle:visible")
    assert toggle.count() == 1, f"{width} px: {toggle.count()} visible sidebar toggles"
    toggle.click()
    drawer = page.locator("#pst-primary-sidebar-modal")
    drawer.wait_for(state="visible", timeout=5000)
    chapters = [a for a in drawer.locator("nav.bd-links a[href$='.html']").all()
                if a.is_visible()]
    assert len(chapters) >= 2, f"{width} px: the drawer shows no chapter links"
    target = chapters[-1]  # the last chapter listed: another page
    href = target.get_attribute("href")
    target.click()
    page.wait_for_url(f"**/{href.split('/')[-1]}")
    assert not errors, errors
    page.close()


def test_desktop_toggle_hides_and_shows_the_sidebar(html, server, browser):
    page, errors, failed = visit(browser, f"{server}/book/02_gradient_descent.html")
    sidebar = page.locator("#pst-primary-sidebar")
    assert sidebar.is_visible()
    page.locator("button.primary-toggle:visible").click()
    page.wait_for_timeout(500)  # the theme's transition
    assert not sidebar.is_visible(), "the toggle did not hide the sidebar at 1280 px"
    page.locator("button.primary-toggle:visible").click()
    page.wait_for_timeout(500)
    assert sidebar.is_visible(), "the toggle did not show the sidebar again"
    page.close()


# axe-core rules the theme breaks outside the article, each with the reason it is accepted.
# Anything else, and anything inside the article (the course's own content), fails the test.
# Measured with pydata-sphinx-theme 0.17.1 / sphinx-book-theme 1.3.0: the theme's
# "summary-name" (the chapter list's icon-only <summary>) is named by _static/sidebar-toggle.js
# and "region" (the logo outside a landmark) is only moderate, so none is left to accept.
THEME_VIOLATIONS: dict[str, str] = {}
AXE_FAILS = {"critical", "serious"}


def axe_violations(page) -> list[str]:
    """Critical and serious axe-core violations, except the theme's listed above."""
    from axe_playwright_python.sync_playwright import Axe

    problems = []
    for violation in Axe().run(page).response["violations"]:
        if violation["impact"] not in AXE_FAILS:
            continue
        for node in violation["nodes"]:
            target = " ".join(map(str, node["target"]))
            in_article = page.evaluate(
                "t => { const e = document.querySelector(t); "
                "return !!(e && e.closest('article, .bd-article')); }", target)
            if in_article or violation["id"] not in THEME_VIOLATIONS:
                problems.append(f"{violation['id']} ({violation['impact']}) at {target}: "
                                f"{node['html'][:120]}")
    return problems


def test_accessibility(html, server, browser):
    """axe-core on every page, at 1280 and 390 px; formulas are not tab stops."""
    problems = []
    for name in site_pages(html):
        if name == "index.html":  # a redirect to book/intro.html
            continue
        for width in (1280, 390):
            page, errors, failed = visit(browser, f"{server}/{name}", width)
            if page.evaluate("() => document.querySelectorAll('.math').length"):
                page.wait_for_selector("html[data-formulas='checked']", state="attached",
                                       timeout=15000)
            problems += [f"{name} at {width} px: {p}" for p in axe_violations(page)]
            # a formula that scrolls sideways must take the focus; no other is a tab stop
            tab_stops = page.evaluate("""() => [...document.querySelectorAll(
                'mjx-container[tabindex="0"]')].filter(m => m.scrollWidth <= m.clientWidth + 1)
                .length""")
            if tab_stops:
                problems.append(f"{name} at {width} px: {tab_stops} formulas are tab stops")
            page.close()
    assert not problems, "\n".join(problems)


def test_images_and_animations_are_described(html):
    """Every image says what it shows (not its file name, myst-nb's default)."""
    problems = []
    for name in site_pages(html):
        text = (html / name).read_text(encoding="utf-8")
        for tag in re.findall(r"<img\b[^>]*>", text):
            alt = re.search(r'\salt="([^"]*)"', tag)
            if not alt or not alt.group(1).strip() or re.search(r"\.(png|jpe?g|svg)$",
                                                                 alt.group(1)):
                problems.append(f"{name}: image without a description: {tag[:120]}")
    assert not problems, "\n".join(problems)


def test_no_code_or_output_scrolls_sideways(html, server, browser):
    """At 1280 px every code cell and output of a chapter fits its column."""
    problems = []
    for name in site_pages(html):
        if not re.match(r"book/\d\d_", name):
            continue
        page, errors, failed = visit(browser, f"{server}/{name}")
        wide = page.evaluate("""() => [...document.querySelectorAll(
              'div.cell_input pre, div.cell_output pre, div.highlight pre')]
            .filter(e => e.scrollWidth > e.clientWidth + 1)
            .map(e => e.textContent.split('\\n').reduce((a, b) => a.length > b.length ? a : b))""")
        problems += [f"{name}: scrolls sideways: {line[:100]!r}" for line in wide]
        page.close()
    assert not problems, "\n".join(problems)


def test_animations_are_as_wide_as_figures_and_fit_a_phone(html, server, browser):
    name = "book/02_gradient_descent.html"
    page, errors, failed = visit(browser, f"{server}/{name}")
    sizes = page.evaluate("""() => {
        const anim = document.querySelector('.animation img').getBoundingClientRect().width;
        const figures = [...document.querySelectorAll('.cell_output img')]
          .filter(i => !i.closest('.animation')).map(i => i.getBoundingClientRect().width);
        return {anim, widest: Math.max(...figures)}; }""")
    assert sizes["anim"] >= 0.9 * min(sizes["widest"], 640), sizes
    icons = page.evaluate("""() => [...document.querySelectorAll('.anim-buttons button')]
        .map(b => { const s = b.querySelector('svg');
                    return s ? s.getBoundingClientRect().width : 0; })""")
    assert icons and min(icons) > 8, f"control buttons without a visible icon: {icons}"
    page.close()
    page, errors, failed = visit(browser, f"{server}/{name}", 390)
    overflow = page.evaluate("""() => [...document.querySelectorAll('.animation')]
        .map(a => a.scrollWidth - a.parentElement.clientWidth)""")
    assert overflow and max(overflow) <= 1, f"animation wider than a phone: {overflow} px"
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.close()


def test_progress_bars_show_one_final_line(html):
    """A static page cannot redraw a bar: fit's progress is one line per training run."""
    problems = []
    for f in toc_files():
        if not re.match(r"book/\d\d_", f):
            continue
        for block in re.findall(r"<pre>(.*?)</pre>", page(html, f), flags=re.S):
            bars = re.findall(r"\d+%\|", block)
            if len(bars) > 1 or (bars and "100%|" not in block):
                problems.append(f"{f}: {len(bars)} progress lines in one output")
    assert not problems, "\n".join(problems)


def test_bibliography_math_is_typeset(html, server, browser):
    page, errors, failed = visit(browser, f"{server}/book/bibliography.html")
    page.wait_for_selector(".citation mjx-container", state="attached", timeout=15000)
    assert "$" not in page.inner_text("article"), "raw $...$ left in the bibliography"
    page.close()


def test_a_chapter_prints_whole(html, server, browser):
    """The download button's PDF (the browser's print): nothing cut, figures whole."""
    name = "book/02_gradient_descent.html"
    page, errors, failed = visit(browser, f"{server}/{name}", 700)  # Letter minus margins
    page.emulate_media(media="print")
    cut = page.evaluate("""() => [...document.querySelectorAll('pre, img, .animation')]
        .filter(e => e.getBoundingClientRect().width > 0)
        .filter(e => e.scrollWidth > e.clientWidth + 1
                     || e.getBoundingClientRect().right > document.documentElement.clientWidth)
        .map(e => e.tagName + ': ' + (e.innerText || e.alt || '').slice(0, 80))""")
    assert not cut, f"cut off in print: {cut}"
    unbroken = page.evaluate("""() => [...document.querySelectorAll('.cell_output img')]
        .filter(i => getComputedStyle(i).breakInside !== 'avoid').length""")
    assert unbroken == 0, f"{unbroken} figures may be split across pages"
    hidden = page.evaluate("() => getComputedStyle(document.querySelector("
                           "'.bd-sidebar-primary')).display")
    assert hidden == "none", "the chapter list is printed"
    shots = ROOT / "_build" / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    pdf = page.pdf(path=str(shots / "chapter-print.pdf"), print_background=True)
    assert len(pdf) > 100_000 and pdf.count(b"/Type /Page") > 3, "an empty or tiny PDF"
    page.close()


def test_search_finds_the_momentum_chapter(html, server, browser):
    page, errors, failed = visit(browser, f"{server}/search.html?q=momentum")
    page.wait_for_selector("#search-results li", timeout=20000)
    links = page.eval_on_selector_all("#search-results li a", "els => els.map(a => a.href)")
    assert any("06_momentum_and_schedules" in link for link in links), (
        f"searching 'momentum' did not return the momentum chapter: {links[:10]}")
    assert not errors, errors


# The Chinese edition's checks, on the build above (see the module docstring)
from site_zh import *  # noqa: E402, F403
