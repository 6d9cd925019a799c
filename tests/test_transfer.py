"""No graded function is shown, in full or nearly, in a chapter or in sgdkit.

A student who has the chapters open and sgdkit installed must not score by scrolling up and
re-typing (or importing) code: every graded task asks for a step beyond what the book shows.

For every solution cell of ``solutions/*/*.ipynb`` (cells with ``BEGIN SOLUTION``), each
function and class it defines (and each method of a class) is normalized up to renaming:
docstrings, comments and type annotations dropped, every constant replaced by a placeholder,
and every identifier that is not a builtin or a module alias (``np``, ``torch``, ...) renamed by
order of first appearance. Attribute names (``np.linalg.eigvalsh``, ``.grad``) are kept: they
are what the code does. The same is done for every function and class in the code cells of
``book/*.ipynb`` and in ``sgdkit/**/*.py``. A graded unit fails if its normalized form equals
one of these, is nearly the same (difflib ratio >= 0.9 on the normalized tokens), or is nearly
all contained in one (>= 90% of its tokens, in order, inside a unit at most 3 times as long: an
sgdkit version with argument checks around the same lines). A graded function or class that has
the name of a public function or class of sgdkit fails too: ``from sgdkit... import`` it scores.
"""

import ast
import builtins
import difflib
import io
import tokenize
from functools import cache

import nbformat
import pytest

from conftest import ROOT

SIMILAR = 0.9  # difflib ratio at or above which two normalized units count as the same code
MIN_TOKENS = 12  # shorter units are compared for equality only (near-duplicates are noise)
MIN_CONTAINED = 30  # a unit this long, 90% inside a shown one, counts as shown
KEEP = set(dir(builtins)) | {"np", "numpy", "torch", "nn", "F", "math", "optim", "random",
                             "self", "super", "cls"}
MARKERS = ("BEGIN SOLUTION", "END SOLUTION")


def python_of(source: str) -> str:
    """A cell's code without IPython magics and shell escapes."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                     for line in source.split("\n"))


def parse(source: str) -> ast.Module | None:
    try:
        return ast.parse(python_of(source))
    except SyntaxError:
        return None


class Normalize(ast.NodeTransformer):
    """Rename identifiers by order of appearance, blank constants, drop docstrings and hints."""

    def __init__(self):
        self.names: dict[str, str] = {}

    def rename(self, name: str) -> str:
        if name in KEEP:
            return name
        return self.names.setdefault(name, f"v{len(self.names)}")

    def _body(self, node):
        body = node.body
        if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            body = body[1:] or [ast.Pass()]
        node.body = body
        return node

    def visit_FunctionDef(self, node):
        node.name = self.rename(node.name)
        node.returns = None
        node.decorator_list = []
        self._body(node)
        return self.generic_visit(node)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_ClassDef(self, node):
        node.name = self.rename(node.name)
        node.decorator_list = []
        self._body(node)
        return self.generic_visit(node)

    def visit_arg(self, node):
        node.arg = self.rename(node.arg)
        node.annotation = None
        return node

    def visit_AnnAssign(self, node):
        node.annotation = ast.Name("T", ast.Load())
        return self.generic_visit(node)

    def visit_Name(self, node):
        node.id = self.rename(node.id)
        return node

    def visit_Constant(self, node):
        return ast.copy_location(ast.Name("C", ast.Load()), node)

    def visit_JoinedStr(self, node):  # an f-string is text: one placeholder, like a constant
        return ast.copy_location(ast.Name("C", ast.Load()), node)

    def visit_keyword(self, node):  # keyword names are the callee's API: keep them
        return self.generic_visit(node)


def normalized(node: ast.AST) -> tuple[str, ...]:
    """The unit's tokens after normalization."""
    import copy

    tree = Normalize().visit(copy.deepcopy(node))
    text = ast.unparse(ast.fix_missing_locations(tree))
    return tuple(t.string for t in tokenize.generate_tokens(io.StringIO(text).readline)
                 if t.type not in (tokenize.NEWLINE, tokenize.NL, tokenize.INDENT,
                                   tokenize.DEDENT, tokenize.ENDMARKER, tokenize.COMMENT))


def units(tree: ast.AST, everywhere: bool):
    """(name, node) of the functions and classes in tree: top level and class methods, or
    (everywhere) at any depth."""
    nodes = ast.walk(tree) if everywhere else tree.body
    for node in nodes:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield node.name, node
            if isinstance(node, ast.ClassDef) and not everywhere:
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        yield f"{node.name}.{item.name}", item


