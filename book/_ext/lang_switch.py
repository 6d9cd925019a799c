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

from docutils import nodes
from sphinx import locale
from sphinx.transforms import SphinxTransform

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


def _markdown(node) -> str:
    """The MyST source of an inline text, rebuilt from its nodes (code, math, emphasis)."""
    parts = []
    for child in node.children:
        if isinstance(child, nodes.literal):
            parts.append(f"`{child.astext()}`")
        elif isinstance(child, nodes.math):
            parts.append(f"${child.astext()}$")
        elif isinstance(child, nodes.strong):
            parts.append(f"**{_markdown(child)}**")
        elif isinstance(child, nodes.emphasis):
            parts.append(f"*{_markdown(child)}*")
        elif isinstance(child, nodes.Element):
            parts.append(_markdown(child))
        else:
            parts.append(child.astext())
    return "".join(parts)


class TranslatableExerciseTitles(SphinxTransform):
    """sphinx-exercise's titles (``{exercise} Predict, then run``) carry no source, so gettext
    skips them; give them one, before Sphinx's Locale transform (priority 20) runs."""

    default_priority = 15

    def apply(self, **kwargs):
        try:
            from sphinx_exercise.nodes import exercise_subtitle
        except ImportError:
            return
        for node in self.document.findall(exercise_subtitle):
            if not node.source:
                parent = node.parent.parent if node.parent is not None else None
                node.source = (parent.source if parent is not None else None) or \
                    self.document["source"]
                node.line = (parent.line if parent is not None else None) or 1
                node.rawsource = _markdown(node)
            # the gettext builder reads the doctree after sphinx-exercise's post-transforms,
            # which rebuild these titles: remember them for it (_exercise_titles_to_gettext)
            titles = getattr(self.env, "exercise_titles", {})
            titles.setdefault(self.env.docname, []).append(
                (node.rawsource, node.source, node.line))
            self.env.exercise_titles = titles


class TranslatedExercisesInRegistry(SphinxTransform):
    """sphinx-exercise keeps a copy of each exercise, made before Sphinx translated it, and
    titles the solutions from that copy: copy the translated exercise again."""

    default_priority = 25  # after the Locale transform

    def apply(self, **kwargs):
        registry = getattr(self.env, "sphinx_exercise_registry", None)
        if not registry or not (self.config.language or "en").startswith("zh"):
            return
        for node in self.document.findall(nodes.Element):
            label = node.get("label") if node.get("type") == "exercise" else None
            if label in registry and registry[label].get("docname") == self.env.docname:
                registry[label]["node"] = node.deepcopy()


def _purge_exercise_titles(app, env, docname):
    getattr(env, "exercise_titles", {}).pop(docname, None)


def _exercise_titles_to_gettext(app, doctree, docname):
    if app.builder.name != "gettext":
        return
    from sphinx.builders.gettext import MsgOrigin
    from sphinx.util.i18n import docname_to_domain

    catalog = app.builder.catalogs[docname_to_domain(docname, app.config.gettext_compact)]
    for msg, source, line in getattr(app.env, "exercise_titles", {}).get(docname, []):
        if msg:
            catalog.add(msg, MsgOrigin(source, line))


def setup(app):
    app.add_transform(TranslatableExerciseTitles)
    app.add_transform(TranslatedExercisesInRegistry)
    app.connect("doctree-resolved", _exercise_titles_to_gettext)
    app.connect("env-purge-doc", _purge_exercise_titles)
    app.connect("build-finished", _hard_coded_labels)
    app.connect("builder-inited", _theme_labels)
    app.connect("html-page-context", _add_switch)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
