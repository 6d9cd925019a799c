"""sgdkit.data: loaders, synthetic generators, the minibatch iterator, the text corpus."""

import numpy as np
import pytest
import torch

from sgdkit import data

# ---------------------------------------------------------------------------------------------
# loaders


def test_load_diabetes_is_standardized():
    X, y = data.load_diabetes()
    assert X.shape == (442, 10) and y.shape == (442,)
    assert X.dtype == y.dtype == np.float64
    np.testing.assert_allclose(X.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(X.std(axis=0), 1, atol=1e-12)
    assert abs(y.mean()) < 1e-12 and abs(y.std() - 1) < 1e-12


def test_load_diabetes_split_uses_training_statistics():
    s = data.load_diabetes_split(test_size=0.25, seed=3)
    assert s.X_train.shape == (331, 10) and s.X_test.shape == (111, 10)
    assert s.y_train.shape == (331,) and s.y_test.shape == (111,)
    np.testing.assert_allclose(s.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(s.X_train.std(axis=0), 1, atol=1e-12)
    assert abs(s.y_train.mean()) < 1e-12 and abs(s.y_train.std() - 1) < 1e-12
    # the test set is scaled with the training stats, so its mean is near 0 but not exactly 0
    assert np.abs(s.X_test.mean(axis=0)).max() > 1e-6
    # same seed, same split; another seed, another split
    again = data.load_diabetes_split(test_size=0.25, seed=3)
    np.testing.assert_array_equal(again.X_train, s.X_train)
    other = data.load_diabetes_split(test_size=0.25, seed=4)
    assert not np.array_equal(other.X_train, s.X_train)


def test_load_diabetes_split_as_tensor():
    s = data.load_diabetes_split(as_tensor=True)
    assert all(isinstance(a, torch.Tensor) and a.dtype == torch.float32 for a in s)
    n = data.load_diabetes_split()
    np.testing.assert_allclose(s.X_train.numpy(), n.X_train, rtol=1e-6, atol=1e-6)


def test_load_digits_split():
    s = data.load_digits_split()
    assert s.X_train.shape[1] == 64 and len(s.X_train) + len(s.X_test) == 1797
    assert s.y_train.dtype == np.int64 and set(np.unique(s.y_train)) == set(range(10))
    std = s.X_train.std(axis=0)
    constant = std == 0
    assert constant.any(), "the digits have always-blank pixels"
    assert (s.X_train[:, constant] == 0).all() and (s.X_test[:, constant] == 0).all()
    np.testing.assert_allclose(std[~constant], 1, atol=1e-12)
    t = data.load_digits_split(as_tensor=True)
    assert t.y_train.dtype == torch.long and t.X_train.dtype == torch.float32
    # stratified: every digit is 10% of each side, within one example per class
    counts = np.bincount(s.y_test, minlength=10)
    assert counts.max() - counts.min() <= 2


def test_load_breast_cancer_split():
    s = data.load_breast_cancer_split(test_size=0.3)
    assert s.X_train.shape[1] == 30 and len(s.X_train) + len(s.X_test) == 569
    assert set(np.unique(s.y_train)) == {0.0, 1.0} and s.y_train.dtype == np.float64
    assert abs(s.y_train.mean() - s.y_test.mean()) < 0.01  # stratified
    t = data.load_breast_cancer_split(as_tensor=True)
    assert t.y_test.dtype == torch.float32


@pytest.mark.parametrize("test_size", [0, 1, 1.5, -0.1])
def test_split_rejects_bad_test_size(test_size):
    with pytest.raises(ValueError, match="test_size"):
        data.load_diabetes_split(test_size=test_size)


# ---------------------------------------------------------------------------------------------
# synthetic problems


@pytest.mark.parametrize("cond", [1.0, 10.0, 1000.0])
def test_make_linear_regression_has_the_asked_condition_number(cond):
    X, y, w_true = data.make_linear_regression(n=200, d=5, cond=cond, noise=0.0, seed=1)
    assert X.shape == (200, 5) and y.shape == (200,) and w_true.shape == (5,)
    eig = np.linalg.eigvalsh(X.T @ X / 200)
    np.testing.assert_allclose([eig[0], eig[-1]], [1.0, cond], rtol=1e-9)
    np.testing.assert_allclose(y, X @ w_true, atol=1e-12)  # noise=0: y is exactly linear


def test_make_linear_regression_noise_and_seed():
    X, y, w = data.make_linear_regression(n=5000, d=3, noise=0.5, seed=2)
    assert abs(np.std(y - X @ w) - 0.5) < 0.02
    X2, y2, _ = data.make_linear_regression(n=5000, d=3, noise=0.5, seed=2)
    np.testing.assert_array_equal(y, y2)


def test_make_logistic_regression():
    X, y, w_true = data.make_logistic_regression(n=4000, d=4, cond=5.0, seed=0)
    assert set(np.unique(y)) == {0.0, 1.0}
    eig = np.linalg.eigvalsh(X.T @ X / 4000)
    assert abs(eig[-1] / eig[0] - 5.0) < 1e-9
    assert abs(np.linalg.norm(w_true) - 1) < 1e-12
    # labels follow the model: mean label close to the mean predicted probability
    p = 1 / (1 + np.exp(-X @ w_true))
    assert abs(y.mean() - p.mean()) < 0.03


@pytest.mark.parametrize("kwargs, match", [
    (dict(n=3, d=5), "d <= n"),
    (dict(cond=0.5), "cond"),
    (dict(d=1, cond=10.0), "d=1"),
])
def test_synthetic_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.make_linear_regression(**kwargs)


# ---------------------------------------------------------------------------------------------
# minibatches


def _rows(batches):
    """The first column of each batch (rows of X are labelled by X[:, 0] = index)."""
    return [np.asarray(b[0][:, 0] if isinstance(b, tuple) else b[:, 0]).astype(int)
            for b in batches]


def _labelled(n, kind):
    X = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)
    y = np.arange(n) * 10
    return (torch.from_numpy(X), torch.from_numpy(y)) if kind == "torch" else (X, y)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
@pytest.mark.parametrize("n, batch_size", [(100, 32), (64, 64), (10, 1), (5, 7)])
def test_minibatches_partition_and_keep_rows_together(kind, n, batch_size):
    X, y = _labelled(n, kind)
    batches = list(data.minibatches(X, y, batch_size, generator=0))
    sizes = [len(Xb) for Xb, _ in batches]
    assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
    rows = np.concatenate(_rows(batches))
    assert sorted(rows) == list(range(n))
    for Xb, yb in batches:  # X and y are gathered with the same index
        assert type(Xb) is type(X) and type(yb) is type(y)
        np.testing.assert_array_equal(np.asarray(yb), np.asarray(Xb[:, 0]).astype(int) * 10)
        np.testing.assert_array_equal(np.asarray(Xb[:, 1]), -np.asarray(Xb[:, 0]))


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_minibatches_drop_last(kind):
    X, y = _labelled(10, kind)
    batches = list(data.minibatches(X, y, 4, drop_last=True, generator=0))
    assert [len(b[0]) for b in batches] == [4, 4]
    assert len(set(np.concatenate(_rows(batches)))) == 8
    assert list(data.minibatches(X, y, 11, drop_last=True)) == []


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_minibatches_reshuffle_each_call_and_are_reproducible(kind):
    X, y = _labelled(50, kind)
    gen = np.random.default_rng(0) if kind == "numpy" else torch.Generator().manual_seed(0)
    epoch1 = np.concatenate(_rows(data.minibatches(X, y, 8, generator=gen)))
    epoch2 = np.concatenate(_rows(data.minibatches(X, y, 8, generator=gen)))
    assert not np.array_equal(epoch1, epoch2), "a new permutation on each call"
    assert not np.array_equal(epoch1, np.arange(50)), "shuffled"
    gen = np.random.default_rng(0) if kind == "numpy" else torch.Generator().manual_seed(0)
    again = np.concatenate(_rows(data.minibatches(X, y, 8, generator=gen)))
    np.testing.assert_array_equal(again, epoch1)
    # an int seed gives the same order every time
    a = np.concatenate(_rows(data.minibatches(X, y, 8, generator=5)))
    b = np.concatenate(_rows(data.minibatches(X, y, 8, generator=5)))
    np.testing.assert_array_equal(a, b)
    # no generator: fresh randomness (two 50! orders coincide with negligible probability)
    c = np.concatenate(_rows(data.minibatches(X, y, 8)))
    d = np.concatenate(_rows(data.minibatches(X, y, 8)))
    assert not np.array_equal(c, d)


def test_minibatches_torch_generator_matches_randperm():
    X, y = _labelled(30, "torch")
    expected = torch.randperm(30, generator=torch.Generator().manual_seed(7))
    rows = np.concatenate(_rows(data.minibatches(X, y, 30, generator=7)))
    np.testing.assert_array_equal(rows, expected.numpy())


def test_minibatches_numpy_generator_matches_permutation():
    X, y = _labelled(30, "numpy")
    expected = np.random.default_rng(7).permutation(30)
    rows = np.concatenate(_rows(data.minibatches(X, y, 30, generator=7)))
    np.testing.assert_array_equal(rows, expected)


def test_minibatches_mixed_kinds_and_generators():
    X, _ = _labelled(20, "torch")
    y = np.arange(20) * 10  # numpy labels with torch features: each keeps its kind
    for gen in (np.random.default_rng(1), torch.Generator().manual_seed(1)):
        for Xb, yb in data.minibatches(X, y, 6, generator=gen):
            assert isinstance(Xb, torch.Tensor) and isinstance(yb, np.ndarray)
            np.testing.assert_array_equal(yb, Xb[:, 0].numpy().astype(int) * 10)


def test_minibatches_without_y_and_without_shuffle():
    X, _ = _labelled(10, "numpy")
    batches = list(data.minibatches(X, batch_size=4, shuffle=False))
    assert [b[:, 0].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(isinstance(b, np.ndarray) for b in batches)
    assert np.shares_memory(batches[0], X), "no shuffle: batches are views, not copies"


@pytest.mark.parametrize("batch_size, error", [(0, ValueError), (-3, ValueError),
                                               (2.5, TypeError), (True, TypeError)])
def test_minibatches_reject_bad_batch_size(batch_size, error):
    X, y = _labelled(10, "numpy")
    with pytest.raises(error, match="batch_size must be a positive int"):
        data.minibatches(X, y, batch_size)  # raises on the call, not at the first next()


def test_minibatches_reject_bad_inputs():
    X, y = _labelled(10, "numpy")
    with pytest.raises(ValueError, match=r"len\(X\) = 10 and len\(y\) = 9"):
        data.minibatches(X, y[:9], 4)
    with pytest.raises(TypeError, match="X must be a numpy array or torch tensor"):
        data.minibatches([[1.0], [2.0]], None, 1)
    with pytest.raises(TypeError, match="X must be"):
        data.minibatches(np.float64(3.0), None, 1)
    with pytest.raises(TypeError, match="y must be"):
        data.minibatches(X, list(range(10)), 4)
    with pytest.raises(TypeError, match="generator must be"):
        data.minibatches(X, y, 4, generator="seed")
    with pytest.raises(TypeError, match="generator must be"):
        data.minibatches(X, y, 4, generator=torch.nn.Linear(1, 1))


# ---------------------------------------------------------------------------------------------
# text


def test_text_corpus():
    text = data.text_corpus()
    assert isinstance(text, str) and len(text) >= 100_000
    assert text == data.text_corpus()
    assert "assert" in text and text.count("the") > 1000  # English prose about Python
    # the same text on every Python version: the shipped copy of Python 3.11's help topics
    assert len(text) == 465_126 and text.startswith("The \"assert\" statement")