def graded_units() -> list[tuple[str, str, tuple[str, ...]]]:
    """(assignment, function, normalized tokens) for every unit a solution cell defines."""
    found = []
    for path in sorted((ROOT / "solutions").glob("*/*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type != "code" or "BEGIN SOLUTION" not in cell.source:
                continue
            source = "\n".join(line for line in cell.source.split("\n")
                               if not any(m in line for m in MARKERS))
            tree = parse(source)
            assert tree is not None, f"{path.name}: a solution cell does not parse"
            for name, node in units(tree, everywhere=False):
                found.append((path.parent.name, name, normalized(node)))
    return found


@cache
def shown_units() -> list[tuple[str, str, tuple[str, ...]]]:
    """(where, function, normalized tokens) for every unit a chapter or sgdkit shows."""
    found = []
    for path in sorted((ROOT / "book").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for i, cell in enumerate(nb.cells):
            if cell.cell_type == "code" and (tree := parse(cell.source)) is not None:
                for name, node in units(tree, everywhere=True):
                    found.append((f"book/{path.name} cell {i}", name, normalized(node)))
    for path in sorted((ROOT / "sgdkit").rglob("*.py")):
        tree = parse(path.read_text())
        assert tree is not None, f"{path} does not parse"
        for name, node in units(tree, everywhere=True):
            found.append((str(path.relative_to(ROOT)), name, normalized(node)))
    return found


def copies(tokens: tuple[str, ...]) -> list[str]:
    """Where a unit with these normalized tokens is shown (equal, or nearly)."""
    hits = []
    for where, name, shown in shown_units():
        if shown == tokens:
            hits.append(f"{where}: {name} (the same code up to renaming)")
        elif min(len(tokens), len(shown)) >= MIN_TOKENS:
            matcher = difflib.SequenceMatcher(None, tokens, shown, autojunk=False)
            if (matcher.real_quick_ratio() >= SIMILAR and matcher.quick_ratio() >= SIMILAR
                    and (ratio := matcher.ratio()) >= SIMILAR):
                hits.append(f"{where}: {name} ({ratio:.0%} the same up to renaming)")
            elif MIN_CONTAINED <= len(tokens) and len(shown) <= 3 * len(tokens):
                inside = sum(b.size for b in matcher.get_matching_blocks()) / len(tokens)
                if inside >= SIMILAR:
                    hits.append(f"{where}: {name} ({inside:.0%} of it shown inside, renamed)")
    return hits


@cache
def sgdkit_names() -> dict[str, str]:
    """Public function and class names defined at the top level of an sgdkit module (what
    ``from sgdkit.x import name`` reaches) -> the module."""
    names = {}
    for path in sorted((ROOT / "sgdkit").rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if (isinstance(node, (ast.FunctionDef, ast.ClassDef))
                    and not node.name.startswith("_")):
                names.setdefault(node.name, str(path.relative_to(ROOT)))
    return names


GRADED = graded_units()


def test_the_check_sees_the_graded_functions_and_the_book():
    assert GRADED, "no solution cell defines a function: the transfer check sees nothing"
    where = {w.split(" cell ")[0] for w, _, _ in shown_units()}
    assert any(w.startswith("book/") for w in where) and any(w.startswith("sgdkit") for w in where)


def test_normalization_sees_through_renaming():
    a = ast.parse("def gd(grad, w0, lr, n):\n    '''doc'''\n    w = np.array(w0, dtype=float)\n"
                  "    for _ in range(n):\n        w = w - lr * grad(w)  # step\n    return w\n")
    b = ast.parse("def descend(g: object, start, eta=0.1, steps=3) -> None:\n"
                  "    x = np.array(start, dtype=float)\n    for k in range(steps):\n"
                  "        x = x - eta * g(x)\n    return x\n")
    c = ast.parse("def descend(g, start, eta, steps):\n    x = np.array(start, dtype=float)\n"
                  "    for k in range(steps):\n        x = x + eta * g(x)\n    return x\n")
    (_, fa), = units(a, False)
    (_, fb), = units(b, False)
    (_, fc), = units(c, False)
    na, nb_, nc = normalized(fa), normalized(fb), normalized(fc)
    assert na != nc and difflib.SequenceMatcher(None, na, nc).ratio() >= SIMILAR
    assert normalized(fa)[:4] == nb_[:4]  # def v0 ( v1 ...


@pytest.mark.parametrize("assignment, function, tokens", GRADED,
                         ids=[f"{a}-{f}" for a, f, _ in GRADED])
def test_graded_function_is_not_shown_in_the_book_or_sgdkit(assignment, function, tokens):
    hits = copies(tokens)
    if "." not in function and function in sgdkit_names():
        hits.append(f"{sgdkit_names()[function]} defines {function!r}: an import scores")
    assert not hits, (
        f"solutions/{assignment}: the graded {function!r} is shown in the course already, so a "
        f"student can re-type or import it: change the task (ask for a step beyond the chapter):"
        f"\n  " + "\n  ".join(hits))
