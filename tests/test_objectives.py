"""sgdkit.objectives: gradients against torch.autograd and central differences, constants
against eigenvalues, minimizers against their optimality conditions."""

import numpy as np
import pytest
import torch

from sgdkit import data
from sgdkit.objectives import (
    LeastSquares,
    Logistic,
    Quadratic,
    Rosenbrock,
    least_squares_loss,
    logistic_loss,
    quadratic,
)


def central_difference(f, w, h=1e-5):
    """``(f(w + h e_j) - f(w - h e_j)) / 2h`` for each coordinate j: error O(h^2)."""
    g = np.zeros_like(w)
    for j in range(len(w)):
        e = np.zeros_like(w)
        e[j] = h
        g[j] = (f(w + e) - f(w - e)) / (2 * h)
    return g


@pytest.fixture(scope="module")
def regression():
    X, y, _ = data.make_linear_regression(n=60, d=4, cond=20.0, noise=0.3, seed=0)
    return X, y


@pytest.fixture(scope="module")
def classification():
    X, y, _ = data.make_logistic_regression(n=80, d=3, cond=4.0, seed=0)
    return X, y


def objectives(regression, classification):
    rng = np.random.default_rng(0)
    M = rng.standard_normal((3, 3))
    return {
        "quadratic": Quadratic(M @ M.T + np.eye(3), b=rng.standard_normal(3)),
        "rosenbrock": Rosenbrock(a=1.5, b=20.0),
        "least_squares": LeastSquares(*regression),
        "logistic": Logistic(*classification),
        "logistic_l2": Logistic(*classification, l2=0.1),
    }


NAMES = ["quadratic", "rosenbrock", "least_squares", "logistic", "logistic_l2"]


def torch_loss(name, f, w):
    """The same loss written with torch operations, to differentiate with autograd."""
    if name == "quadratic":
        A, b = torch.tensor(f.A), torch.tensor(f.b)
        return 0.5 * w @ A @ w - b @ w
    if name == "rosenbrock":
        return (f.a - w[0]) ** 2 + f.b * (w[1] - w[0] ** 2) ** 2
    X, y = torch.tensor(f.X), torch.tensor(f.y)
    if name == "least_squares":
        return least_squares_loss(w, X, y)
    return logistic_loss(w, X, y) + 0.5 * f.l2 * w @ w


