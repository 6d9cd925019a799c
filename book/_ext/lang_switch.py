"""Sphinx extension: the two editions of the site, English at / and Chinese at /zh/.

- every page starts with a link to the same page in the other edition (and says so in the
  head: ``<link rel="alternate" hreflang=...>``)
- in the Chinese edition (``language = zh_CN``), the theme's own labels come from the
  project's catalogs first: ``locales/zh_CN/LC_MESSAGES/sphinx.po`` (Sphinx and the pydata
  theme; Sphinx reads it itself) and ``booktheme.po`` (sphinx-book-theme's buttons, loaded
  here, since Sphinx looks for an extension's catalog only in the extension's own folder)
"""

import gettext
from html import escape
from pathlib import Path

from sphinx import locale

ZH_DIR = "zh"  # the Chinese edition's folder inside the English site
ROOT = Path(__file__).resolve().parent.parent.parent


def is_zh(app) -> bool:
    return (app.config.language or "en").startswith("zh")


def other_edition(app, pagename: str) -> tuple[str, str, str]:
    """(relative URL of the same page in the other edition, its language tag, link text)."""
    up = "../" * pagename.count("/")
    if is_zh(app):
        return f"{up}../{pagename}.html", "en", "English"
    return f"{up}{ZH_DIR}/{pagename}.html", "zh-CN", "中文"


def _add_switch(app, pagename, templatename, context, doctree):
    if doctree is None or "body" not in context:  # search, genindex: no article
        return
    href, lang, text = other_edition(app, pagename)
    href = escape(href)
    context["metatags"] = context.get("metatags", "") + (
        f'\n<link rel="alternate" hreflang="{lang}" href="{href}" />')
    context["body"] = (
        f'<p class="lang-switch d-print-none" style="text-align: right; margin: 0">'
        f'<a href="{href}" hreflang="{lang}" lang="{lang}">{text}</a></p>\n'
        + context["body"])


class _Catalog(gettext.NullTranslations):
    """Messages read from a .po file; what it lacks goes to the fallback (the theme's own)."""

    def __init__(self, messages: dict[str, str]):
        super().__init__()
        self._messages = messages

    def gettext(self, message):
        if self._messages.get(message):
            return self._messages[message]
        return self._fallback.gettext(message) if self._fallback else message

    def ngettext(self, singular, plural, n):
        if n == 1 and self._messages.get(singular):
            return self._messages[singular]
        return self._fallback.ngettext(singular, plural, n) if self._fallback else (
            singular if n == 1 else plural)


def _theme_labels(app):
    if not is_zh(app):
        return
    from babel.messages.pofile import read_po

    # Jupyter Book sets the search box's text as a theme option, not as a message
    app.config.html_theme_options["search_bar_text"] = "搜索本书……"

    for dirs in app.config.locale_dirs:
        po = Path(app.srcdir, dirs, app.config.language, "LC_MESSAGES", "booktheme.po")
        if po.exists():
            with po.open("rb") as f:
                messages = {m.id: m.string for m in read_po(f) if m.id and not m.fuzzy}
            catalog = _Catalog(messages)
            key = ("general", "booktheme")
            if key in locale.translators:
                catalog.add_fallback(locale.translators[key])
            locale.translators[key] = catalog


# Labels the themes write in English without asking a catalog.
HARD_CODED = {
    'title="Toggle primary sidebar"': 'title="切换主侧边栏"',
    'title="Toggle secondary sidebar"': 'title="切换次侧边栏"',
    'aria-label="Toggle primary sidebar"': 'aria-label="切换主侧边栏"',
    'aria-label="Toggle secondary sidebar"': 'aria-label="切换次侧边栏"',
    'aria-label="Main"': 'aria-label="主导航"',
    'aria-label="Page"': 'aria-label="本页"',
    'aria-label="Toggle hidden content"': 'aria-label="显示或隐藏内容"',
}


def _hard_coded_labels(app, exception):
    if exception or not is_zh(app) or app.builder.format != "html":
        return
    for page in Path(app.outdir).rglob("*.html"):
        text = page.read_text(encoding="utf-8")
        new = text
        for old, zh in HARD_CODED.items():
            new = new.replace(old, zh)
        if new != text:
            page.write_text(new, encoding="utf-8")


def setup(app):
    app.connect("build-finished", _hard_coded_labels)
    app.connect("builder-inited", _theme_labels)
    app.connect("html-page-context", _add_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
