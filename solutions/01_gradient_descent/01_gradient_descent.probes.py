"""Probes for 01_gradient_descent: the grader's own checks of the student's functions, on inputs
of their own and on every input the tests use; the grader compares the results with the
solution's outside the student's kernel."""
import math
import numbers

import numpy as np

from sgdkit.data import load_diabetes
from sgdkit.grading.probes import probe

TOL = dict(rtol=1e-5, atol=1e-8)  # the tests' tolerance: float32 arithmetic passes
rng = np.random.default_rng(20261130)


# -- top_eigenvalue: power iteration from matrix-vector products ------------------------------
def rotated(eigenvalues, seed):
    U, _ = np.linalg.qr(np.random.default_rng(seed).standard_normal((len(eigenvalues),) * 2))
    return U @ np.diag(eigenvalues) @ U.T


def power(H, num_iters=1000, seed=0):
    """(the value, whether it is a real number, whether matvec was called <= num_iters + 1
    times with vectors of shape (d,))."""
    calls, shapes_ok = [0], [True]

    def matvec(v):
        calls[0] += 1
        shapes_ok[0] = shapes_ok[0] and np.shape(v) == (H.shape[0],)
        return H @ np.asarray(v, dtype=float)

    value = top_eigenvalue(matvec, H.shape[0], num_iters=num_iters, seed=seed)
    is_real = isinstance(value, numbers.Real) and np.ndim(value) == 0
    return float(value), bool(is_real and calls[0] <= num_iters + 1 and shapes_ok[0])


Q_orth, _ = np.linalg.qr(np.array([[1.0, 1.0, 1.0], [-1.0, 1.0, 0.0], [0.0, 1.0, -2.0]]).T)
X_d = load_diabetes()[0]
H_d = X_d.T @ X_d / len(X_d)
E = "test_top_eigenvalue"
probe(E, "diag(1, 3, 2), 200 iterations", lambda: power(np.diag([1.0, 3.0, 2.0]), 200), **TOL)
probe(E, "the diabetes Hessian X^T X / n", lambda: power(H_d), **TOL)
probe(E, "top eigenvector orthogonal to (1, 1, 1), 30 iterations",
      lambda: power(Q_orth @ np.diag([2.0, 5.0, 1.0]) @ Q_orth.T, 30), **TOL)
probe(E, "d = 1", lambda: power(np.array([[2.5]])), **TOL)
probe(E, "the tests' rotated 6 x 6, 300 iterations, seed 1, twice",
      lambda: [power(rotated([0.1, 7.0, 3.0, 0.0, 5.5, 1.0], 4), 300, 1),
               power(rotated([0.1, 7.0, 3.0, 0.0, 5.5, 1.0], 4), 300, 1)], **TOL)
probe(E, "a rotated 5 x 5 with eigenvalues 0.2 ... 9, seed 3",
      lambda: power(rotated([0.2, 9.0, 4.0, 1.0, 6.0], 7), 500, 3), **TOL)
B = rng.standard_normal((40, 8)) * np.array([3.0, 0.2, 1.0, 2.0, 0.5, 1.5, 0.1, 2.5])
probe(E, "B^T B / 40 of a 40 x 8 matrix with uneven columns", lambda: power(B.T @ B / 40), **TOL)
probe(E, "a rank-one matrix u u^T (eigenvalue ||u||^2)",
      lambda: power(np.outer([1.0, 2.0, -2.0], [1.0, 2.0, -2.0])), **TOL)


# -- max_stable_lr: 2 / L, L by power iteration ------------------------------------------------
def with_input(f, X):
    copy = X.copy()
    return f(copy), copy


X_probe = rng.standard_normal((30, 5)) * np.array([3.0, 0.2, 1.0, 2.0, 0.5])
U20, _ = np.linalg.qr(np.random.default_rng(2).standard_normal((20, 3)))
S = "test_max_stable_lr"
for name, X in [("a 30 x 5 matrix", X_probe),
                ("a 4 x 9 matrix (n < d)", rng.standard_normal((4, 9))),
                ("X_small of the test", np.array([[3.0, 0.0], [0.0, 1.0], [0.0, 1.0], [0.0, 1.0]])),
                ("the diabetes X", X_d),
                ("the test's U diag(2, 1, 0.5)", U20 @ np.diag([2.0, 1.0, 0.5])),
                ("the test's 3 x 6 X", np.random.default_rng(3).standard_normal((3, 6)))]:
    probe(S, f"max_stable_lr of {name}, and X after", lambda X=X: with_input(max_stable_lr, X),
          **TOL)


