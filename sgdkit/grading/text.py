"""Student-derived text and JSON, made safe to store and show: arbitrary bytes in, plain text out.

A student controls file names (any bytes, not always UTF-8), exception messages (lone
surrogates such as ``"\\ud800"``), outputs (ANSI and control characters) and the probe records
their functions print. Everything the grader writes (``grades.csv``, logs, messages) goes
through ``clean``; every JSON document a student's code could have shaped goes through
``load_json``, which bounds its size and nesting before parsing.
"""

import hashlib
import json
import os
import re

ANSI = re.compile(r"\x1b(\[[0-9;?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)|[@-Z\\-_])")
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
MAX_JSON_BYTES = 1_000_000
MAX_JSON_DEPTH = 32
SAFE = set("_-.@+")
MAX_ID_BYTES = 120


def clean(value, limit: int | None = None) -> str:
    """value as printable text: lone surrogates escaped, ANSI codes and control characters
    (bidi overrides included) removed, tabs and newlines kept; cut to limit characters."""
    text = value if isinstance(value, str) else str(value)
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    text = CONTROL.sub("", ANSI.sub("", text))
    return text if limit is None or len(text) <= limit else text[:limit] + "..."


def depth(text: str) -> int:
    """How deeply JSON text nests ([ and { outside strings), without recursing."""
    deepest = level = 0
    for token in re.finditer(r'"(?:\\.|[^"\\])*"|[\[\]{}]', text):
        char = token.group()
        if char in "[{":
            level += 1
            deepest = max(deepest, level)
        elif char in "]}":
            level -= 1
    return deepest


def load_json(text, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH):
    """json.loads with a bounded size and nesting; ValueError past either bound."""
    if len(text) > max_bytes:
        raise ValueError(f"JSON of {len(text)} bytes (at most {max_bytes})")
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if depth(text) > max_depth:
        raise ValueError(f"JSON nested deeper than {max_depth} levels")
    return json.loads(text)


def student_id(name) -> str:
    """A file-name-safe student id from a folder or zip name, injective and Unicode-preserving.

    Letters and digits of any script and ``_-.@+`` stay; every other byte of the name's UTF-8
    (or raw, when the name is not UTF-8) becomes ``~XX`` in hex, ``~`` itself included, and so
    does a leading dot: ``李娜`` stays ``李娜``, ``Ada Lovelace`` becomes ``Ada~20Lovelace``.
    Two different names never give the same id; an id over MAX_ID_BYTES keeps its start and
    ends with a hash of the whole name.
    """
    raw = os.fsencode(name)
    out = []
    for i, char in enumerate(raw.decode("utf-8", "surrogateescape")):
        if (char.isalnum() or char in SAFE) and not (i == 0 and char == ".") and \
                not "\udc80" <= char <= "\udcff":
            out.append(char)
        else:
            out += [f"~{b:02x}" for b in char.encode("utf-8", "surrogateescape")]
    safe = "".join(out) or "~"
    if len(safe.encode()) > MAX_ID_BYTES:
        short = safe.encode()[:MAX_ID_BYTES - 40].decode("utf-8", "ignore")
        safe = f"{short}~~{hashlib.sha256(raw).hexdigest()[:32]}"
    return safe
