"""sgdkit.optim: the numpy loops against closed forms, and SGD against torch.optim.SGD."""

import copy
import itertools

import numpy as np
import pytest
import torch

from sgdkit import data
from sgdkit.objectives import LeastSquares, Quadratic, Rosenbrock, quadratic
from sgdkit.optim import SGD, DivergenceError, Trajectory, gd, minibatch_sgd, sgd


@pytest.fixture(scope="module")
def diabetes():
    return LeastSquares(*data.load_diabetes())


# ---------------------------------------------------------------------------------------------
# gd


def test_gd_on_a_quadratic_is_the_closed_form():
    # f(w) = 1/2 w^T diag(lam) w: each coordinate shrinks by (1 - lr lam) per step
    lam = np.array([1.0, 10.0])
    f = Quadratic(np.diag(lam))
    w0 = np.array([1.0, -2.0])
    lr, T = 0.15, 30
    traj = gd(f, w0, lr, T)
    assert isinstance(traj, Trajectory)
    assert traj.path.shape == (T + 1, 2) and traj.losses.shape == (T + 1,)
    t = np.arange(T + 1)[:, None]
    np.testing.assert_allclose(traj.path, w0 * (1 - lr * lam) ** t, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(traj.losses, [f.loss(w) for w in traj.path], rtol=1e-14)
    np.testing.assert_array_equal(w0, [1.0, -2.0])  # the caller's start is not modified


def test_gd_takes_a_schedule():
    f = Quadratic(np.eye(1))
    seen = []

    def lr(step):
        seen.append(step)
        return 0.5 / (1 + step)

    traj = gd(f, [1.0], lr, 4)
    assert seen == [0, 1, 2, 3]
    expected = np.cumprod([1.0] + [1 - 0.5 / (1 + t) for t in range(4)])
    np.testing.assert_allclose(traj.path[:, 0], expected, rtol=1e-14)


def test_gd_zero_steps_and_lists():
    traj = gd(Rosenbrock(), [0, 0], 1e-3, 0)
    np.testing.assert_array_equal(traj.path, [[0.0, 0.0]])
    np.testing.assert_array_equal(traj.losses, [1.0])


def test_gd_on_diabetes_converges_below_2_over_L(diabetes):
    f = diabetes
    traj = gd(f, np.zeros(f.d), 1.99 / f.L, 3000)
    assert np.all(np.isfinite(traj.losses))
    assert traj.losses[-1] < traj.losses[0]
    # the slowest direction contracts by (1 - lr mu) per step: still far, cond = 470
    assert traj.losses[-1] - f.loss_star < 1e-3


def test_gd_diverging_raises_with_the_step_and_2_over_L(diabetes):
    f = diabetes
    lr = 3 / f.L
    with pytest.raises(DivergenceError) as info:
        gd(f, np.zeros(f.d), lr, 10_000)
    message = str(info.value)
    assert message.startswith("loss became inf at step ")
    assert f"the learning rate {lr:g} is above 2/L = 0.497 for this problem; lower it" in message
    step = int(message.split("at step ")[1].split(":")[0])
    assert 100 < step < 10_000
    assert isinstance(info.value, FloatingPointError)
    # ... and stop_on_divergence=False returns the path up to that step, to plot it
    traj = gd(f, np.zeros(f.d), lr, 10_000, stop_on_divergence=False)
    assert traj.path.shape == (step + 1, f.d) and len(traj.losses) == step + 1
    assert np.isinf(traj.losses[-1]) and np.all(np.isfinite(traj.losses[:-1]))


def test_divergence_messages_without_L_and_below_2_over_L():
    with pytest.raises(DivergenceError, match=r"at step \d+: with the learning rate 0.1; lower"):
        gd(Rosenbrock(), [3.0, -3.0], 0.1, 1000)

    class Cliff(Quadratic):  # smooth near 0, but its loss overflows far out
        def loss(self, w):
            return super().loss(w) if abs(w[0]) < 5 else float("nan")

    f = Cliff(np.eye(1), b=[100.0])
    with pytest.raises(DivergenceError, match=r"became nan at step 1: with the learning rate "
                                              r"0.5 \(2/L = 2 for this problem\); lower it"):
        gd(f, [0.0], 0.5, 10)


def test_gd_bad_inputs():
    f = quadratic()
    with pytest.raises(ValueError, match=r"w0 must have shape \(2,\).*got \(3,\)"):
        gd(f, np.zeros(3), 0.1, 5)
    with pytest.raises(ValueError, match=r"w0 must have shape \(2,\).*got \(1, 2\)"):
        gd(f, np.zeros((1, 2)), 0.1, 5)
    for lr in (0, -0.1, float("nan"), float("inf"), "0.1"):
        with pytest.raises(ValueError, match="lr must be a number > 0"):
            gd(f, np.zeros(2), lr, 5)
    with pytest.raises(ValueError, match=r"lr\(1\) returned -0.1"):
        gd(f, np.ones(2), lambda t: 0.1 if t == 0 else -0.1, 5)
    with pytest.raises(ValueError, match="num_steps must be an int >= 0"):
        gd(f, np.zeros(2), 0.1, -1)
    with pytest.raises(ValueError, match="num_steps must be an int >= 0"):
        gd(f, np.zeros(2), 0.1, 2.5)

    class WrongGrad:
        def loss(self, w):
            return float(w @ w)

        def grad(self, w):
            return np.zeros(3)

    with pytest.raises(ValueError, match=r"grad\(w\) must have the shape of w, \(2,\)"):
        gd(WrongGrad(), np.zeros(2), 0.1, 1)


# ---------------------------------------------------------------------------------------------
# sgd


class Spy(LeastSquares):
    """LeastSquares that remembers the index set of every batch_grad call."""

    def __init__(self, X, y):
        super().__init__(X, y)
        self.batches = []

    def batch_grad(self, w, idx):
        self.batches.append(np.array(idx))
        return super().batch_grad(w, idx)


def test_sgd_full_batch_is_gd_exactly(diabetes):
    w0 = np.full(diabetes.d, 0.3)
    for seed in (0, 1):
        a = gd(diabetes, w0, 0.2, 25)
        b = sgd(diabetes, w0, 0.2, num_epochs=25, batch_size=diabetes.n, seed=seed)
        np.testing.assert_array_equal(a.path, b.path)
        np.testing.assert_array_equal(a.losses, b.losses)
    assert minibatch_sgd is sgd


def test_sgd_without_replacement_partitions_each_epoch():
    X, y, _ = data.make_linear_regression(n=50, d=3, seed=0)
    f = Spy(X, y)
    traj = sgd(f, np.zeros(3), 0.05, num_epochs=3, batch_size=8)
    assert [len(b) for b in f.batches] == ([8] * 6 + [2]) * 3
    epochs = [np.concatenate(f.batches[7 * e:7 * e + 7]) for e in range(3)]
    for e in epochs:
        assert sorted(e) == list(range(50))
    assert not np.array_equal(epochs[0], epochs[1]), "a new order each epoch"
    assert traj.path.shape == (3 * 7 + 1, 3) and traj.losses.shape == (22,)


def test_sgd_with_replacement_sees_about_63_percent_per_epoch():
    X, y, _ = data.make_linear_regression(n=2000, d=2, seed=0)
    f = Spy(X, y)
    sgd(f, np.zeros(2), 0.01, num_epochs=1, batch_size=1, replacement=True, record="epoch")
    assert len(f.batches) == 2000
    seen = len(np.unique(np.concatenate(f.batches))) / 2000
    assert abs(seen - (1 - np.exp(-1))) < 0.03, seen


def test_sgd_records_steps_or_epochs_and_is_reproducible(diabetes):
    w0 = np.zeros(diabetes.d)
    steps = sgd(diabetes, w0, 0.01, num_epochs=2, batch_size=100, seed=4)
    assert steps.path.shape == (2 * 5 + 1, diabetes.d)
    epochs = sgd(diabetes, w0, 0.01, num_epochs=2, batch_size=100, seed=4, record="epoch")
    assert epochs.path.shape == (3, diabetes.d)
    np.testing.assert_array_equal(epochs.path, steps.path[[0, 5, 10]])
    np.testing.assert_array_equal(epochs.losses, steps.losses[[0, 5, 10]])
    again = sgd(diabetes, w0, 0.01, num_epochs=2, batch_size=100, seed=4)
    np.testing.assert_array_equal(again.path, steps.path)
    other = sgd(diabetes, w0, 0.01, num_epochs=2, batch_size=100, seed=5)
    assert not np.array_equal(other.path, steps.path)


def test_sgd_reaches_a_noise_ball_that_shrinks_with_lr(diabetes):
    f = diabetes
    gaps = []
    for lr in (0.05, 0.005):
        traj = sgd(f, np.zeros(f.d), lr, num_epochs=40, batch_size=1, record="epoch", seed=0)
        gaps.append(np.mean(traj.losses[-10:]) - f.loss_star)
    assert 0 < gaps[1] < gaps[0] / 3


def test_sgd_schedule_gets_the_global_step():
    X, y, _ = data.make_linear_regression(n=10, d=2, seed=0)
    seen = []
    sgd(LeastSquares(X, y), np.zeros(2), lambda t: seen.append(t) or 0.01, 2, batch_size=4)
    assert seen == list(range(6))


def test_sgd_divergence(diabetes):
    with pytest.raises(DivergenceError, match=r"loss became inf at step \d+: the learning "
                                              r"rate 5 is above 2/L = 0.497"):
        sgd(diabetes, np.zeros(diabetes.d), 5.0, num_epochs=50, batch_size=32)
    with pytest.raises(DivergenceError, match="the learning rate 5 is above"):
        sgd(diabetes, np.zeros(diabetes.d), 5.0, num_epochs=50, batch_size=32, record="epoch")
    traj = sgd(diabetes, np.zeros(diabetes.d), 5.0, num_epochs=50, batch_size=32,
               stop_on_divergence=False)
    assert not np.isfinite(traj.losses[-1]) and np.isfinite(traj.losses[:-1]).all()


def test_sgd_divergence_seen_at_the_end_of_an_epoch():
    class Overflow(LeastSquares):  # finite iterates, but the loss overflows past a point
        def loss(self, w):
            return super().loss(w) if w[0] < 1.5 else float("inf")

    f = Overflow(np.ones((4, 1)), 2 * np.ones(4))
    with pytest.raises(DivergenceError, match="became inf at step 4"):
        sgd(f, [0.0], 0.5, num_epochs=3, batch_size=1, record="epoch")
    traj = sgd(f, [0.0], 0.5, num_epochs=3, batch_size=1, record="epoch",
               stop_on_divergence=False)
    assert traj.path.shape == (2, 1) and np.isinf(traj.losses[-1])


def test_sgd_bad_inputs(diabetes):
    w0 = np.zeros(diabetes.d)
    with pytest.raises(ValueError, match="batch_size must be an int >= 1, got 0"):
        sgd(diabetes, w0, 0.1, 1, batch_size=0)
    with pytest.raises(ValueError, match="num_epochs must be an int >= 0"):
        sgd(diabetes, w0, 0.1, -1)
    with pytest.raises(ValueError, match='record must be "step"'):
        sgd(diabetes, w0, 0.1, 1, record="batch")
    with pytest.raises(ValueError, match="lr must be a number > 0, got 0"):
        sgd(diabetes, w0, 0, 1)
    with pytest.raises(ValueError, match=r"w0 must have shape \(10,\)"):
        sgd(diabetes, np.zeros(3), 0.1, 1)
    with pytest.raises(TypeError, match="sgd needs an average over n examples"):
        sgd(quadratic(), np.zeros(2), 0.1, 1)


# ---------------------------------------------------------------------------------------------
# SGD, the torch optimizer


def make_model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))


