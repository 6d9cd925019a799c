"""The Chinese edition: complete catalogs, a clean build, and its pages in Chromium.

test_site.py builds both editions (English at html/, Chinese at html/zh/, as `make book` lays
them out; the Chinese build reuses the English build's execution) and collects these tests, so
they run after that build; its fixtures (html, server, browser) are the ones used here.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from test_notebooks import toc_files
from test_site import site_pages, visit

from conftest import ROOT

LOCALE = ROOT / "locales" / "zh_CN" / "LC_MESSAGES"
CODE = re.compile(r"`[^`]+`")
MATH = re.compile(r"\$\$.+?\$\$|\$[^$]+\$", re.S)
LINK = re.compile(r"\]\(([^)]+)\)")
ROLE = re.compile(r"\{[\w:-]+\}`[^`]+`")


def catalogs() -> dict[Path, list]:
    found = {}
    for po in sorted(LOCALE.rglob("*.po")):
        with po.open("rb") as f:
            found[po] = [m for m in read_po(f) if m.id]
    return found


def test_every_message_is_translated_and_not_fuzzy():
    problems = []
    for po, messages in catalogs().items():
        name = po.relative_to(LOCALE)
        problems += [f"{name}: untranslated {m.id[:70]!r}" for m in messages if not m.string]
        problems += [f"{name}: fuzzy {m.id[:70]!r}" for m in messages if m.fuzzy]
    assert len(catalogs()) > 20, "the Chinese catalogs are missing"
    assert not problems, f"{len(problems)} messages to translate:\n" + "\n".join(problems[:40])


def test_translations_keep_code_math_links_and_numbers():
    """What readers must see unchanged: inline code, math, roles, link targets; and a
    numbered title stays a title (`2\\. 梯度下降`; an unescaped `2. ` starts a list)."""
    problems = []
    for po, messages in catalogs().items():
        for m in messages:
            if not m.string:
                continue
            for name, pattern in (("code", CODE), ("math", MATH), ("link", LINK),
                                  ("role", ROLE)):
                lost = set(pattern.findall(m.id)) - set(pattern.findall(m.string))
                if lost:
                    problems.append(f"{po.name}: {name} {sorted(lost)} lost in {m.id[:50]!r}")
            if re.match(r"\d+\. ", m.id) and not re.match(r"\d+\\\. ", m.string):
                problems.append(f"{po.name}: numbered title not escaped: {m.string!r}")
    assert not problems, "\n".join(problems[:40])


# Words the glossary (locales/zh_CN/GLOSSARY.md) replaces: one term per concept, everywhere.
NOT_OUR_TERMS = {"小批次": "小批量", "迷你批": "小批量", "批大小": "批量大小", "学习速率": "学习率",
                 "冲量": "动量", "海森": "黑塞矩阵", "海塞": "黑塞矩阵", "样例": "样本",
                 "迭代轮数": "轮", "时期": "轮"}


def test_translations_use_the_glossary():
    problems = []
    for po, messages in catalogs().items():
        for m in messages:
            for word, ours in NOT_OUR_TERMS.items():
                if word in (m.string or ""):
                    problems.append(f"{po.name}: {word!r} (glossary: {ours!r}) "
                                    f"in {m.string[:50]!r}")
    assert not problems, "\n".join(problems)


def test_catalogs_match_the_english_pages(tmp_path):
    """Every message of today's English pages is in a catalog: `make translations` was run
    after the last change to the text (gettext without executing: the texts are the same)."""
    config = tmp_path / "_config.yml"
    script = (f"import sys, yaml; sys.path.insert(0, {str(ROOT / 'locales')!r}); "
              f"import build; from pathlib import Path; "
              f"p = build.config('gettext', Path({str(tmp_path)!r}), Path({str(tmp_path)!r})); "
              f"c = yaml.safe_load(p.read_text()); c['execute']['execute_notebooks'] = 'off'; "
              f"Path({str(config)!r}).write_text(yaml.safe_dump(c))")
    subprocess.run([sys.executable, "-c", script], check=True, cwd=ROOT)
    jb = Path(sys.executable).parent / "jupyter-book"
    result = subprocess.run(
        [str(jb), "build", str(ROOT), "--config", str(config), "--path-output", str(tmp_path),
         "--builder", "custom", "--custom-builder", "gettext"],
        capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    pots = tmp_path / "_build" / "gettext"
    missing = []
    for pot in sorted(pots.rglob("*.pot")):
        po = LOCALE / pot.relative_to(pots).with_suffix(".po")
        with pot.open("rb") as f:
            wanted = {m.id for m in read_po(f) if m.id}
        have = set()
        if po.exists():
            with po.open("rb") as f:
                have = {m.id for m in read_po(f) if m.id and not m.fuzzy}
        missing += [f"{po.relative_to(LOCALE)}: {mid[:70]!r}" for mid in sorted(wanted - have)]
    assert not missing, (f"{len(missing)} English messages have no translation: run "
                         "`make translations` and translate them\n" + "\n".join(missing[:30]))


# --- The built site ----------------------------------------------------------------------------

def zh_pages(html: Path) -> list[str]:
    """The Chinese edition's pages, without zh/index.html (Jupyter Book's bare redirect)."""
    return [p for p in site_pages(html, chinese=True) if p != "zh/index.html"]


def test_the_chinese_site_builds_without_warnings(html):
    log = (html.parent / "zh.log").read_text()
    warnings = [line for line in log.splitlines() if "WARNING:" in line]
    assert not warnings, "the Chinese build printed warnings:\n" + "\n".join(warnings)
    missing = [f for f in toc_files() if not (html / "zh" / f"{f}.html").exists()]
    assert not missing, f"pages missing from the Chinese site: {missing}"


def test_pages_are_chinese(html):
    problems = []
    for name in zh_pages(html):
        text = (html / name).read_text(encoding="utf-8")
        if '<html lang="zh-CN"' not in text:
            problems.append(f"{name}: not lang=zh-CN")
        if "搜索" not in text:
            problems.append(f"{name}: the theme's labels are not in Chinese")
    intro = (html / "zh" / "book" / "intro.html").read_text(encoding="utf-8")
    for caption in ("第一部分", "第二部分", "第三部分"):
        if caption not in intro:
            problems.append(f"part caption {caption} missing from the navigation")
    assert "保持英文" in intro, "the intro does not say that code and figures stay English"
    assert not problems, "\n".join(problems)


def test_every_page_links_to_the_other_edition(html):
    problems = []
    pages = [f"{f}.html" for f in toc_files()]
    for name in pages + ["zh/" + page for page in pages]:
        text = (html / name).read_text(encoding="utf-8")
        links = re.findall(r'<p class="lang-switch[^"]*"[^>]*><a href="([^"]+)"', text)
        if len(links) != 1:
            problems.append(f"{name}: {len(links)} language switches")
            continue
        target = (html / name).parent / links[0]
        other = (name[3:] if name.startswith("zh/") else "zh/" + name)
        if target.resolve() != (html / other).resolve() or not target.exists():
            problems.append(f"{name}: switch leads to {links[0]}, not {other}")
    assert not problems, "\n".join(problems)


def test_search_index_knows_the_course_terms(html):
    """jieba alone splits 学习率 into 学习 + 率; the course's dictionary keeps the terms whole."""
    import json

    text = (html / "zh" / "searchindex.js").read_text(encoding="utf-8")
    terms = json.loads(text[text.index("(") + 1:text.rindex(")")])["terms"]
    missing = [t for t in ("学习率", "动量", "小批量", "梯度下降", "条件数") if t not in terms]
    assert not missing, f"the Chinese search index lacks the terms {missing}"


