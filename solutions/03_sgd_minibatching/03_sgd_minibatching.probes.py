"""Probes for 03_sgd_minibatching: the grader's own checks of the student's functions, on inputs
of their own; the grader compares the results with the solution's outside the student's kernel.

The tests accept any uniformly random order drawn from the rng (rng.permutation(n),
rng.choice(n, n, replace=False), ...), and these give different numbers. So where the code is
random, the probes record what every correct answer shares (batch sizes, the indices used,
whether orders change, results on data where the order cannot matter), never one particular
random order or draw."""
import numbers

import numpy as np

from sgdkit.grading.probes import probe

probe_rng = np.random.default_rng(12345)


# -- minibatch_indices: one permutation of range(n) per epoch, cut into slices -----------------
def epoch_summary(n, batch_size, seed):
    """The batch sizes, the indices of the epoch sorted, and whether they are integers."""
    batches = minibatch_indices(n, batch_size, np.random.default_rng(seed))
    seen = np.concatenate([np.asarray(b).ravel() for b in batches])
    return [len(b) for b in batches], np.sort(seen), bool(seen.dtype.kind in "iu")


def order_of(n, batch_size, rng):
    return np.concatenate(minibatch_indices(n, batch_size, rng))


def shuffled(n, batch_size, seed):
    return bool(not np.array_equal(order_of(n, batch_size, np.random.default_rng(seed)),
                                   np.arange(n)))


def new_order_each_epoch(n, batch_size, seed):
    rng = np.random.default_rng(seed)
    first, second = order_of(n, batch_size, rng), order_of(n, batch_size, rng)
    return bool(not np.array_equal(first, second))


def same_order_from_same_seed(n, batch_size, seed):
    return bool(np.array_equal(order_of(n, batch_size, np.random.default_rng(seed)),
                               order_of(n, batch_size, np.random.default_rng(seed))))


def examples_shuffled(n, batch_size, seed):
    """Fewer than 3 batches of consecutive indices (shuffled examples, not only batches)."""
    batches = minibatch_indices(n, batch_size, np.random.default_rng(seed))
    runs = sum(np.array_equal(np.sort(b), np.arange(np.min(b), np.min(b) + len(b)))
               for b in batches)
    return bool(runs < 3)


def first_index_uniform(n, batch_size, num_epochs, seed):
    """Each index comes first in about 1/n of the epochs (within 5+ standard deviations)."""
    rng = np.random.default_rng(seed)
    firsts = np.bincount([int(minibatch_indices(n, batch_size, rng)[0][0])
                          for _ in range(num_epochs)], minlength=n)
    p = 1 / n
    return bool(np.all(np.abs(firsts - num_epochs * p)
                       < 5.5 * np.sqrt(num_epochs * p * (1 - p))))


def seeds_give_different_orders(n, batch_size, seeds):
    orders = {tuple(order_of(n, batch_size, np.random.default_rng(s)).tolist()) for s in seeds}
    return bool(len(orders) == len(seeds))


for n_p, B_p, seed_p in [(11, 4, 101), (11, 1, 102), (11, 11, 103), (7, 30, 104), (1, 1, 105),
                         (1, 4, 106), (77, 16, 107), (48, 6, 108)]:
    probe("test_minibatch_indices", f"minibatch_indices({n_p}, {B_p}, rng): batch sizes, "
          f"the indices used, integer dtype", lambda n_p=n_p, B_p=B_p, seed_p=seed_p:
          epoch_summary(n_p, B_p, seed_p))
probe("test_minibatch_indices", "minibatch_indices(30, 7, rng) is shuffled",
      lambda: shuffled(30, 7, 201))
probe("test_minibatch_indices", "two epochs from one rng have different orders",
      lambda: new_order_each_epoch(15, 4, 202))
probe("test_minibatch_indices", "the same seed gives the same order",
      lambda: same_order_from_same_seed(15, 4, 203))
probe("test_minibatch_indices", "the examples are shuffled, not only the batches",
      lambda: examples_shuffled(90, 9, 204))
probe("test_minibatch_indices", "each of 3 indices comes first in about 1/3 of 3000 epochs",
      lambda: first_index_uniform(3, 2, 3000, 205))
probe("test_minibatch_indices", "six seeds give six different orders",
      lambda: seeds_give_different_orders(25, 7, range(300, 306)))


# -- sgd: mean gradient of each batch of minibatch_indices, one rng for the whole run ----------
X_gd, y_gd = probe_rng.standard_normal((12, 3)), probe_rng.standard_normal(12)
w0_gd = probe_rng.standard_normal(3)


