"""sgdkit.schedules: each schedule equals its torch.optim.lr_scheduler counterpart to 1e-12."""

import functools
import math

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

from sgdkit import schedules

LR = 0.3
NUM_STEPS = 300


def torch_lrs(make_scheduler, lr=LR, num_steps=NUM_STEPS):
    """The lr torch uses at steps 0 .. num_steps - 1, one scheduler.step() after each step."""
    w = torch.zeros(1, requires_grad=True)
    optimizer = torch.optim.SGD([w], lr=lr)
    scheduler = make_scheduler(optimizer)
    lrs = []
    for _ in range(num_steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()  # no grads, so nothing moves; keeps torch's call-order check quiet
        scheduler.step()
    return np.array(lrs)


def ours(schedule, num_steps=NUM_STEPS):
    return np.array([schedule(t) for t in range(num_steps)])


def assert_matches(schedule, make_scheduler):
    np.testing.assert_allclose(ours(schedule), torch_lrs(make_scheduler), rtol=0, atol=1e-12)


def test_constant():
    assert_matches(lambda t: schedules.constant(t, LR),
                   lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 1.0))


@pytest.mark.parametrize("decay", [0.0, 0.01, 0.5])
def test_inverse_time(decay):
    assert_matches(lambda t: schedules.inverse_time(t, LR, decay),
                   lambda opt: lr_scheduler.LambdaLR(opt, lambda t: 1 / (1 + decay * t)))
    assert schedules.inverse_time(10, 1.0, 0.1) == pytest.approx(0.5)


@pytest.mark.parametrize("gamma", [0.9, 0.99, 1.0])
def test_exponential(gamma):
    assert_matches(lambda t: schedules.exponential(t, LR, gamma),
                   lambda opt: lr_scheduler.ExponentialLR(opt, gamma))


@pytest.mark.parametrize("step_size, gamma", [(1, 0.9), (30, 0.1), (100, 0.5)])
def test_step_decay(step_size, gamma):
    assert_matches(lambda t: schedules.step_decay(t, LR, step_size, gamma),
                   lambda opt: lr_scheduler.StepLR(opt, step_size, gamma))
    assert schedules.step_decay(step_size - 1, 1.0, step_size, gamma) == 1.0  # cut after
    assert schedules.step_decay(step_size, 1.0, step_size, gamma) == pytest.approx(gamma)


@pytest.mark.parametrize("num_steps, lr_min", [(NUM_STEPS, 0.0), (100, 0.01)])
def test_cosine(num_steps, lr_min):
    # num_steps=100 runs three times past T, where torch's cosine climbs back up; so does ours
    assert_matches(lambda t: schedules.cosine(t, LR, num_steps, lr_min),
                   lambda opt: lr_scheduler.CosineAnnealingLR(opt, num_steps, lr_min))
    assert schedules.cosine(num_steps, LR, num_steps, lr_min) == pytest.approx(lr_min)
    assert schedules.cosine(num_steps // 2, LR, num_steps, lr_min) == pytest.approx(
        (LR + lr_min) / 2)


@pytest.mark.parametrize("warmup_steps", [2, 10, 50])
def test_linear_warmup_then_constant(warmup_steps):
    assert_matches(
        lambda t: schedules.linear_warmup(t, LR, warmup_steps),
        lambda opt: lr_scheduler.LinearLR(opt, start_factor=1 / warmup_steps,
                                          total_iters=warmup_steps - 1))
    assert schedules.linear_warmup(0, LR, warmup_steps) == pytest.approx(LR / warmup_steps)
    assert schedules.linear_warmup(warmup_steps - 1, LR, warmup_steps) == pytest.approx(LR)


@pytest.mark.parametrize("warmup_steps", [5, 20])
def test_linear_warmup_then_cosine(warmup_steps):
    decay_steps = NUM_STEPS - warmup_steps
    after = functools.partial(schedules.cosine, lr=LR, num_steps=decay_steps, lr_min=0.001)

    def make(opt):
        warm = lr_scheduler.LinearLR(opt, start_factor=1 / warmup_steps,
                                     total_iters=warmup_steps - 1)
        cos = lr_scheduler.CosineAnnealingLR(opt, decay_steps, eta_min=0.001)
        return lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[warmup_steps])

    assert_matches(lambda t: schedules.linear_warmup(t, LR, warmup_steps, after=after), make)


def test_linear_warmup_then_exponential():
    after = functools.partial(schedules.exponential, lr=LR, gamma=0.98)

    def make(opt):
        warm = lr_scheduler.LinearLR(opt, start_factor=1 / 10, total_iters=9)
        decay = lr_scheduler.ExponentialLR(opt, 0.98)
        return lr_scheduler.SequentialLR(opt, [warm, decay], milestones=[10])

    assert_matches(lambda t: schedules.linear_warmup(t, LR, 10, after=after), make)


def test_drives_a_torch_optimizer_through_lambdalr():
    """The module docstring's recipe: LambdaLR with the schedule at lr=1.0 as the factor."""
    assert_matches(lambda t: schedules.cosine(t, LR, NUM_STEPS),
                   lambda opt: lr_scheduler.LambdaLR(
                       opt, lambda t: schedules.cosine(t, 1.0, NUM_STEPS)))


def test_schedules_return_python_floats():
    for value in [schedules.constant(3, 1), schedules.inverse_time(3, 1, 1),
                  schedules.exponential(3, 1, 0.5), schedules.step_decay(3, 1, 2),
                  schedules.cosine(3, 1, 10), schedules.linear_warmup(3, 1, 2)]:
        assert type(value) is float and math.isfinite(value)


@pytest.mark.parametrize("call, message", [
    (lambda: schedules.constant(0, -0.1), "lr must be a number >= 0, got -0.1"),
    (lambda: schedules.constant(0, float("nan")), "lr must be a number >= 0"),
    (lambda: schedules.constant(-1, 0.1), "t is the step number, an int >= 0; got -1"),
    (lambda: schedules.constant(1.5, 0.1), "t is the step number"),
    (lambda: schedules.inverse_time(0, 0.1, -1.0), "decay must be a number >= 0"),
    (lambda: schedules.exponential(0, 0.1, 0.0), "gamma must be a number > 0"),
    (lambda: schedules.exponential(0, 0.1, -0.5), "gamma must be a number > 0"),
    (lambda: schedules.step_decay(0, 0.1, 0), "step_size must be an int >= 1"),
    (lambda: schedules.step_decay(0, 0.1, 2.5), "step_size must be an int >= 1"),
    (lambda: schedules.step_decay(0, 0.1, 10, gamma=0), "gamma must be a number > 0"),
    (lambda: schedules.cosine(0, 0.1, 0), "num_steps must be an int >= 1"),
    (lambda: schedules.cosine(0, 0.1, 10, lr_min=-1), "lr_min must be a number >= 0"),
    (lambda: schedules.linear_warmup(0, 0.1, 0), "warmup_steps must be an int >= 1"),
    (lambda: schedules.linear_warmup(0, 0.1, 5, after=0.1), "after must be a schedule"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        call()


def test_numpy_integer_steps_are_fine():
    assert schedules.exponential(np.int64(2), 1.0, 0.5) == pytest.approx(0.25)