def batches(num_steps, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(16, 5, generator=g), torch.randn(16, 3, generator=g))
            for _ in range(num_steps)]


def train(model, optimizer, data_, scheduler=None):
    for X, y in data_:
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(X), y).backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


def assert_same(a, b):
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)


CONFIGS = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
           for m, d, n, wd, mx in itertools.product([0, 0.9], [0, 0.5], [False, True],
                                                    [0, 1e-2], [False, True])
           if not (n and (m == 0 or d != 0))]  # nesterov needs momentum and no dampening


@pytest.mark.parametrize("config", CONFIGS,
                         ids=lambda c: "-".join(f"{k}={v}" for k, v in c.items()))
def test_SGD_matches_torch(config):
    ours, theirs = make_model(), make_model()
    train(ours, SGD(ours.parameters(), lr=0.05, **config), batches(15))
    train(theirs, torch.optim.SGD(theirs.parameters(), lr=0.05, **config), batches(15))
    assert_same(ours, theirs)
    assert len(CONFIGS) == 20


def test_SGD_param_groups_and_StepLR():
    def groups(model):
        return [{"params": model[0].parameters(), "lr": 0.1, "momentum": 0.5},
                {"params": model[2].parameters(), "nesterov": True}]

    ours, theirs = make_model(), make_model()
    opt_ours = SGD(groups(ours), lr=0.02, momentum=0.9, weight_decay=1e-2)
    opt_theirs = torch.optim.SGD(groups(theirs), lr=0.02, momentum=0.9, weight_decay=1e-2)
    sched_ours = torch.optim.lr_scheduler.StepLR(opt_ours, step_size=4, gamma=0.5)
    sched_theirs = torch.optim.lr_scheduler.StepLR(opt_theirs, step_size=4, gamma=0.5)
    train(ours, opt_ours, batches(12), sched_ours)
    train(theirs, opt_theirs, batches(12), sched_theirs)
    assert_same(ours, theirs)
    assert [g["lr"] for g in opt_ours.param_groups] == [0.1 * 0.5**3, 0.02 * 0.5**3]
    assert [g["lr"] for g in opt_ours.param_groups] == [g["lr"] for g in opt_theirs.param_groups]


