"""Checks for exercise tests: when one fails, its message says what was expected, what came back,
where, and by how much, so a student can fix the code without reading the test.

- ``assert_close(actual, expected)``: equal up to ``|a - e| <= atol + rtol |e|`` entry by entry
  (numpy's ``isclose``); numpy arrays, torch tensors, python numbers and lists all work.
- ``grad_check(f, grad, w)``: an analytic gradient against central differences
  ``(f(w + h e_i) - f(w - h e_i)) / 2h``.
- ``assert_partition(batches, n)``: the batches of one epoch use every index of
  ``0, ..., n-1`` exactly once.
- ``assert_finite(value)``: no inf and no nan.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

__all__ = ["assert_close", "assert_finite", "assert_partition", "grad_check"]


def _to_numpy(value: Any) -> np.ndarray:
    """``value`` as a numpy array; torch tensors are detached and moved to the CPU first."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor (torch not imported)
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _describe(a: np.ndarray) -> str:
    return "a single number" if a.ndim == 0 else f"an array of shape {a.shape}"


def _fmt(x: Any) -> str:
    return f"{x:.6g}" if isinstance(x, (float, np.floating)) else repr(x)


def _close(a: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> bool:
    return a.shape == e.shape and bool(np.all(np.isclose(a, e, rtol=rtol, atol=atol,
                                                         equal_nan=True)))


def _mismatch(name: str, a: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> str | None:
    """Why ``a`` is not ``e`` (one paragraph), or None when they agree."""
    if a.shape != e.shape:
        return f"{name} is {_describe(a)}, but it should be {_describe(e)}."
    bad = ~np.isclose(a, e, rtol=rtol, atol=atol, equal_nan=True)
    if not bad.any():
        return None
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        err = np.abs(a - e)
        rel = err / np.abs(e)
    # the worst entry: a nan or inf first, then the largest error
    score = np.where(np.isfinite(err), err, np.inf)
    i = np.unravel_index(np.argmax(np.where(bad, score, -1.0)), a.shape) if a.ndim else ()
    i = tuple(int(k) for k in i)
    got, want = a[i].item(), e[i].item()
    where = f" at index {i[0] if len(i) == 1 else i}" if a.ndim else ""
    count = f" ({int(bad.sum())} of {a.size} entries differ)" if a.ndim else ""
    if np.isfinite(got) and np.isfinite(want):
        errors = f"abs error {_fmt(err[i].item())}"
        errors += f", rel error {_fmt(rel[i].item())}" if want != 0 else ""
        errors = f" ({errors}; tolerance rtol={rtol:g}, atol={atol:g})"
    else:
        errors = ""
    return f"{name}{where}: expected {_fmt(want)}, got {_fmt(got)}{errors}{count}."


def assert_close(actual: Any, expected: Any, name: str = "value", rtol: float = 1e-6,
                 atol: float = 1e-8, *, hint: str | None = None,
                 mistakes: Mapping[str, Any] | None = None) -> None:
    """Raise ``AssertionError`` unless ``actual`` equals ``expected`` up to
    ``|actual - expected| <= atol + rtol |expected|`` in every entry (same shape required).

    The message names the quantity (``name``), gives the shapes when they differ, otherwise the
    worst entry: its index, what was expected and what came back there, the absolute and
    relative error. ``hint`` is added to any failure message. ``mistakes`` maps a description
    of a common mistake to the value that mistake produces; when ``actual`` matches one, the
    message says so (e.g. ``{"gradient ascent: use w - lr * grad(w)": ascent_path}``).
    """
    if actual is None:
        message = f"{name}: got None: did you forget to return?"
    else:
        e = _to_numpy(expected)
        try:
            a = _to_numpy(actual)
        except (TypeError, ValueError) as err:  # e.g. a ragged list
            a, message = None, f"{name} could not be read as numbers ({err})."
        if a is not None:
            if a.dtype.kind not in "biufc":
                message = (f"{name} should be {_describe(e)}, got "
                           f"{type(actual).__name__} {actual!r:.60}.")
            elif a.dtype.kind == "c" and e.dtype.kind != "c":
                message = (f"{name} has complex values, but it should be real (for a "
                           f"symmetric matrix use np.linalg.eigvalsh, whose eigenvalues are "
                           f"real and sorted).")
            else:
                message = _mismatch(name, a, e, rtol, atol)
                if message is None:
                    return
            for description, wrong in (mistakes or {}).items():
                if a.dtype.kind in "biufc" and _close(a, _to_numpy(wrong), rtol, atol):
                    message += f"\nThis is what a common mistake gives: {description}."
                    break
    if hint:
        message += f"\n{hint}"
    raise AssertionError(message)


def assert_finite(value: Any, name: str = "value") -> None:
    """Raise ``AssertionError`` if ``value`` holds an inf or a nan, saying where the first is."""
    if value is None:
        raise AssertionError(f"{name}: got None: did you forget to return?")
    a = _to_numpy(value)
    bad = ~np.isfinite(a)
    if bad.any():
        i = tuple(int(k) for k in np.argwhere(bad)[0])
        where = f" at index {i[0] if len(i) == 1 else i}" if a.ndim else ""
        raise AssertionError(
            f"{name} is not finite{where}: got {a[i].item()} ({int(bad.sum())} of {a.size} "
            f"entries are inf or nan); a learning rate that is too large makes iterates blow up.")


def grad_check(f: Callable[[np.ndarray], float], grad: Callable[[np.ndarray], Any], w: Any,
               h: float = 1e-6, rtol: float = 1e-4) -> float:
    """Compare ``grad(w)`` with central differences and return the largest relative error.

    ``num_i = (f(w + h e_i) - f(w - h e_i)) / (2h)`` for each coordinate ``i``; the error of
    coordinate ``i`` is ``|grad(w)_i - num_i|`` divided by the largest entry of either gradient
    (so coordinates where the gradient is near 0 do not blow the ratio up). Raises
    ``AssertionError`` naming the worst coordinate when the error exceeds ``rtol``. ``w`` is
    (d,); check at a generic point, not at a minimum, where every gradient is about 0.
    """
    w = np.array(w, dtype=np.float64)
    if w.ndim != 1:
        raise ValueError(f"w must have shape (d,), got {w.shape}")
    g = grad(w.copy())
    if g is None:
        raise AssertionError("grad(w) returned None: did you forget to return?")
    g = _to_numpy(g).astype(np.float64)
    if g.shape != w.shape:
        raise AssertionError(f"grad(w) should have the shape of w, {w.shape}, got {g.shape}.")
    num = np.empty_like(w)
    for i in range(len(w)):
        step = np.zeros_like(w)
        step[i] = h
        num[i] = (float(f(w + step)) - float(f(w - step))) / (2 * h)
    scale = max(np.abs(g).max(initial=0.0), np.abs(num).max(initial=0.0))
    err = np.abs(g - num) / scale if scale > 0 else np.zeros_like(w)
    worst = int(np.argmax(err))
    if not err[worst] <= rtol:  # also catches nan
        message = (f"grad(w) disagrees with central differences at coordinate {worst}: "
                   f"grad(w)[{worst}] = {_fmt(g[worst])}, but (f(w + h e_{worst}) - "
                   f"f(w - h e_{worst})) / 2h = {_fmt(num[worst])} with h = {h:g} (relative "
                   f"error {_fmt(err[worst])} > rtol = {rtol:g}).")
        ratio = (g @ num) / (num @ num) if num @ num > 0 else 0.0
        if ratio != 0 and np.allclose(g, ratio * num, rtol=1e-3, atol=1e-3 * scale):
            message += (f"\ngrad(w) is {ratio:.3g} times the numerical gradient everywhere: "
                        + ("check the sign." if np.isclose(ratio, -1, rtol=1e-3) else
                           "look for a missing or extra constant factor (1/2, 1/n, 2)."))
        raise AssertionError(message)
    return float(err.max(initial=0.0))



def assert_partition(batches: Iterable[Any], n: int) -> None:
    """Raise ``AssertionError`` unless the index batches together hold each of
    ``0, ..., n-1`` exactly once (one epoch of minibatches without replacement).

    ``batches`` is an iterable of integer index arrays (numpy, torch or lists).
    """
    arrays = [_to_numpy(b).ravel() for b in batches]
    seen = np.concatenate(arrays) if arrays else np.array([], dtype=int)
    if seen.size and seen.dtype.kind not in "iu":
        raise AssertionError(f"batches should hold integer indices, got dtype {seen.dtype}.")
    outside = seen[(seen < 0) | (seen >= n)]
    if outside.size:
        raise AssertionError(f"index {outside[0]} is outside range(n) for n = {n}.")
    counts = np.bincount(seen.astype(np.int64), minlength=n)
    repeated, missing = np.flatnonzero(counts > 1), np.flatnonzero(counts == 0)
    problems = []
    if repeated.size:
        i = repeated[0]
        which = [k for k, b in enumerate(arrays) if i in b]
        problems.append(f"{repeated.size} of the indices appear more than once, e.g. index {i} "
                        f"appears {counts[i]} times (in batches {which[:5]})")
    if missing.size:
        problems.append(f"{missing.size} of the {n} indices never appear, e.g. "
                        f"{missing[:5].tolist()}")
    if problems:
        raise AssertionError(f"the {len(arrays)} batches should use each index of range({n}) "
                             f"exactly once, but " + "; ".join(problems) + ".")
