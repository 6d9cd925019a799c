"""Data: the shipped data sets, synthetic problems with a known answer, the minibatch iterator,
and the text corpus.

Everything here is offline: the real data sets are the ones scikit-learn bundles
(``load_diabetes``, ``load_digits``, ``load_breast_cancer``) and the text ships with Python.
Shapes follow the book: ``X`` is ``(n, d)``, one example per row; ``y`` is ``(n,)``.

The minibatch iterator is the one piece of code here that is also a lesson: a batch is
``X[idx]`` for a slice ``idx`` of one random permutation of ``0, ..., n-1``, so one epoch visits
every example exactly once, and building a batch is *one* gather, not ``B`` Python calls::

    perm = rng.permutation(n)                   # a new order each epoch
    for start in range(0, n, B):
        idx = perm[start:start + B]
        yield X[idx], y[idx]                    # one fancy-index gather per batch
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterator
from numbers import Integral
from pathlib import Path

import numpy as np

Split = namedtuple("Split", "X_train y_train X_test y_test")
Split.__doc__ = ("A train/test split: ``X_train`` (n_train, d), ``y_train`` (n_train,), and the "
                 "same for test.")


# ---------------------------------------------------------------------------------------------
# Real data sets (bundled with scikit-learn, so nothing is downloaded)


def _standardize(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Subtract the training mean and divide by the training std, column by column.

    Statistics come from the training set only, so the test set tells us nothing during
    training. A column constant in training (std 0) carries nothing a model could learn, so
    it becomes 0 in every set rather than being divided by 0.
    """
    mean = train.mean(axis=0)
    std = train.std(axis=0)
    scale = np.divide(1.0, std, out=np.zeros_like(std, dtype=np.float64), where=std > 0)
    return [(a - mean) * scale for a in (train, *others)]


def _split(X: np.ndarray, y: np.ndarray, test_size: float, seed: int,
           stratify: bool) -> tuple[np.ndarray, ...]:
    from sklearn.model_selection import train_test_split

    if not 0 < test_size < 1:
        raise ValueError(f"test_size is the fraction of examples held out, in (0, 1); "
                         f"got {test_size}")
    return train_test_split(X, y, test_size=test_size, random_state=seed,
                            stratify=y if stratify else None)


def _as_split(X_train, y_train, X_test, y_test, as_tensor: bool, y_dtype: str) -> Split:
    """Pack a split as float64 numpy arrays, or as torch tensors (float32 X) when ``as_tensor``.

    ``y_dtype`` is "float" (regression targets, 0/1 labels) or "long" (class indices, what
    ``torch.nn.functional.cross_entropy`` wants).
    """
    X_train, X_test = (np.asarray(a, dtype=np.float64) for a in (X_train, X_test))
    y_kind = np.int64 if y_dtype == "long" else np.float64
    y_train, y_test = (np.asarray(a, dtype=y_kind) for a in (y_train, y_test))
    if not as_tensor:
        return Split(X_train, y_train, X_test, y_test)
    import torch

    y_torch = torch.long if y_dtype == "long" else torch.float32
    return Split(torch.tensor(X_train, dtype=torch.float32), torch.tensor(y_train, dtype=y_torch),
                 torch.tensor(X_test, dtype=torch.float32), torch.tensor(y_test, dtype=y_torch))


def load_diabetes() -> tuple[np.ndarray, np.ndarray]:
    """The whole diabetes data set, ``X`` (442, 10) and ``y`` (442,), both standardized.

    This is the book's least-squares problem ``f(w) = 1/(2n) ||X w - y||^2``: every column of
    ``X`` has mean 0 and variance 1, so the Hessian ``X^T X / n`` is the correlation matrix,
    with ``L = lambda_max`` about 4.02 and condition number ``L / mu`` about 470.
    """
    from sklearn import datasets

    X, y = datasets.load_diabetes(return_X_y=True)
    X, = _standardize(X)
    y, = _standardize(y)
    return X, y


def load_diabetes_split(test_size: float = 0.2, seed: int = 0, as_tensor: bool = False) -> Split:
    """Diabetes (442 x 10) split into train and test; X and y standardized with training stats.

    float64 numpy arrays, or float32 torch tensors when ``as_tensor=True``.
    """
    from sklearn import datasets

    X, y = datasets.load_diabetes(return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, stratify=False)
    X_train, X_test = _standardize(X_train, X_test)
    y_train, y_test = _standardize(y_train, y_test)
    return _as_split(X_train, y_train, X_test, y_test, as_tensor, "float")


