"""Probes for 04_momentum_schedules: the grader's own checks of the student's functions, on
inputs of their own; the grader compares the results with the solution's outside the student's
kernel."""
import numpy as np

from sgdkit.grading.probes import probe

probe_rng = np.random.default_rng(12345)
TOL = dict(rtol=1e-5, atol=1e-6)  # the momentum tests: float32 passes
PATH_TOL = dict(rtol=1e-5, atol=1e-6)  # nesterov_lookahead's tests: float32 passes
LR_TOL = dict(rtol=1e-5, atol=0.0)  # warmup_step_lr's tests: float32 passes


# -- momentum_step: v <- momentum v + g, w <- w - lr v, on new arrays ---------------------------
c_probe = np.abs(probe_rng.standard_normal((3, 2))) + 0.5  # f(W) = 1/2 sum c_ij W_ij^2
W0_probe = probe_rng.standard_normal((3, 2))


def lr_drops(t):
    return 0.08 if t < 6 else (0.02 if t < 12 else 0.05)


def momentum_path(momentum, num_steps=18):
    """The iterates and velocities of momentum_step from v = 0, lr changing at steps 6 and 12."""
    w, v, ws, vs = W0_probe.copy(), np.zeros_like(W0_probe), [], []
    for t in range(num_steps):
        w, v = momentum_step(w, v, c_probe * w, lr_drops(t), momentum)
        ws.append(np.array(w, dtype=float))  # copies, whatever momentum_step does
        vs.append(np.array(v, dtype=float))
    return np.array(ws), np.array(vs)


def one_step_and_inputs(w, v, g, lr, momentum):
    """(new w, new v) of one step, and (w, v, g) after it (they must not change)."""
    w_new, v_new = momentum_step(w, v, g, lr, momentum)
    return np.array([w_new, v_new], dtype=float), np.array([w, v, g])


def returns_a_pair():
    result = momentum_step(np.ones(2), np.zeros(2), np.ones(2), 0.1, 0.9)
    return bool(isinstance(result, (tuple, list)) and len(result) == 2)


w_one, v_one, g_one = (probe_rng.standard_normal(4) for _ in range(3))
probe("test_momentum_step", "momentum_step returns a pair (w, v)", returns_a_pair)
probe("test_momentum_step", "momentum_step on a 3 x 2 w, 18 steps, lr 0.08, 0.02, 0.05",
      lambda: momentum_path(0.85), **TOL)
probe("test_momentum_step", "momentum_step with momentum = 0, 8 steps",
      lambda: momentum_path(0.0, 8), **TOL)
probe("test_momentum_step", "one step from v = 0: (w, v), and the inputs after it",
      lambda: one_step_and_inputs(w_one.copy(), np.zeros(4), g_one.copy(), 0.3, 0.7), **TOL)
probe("test_momentum_step", "one step from v != 0: (w, v), and the inputs after it",
      lambda: one_step_and_inputs(w_one.copy(), v_one.copy(), g_one.copy(), 0.15, 0.6), **TOL)
probe("test_momentum_step", "one step with momentum = 0 from v != 0, and the inputs after it",
      lambda: one_step_and_inputs(w_one.copy(), v_one.copy(), g_one.copy(), 0.25, 0.0), **TOL)




def public_path():
    """The public test's run: A = diag(1, 10), w0 = (1, 1), lr 0.1 then 0.01 from step 10."""
    A, w, v, ws = np.diag([1.0, 10.0]), np.array([1.0, 1.0]), np.zeros(2), []
    for t in range(30):
        w, v = momentum_step(w, v, A @ w, 0.1 if t < 10 else 0.01, 0.9)
        ws.append(np.array(w, dtype=float))
    return np.array(ws)


def hidden_path():
    """The hidden test's run: a 3 x 2 W, lr 0.05 * 0.95^t, momentum 0.8."""
    c = np.array([[1.0, 2.0], [3.0, 4.0], [0.5, 6.0]])
    W, V, ws = np.array([[1.0, -1.0], [2.0, 0.5], [-1.5, 1.0]]), np.zeros((3, 2)), []
    for t in range(25):
        W, V = momentum_step(W, V, c * W, 0.05 * 0.95**t, 0.8)
        ws.append(np.array(W, dtype=float))
    return np.array(ws)


probe("test_momentum_step", "the public test's run (lr 0.1, then 0.01 from step 10)", public_path,
      **TOL)
probe("test_momentum_step", "the hidden test's run (3 x 2, ExponentialLR)", hidden_path, **TOL)
for w_, v_, g_, lr_, mom_ in [([1.0, -2.0], [0.0, 0.0], [0.5, 4.0], 0.1, 0.9),
                              ([1.0, -2.0], [1.0, 1.0], [0.5, 4.0], 0.1, 0.9),
                              ([1.0, 2.0], [5.0, -5.0], [0.5, 0.5], 0.2, 0.0),
                              ([1.0, 2.0], [0.3, -0.1], [0.5, -1.0], 0.1, 0.9)]:
    probe("test_momentum_step", f"one step from w={w_}, v={v_}, g={g_}, lr={lr_}, "
          f"momentum={mom_}, and the inputs after it",
          lambda a=(w_, v_, g_, lr_, mom_): one_step_and_inputs(
              np.array(a[0]), np.array(a[1]), np.array(a[2]), a[3], a[4]), **TOL)


