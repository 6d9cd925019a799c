"""The top-level helpers: ``sgdkit.device`` and ``sgdkit.seed_everything``."""

import random

import numpy as np
import torch

import sgdkit


def draws():
    return random.random(), np.random.rand(), torch.rand(1).item()


def test_seed_everything_repeats_python_numpy_and_torch_draws():
    sgdkit.seed_everything(3)
    first = draws()
    sgdkit.seed_everything(3)
    assert draws() == first
    sgdkit.seed_everything(4)
    assert all(a != b for a, b in zip(draws(), first))


def test_device_is_cuda_when_present_else_cpu(monkeypatch):
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert sgdkit.device().type == expected
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert sgdkit.device().type == "cuda"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert sgdkit.device().type == "mps"