@pytest.mark.parametrize("name", NAMES)
def test_loss_and_grad_match_torch_autograd(name, regression, classification):
    f = objectives(regression, classification)[name]
    rng = np.random.default_rng(1)
    for _ in range(3):
        w = rng.standard_normal(f.d)
        wt = torch.tensor(w, requires_grad=True)
        loss = torch_loss(name, f, wt)
        loss.backward()
        assert abs(f.loss(w) - loss.item()) <= 1e-10 * max(1.0, abs(loss.item()))
        np.testing.assert_allclose(f.grad(w), wt.grad.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_grad_matches_central_differences(name, regression, classification):
    f = objectives(regression, classification)[name]
    w = np.random.default_rng(2).standard_normal(f.d)
    np.testing.assert_allclose(f.grad(w), central_difference(f.loss, w), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", ["quadratic", "rosenbrock", "least_squares", "logistic_l2"])
def test_hessian_matches_torch(name, regression, classification):
    f = objectives(regression, classification)[name]
    w = np.random.default_rng(3).standard_normal(f.d)
    H = torch.autograd.functional.hessian(lambda v: torch_loss(name, f, v), torch.tensor(w))
    np.testing.assert_allclose(f.hessian(w), H.numpy(), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("name", ["least_squares", "logistic", "logistic_l2"])
def test_per_example_grads_average_to_grad(name, regression, classification):
    f = objectives(regression, classification)[name]
    w = np.random.default_rng(4).standard_normal(f.d)
    G = f.per_example_grads(w)
    assert G.shape == (f.n, f.d)
    np.testing.assert_allclose(G.mean(axis=0), f.grad(w), rtol=1e-10, atol=1e-12)
    # and each row is one example's gradient: the batch gradient of a batch of one
    for i in (0, 7, f.n - 1):
        np.testing.assert_allclose(G[i], f.batch_grad(w, [i]), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ["least_squares", "logistic_l2"])
def test_batch_grad_and_batch_loss_are_means_over_rows(name, regression, classification):
    f = objectives(regression, classification)[name]
    w = np.random.default_rng(5).standard_normal(f.d)
    idx = np.array([3, 1, 4, 1, 5])  # repeats allowed (sampling with replacement)
    G = f.per_example_grads(w)
    np.testing.assert_allclose(f.batch_grad(w, idx), G[idx].mean(axis=0), rtol=1e-10)
    losses = [f.batch_loss(w, [i]) for i in idx]
    assert abs(f.batch_loss(w, idx) - np.mean(losses)) < 1e-12
    assert abs(f.batch_loss(w, np.arange(f.n)) - f.loss(w)) < 1e-12


def test_least_squares_constants_and_minimizer(regression):
    f = LeastSquares(*regression)
    eig = np.linalg.eigvalsh(f.hessian())
    np.testing.assert_allclose([f.L, f.mu], [eig[-1], eig[0]], rtol=1e-12)
    np.testing.assert_allclose([f.L, f.mu, f.cond], [20.0, 1.0, 20.0], rtol=1e-9)
    np.testing.assert_allclose(f.grad(f.w_star), 0, atol=1e-12)
    assert f.loss_star == f.loss(f.w_star)
    # L is the largest curvature: along the top eigenvector f grows like L/2 t^2
    v = np.linalg.eigh(f.hessian())[1][:, -1]
    t = 0.3
    assert abs(f.loss(f.w_star + t * v) - f.loss_star - f.L / 2 * t**2) < 1e-10


def test_least_squares_on_diabetes_is_the_books_problem():
    f = LeastSquares(*data.load_diabetes())
    assert (f.n, f.d) == (442, 10)
    assert abs(f.L - 4.02) < 0.01, f.L
    assert abs(f.cond - 470) < 1, f.cond
    np.testing.assert_allclose(f.w_star, np.linalg.solve(f.hessian(), f.X.T @ f.y / f.n))


def test_quadratic_closed_forms():
    A = np.array([[3.0, 1.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    f = Quadratic(A, b)
    w_star = np.linalg.solve(A, b)
    np.testing.assert_allclose(f.w_star, w_star)
    assert abs(f.loss_star - (-0.5 * b @ w_star)) < 1e-14
    eig = np.linalg.eigvalsh(A)
    assert (f.mu, f.L) == (eig[0], eig[1]) and abs(f.cond - eig[1] / eig[0]) < 1e-14
    assert "Quadratic(d=2" in repr(f)
    # a stack of points (2, m, k) gives a (m, k) grid of losses
    W = np.random.default_rng(0).standard_normal((2, 4, 5))
    Z = f.loss(W)
    assert Z.shape == (4, 5) and abs(Z[2, 3] - f.loss(W[:, 2, 3])) < 1e-12


@pytest.mark.parametrize("angle", [0.0, 0.4, -1.0])
def test_quadratic_factory(angle):
    f = quadratic(cond=25.0, angle=angle)
    np.testing.assert_allclose(np.linalg.eigvalsh(f.A), [1.0, 25.0], rtol=1e-12)
    assert abs(f.L - 25) < 1e-12 and abs(f.mu - 1) < 1e-12 and abs(f.cond - 25) < 1e-10
    np.testing.assert_array_equal(f.w_star, [0.0, 0.0])
    # the long (flat, eigenvalue 1) axis points along (cos angle, sin angle)
    u = np.array([np.cos(angle), np.sin(angle)])
    np.testing.assert_allclose(f.A @ u, u, atol=1e-12)
    g = quadratic(cond=100.0, d=5)
    np.testing.assert_allclose(np.diag(g.A), np.geomspace(1, 100, 5))


def test_singular_quadratic_has_no_minimizer():
    f = Quadratic(np.diag([1.0, 0.0]))
    assert f.cond == float("inf") and f.w_star is None and f.loss_star is None


def test_rosenbrock():
    f = Rosenbrock()
    np.testing.assert_array_equal(f.w_star, [1.0, 1.0])
    assert f.loss(f.w_star) == 0.0 == f.loss_star
    np.testing.assert_array_equal(f.grad(f.w_star), [0.0, 0.0])
    assert not hasattr(f, "L"), "no global smoothness constant"
    assert np.all(np.linalg.eigvalsh(f.hessian(f.w_star)) > 0)
    assert f.loss(np.zeros((2, 3, 3))).shape == (3, 3)
    assert repr(f) == "Rosenbrock(a=1, b=100)"


def test_logistic_constants_and_minimizer(classification):
    X, y = classification
    f = Logistic(X, y, l2=0.1)
    np.testing.assert_allclose(f.grad(f.w_star), 0, atol=1e-10)
    assert f.loss_star <= f.loss(f.w_star + 0.01)
    assert f.mu == 0.1 and abs(f.cond - f.L / 0.1) < 1e-12
    assert abs(f.L - (np.linalg.eigvalsh(X.T @ X).max() / (4 * len(y)) + 0.1)) < 1e-12
    # L is an upper bound on the curvature everywhere: check at a few random points
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert np.linalg.eigvalsh(f.hessian(3 * rng.standard_normal(f.d))).max() <= f.L + 1e-12
    g = Logistic(X, y)
    assert g.w_star is None and g.loss_star is None and g.cond == float("inf")
    assert "l2=0.1" in repr(f) and "n=80" in repr(LeastSquares(X, y))


def test_logistic_is_stable_for_large_margins():
    X = np.array([[1000.0], [-1000.0]])
    f = Logistic(X, np.array([1.0, 0.0]))
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # no overflow, no nan
        assert f.loss(np.array([1.0])) == 0.0
        np.testing.assert_array_equal(f.grad(np.array([1.0])), [0.0])
        assert f.loss(np.array([-1.0])) == 1000.0


def test_torch_twins_match_torch_losses():
    X = torch.randn(20, 3, dtype=torch.float64)
    w = torch.randn(3, dtype=torch.float64)
    y = (torch.rand(20) < 0.5).double()
    expected = torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y)
    assert abs(logistic_loss(w, X, y) - expected) < 1e-12
    expected = torch.nn.functional.mse_loss(X @ w, y) / 2
    assert abs(least_squares_loss(w, X, y) - expected) < 1e-12


def test_bad_inputs_say_what_was_expected(regression):
    f = LeastSquares(*regression)
    with pytest.raises(ValueError, match=r"w must have shape \(4,\).*got \(3,\)"):
        f.grad(np.zeros(3))
    with pytest.raises(ValueError, match=r"w must have shape \(4,\)"):
        f.loss(np.zeros((4, 1)))
    with pytest.raises(ValueError, match="X must be 2-D"):
        LeastSquares(np.zeros(5), np.zeros(5))
    with pytest.raises(ValueError, match=r"y must have shape \(n,\) = \(5,\)"):
        LeastSquares(np.zeros((5, 2)), np.zeros(4))
    with pytest.raises(ValueError, match="square"):
        Quadratic(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        Quadratic(np.array([[1.0, 2.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match=r"b must have shape \(2,\)"):
        Quadratic(np.eye(2), b=np.ones(3))
    with pytest.raises(ValueError, match=r"w must have shape \(2,\)"):
        Quadratic(np.eye(2)).loss(np.ones(3))
    with pytest.raises(ValueError, match="Rosenbrock is 2-D"):
        Rosenbrock().loss(np.ones(3))
    with pytest.raises(ValueError, match="labels 0 and 1"):
        Logistic(np.eye(2), np.array([-1.0, 1.0]))
    with pytest.raises(ValueError, match="l2"):
        Logistic(np.eye(2), np.array([0.0, 1.0]), l2=-1)
    with pytest.raises(ValueError, match="cond"):
        quadratic(cond=0.5)
    with pytest.raises(ValueError, match="angle"):
        quadratic(d=3, angle=0.1)
    with pytest.raises(ValueError, match="d must be"):
        quadratic(d=0)
