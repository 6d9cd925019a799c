"""Build the message catalogs and the Chinese edition from the one English source.

    python locales/build.py gettext OUT   # .pot files into OUT/_build/gettext
    python locales/build.py zh OUT        # the Chinese site into OUT/_build/html

Both reuse the English execution cache (``_build/.jupyter_cache``, the one ``make book``
fills, or CACHE=path): nothing is executed again unless a notebook changed. The Chinese
config is the English ``_config.yml`` with ``locales/zh_CN/_config.yml`` merged in. Its table
of contents is the English ``_toc.yml`` with the part captions in Chinese, taken from the root
page's catalog (the gettext build extracts them there), so the two never list different pages.
"""

import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
ZH = ROOT / "locales" / "zh_CN"


def merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


def config(kind: str, out: Path, cache: Path) -> Path:
    """Write the config for `kind` ('gettext', 'zh' or 'en') into out; paths made absolute."""
    conf = yaml.safe_load((ROOT / "_config.yml").read_text())
    if kind == "zh":
        conf = merge(conf, yaml.safe_load((ZH / "_config.yml").read_text()))
        sphinx = conf["sphinx"]["config"]
        sphinx["locale_dirs"] = [str(ROOT / p) for p in sphinx["locale_dirs"]]
        options = sphinx["html_search_options"]
        options["dict"] = str(ROOT / options["dict"])
    if kind == "gettext":
        conf["sphinx"]["config"]["gettext_compact"] = False
        conf["sphinx"]["config"]["gettext_location"] = False  # catalogs without line numbers
    conf["execute"]["cache"] = str(cache)
    extensions = conf["sphinx"].get("local_extensions") or {}
    conf["sphinx"]["local_extensions"] = {k: str(ROOT / v) for k, v in extensions.items()}
    extra = conf["sphinx"]["config"].get("html_extra_path", [])
    conf["sphinx"]["config"]["html_extra_path"] = [str(ROOT / p) for p in extra]
    if conf.get("html", {}).get("favicon"):
        conf["html"]["favicon"] = str(ROOT / conf["html"]["favicon"])
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"_config.{kind}.yml"
    path.write_text(yaml.safe_dump(conf, allow_unicode=True))
    return path


def zh_toc(out: Path) -> Path:
    """The English _toc.yml with its part captions translated (an error if one is not)."""
    from babel.messages.pofile import read_po

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    with (ZH / "LC_MESSAGES" / f"{toc['root']}.po").open("rb") as f:
        catalog = {m.id: m.string for m in read_po(f) if m.id and m.string and not m.fuzzy}
    for part in toc.get("parts", []):
        if part["caption"] not in catalog:
            raise SystemExit(f"part caption {part['caption']!r} has no translation in "
                             f"locales/zh_CN/LC_MESSAGES/{toc['root']}.po: make translations")
        part["caption"] = catalog[part["caption"]]
    path = out / "_toc.zh.yml"
    path.write_text(yaml.safe_dump(toc, allow_unicode=True, sort_keys=False))
    return path


def build(kind: str, out: Path, cache: Path | None = None, extra: tuple = ()) -> int:
    cache = cache or Path(os.environ.get("CACHE") or ROOT / "_build" / ".jupyter_cache")
    jb = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(jb), "build", str(ROOT), "--config", str(config(kind, out, cache)),
           "--path-output", str(out)]
    if kind == "gettext":
        cmd += ["--builder", "custom", "--custom-builder", "gettext"]
    if kind == "zh":
        cmd += ["--toc", str(zh_toc(out))]
    return subprocess.run(cmd + list(extra), cwd=ROOT).returncode


if __name__ == "__main__":
    kind, out, *rest = sys.argv[1:]
    sys.exit(build(kind, Path(out).resolve(), extra=tuple(rest)))