def sgd_and_start(w0, lr, num_epochs, batch_size, seed, X=X_gd, y=y_gd):
    """The path of sgd, and w0 after the call (it must not change)."""
    return minibatch_sgd(X, y, w0, lr, num_epochs, batch_size, seed), w0


# one batch per epoch (batch_size >= n): gradient descent, whatever the order
probe("test_sgd", "sgd with batch_size = n = 12, and w0 after it",
      lambda: sgd_and_start(w0_gd.copy(), 0.15, 5, 12, 7), rtol=1e-5, atol=1e-8)
probe("test_sgd", "sgd with batch_size = 30 > n = 12, and w0 after it",
      lambda: sgd_and_start(w0_gd.copy(), 0.1, 4, 30, 8), rtol=1e-5, atol=1e-8)
probe("test_sgd", "sgd with num_epochs = 0",
      lambda: sgd_and_start(w0_gd.copy(), 0.1, 0, 5, 9), rtol=1e-5, atol=1e-8)
probe("test_sgd", "sgd with w0 a list (batch_size = n)",
      lambda: minibatch_sgd(X_gd, y_gd, [0.5, -1.0, 2.0], 0.1, 3, 12, 10),
      rtol=1e-5, atol=1e-8)
# identical examples: every batch's mean gradient is the full gradient, so the path counts the
# steps per epoch (ceil(n / batch_size), the last batch shorter) whatever the order
X_same, y_same = np.tile([[0.5, -1.0, 2.0]], (11, 1)), np.full(11, -1.5)
for B_p, epochs_p in [(4, 3), (5, 2), (3, 2)]:
    probe("test_sgd", f"sgd on 11 identical examples, batch_size = {B_p}",
          lambda B_p=B_p, epochs_p=epochs_p: minibatch_sgd(X_same, y_same, np.zeros(3), 0.05,
                                                 epochs_p, B_p, 11), rtol=1e-5, atol=1e-8)
# orthogonal examples: each step moves only the coordinates of its batch, so the path shows
# that every example is used once per epoch, with the mean over its batch, in any order
X_orth, y_orth = np.diag([1.0, 2.0, 0.5, 1.5, 0.8, 1.2]), probe_rng.standard_normal(6)
for B_p in [1, 2, 3]:
    probe("test_sgd", f"sgd on 6 orthogonal examples, batch_size = {B_p}",
          lambda B_p=B_p: minibatch_sgd(X_orth, y_orth, np.zeros(6), 0.3, 4, B_p, 12),
          rtol=1e-5, atol=1e-8)

X_mix, y_mix = probe_rng.standard_normal((4, 3)), probe_rng.standard_normal(4)


def epochs_change_order(seed, num_epochs=6):
    """Does some epoch take another order than the first? Epoch k of a run from seed is
    compared with the first epoch of a new run from seed, started at the same point."""
    path = minibatch_sgd(X_mix, y_mix, np.zeros(3), 0.2, num_epochs, 1, seed)
    return bool(any(not np.allclose(minibatch_sgd(X_mix, y_mix, path[k], 0.2, 1, 1, seed)[1],
                                    path[k + 1], rtol=1e-9, atol=1e-12)
                    for k in range(1, num_epochs)))


def same_run_from_same_seed(seed):
    return bool(np.array_equal(minibatch_sgd(X_mix, y_mix, np.zeros(3), 0.2, 5, 1, seed),
                               minibatch_sgd(X_mix, y_mix, np.zeros(3), 0.2, 5, 1, seed)))


def seeds_give_different_runs(seed_a, seed_b):
    return bool(not np.allclose(minibatch_sgd(X_mix, y_mix, np.zeros(3), 0.2, 5, 1, seed_a),
                                minibatch_sgd(X_mix, y_mix, np.zeros(3), 0.2, 5, 1, seed_b)))


probe("test_sgd", "sgd takes a new order in later epochs (4 examples, batch_size = 1)",
      lambda: epochs_change_order(21))
probe("test_sgd", "sgd twice from the same seed gives the same run",
      lambda: same_run_from_same_seed(22))
probe("test_sgd", "sgd from seeds 23 and 24 gives different runs",
      lambda: seeds_give_different_runs(23, 24))


# -- gradient_noise: mean over the examples of ||grad f_i - grad f||^2 ------------------------
X_noise = probe_rng.standard_normal((25, 4)) * np.array([1.0, 2.0, 0.5, 1.5])
y_noise, w_noise = probe_rng.standard_normal(25), probe_rng.standard_normal(4)
X_fit, w_fit = probe_rng.standard_normal((5, 3)), probe_rng.standard_normal(3)
probe("test_gradient_noise", "gradient_noise on a 25 x 4 problem",
      lambda: gradient_noise(X_noise.copy(), y_noise.copy(), w_noise.copy()),
      rtol=1e-8, atol=1e-10)
