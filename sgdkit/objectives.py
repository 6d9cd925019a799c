"""Objectives: functions ``f(w)`` to minimize, each with its gradient written out by hand.

Every objective has ``loss(w) -> float`` and ``grad(w) -> (d,)`` for ``w`` of shape ``(d,)``
(numpy, float64). Where they are defined it also has

- ``L``: the smoothness constant, the largest eigenvalue of the Hessian (gradient descent
  converges for ``lr < 2 / L``),
- ``mu``: the smallest eigenvalue (strong convexity), and ``cond = L / mu``,
- ``w_star``, the minimizer, and ``loss_star = f(w_star)``.

The data-fitting losses are averages over examples, ``f(w) = 1/n sum_i f_i(w)``, so they also
give ``per_example_grads(w)`` (the ``n`` gradients ``nabla f_i(w)``, shape ``(n, d)``) and
``batch_grad(w, idx)``, the mean gradient over the rows ``idx``: what one SGD step uses.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np


def _vector(w, d: int, name: str = "w") -> np.ndarray:
    """``w`` as a float64 array of shape ``(d,)``, or a ValueError that says what came in."""
    w = np.asarray(w, dtype=np.float64)
    if w.shape != (d,):
        raise ValueError(f"{name} must have shape ({d},) for this objective, got {w.shape}")
    return w


def _data(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D, shape (n, d) with one example per row; got {X.shape}")
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape (n,) = ({len(X)},) to match X {X.shape}; "
                         f"got {y.shape}")
    return X, y


class _Spectrum:
    """``L``, ``mu`` and ``cond`` from the eigenvalues of a constant Hessian ``self._H``."""

    @cached_property
    def _eigenvalues(self) -> np.ndarray:
        return np.linalg.eigvalsh(self._H)  # ascending; the Hessian is symmetric

    @property
    def L(self) -> float:
        return float(self._eigenvalues[-1])

    @property
    def mu(self) -> float:
        return float(self._eigenvalues[0])

    @property
    def cond(self) -> float:
        return self.L / self.mu if self.mu > 0 else float("inf")


class Quadratic(_Spectrum):
    """``f(w) = 1/2 w^T A w - b^T w``, with ``nabla f(w) = A w - b`` and Hessian ``A``.

    ``A`` (d, d) symmetric, ``b`` (d,) (default 0). With ``A`` positive definite the minimizer
    is ``w_star = A^{-1} b``, and ``L``, ``mu`` are the largest and smallest eigenvalues of A.
    ``loss`` also takes a stack of points ``(d, ...)`` and returns ``(...)`` (for contour plots).
    """

    def __init__(self, A, b=None):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != A.shape[1]:
            raise ValueError(f"A must be a square (d, d) matrix, got shape {A.shape}")
        if not np.allclose(A, A.T):
            raise ValueError("A must be symmetric (the Hessian of a quadratic is); "
                             "pass (A + A.T) / 2, which gives the same f")
        self.d = len(A)
        self.A = A
        self.b = np.zeros(self.d) if b is None else _vector(b, self.d, "b")
        self._H = A

    def loss(self, w) -> float:
        w = np.asarray(w, dtype=np.float64)
        if w.shape[:1] != (self.d,):
            raise ValueError(f"w must have shape ({self.d},) (or ({self.d}, ...) for a stack "
                             f"of points); got {w.shape}")
        value = 0.5 * np.einsum("i...,ij,j...->...", w, self.A, w) - np.einsum("i,i...->...",
                                                                                self.b, w)
        return float(value) if w.ndim == 1 else value

    def grad(self, w) -> np.ndarray:
        return self.A @ _vector(w, self.d) - self.b

    def hessian(self, w=None) -> np.ndarray:
        return self.A

    @cached_property
    def w_star(self) -> np.ndarray | None:
        """``A^{-1} b``; None when A is not positive definite (no unique minimizer)."""
        return np.linalg.solve(self.A, self.b) + 0.0 if self.mu > 0 else None  # + 0.0: no -0.0

    @property
    def loss_star(self) -> float | None:
        return None if self.w_star is None else self.loss(self.w_star)

    def __repr__(self) -> str:
        return f"Quadratic(d={self.d}, L={self.L:.4g}, mu={self.mu:.4g})"


def quadratic(cond: float = 10.0, d: int = 2, angle: float = 0.0) -> Quadratic:
    """A bowl ``1/2 w^T A w`` with eigenvalues from ``mu = 1`` to ``L = cond``, minimum at 0.

    In 2-D, ``A = R diag(1, cond) R^T`` with ``R`` the rotation by ``angle`` (radians), so the
    long axis of the ellipses is tilted. In ``d`` dimensions the eigenvalues are
    ``geomspace(1, cond, d)``, on the coordinate axes.
    """
    if not cond >= 1:
        raise ValueError(f"cond = L / mu must be >= 1, got {cond}")
    if d < 1:
        raise ValueError(f"d must be a positive int, got {d}")
    if angle != 0 and d != 2:
        raise ValueError(f"angle rotates a 2-D bowl; with d={d} leave angle=0")
    A = np.diag(np.geomspace(1.0, cond, d))
    if d == 2:
        c, s = np.cos(angle), np.sin(angle)
        R = np.array([[c, -s], [s, c]])
        A = R @ A @ R.T
        A = (A + A.T) / 2  # exactly symmetric despite rounding
    return Quadratic(A)


class Rosenbrock:
    """``f(w) = (a - w_1)^2 + b (w_2 - w_1^2)^2``: a curved, narrow valley, minimum at
    ``w_star = (a, a^2)`` with ``f = 0``.

    Its Hessian changes from point to point, so it has no global ``L``. ``loss`` also takes a
    stack of points ``(2, ...)``.
    """

    def __init__(self, a: float = 1.0, b: float = 100.0):
        self.a, self.b = float(a), float(b)
        self.d = 2
        self.w_star = np.array([self.a, self.a**2])
        self.loss_star = 0.0

    def loss(self, w) -> float:
        w = np.asarray(w, dtype=np.float64)
        if w.shape[:1] != (2,):
            raise ValueError(f"Rosenbrock is 2-D: w must have shape (2,), got {w.shape}")
        value = (self.a - w[0]) ** 2 + self.b * (w[1] - w[0] ** 2) ** 2
        return float(value) if w.ndim == 1 else value

    def grad(self, w) -> np.ndarray:
        w1, w2 = _vector(w, 2)
        return np.array([-2 * (self.a - w1) - 4 * self.b * w1 * (w2 - w1**2),
                         2 * self.b * (w2 - w1**2)])

    def hessian(self, w) -> np.ndarray:
        w1, w2 = _vector(w, 2)
        return np.array([[2 - 4 * self.b * (w2 - 3 * w1**2), -4 * self.b * w1],
                         [-4 * self.b * w1, 2 * self.b]])

    def __repr__(self) -> str:
        return f"Rosenbrock(a={self.a:g}, b={self.b:g})"


class _ExampleAverage:
    """Shared by the losses that average over examples: the data and the batch interface."""

    def __init__(self, X, y):
        self.X, self.y = _data(X, y)
        self.n, self.d = self.X.shape

    def loss(self, w) -> float:
        return self._loss(self.X, self.y, _vector(w, self.d))

    def grad(self, w) -> np.ndarray:
        return self._grad(self.X, self.y, _vector(w, self.d))

    def batch_loss(self, w, idx) -> float:
        """The mean loss over the rows ``idx`` (indices into ``0, ..., n-1``)."""
        return self._loss(self.X[idx], self.y[idx], _vector(w, self.d))

    def batch_grad(self, w, idx) -> np.ndarray:
        """``1/B sum_{i in idx} nabla f_i(w)``, shape (d,): the minibatch gradient."""
        return self._grad(self.X[idx], self.y[idx], _vector(w, self.d))


class LeastSquares(_ExampleAverage, _Spectrum):
    """``f(w) = 1/(2n) ||X w - y||^2 = 1/n sum_i 1/2 (x_i^T w - y_i)^2``.

    ``nabla f(w) = X^T (X w - y) / n`` (d,); one example's gradient is
    ``nabla f_i(w) = (x_i^T w - y_i) x_i``; the Hessian is the constant ``X^T X / n``, so ``L``
    and ``mu`` are its extreme eigenvalues. ``X`` (n, d), ``y`` (n,).
    """

    @staticmethod
    def _loss(X, y, w) -> float:
        r = X @ w - y
        return float(r @ r) / (2 * len(y))

    @staticmethod
    def _grad(X, y, w) -> np.ndarray:
        return X.T @ (X @ w - y) / len(y)

    def per_example_grads(self, w) -> np.ndarray:
        """Row ``i`` is ``nabla f_i(w) = (x_i^T w - y_i) x_i``; shape (n, d); mean = grad."""
        r = self.X @ _vector(w, self.d) - self.y
        return r[:, None] * self.X

    @cached_property
    def _H(self) -> np.ndarray:
        return self.X.T @ self.X / self.n

    def hessian(self, w=None) -> np.ndarray:
        return self._H

    @cached_property
    def w_star(self) -> np.ndarray:
        """The least-squares solution (minimum norm if X has dependent columns)."""
        return np.linalg.lstsq(self.X, self.y, rcond=None)[0]

    @property
    def loss_star(self) -> float:
        return self.loss(self.w_star)

    def __repr__(self) -> str:
        return f"LeastSquares(n={self.n}, d={self.d})"


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # 1 / (1 + exp(-z)) overflows for very negative z; this form never does
    ez = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + ez), ez / (1 + ez))


class Logistic(_ExampleAverage):
    """Mean log-loss of the linear classifier ``p_i = sigmoid(x_i^T w)`` for ``y_i`` in {0, 1},
    plus an optional ridge penalty:

    ``f(w) = 1/n sum_i [log(1 + exp(z_i)) - y_i z_i] + l2/2 ||w||^2``, ``z = X w``,
    ``nabla f(w) = X^T (sigmoid(z) - y) / n + l2 w``.

    ``sigmoid' <= 1/4`` bounds the Hessian, so ``L = lambda_max(X^T X) / (4n) + l2`` (a bound,
    not the exact largest eigenvalue). ``mu = l2``. ``w_star`` (by Newton's method) exists
    when ``l2 > 0``; without it, separable data have no minimizer and ``w_star`` is None.
    """

    def __init__(self, X, y, l2: float = 0.0):
        super().__init__(X, y)
        if not np.isin(self.y, (0.0, 1.0)).all():
            raise ValueError("y must hold labels 0 and 1 (not -1/+1 or probabilities)")
        if not l2 >= 0:
            raise ValueError(f"l2 is a penalty weight, >= 0; got {l2}")
        self.l2 = float(l2)

    def _loss(self, X, y, w) -> float:
        z = X @ w
        # log(1 + exp(z)) = logaddexp(0, z), which does not overflow for large z
        return float(np.mean(np.logaddexp(0.0, z) - y * z)) + 0.5 * self.l2 * float(w @ w)

    def _grad(self, X, y, w) -> np.ndarray:
        return X.T @ (_sigmoid(X @ w) - y) / len(y) + self.l2 * w

    def per_example_grads(self, w) -> np.ndarray:
        """Row ``i`` is ``(sigmoid(x_i^T w) - y_i) x_i + l2 w``; shape (n, d); mean = grad."""
        w = _vector(w, self.d)
        return (_sigmoid(self.X @ w) - self.y)[:, None] * self.X + self.l2 * w

    def hessian(self, w) -> np.ndarray:
        """``X^T diag(p (1 - p)) X / n + l2 I`` at ``w``, with ``p = sigmoid(X w)``."""
        p = _sigmoid(self.X @ _vector(w, self.d))
        return (self.X.T * (p * (1 - p))) @ self.X / self.n + self.l2 * np.eye(self.d)

    @cached_property
    def L(self) -> float:
        return float(np.linalg.eigvalsh(self.X.T @ self.X)[-1]) / (4 * self.n) + self.l2

    @property
    def mu(self) -> float:
        return self.l2

    @property
    def cond(self) -> float:
        return self.L / self.mu if self.mu > 0 else float("inf")

    @cached_property
    def w_star(self) -> np.ndarray | None:
        if self.l2 == 0:
            return None
        w = np.zeros(self.d)
        for _ in range(100):  # Newton: quadratic convergence, a dozen steps in practice
            g = self.grad(w)
            if np.linalg.norm(g) < 1e-12:
                break
            step = np.linalg.solve(self.hessian(w), g)
            t = 1.0  # halve the step until the loss goes down (Newton can overshoot far away)
            while self.loss(w - t * step) > self.loss(w) and t > 1e-10:
                t /= 2
            w = w - t * step
        return w

    @property
    def loss_star(self) -> float | None:
        return None if self.w_star is None else self.loss(self.w_star)

    def __repr__(self) -> str:
        return f"Logistic(n={self.n}, d={self.d}, l2={self.l2:g})"


# ---------------------------------------------------------------------------------------------
# torch twins, for checking the hand-written gradients against torch.autograd


def least_squares_loss(w, X, y):
    """``1/(2n) ||X w - y||^2`` on torch tensors (differentiable): ``w`` (d,), ``X`` (n, d)."""
    return 0.5 * ((X @ w - y) ** 2).mean()


def logistic_loss(w, X, y):
    """``1/n sum_i [log(1 + exp(z_i)) - y_i z_i]``, ``z = X w``, on torch tensors.

    The same as ``torch.nn.functional.binary_cross_entropy_with_logits(X @ w, y)``.
    """
    import torch.nn.functional as F

    z = X @ w
    return (F.softplus(z) - y * z).mean()
