"""Probes for 04_momentum_schedules: the grader's own checks of the student's functions, on
inputs of their own; the grader compares the results with the solution's outside the student's
kernel."""
import numpy as np

from sgdkit.grading.probes import probe

probe_rng = np.random.default_rng(12345)
TOL = dict(rtol=1e-6, atol=1e-8)  # assert_close's defaults, which the momentum tests use
EXACT = dict(rtol=1e-10, atol=0.0)  # the schedule tests: equal to torch's up to rounding


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


# -- heavy_ball: the path w_0, ..., w_T of momentum steps, lr a number or a function of t ------
S_probe = probe_rng.standard_normal((3, 3))
S_probe = S_probe @ S_probe.T / 3 + np.eye(3)


def grad_probe(w):
    w = np.asarray(w, dtype=float)
    return 0.5 * w**3 + S_probe @ w


def heavy_ball_and_start(w0, lr, momentum, num_steps):
    """The path of heavy_ball, and w0 after the call (it must not change)."""
    return heavy_ball(grad_probe, w0, lr, momentum, num_steps), w0


def lr_step(t):
    return 0.1 if t < 7 else 0.03


start_probe = np.array([0.8, -0.6, 1.1])
probe("test_heavy_ball", "heavy_ball with lr = 0.08, momentum = 0.75, 20 steps, and w0 after",
      lambda: heavy_ball_and_start(start_probe.copy(), 0.08, 0.75, 20), **TOL)
probe("test_heavy_ball", "heavy_ball with lr(t) = 0.1, then 0.03 from t = 7 (momentum 0.8)",
      lambda: heavy_ball_and_start(start_probe.copy(), lr_step, 0.8, 20), **TOL)
probe("test_heavy_ball", "heavy_ball with lr(t) = 0.06 * 0.95^t (momentum 0.6)",
      lambda: heavy_ball_and_start(start_probe.copy(), lambda t: 0.06 * 0.95**t, 0.6, 25),
      **TOL)
probe("test_heavy_ball", "heavy_ball with momentum = 0 (gradient descent)",
      lambda: heavy_ball_and_start(start_probe.copy(), 0.1, 0.0, 10), **TOL)
probe("test_heavy_ball", "heavy_ball with num_steps = 0",
      lambda: heavy_ball_and_start(start_probe.copy(), 0.1, 0.9, 0), **TOL)
probe("test_heavy_ball", "heavy_ball with w0 a list",
      lambda: heavy_ball(grad_probe, [0.5, 1.0, -0.5], 0.05, 0.9, 15), **TOL)
probe("test_heavy_ball", "heavy_ball with w0 an integer array, and w0 after",
      lambda: heavy_ball_and_start(np.array([1, -1, 0]), 0.05, 0.9, 15), **TOL)


# -- the schedules, as torch's schedulers: eta_t for t = 0, 1, ... -----------------------------
def lrs_of(f, num_steps, *args):
    return [f(t, *args) for t in range(num_steps)]


probe("test_step_decay", "step_decay(t, 0.2, 25, 0.7), t < 200",
      lambda: lrs_of(step_decay, 200, 0.2, 25, 0.7), **EXACT)
probe("test_step_decay", "step_decay(t, 0.5, 1, 0.93), t < 80",
      lambda: lrs_of(step_decay, 80, 0.5, 1, 0.93), **EXACT)
probe("test_step_decay", "step_decay(t, 0.02, 6, 1.3), t < 50 (growing)",
      lambda: lrs_of(step_decay, 50, 0.02, 6, 1.3), **EXACT)
probe("test_step_decay", "step_decay(7000, 2.0, 500, 0.6)",
      lambda: step_decay(7000, 2.0, 500, 0.6), **EXACT)

probe("test_exponential", "exponential(t, 0.07, 0.98), t < 200",
      lambda: lrs_of(exponential, 200, 0.07, 0.98), **EXACT)
probe("test_exponential", "exponential(t, 0.3, 1.0), t < 50 (constant)",
      lambda: lrs_of(exponential, 50, 0.3, 1.0), **EXACT)
probe("test_exponential", "exponential(t, 1.5, 0.6), t < 100",
      lambda: lrs_of(exponential, 100, 1.5, 0.6), **EXACT)

probe("test_cosine", "cosine(t, 0.3, 60, 0.002), t < 200 (past num_steps too)",
      lambda: lrs_of(cosine, 200, 0.3, 60, 0.002), **EXACT)
probe("test_cosine", "cosine(t, 0.8, 25) with the default lr_min, t < 80",
      lambda: lrs_of(cosine, 80, 0.8, 25), rtol=1e-10, atol=1e-15)
probe("test_cosine", "cosine(t, 0.4, 1, 0.05), t < 8 (num_steps = 1)",
      lambda: lrs_of(cosine, 8, 0.4, 1, 0.05), **EXACT)
probe("test_cosine", "cosine(t, 0.07, 30, 0.07), t < 70 (lr_min = lr)",
      lambda: lrs_of(cosine, 70, 0.07, 30, 0.07), **EXACT)

probe("test_linear_warmup", "linear_warmup(t, 0.2, 15, 0.2), t < 100",
      lambda: lrs_of(linear_warmup, 100, 0.2, 15, 0.2), **EXACT)
probe("test_linear_warmup", "linear_warmup(t, 0.6, 1, 0.4), t < 10 (warmup_steps = 1)",
      lambda: lrs_of(linear_warmup, 10, 0.6, 1, 0.4), **EXACT)
probe("test_linear_warmup", "linear_warmup(t, 0.05, 12, 1.0), t < 40 (start_factor = 1)",
      lambda: lrs_of(linear_warmup, 40, 0.05, 12, 1.0), **EXACT)
probe("test_linear_warmup", "linear_warmup(t, 1.0, 70, 0.002), t < 150",
      lambda: lrs_of(linear_warmup, 150, 1.0, 70, 0.002), **EXACT)