# --- In the browser ------------------------------------------------------------------------------

def test_every_chinese_page_in_the_browser(html, server, browser):
    problems = []
    for name in zh_pages(html):
        page, errors, failed = visit(browser, f"{server}/{name}")
        if page.evaluate("() => document.querySelectorAll('.math').length"):
            try:
                page.wait_for_selector("mjx-container", state="attached", timeout=15000)
            except Exception:
                problems.append(f"{name}: math not typeset")
        problems += [f"{name}: console error {e}" for e in errors]
        problems += [f"{name}: request {r}" for r in failed]
        page.close()
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["book/intro", "book/04_stochastic_gradient_descent",
                                  "exercises/01_gradient_descent/01_gradient_descent"])
def test_the_switch_works_both_ways(html, server, browser, name):
    page, errors, _ = visit(browser, f"{server}/{name}.html")
    page.click("p.lang-switch a")
    page.wait_for_url(f"{server}/zh/{name}.html")
    assert page.evaluate("() => document.documentElement.lang") == "zh-CN"
    page.click("p.lang-switch a")
    page.wait_for_url(f"{server}/{name}.html")
    assert page.evaluate("() => document.documentElement.lang") == "en"
    assert not errors, errors
    page.close()


@pytest.mark.parametrize("term, chapter", [("学习率", "06_momentum_and_schedules"),
                                           ("动量", "06_momentum_and_schedules"),
                                           ("小批量", "05_minibatching")])
def test_search_finds_chinese_terms(html, server, browser, term, chapter):
    page, errors, _ = visit(browser, f"{server}/zh/search.html?q={term}")
    page.wait_for_selector("#search-results li", timeout=20000)
    links = page.eval_on_selector_all("#search-results li a", "els => els.map(a => a.href)")
    assert any(chapter in link for link in links), (
        f"searching {term!r} did not return {chapter}: {links[:10]}")
    assert not errors, errors
    page.close()