def load_digits_split(test_size: float = 0.2, seed: int = 0, as_tensor: bool = False) -> Split:
    """Handwritten digits, 1797 images of 8 x 8 pixels flattened to ``X`` (n, 64), ``y`` in 0..9.

    Pixels standardized with training stats (pixels blank in every training image become 0
    everywhere); the split is stratified so both sides hold every digit in the same
    proportion. ``y`` is int64
    (a ``torch.long`` tensor when ``as_tensor=True``, as ``cross_entropy`` expects).
    """
    from sklearn import datasets

    X, y = datasets.load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, stratify=True)
    X_train, X_test = _standardize(X_train, X_test)
    return _as_split(X_train, y_train, X_test, y_test, as_tensor, "long")


def load_breast_cancer_split(test_size: float = 0.2, seed: int = 0,
                             as_tensor: bool = False) -> Split:
    """Breast cancer diagnosis, ``X`` (n, 30) standardized with training stats, ``y`` in {0, 1}.

    ``y`` is float (0.0 or 1.0; 1 = benign, scikit-learn's coding), ready for the logistic
    loss ``mean(log(1 + exp(z)) - y z)`` and ``binary_cross_entropy_with_logits``. Stratified.
    """
    from sklearn import datasets

    X, y = datasets.load_breast_cancer(return_X_y=True)
    X_train, X_test, y_train, y_test = _split(X, y, test_size, seed, stratify=True)
    X_train, X_test = _standardize(X_train, X_test)
    return _as_split(X_train, y_train, X_test, y_test, as_tensor, "float")


# ---------------------------------------------------------------------------------------------
# Synthetic problems whose answer we know


def _design(n: int, d: int, cond: float, rng: np.random.Generator) -> np.ndarray:
    """``X`` (n, d) whose Gram matrix ``X^T X / n`` has eigenvalues ``geomspace(1, cond, d)``.

    ``X = sqrt(n) Q diag(sqrt(s)) V^T`` with ``Q`` (n, d) orthonormal columns and ``V`` a random
    rotation gives ``X^T X / n = V diag(s) V^T`` exactly: ``mu = 1``, ``L = cond``.
    """
    if not (isinstance(n, Integral) and isinstance(d, Integral) and 1 <= d <= n):
        raise ValueError(f"need ints 1 <= d <= n (at least as many examples as features); "
                         f"got n={n}, d={d}")
    if not cond >= 1:
        raise ValueError(f"cond = L / mu is at least 1, got {cond}")
    if d == 1 and cond != 1:
        raise ValueError(f"with d=1 there is one eigenvalue, so cond must be 1; got {cond}")
    Q, _ = np.linalg.qr(rng.standard_normal((n, d)))
    V, _ = np.linalg.qr(rng.standard_normal((d, d)))
    s = np.geomspace(1.0, cond, d)
    return np.sqrt(n) * (Q * np.sqrt(s)) @ V.T