@pytest.mark.parametrize("load_into", [SGD, torch.optim.SGD])
def test_SGD_state_dict_round_trip_mid_run(load_into):
    kwargs = dict(lr=0.05, momentum=0.9, weight_decay=1e-2)
    reference = make_model()
    reference_opt = torch.optim.SGD(reference.parameters(), **kwargs)
    train(reference, reference_opt, batches(10))

    model = make_model()
    opt = SGD(model.parameters(), **kwargs)
    train(model, opt, batches(10)[:5])
    saved_model, saved_opt = copy.deepcopy(model.state_dict()), copy.deepcopy(opt.state_dict())
    assert set(saved_opt["state"][0]) == {"momentum_buffer"}  # torch's key: they interchange

    fresh = make_model(seed=99)  # different weights, overwritten by the checkpoint
    fresh.load_state_dict(saved_model)
    fresh_opt = load_into(fresh.parameters(), **kwargs)
    fresh_opt.load_state_dict(saved_opt)
    train(fresh, fresh_opt, batches(10)[5:])
    assert_same(fresh, reference)


def test_SGD_loads_torchs_state_dict():
    kwargs = dict(lr=0.05, momentum=0.9, nesterov=True)
    reference, model = make_model(), make_model()
    ref_opt = torch.optim.SGD(reference.parameters(), **kwargs)
    train(reference, ref_opt, batches(4))
    model.load_state_dict(reference.state_dict())
    opt = SGD(model.parameters(), **kwargs)
    # deepcopy: state_dict() hands out the live momentum buffers, and loading keeps them
    opt.load_state_dict(copy.deepcopy(ref_opt.state_dict()))
    train(reference, ref_opt, batches(4, seed=1))
    train(model, opt, batches(4, seed=1))
    assert_same(model, reference)


