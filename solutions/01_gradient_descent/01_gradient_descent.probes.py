"""Probes for 01_gradient_descent: the grader's own checks of the student's functions, on inputs
of their own; the grader compares the results with the solution's outside the student's kernel."""
import numpy as np

from sgdkit.grading.probes import probe

rng = np.random.default_rng(20261130)
B = rng.standard_normal((5, 4))
H = B.T @ B / 5 + 0.5 * np.eye(4)  # a positive definite Hessian that mixes the coordinates
w_start = rng.standard_normal(4)


def gd_and_start(start, num_steps):
    """The path, and the start after the call (gd must not change it)."""
    path = gd(lambda w: H @ np.asarray(w, dtype=float), start, 0.2, num_steps)
    return path, start


probe("test_gd", "gd on a 4-d quadratic, 12 steps", lambda: gd_and_start(w_start.copy(), 12))
probe("test_gd", "gd with num_steps = 0", lambda: gd_and_start(w_start.copy(), 0))
probe("test_gd", "gd from a list", lambda: gd_and_start(list(w_start), 6)[0])
probe("test_gd", "gd from an integer array", lambda: gd_and_start(np.array([2, -1, 0, 3]), 4))

X_probe = rng.standard_normal((30, 5)) * np.array([3.0, 0.2, 1.0, 2.0, 0.5])
X_wide = rng.standard_normal((4, 9))


def with_input(f, X):
    copy = X.copy()
    return f(copy), copy


for name, X in [("a 30 x 5 matrix", X_probe), ("a 4 x 9 matrix (n < d)", X_wide)]:
    probe("test_lipschitz_constant", f"lipschitz_constant of {name}",
          lambda X=X: with_input(lipschitz_constant, X), rtol=1e-6)
    probe("test_max_stable_lr", f"max_stable_lr of {name}",
          lambda X=X: max_stable_lr(X.copy()), rtol=1e-6)

for lr in [0.02, 0.15, 0.3, 0.42, 0.7]:
    probe("test_contraction_factor", f"contraction_factor({lr}, L=5, mu=0.25)",
          lambda lr=lr: contraction_factor(lr, 5.0, 0.25))
probe("test_contraction_factor", "contraction_factor(0.5, L=2, mu=2)",
      lambda: contraction_factor(0.5, 2.0, 2.0))