def make_linear_regression(n: int = 1000, d: int = 10, cond: float = 10.0, noise: float = 0.1,
                           seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``y = X w_true + noise * eps``, with ``X^T X / n`` of condition number ``cond`` exactly.

    Returns ``X`` (n, d), ``y`` (n,), ``w_true`` (d,). The eigenvalues of the Hessian
    ``X^T X / n`` of ``1/(2n) ||X w - y||^2`` run from ``mu = 1`` to ``L = cond``.
    """
    rng = np.random.default_rng(seed)
    X = _design(n, d, cond, rng)
    w_true = rng.standard_normal(d)
    y = X @ w_true + noise * rng.standard_normal(n)
    return X, y, w_true


def make_logistic_regression(n: int = 1000, d: int = 10, cond: float = 10.0,
                             seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels ``y_i ~ Bernoulli(sigmoid(x_i^T w_true))`` in {0.0, 1.0}; ``X`` as in
    ``make_linear_regression`` (``X^T X / n`` has condition number ``cond``).

    Returns ``X`` (n, d), ``y`` (n,) float, ``w_true`` (d,) of norm 1: labels are noisy, so the
    data are (almost surely, for n >> d) not separable and the logistic loss has a minimizer.
    """
    rng = np.random.default_rng(seed)
    X = _design(n, d, cond, rng)
    w_true = rng.standard_normal(d)
    w_true /= np.linalg.norm(w_true)
    p = 1.0 / (1.0 + np.exp(-(X @ w_true)))
    y = (rng.random(n) < p).astype(np.float64)
    return X, y, w_true


# ---------------------------------------------------------------------------------------------
# Minibatches


def _is_torch(a) -> bool:
    return type(a).__module__.startswith("torch")


def _permutation(n: int, generator, torch_input: bool):
    """A random permutation of ``0, ..., n-1`` from ``generator``.

    An int seeds a fresh generator of X's kind (same seed, same order). A numpy ``Generator``
    or a ``torch.Generator`` is advanced, so calling again gives a new order. ``None`` draws
    from fresh OS entropy (numpy X) or from torch's global generator (tensor X, so
    ``torch.manual_seed`` applies).
    """
    if generator is None or (isinstance(generator, Integral) and not isinstance(generator, bool)):
        if not torch_input:
            return np.random.default_rng(generator).permutation(n)
        import torch

        generator = None if generator is None else torch.Generator().manual_seed(int(generator))
        return torch.randperm(n, generator=generator)
    if isinstance(generator, np.random.Generator):
        return generator.permutation(n)
    if _is_torch(generator):
        import torch

        if isinstance(generator, torch.Generator):
            return torch.randperm(n, generator=generator, device=generator.device)
    raise TypeError(f"generator must be None, an int seed, a numpy Generator (np.random."
                    f"default_rng(seed)) or a torch.Generator; got {type(generator).__name__}")


def minibatches(X, y=None, batch_size: int = 32, *, shuffle: bool = True,
                drop_last: bool = False, generator=None) -> Iterator:
    """Yield the minibatches of one epoch: ``(X_b, y_b)``, or ``X_b`` when ``y`` is None.

    ``X`` has ``n`` rows (numpy array or torch tensor; each batch is the same kind, on the same
    device), ``y`` has ``n`` entries. One call is one epoch: with ``shuffle`` the rows are taken
    in the order of a new random permutation, ``batch_size`` at a time, each batch one
    fancy-index gather ``X[idx]``. The batches of one call partition ``0, ..., n-1``; when
    ``batch_size`` does not divide ``n`` the last one is shorter (``drop_last=True`` drops it).

    ``generator`` (an int seed, a numpy ``Generator`` or a ``torch.Generator``) makes the order
    reproducible; pass the same Generator object every epoch to get a new order each time.
    """
    if not isinstance(batch_size, Integral) or isinstance(batch_size, bool):
        raise TypeError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size <= 0:
        raise ValueError(f"batch_size must be a positive int, got {batch_size}")
    if not hasattr(X, "shape") or len(X.shape) == 0:
        raise TypeError(f"X must be a numpy array or torch tensor with one example per row, "
                        f"got {type(X).__name__}")
    n = len(X)
    if y is not None:
        if not hasattr(y, "shape") or len(y.shape) == 0:
            raise TypeError(f"y must be a numpy array or torch tensor with one entry per row "
                            f"of X, got {type(y).__name__}")
        if len(y) != n:
            raise ValueError(f"X and y must have the same length (one label per example), "
                             f"got len(X) = {n} and len(y) = {len(y)}")
    arrays = (X,) if y is None else (X, y)
    # Draw the order now, not at the first next(): the permutation belongs to this call.
    perm = _permutation(n, generator, _is_torch(X)) if shuffle else None
    index = [_index_for(a, perm) for a in arrays] if shuffle else None
    stop = n - n % batch_size if drop_last else n
    return _batches(arrays, index, batch_size, stop, single=y is None)


def _index_for(a, perm):
    """``perm`` as the index type ``a`` wants: a tensor on ``a``'s device, or a numpy array."""
    if _is_torch(a):
        import torch

        perm = perm if isinstance(perm, torch.Tensor) else torch.from_numpy(perm)
        return perm.to(a.device)
    return perm if isinstance(perm, np.ndarray) else perm.cpu().numpy()


def _gather(a, i):
    """``a[i]``: the rows ``i`` of ``a``, one gather.

    For a tensor, ``index_select`` is ``a[i]`` for a 1-D index, minus the general machinery of
    advanced indexing, which splits even a 64-row gather across threads: on a busy CPU that
    made batches 5-10x slower (benchmarks/bench_minibatches.py).
    """
    return a.index_select(0, i) if _is_torch(a) else a[i]


def _batches(arrays, index, batch_size, stop, single):
    for start in range(0, stop, batch_size):
        if index is None:  # no shuffle: a slice is a view, no copy at all
            batch = tuple(a[start:start + batch_size] for a in arrays)
        else:
            batch = tuple(_gather(a, i[start:start + batch_size]) for a, i in zip(arrays, index))
        yield batch[0] if single else batch


# ---------------------------------------------------------------------------------------------
# Text


def text_corpus() -> str:
    """Several hundred kB of English prose: the help topics of the Python language reference.

    They are what ``help("if")`` prints (``pydoc_data.topics``), taken from Python 3.11 and
    shipped with sgdkit (``corpus.txt.gz``, PSF license): every Python version reads the same
    text, so the numbers measured on it do not change with the reader's Python, and nothing is
    downloaded. Topics are joined in sorted order.
    """
    import gzip

    with gzip.open(Path(__file__).with_name("corpus.txt.gz"), "rt", encoding="utf-8") as f:
        return f.read()
