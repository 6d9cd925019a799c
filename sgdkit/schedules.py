"""Step size schedules: plain functions of the step ``t = 0, 1, 2, ...`` that return ``eta_t``.

A schedule is just a formula, so here it is one: ``exponential(t, lr=0.1, gamma=0.99)`` is
``0.1 * 0.99**t``. Each function equals its ``torch.optim.lr_scheduler`` counterpart step for
step (the tests check it to 1e-12), so what you learn here transfers. To drive a torch
optimizer with one, hand ``LambdaLR`` the schedule with ``lr=1.0``, because ``LambdaLR``
multiplies the optimizer's own lr by the factor you return::

    LambdaLR(optimizer, lambda t: cosine(t, 1.0, num_steps))

The numpy loops in ``sgdkit.optim`` take any ``lr(step)`` callable, e.g.
``functools.partial(inverse_time, lr=0.5, decay=0.01)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from numbers import Integral, Real


def _check_t(t: int) -> None:
    if not isinstance(t, Integral) or isinstance(t, bool) or t < 0:
        raise ValueError(f"t is the step number, an int >= 0; got {t!r}")


def _check_lr(lr: float) -> None:
    if not isinstance(lr, Real) or not lr >= 0:  # `not >=` also catches nan
        raise ValueError(f"lr must be a number >= 0, got {lr!r}")


def constant(t: int, lr: float) -> float:
    """``eta_t = eta_0``: the same step every time (``ConstantLR`` with ``factor=1``)."""
    _check_t(t)
    _check_lr(lr)
    return float(lr)


def inverse_time(t: int, lr: float, decay: float) -> float:
    """``eta_t = eta_0 / (1 + k t)`` with ``k = decay``: the 1/t decay of Robbins and Monro.

    ``sum_t eta_t`` diverges (the iterates can travel anywhere) while ``sum_t eta_t^2``
    converges (the gradient noise adds up to a finite amount), the classic conditions under
    which SGD converges. Torch: ``LambdaLR(opt, lambda t: 1 / (1 + decay * t))``.
    """
    _check_t(t)
    _check_lr(lr)
    if not isinstance(decay, Real) or not decay >= 0:
        raise ValueError(f"decay must be a number >= 0 (0 means a constant step), got {decay!r}")
    return lr / (1 + decay * t)


def exponential(t: int, lr: float, gamma: float) -> float:
    """``eta_t = eta_0 gamma^t``: multiply the step by ``gamma`` (e.g. 0.99) every step.

    Torch: ``ExponentialLR(opt, gamma)``.
    """
    _check_t(t)
    _check_lr(lr)
    if not isinstance(gamma, Real) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0 (below 1 to decay), got {gamma!r}")
    return lr * gamma**t


def step_decay(t: int, lr: float, step_size: int, gamma: float = 0.1) -> float:
    """``eta_t = eta_0 gamma^{floor(t / step_size)}``: cut the step by ``gamma`` every
    ``step_size`` steps (a staircase). Torch: ``StepLR(opt, step_size, gamma)``.
    """
    _check_t(t)
    _check_lr(lr)
    if not isinstance(step_size, Integral) or step_size < 1:
        raise ValueError(f"step_size must be an int >= 1 (steps between cuts), got {step_size!r}")
    if not isinstance(gamma, Real) or not gamma > 0:
        raise ValueError(f"gamma must be a number > 0 (below 1 to decay), got {gamma!r}")
    return lr * gamma ** (t // step_size)


def cosine(t: int, lr: float, num_steps: int, lr_min: float = 0.0) -> float:
    """``eta_t = eta_min + (eta_0 - eta_min) (1 + cos(pi t / T)) / 2`` with ``T = num_steps``.

    Half a cosine from ``lr`` at ``t = 0`` down to ``lr_min`` at ``t = T``: slow at first,
    fast in the middle, slow again at the end. Torch: ``CosineAnnealingLR(opt, T_max=T,
    eta_min=lr_min)``. Like torch's, the formula is periodic: past ``T`` the step grows again
    (back to ``lr`` at ``2T``), so choose ``T`` as the length of the whole run.
    """
    _check_t(t)
    _check_lr(lr)
    if not isinstance(num_steps, Integral) or num_steps < 1:
        raise ValueError(f"num_steps must be an int >= 1 (the length of the decay), "
                         f"got {num_steps!r}")
    if not isinstance(lr_min, Real) or not lr_min >= 0:
        raise ValueError(f"lr_min must be a number >= 0, got {lr_min!r}")
    return lr_min + (lr - lr_min) * (1 + math.cos(math.pi * t / num_steps)) / 2


def linear_warmup(t: int, lr: float, warmup_steps: int,
                  after: Callable[[int], float] | None = None) -> float:
    """Warm up linearly, ``eta_t = eta_0 (t + 1) / W`` for ``t < W = warmup_steps``, then
    ``eta_t = after(t - W)`` (or ``eta_0`` when ``after`` is None).

    Large steps at the start, while the gradients are large and the model random, can throw
    training far away; a short ramp avoids that (Goyal et al. 2017). The ramp starts at
    ``eta_0 / W``, not 0, so no step is wasted, and reaches ``eta_0`` at ``t = W - 1``.
    ``after`` is a schedule of the steps since the warmup ended, e.g.
    ``lambda s: cosine(s, lr, num_steps - W)``. Torch: ``LinearLR(opt, start_factor=1 / W,
    total_iters=W - 1)``, followed by ``after``'s scheduler via ``SequentialLR(...,
    milestones=[W])``.
    """
    _check_t(t)
    _check_lr(lr)
    if not isinstance(warmup_steps, Integral) or warmup_steps < 1:
        raise ValueError(f"warmup_steps must be an int >= 1, got {warmup_steps!r}")
    if after is not None and not callable(after):
        raise ValueError(f"after must be a schedule, a function of the step, got {after!r}")
    if t < warmup_steps:
        return lr * (t + 1) / warmup_steps
    return float(lr) if after is None else float(after(t - warmup_steps))
