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


# -- wrong_parameters: per-parameter central differences against hand-written gradients -------
def net_problem(seed, n, d, k):
    """A 2-layer net's data, parameters, loss and right gradients."""
    r = np.random.default_rng(seed)
    X, y = r.standard_normal((n, d)), r.standard_normal(n)
    p = {"W1": 0.5 * r.standard_normal((d, k)), "b1": 0.1 * r.standard_normal(k),
         "w2": r.standard_normal(k), "b2": np.array(0.3)}

    def loss(q):
        return np.mean((np.tanh(X @ q["W1"] + q["b1"]) @ q["w2"] + q["b2"] - y) ** 2) / 2

    def backprop(q, tanh_prime=True):
        hidden = np.tanh(X @ q["W1"] + q["b1"])
        res = hidden @ q["w2"] + q["b2"] - y
        d_pre = np.outer(res, q["w2"]) / n * ((1 - hidden**2) if tanh_prime else 1.0)
        return {"W1": X.T @ d_pre, "b1": d_pre.sum(axis=0), "w2": hidden.T @ res / n,
                "b2": np.array(res.mean())}

    return p, loss, backprop


def names(loss, params, grads):
    """The names found (joined, so the order counts), and the params after the call."""
    found = wrong_parameters(loss, params, grads)
    return (",".join(found) if isinstance(found, list) else f"not a list: {type(found)}",
            [np.array(v, dtype=float) for v in params.values()])


W = "test_wrong_parameters"
p5, loss5, bp5 = net_problem(5, 12, 3, 4)  # the tests' network
right5 = bp5(p5)
probe(W, "the public test's net, right gradients", lambda: names(loss5, p5, right5), rtol=0, atol=0)
probe(W, "the public test's net, b2 doubled",
      lambda: names(loss5, p5, {**right5, "b2": 2 * right5["b2"]}), rtol=0, atol=0)
probe(W, "the public test's net, tanh' forgotten",
      lambda: names(loss5, p5, {**bp5(p5, tanh_prime=False), "w2": right5["w2"],
                                "b2": right5["b2"]}), rtol=0, atol=0)
probe(W, "the public test's net in the order b2, w2, b1, W1, w2 and W1 wrong",
      lambda: names(loss5, {k: p5[k] for k in ["b2", "w2", "b1", "W1"]},
                    {**right5, "w2": -right5["w2"], "W1": 0 * right5["W1"]}), rtol=0, atol=0)
p9, loss9, bp9 = net_problem(9, 15, 4, 4)
right9 = bp9(p9)
probe(W, "a square W1 with its gradient transposed",
      lambda: names(loss9, p9, {**right9, "W1": right9["W1"].T}), rtol=0, atol=0)
probe(W, "right gradients in float32",
      lambda: names(loss9, p9, {k: v.astype(np.float32) for k, v in right9.items()}),
      rtol=0, atol=0)
probe(W, "an unused parameter, right (zero) and wrong (ones) gradients",
      lambda: [names(lambda q: loss9(q), {**p9, "unused": np.array([1.0, 2.0])},
                     {**right9, "unused": np.zeros(2)})[0],
               names(lambda q: loss9(q), {**p9, "unused": np.array([1.0, 2.0])},
                     {**right9, "unused": np.ones(2)})[0]], rtol=0, atol=0)
probe(W, "b1 off by 1e-3 relative (caught) and by 1e-6 (within rtol)",
      lambda: [names(loss9, p9, {**right9, "b1": right9["b1"] * 1.001})[0],
               names(loss9, p9, {**right9, "b1": right9["b1"] * (1 + 1e-6)})[0]], rtol=0, atol=0)
rng_sq = np.random.default_rng(8)  # the hidden test's square net, exactly
X_sq, y_sq = rng_sq.standard_normal((10, 4)), rng_sq.standard_normal(10)
p_hid = {"unused": np.array([1.0, -2.0]), "W1": 0.4 * rng_sq.standard_normal((4, 4)),
         "b1": np.zeros(4), "w2": rng_sq.standard_normal(4), "b2": np.array(-0.2)}


def loss_hid(q):
    return np.mean((np.tanh(X_sq @ q["W1"] + q["b1"]) @ q["w2"] + q["b2"] - y_sq) ** 2) / 2


hid_h = np.tanh(X_sq @ p_hid["W1"] + p_hid["b1"])
hid_r = hid_h @ p_hid["w2"] + p_hid["b2"] - y_sq
hid_d = np.outer(hid_r, p_hid["w2"]) / 10 * (1 - hid_h**2)
right_hid = {"unused": np.zeros(2), "W1": X_sq.T @ hid_d, "b1": hid_d.sum(axis=0),
             "w2": hid_h.T @ hid_r / 10, "b2": np.array(hid_r.mean())}
for what, grads in [("right", right_hid), ("W1 transposed", {**right_hid, "W1": right_hid["W1"].T}),
                    ("unused ones", {**right_hid, "unused": np.ones(2)}),
                    ("float32", {k: v.astype(np.float32) for k, v in right_hid.items()})]:
    probe(W, f"the hidden test's square net, {what}",
          lambda g=grads: names(loss_hid, p_hid, g), rtol=0, atol=0)
p_sq = {"unused": np.array([1.0, -2.0]), **net_problem(8, 10, 4, 4)[0]}
probe(W, "the hidden test's shapes (an unused parameter first), b2 and w2 swapped signs",
      lambda: names(lambda q: net_problem(8, 10, 4, 4)[1](q), p_sq,
                    {"unused": np.zeros(2), **{k: -v for k, v in
                                               net_problem(8, 10, 4, 4)[2](p_sq).items()}}),
      rtol=0, atol=0)


# -- logistic_grad: X^T (sigmoid(X w) - y) / n, finite for huge |z| ----------------------------
X_log = probe_rng.standard_normal((60, 5)) * np.array([1.0, 2.0, 0.5, 1.5, 1.0])
y_log = (probe_rng.random(60) < 0.4).astype(float)
w_log = 0.8 * probe_rng.standard_normal(5)


def logistic_quietly(w, X, y):
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        return logistic_grad(w, X, y)


probe("test_logistic_grad", "logistic_grad on a 60 x 5 problem",
      lambda: logistic_quietly(w_log.copy(), X_log.copy(), y_log.copy()), rtol=1e-5, atol=1e-8)
probe("test_logistic_grad", "logistic_grad at w = 0",
      lambda: logistic_quietly(np.zeros(5), X_log.copy(), y_log.copy()), rtol=1e-5, atol=1e-8)
probe("test_logistic_grad", "logistic_grad with large weights (|z| up to about 10)",
      lambda: logistic_quietly(4 * w_log, X_log.copy(), y_log.copy()), rtol=1e-5, atol=1e-8)
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


def two_calls():
    """central_diff_grad on two functions in a row (no state may carry over)."""
    first = np.array(central_diff_grad(lambda v: np.sum(v**2), np.array([1.0, 2.0])), dtype=float)
    return first, central_diff_grad(lambda v: np.sum(3 * v), np.array([1.0, 2.0]))


probe("test_central_diff_grad", "central_diff_grad twice in a row, on two functions", two_calls,
      rtol=1e-8, atol=1e-10)
