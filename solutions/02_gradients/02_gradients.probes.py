"""Probes for 02_gradients: the grader's own checks of the student's functions, on inputs of their
own; the grader compares the results with the solution's outside the student's kernel."""
import numpy as np
import torch

from sgdkit.grading.probes import probe

probe_rng = np.random.default_rng(12345)


# -- central_diff_grad: central (not forward) differences, / 2h, computed in float64 on a copy --
M_probe = probe_rng.standard_normal((5, 5))
a_probe = probe_rng.standard_normal(5)


def f_mixed(v):
    """A smooth f that mixes the coordinates (a stepped w that is never reset shows)."""
    return np.log(np.sum(np.exp(M_probe @ v))) + np.sum(np.sin(a_probe * v)) + 0.5 * v @ v


def cube_sum(v):
    return np.sum(v**3)


def diff_and_input(w, **kwargs):
    """central_diff_grad(f_mixed, w), and w after the call (it must not change)."""
    return central_diff_grad(f_mixed, w, **kwargs), w


def type_of(g):
    return f"ndarray={isinstance(g, np.ndarray)} float64={np.asarray(g).dtype == np.float64}"


w5 = 0.7 * probe_rng.standard_normal(5)
probe("test_central_diff_grad", "central_diff_grad of a 5-d f with h = 1e-2, and w after it",
      lambda: diff_and_input(w5.copy(), h=1e-2), rtol=1e-8, atol=1e-10)
probe("test_central_diff_grad", "central_diff_grad of a 5-d f with the default h",
      lambda: diff_and_input(w5.copy()), rtol=5e-8, atol=1e-10)
probe("test_central_diff_grad", "central_diff_grad for d = 1",
      lambda: central_diff_grad(lambda v: np.exp(v[0]) + v[0] ** 3, np.array([0.8]),
                                h=1e-2), rtol=1e-8, atol=1e-10)
w32 = np.array([0.75, -1.5, 2.25, 0.125], dtype=np.float32)
probe("test_central_diff_grad", "central_diff_grad with a float32 w: the values",
      lambda: central_diff_grad(lambda v: 0.5 * np.sum(v**2) + v[0] * v[1], w32.copy()),
      rtol=1e-7, atol=1e-10)
probe("test_central_diff_grad", "central_diff_grad with a float32 w: the type of the result",
      lambda: type_of(central_diff_grad(lambda v: 0.5 * np.sum(v**2), w32.copy())))
probe("test_central_diff_grad", "central_diff_grad with an integer w",
      lambda: central_diff_grad(cube_sum, np.array([2, -1, 3]), h=1e-2),
      rtol=1e-8, atol=1e-10)
probe("test_central_diff_grad", "central_diff_grad with w given as a list",
      lambda: central_diff_grad(cube_sum, [0.5, -1.5, 2.0], h=1e-2),
      rtol=1e-8, atol=1e-10)


# -- mse_grad: X^T (X w - y) / n ---------------------------------------------------------------
X_mse = probe_rng.standard_normal((40, 6)) * np.array([2.0, 0.5, 1.0, 3.0, 0.2, 1.0])
y_mse = probe_rng.standard_normal(40)
w_mse = probe_rng.standard_normal(6)
X_flat, y_flat, w_flat = (probe_rng.standard_normal((3, 7)), probe_rng.standard_normal(3),
                          probe_rng.standard_normal(7))
probe("test_mse_grad", "mse_grad on a 40 x 6 problem",
      lambda: mse_grad(w_mse.copy(), X_mse.copy(), y_mse.copy()),
      rtol=1e-8, atol=1e-10)
probe("test_mse_grad", "mse_grad at w = 0",
      lambda: mse_grad(np.zeros(6), X_mse.copy(), y_mse.copy()),
      rtol=1e-8, atol=1e-10)
probe("test_mse_grad", "mse_grad for n = d = 1",
      lambda: mse_grad(np.array([-0.5]), np.array([[1.5]]), np.array([2.0])),
      rtol=1e-8, atol=1e-10)
probe("test_mse_grad", "mse_grad for n = 3 < d = 7",
      lambda: mse_grad(w_flat.copy(), X_flat.copy(), y_flat.copy()),
      rtol=1e-8, atol=1e-10)


# -- logistic_grad: X^T (sigmoid(X w) - y) / n, finite for huge |z| ----------------------------
X_log = probe_rng.standard_normal((60, 5)) * np.array([1.0, 2.0, 0.5, 1.5, 1.0])
y_log = (probe_rng.random(60) < 0.4).astype(float)
w_log = 0.8 * probe_rng.standard_normal(5)


def logistic_quietly(w, X, y):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return logistic_grad(w, X, y)


probe("test_logistic_grad", "logistic_grad on a 60 x 5 problem",
      lambda: logistic_quietly(w_log.copy(), X_log.copy(), y_log.copy()), rtol=1e-8, atol=1e-10)
probe("test_logistic_grad", "logistic_grad at w = 0",
      lambda: logistic_quietly(np.zeros(5), X_log.copy(), y_log.copy()), rtol=1e-8, atol=1e-10)
probe("test_logistic_grad", "logistic_grad with large weights (|z| up to about 10)",
      lambda: logistic_quietly(4 * w_log, X_log.copy(), y_log.copy()), rtol=1e-8, atol=1e-10)
X_huge = np.array([[900.0, 1.0], [-750.0, 0.5], [1200.0, -1.0]])
for labels in [(0.0, 1.0, 1.0), (1.0, 0.0, 1.0), (0.0, 0.0, 0.0)]:
    probe("test_logistic_grad", f"logistic_grad at z = (900, -750, 1200), labels {labels}",
          lambda labels=labels: logistic_quietly(np.array([1.0, 0.0]), X_huge.copy(),
                                                 np.array(labels)), rtol=1e-8, atol=1e-8)


# -- autograd_grad: a float64 numpy array, from a float64 copy of w ----------------------------
Q_probe = torch.tensor(probe_rng.standard_normal((4, 4)))


def f_torch_probe(v):
    return torch.logsumexp(Q_probe @ v, dim=0) + (v**3).sum() / 3 + torch.cos(v[1] * v[2])


w4 = 0.6 * probe_rng.standard_normal(4)
w4_32 = np.array([0.3, -0.4, 1.1], dtype=np.float32)


def autograd_and_input(w):
    return autograd_grad(f_torch_probe, w), w


probe("test_autograd_grad", "autograd_grad of a 4-d f, and w after it",
      lambda: autograd_and_input(w4.copy()), rtol=1e-10, atol=1e-12)
probe("test_autograd_grad", "autograd_grad of a 4-d f: the type of the result",
      lambda: type_of(autograd_grad(f_torch_probe, w4.copy())))
probe("test_autograd_grad", "autograd_grad with a float32 w: the values",
      lambda: autograd_grad(lambda v: (torch.exp(v) * v).sum(), w4_32.copy()),
      rtol=1e-10, atol=1e-12)
probe("test_autograd_grad", "autograd_grad with a float32 w: the type of the result",
      lambda: type_of(autograd_grad(lambda v: (torch.exp(v) * v).sum(), w4_32.copy())))
probe("test_autograd_grad", "autograd_grad for d = 1, w a list",
      lambda: autograd_grad(lambda v: torch.sin(v).sum() + (v**2).sum(), [0.7]),
      rtol=1e-10, atol=1e-12)