probe("test_gradient_noise", "gradient_noise at w = 0",
      lambda: gradient_noise(X_noise.copy(), y_noise.copy(), np.zeros(4)),
      rtol=1e-8, atol=1e-10)
probe("test_gradient_noise", "gradient_noise for n = 1",
      lambda: gradient_noise(np.array([[1.5, -0.5, 2.0]]), np.array([0.3]),
                             np.array([1.0, 2.0, -1.0])), rtol=1e-8, atol=1e-8)
probe("test_gradient_noise", "gradient_noise at an exact fit X w = y",
      lambda: gradient_noise(X_fit, X_fit @ w_fit, w_fit), rtol=1e-8, atol=1e-20)


# -- minibatch_grad_variance: mean of ||g_I - grad f||^2, g_I the mean over the batch --------
# n = 2: ||grad f_1 - grad f||^2 = ||grad f_2 - grad f||^2, so with batch_size = 1 every draw
# gives the same number; a batch of all n examples drawn without replacement gives 0.
X_two, y_two, w_two = (probe_rng.standard_normal((2, 3)), probe_rng.standard_normal(2),
                       np.array([1.0, -2.0, 0.5]))
X_ten = probe_rng.standard_normal((10, 8))
y_ten, w_ten = probe_rng.standard_normal(10), probe_rng.standard_normal(8) + 1


def variance(X, y, w, batch_size, num_draws, seed, replacement):
    return minibatch_grad_variance(X, y, w, batch_size, num_draws,
                                   np.random.default_rng(seed), replacement=replacement)


for replacement_p in [True, False]:
    probe("test_minibatch_grad_variance",
          f"minibatch_grad_variance for n = 2, batch_size = 1, replacement={replacement_p}",
          lambda r=replacement_p: variance(X_two, y_two, w_two, 1, 50, 31, r),
          rtol=1e-6, atol=1e-12)
probe("test_minibatch_grad_variance",
      "minibatch_grad_variance with batch_size = n = 10, replacement=False (the whole data)",
      lambda: variance(X_ten, y_ten, w_ten, 10, 50, 32, False), rtol=1e-6, atol=1e-12)
# random draws: the solution's estimate, within 10% (as the tests allow against the theory;
# with 4000 draws each estimate has a standard deviation of about 1.5% of it)
probe("test_minibatch_grad_variance",
      "minibatch_grad_variance with batch_size = n = 10, replacement=True, 4000 draws",
      lambda: variance(X_ten, y_ten, w_ten, 10, 4000, 33, True), rtol=0.1, atol=1e-12)
probe("test_minibatch_grad_variance",
      "minibatch_grad_variance with batch_size = 5 of n = 10, replacement=False, 4000 draws",
      lambda: variance(X_ten, y_ten, w_ten, 5, 4000, 34, False), rtol=0.1, atol=1e-12)


def reproducible_float(seed):
    """Two calls with the default replacement and equal rngs: the same float."""
    first, second = (minibatch_grad_variance(X_ten, y_ten, w_ten, 3, 100,
                                             np.random.default_rng(seed)) for _ in range(2))
    return f"same={first == second} float={isinstance(first, float)}"


probe("test_minibatch_grad_variance",
      "minibatch_grad_variance: a float, the same twice from the same seed",
      lambda: reproducible_float(35))


# -- noise_floor: sum_j lr sigma_j^2 / (B a_j (2 - lr a_j)), math.inf when unstable -------------
def floor_and_type(*args):
    value = noise_floor(*args)
    return float(value), bool(isinstance(value, numbers.Real) and np.ndim(value) == 0)


a3, s3 = np.array([0.5, 2.0, 8.0]), np.array([1.0, 0.2, 4.0])
NF = "test_noise_floor"
for args in [(0.1, 1, [2.0], [3.0]), (0.05, 4, [1.0, 10.0], [2.0, 5.0]), (0.01, 1, a3, s3),
             (0.1, 3, a3, s3), (0.2, 16, a3, s3), (0.24, 2, a3, s3), (0.1, 5, list(a3), list(s3)),
             (0.1, 2, a3, np.zeros(3)), (0.25, 1, a3, s3), (0.3, 4, a3, s3),
             (0.003, 7, [30.0, 0.1, 1.0, 5.0], [9.0, 0.5, 0.0, 2.0]), (1.9, 2, [1.0], [0.7]),
             (0.5, 1, np.array([3.9]), np.array([1.0]))]:
    shown = tuple(np.asarray(a).tolist() if isinstance(a, np.ndarray) else a for a in args)
    probe(NF, f"noise_floor{shown}",
          lambda a=args: floor_and_type(*a), rtol=1e-5, atol=1e-12)