# -- predicted_steps: the smallest t with rho^t <= tol ------------------------------------------
def steps_and_type(*args):
    value = predicted_steps(*args)
    return (float(value), value == math.inf or isinstance(value, numbers.Integral))


P = "test_predicted_steps"
for args in [(0.25, 4.0, 1.0, 1e-3), (0.45, 4.0, 1.0, 1e-2), (0.01, 4.0, 0.5, 0.1),
             (0.1, 4.0, 0.5, 1e-3), (0.3, 4.0, 0.5, 1e-6), (0.44, 4.0, 0.5, 1e-2),
             (0.47, 4.0, 0.5, 1e-4), (2 / 4.5, 4.0, 0.5, 1e-6), (0.6, 4.0, 0.5, 1e-3),
             (0.5, 4.0, 0.5, 1e-3), (1 / 3.0, 3.0, 3.0, 1e-3), (0.1, 4.0, 0.5, 1.0),
             (0.6, 4.0, 0.5, 2.0), (0.02, 10.0, 0.01, 1e-5), (0.19, 10.0, 0.01, 0.3),
             (1.5, 1.0, 0.25, 1e-2)]:
    probe(P, f"predicted_steps{args}", lambda a=args: steps_and_type(*a), rtol=0, atol=0)


# -- steps_to_tolerance: gradient descent until ||w_t - w*|| <= tol ||w_0 - w*|| --------------
A3 = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
b3 = np.array([1.0, -2.0, 0.5])
w3 = np.linalg.solve(A3, b3)
lam3 = np.linalg.eigvalsh(A3)
C = rng.standard_normal((6, 6))
C = C @ C.T / 6 + 0.3 * np.eye(6)
c6 = rng.standard_normal(6)
w6 = np.linalg.solve(C, c6)


def measured(grad, w0, w_star, lr, tol, max_steps):
    """(the count, or -1 for None; whether it is an int or None; w0 after the call)."""
    with np.errstate(over="ignore", invalid="ignore"):
        value = steps_to_tolerance(grad, w0, w_star, lr, tol, max_steps)
    ok = value is None or isinstance(value, numbers.Integral)
    return (-1.0 if value is None else float(value)), bool(ok), np.array(w0, dtype=float)


T = "test_steps_to_tolerance"
cases = [("f = w^2, lr 0.1, tol 1e-2, max 100", lambda w: 2 * w, [3.0], [0.0], 0.1, 1e-2, 100),
         ("f = w^2, max 20 (too few)", lambda w: 2 * w, [3.0], [0.0], 0.1, 1e-2, 20),
         ("f = w^2, max 21 (just enough)", lambda w: 2 * w, [3.0], [0.0], 0.1, 1e-2, 21),
         ("w0 = w_star", lambda w: 2 * w, [0.5], [0.5], 0.1, 1e-2, 10),
         ("3-D, lr 0.1, tol 1e-3", lambda v: A3 @ v - b3, [2.0, 2.0, -1.0], w3, 0.1, 1e-3, 5000),
         ("3-D, lr 0.3, tol 1e-6", lambda v: A3 @ v - b3, [2.0, 2.0, -1.0], w3, 0.3, 1e-6, 5000),
         ("3-D, lr 2/(L + mu), tol 1e-4", lambda v: A3 @ v - b3, [2.0, 2.0, -1.0], w3,
          2 / (lam3[0] + lam3[-1]), 1e-4, 5000),
         ("3-D, lr above 2/L", lambda v: A3 @ v - b3, [2.0, 2.0, -1.0], w3, 2.1 / lam3[-1], 1e-3,
          300),
         ("6-D, lr 0.2, tol 1e-5", lambda v: C @ v - c6, np.ones(6), w6, 0.2, 1e-5, 3000),
         ("6-D, lr 0.05, tol 0.5", lambda v: C @ v - c6, -np.ones(6), w6, 0.05, 0.5, 3000)]
for name, grad, w0, w_star, lr, tol, max_steps in cases:
    probe(T, f"steps_to_tolerance, {name}",
          lambda a=(grad, w0, w_star, lr, tol, max_steps): measured(
              a[0], np.array(a[1], dtype=float), np.array(a[2]), *a[3:]), rtol=0, atol=0)
probe(T, "steps_to_tolerance with w0 a list", lambda: steps_to_tolerance(
    lambda w: 2 * np.asarray(w), [3.0], [0.0], 0.1, 1e-2, 100), rtol=0, atol=0)