def test_SGD_skips_params_without_grad():
    ours, theirs = make_model(), make_model()
    for model in (ours, theirs):
        torch.manual_seed(1)
        model.append(torch.nn.Linear(3, 3))  # never used: its .grad stays None
    frozen_before = ours[3].weight.detach().clone()
    opt_ours = SGD(ours.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    for model, opt in ((ours, opt_ours), (theirs, opt_theirs)):
        for X, y in batches(3):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model[:3](X), y).backward()  # skip the last layer
            opt.step()
    assert_same(ours, theirs)
    assert ours[3].weight.grad is None
    assert torch.equal(ours[3].weight, frozen_before), "weight decay must not touch it either"
    assert ours[3].weight not in opt_ours.state


def test_SGD_closure_returns_the_loss_and_grad_is_untouched():
    w = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = SGD([w], lr=0.1, weight_decay=0.5, maximize=True)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 5.0
    torch.testing.assert_close(w.grad, torch.tensor([2.0, -4.0]))  # .grad not modified in place
    # maximize: w <- w + lr (g - wd w)... torch's order: g = -grad, then + wd w
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, -2.0]) - 0.1 * (
        -torch.tensor([2.0, -4.0]) + 0.5 * torch.tensor([1.0, -2.0])))


@pytest.mark.parametrize("kwargs, match", [
    (dict(lr=-0.1), "lr must be >= 0, got -0.1"),
    (dict(momentum=-0.5), "momentum must be >= 0"),
    (dict(weight_decay=-1e-4), "weight_decay must be >= 0"),
    (dict(nesterov=True), "nesterov=True needs momentum > 0 and dampening = 0; got momentum=0"),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), "dampening=0.1"),
])
def test_SGD_rejects_what_torch_rejects(kwargs, match):
    params = [torch.zeros(2, requires_grad=True)]
    with pytest.raises(ValueError, match=match):
        SGD(params, **kwargs)
    with pytest.raises(ValueError):
        torch.optim.SGD(params, **kwargs)