# -- nesterov_lookahead: the look-ahead points y_t = w_t + mu u_t of the classical form ---------
S_probe = probe_rng.standard_normal((3, 3))
S_probe = S_probe @ S_probe.T / 3 + np.eye(3)
A_pub = np.array([[2.0, 1.0], [1.0, 3.0]])
B_hid = np.array([[3.0, 0.5, 0.0], [0.5, 2.0, 0.2], [0.0, 0.2, 1.0]])


def grad_probe(w):
    w = np.asarray(w, dtype=float)
    return 0.5 * w**3 + S_probe @ w


def grad_hidden(w):
    w = np.asarray(w, dtype=float)
    return w**3 + B_hid @ w


def nesterov_and_start(grad, w0, lr, momentum, num_steps):
    """The points of nesterov_lookahead, and w0 after the call (it must not change)."""
    return nesterov_lookahead(grad, w0, lr, momentum, num_steps), w0


def is_array(grad, w0, lr, momentum, num_steps):
    return isinstance(nesterov_lookahead(grad, w0, lr, momentum, num_steps), np.ndarray)


def twice(grad, w0, lr, momentum, num_steps):
    first = np.array(nesterov_lookahead(grad, np.array(w0), lr, momentum, num_steps), dtype=float)
    return first, nesterov_lookahead(grad, np.array(w0), lr, momentum, num_steps)


start_probe = np.array([0.8, -0.6, 1.1])
hidden_start = np.array([0.5, -0.8, 1.2])
pub = (lambda w: A_pub @ np.asarray(w, dtype=float), [1.0, -1.0], 0.1, 0.9, 25)
N = "test_nesterov_lookahead"
probe(N, "nesterov_lookahead returns an ndarray (the public test's run)",
      lambda: is_array(pub[0], np.array(pub[1]), *pub[2:]))
probe(N, "the public test's run: A = [[2, 1], [1, 3]], lr 0.1, momentum 0.9, 25 steps",
      lambda: nesterov_and_start(pub[0], np.array(pub[1]), *pub[2:]), **PATH_TOL)
probe(N, "the public test's run, a second call", lambda: twice(*pub), **PATH_TOL)
probe(N, "the hidden test's non-quadratic 3-D run, and w0 after",
      lambda: nesterov_and_start(grad_hidden, hidden_start.copy(), 0.05, 0.7, 40), **PATH_TOL)
probe(N, "momentum = 0 (gradient descent)",
      lambda: nesterov_and_start(grad_hidden, hidden_start.copy(), 0.1, 0.0, 10), **PATH_TOL)
probe(N, "num_steps = 0", lambda: nesterov_and_start(grad_hidden, hidden_start.copy(), 0.1, 0.9, 0),
      **PATH_TOL)
probe(N, "w0 a list", lambda: nesterov_lookahead(*pub), **PATH_TOL)
probe(N, "w0 an integer array, and w0 after",
      lambda: nesterov_and_start(pub[0], np.array([1, -1]), *pub[2:]), **PATH_TOL)
probe(N, "a cubic in 3-D, lr 0.08, momentum 0.75, 20 steps, and w0 after",
      lambda: nesterov_and_start(grad_probe, start_probe.copy(), 0.08, 0.75, 20), **PATH_TOL)
probe(N, "a cubic in 3-D, lr 0.03, momentum 0.95, 30 steps",
      lambda: nesterov_and_start(grad_probe, start_probe.copy(), 0.03, 0.95, 30), **PATH_TOL)


# -- warmup_step_lr: SequentialLR(LinearLR, StepLR) as a function of t, in any order -----------
def lrs_in(order, *args):
    """warmup_step_lr(t, *args) stored at index t, for t in the given order."""
    out = np.full(max(order) + 1, np.nan)
    for t in order:
        out[t] = float(warmup_step_lr(int(t), *args))
    return out


W = "test_warmup_step_lr"
public_args = (0.1, 10, 0.1, 30, 0.5)
probe(W, "the public test's schedule, in order", lambda: lrs_in(range(200), *public_args),
      **LR_TOL)
probe(W, "the public test's schedule, shuffled (seed 0)",
      lambda: lrs_in(np.random.default_rng(0).permutation(200), *public_args), **LR_TOL)
probe(W, "the public test's schedule, backwards", lambda: lrs_in(range(199, -1, -1), *public_args),
      **LR_TOL)
for args in [(0.3, 1, 0.25, 20, 0.8), (0.05, 15, 1.0, 10, 0.7), (0.2, 5, 0.5, 1, 0.95),
             (0.01, 8, 0.2, 7, 1.5), (0.4, 25, 0.02, 12, 0.6), (1.5, 3, 0.6, 40, 0.3)]:
    probe(W, f"warmup_step_lr{args}, 120 steps shuffled (seed 1)",
          lambda a=args: lrs_in(np.random.default_rng(1).permutation(120), *a), **LR_TOL)
    probe(W, f"warmup_step_lr{args}, 120 steps in order",
          lambda a=args: lrs_in(range(120), *a), **LR_TOL)
probe(W, "warmup_step_lr(10000, 1.0, 100, 0.1, 1000, 0.5)",
      lambda: warmup_step_lr(10_000, 1.0, 100, 0.1, 1000, 0.5), **LR_TOL)
probe(W, "the same step twice, between other steps",
      lambda: [warmup_step_lr(t, 0.2, 6, 0.3, 4, 0.5) for t in [9, 2, 9, 30, 2, 0, 30]],
      **LR_TOL)
