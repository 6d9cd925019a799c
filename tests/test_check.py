"""sgdkit.check: the checks pass on right answers, and their messages carry what a student needs
(what was expected, what came back, where, by how much, and the likely mistake)."""

import re

import numpy as np
import pytest
import torch

from sgdkit.check import assert_close, assert_finite, assert_partition, grad_check


def message(check, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    return str(info.value)


# ---------------------------------------------------------------------------- assert_close


@pytest.mark.parametrize("actual, expected", [
    (np.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3)),
    (torch.arange(6.0).reshape(2, 3), np.arange(6.0).reshape(2, 3)),
    (torch.ones(3, requires_grad=True) * 2, [2.0, 2.0, 2.0]),
    ([1.0, 2.0], np.array([1.0, 2.0])),
    (0.1 + 0.2, 0.3),
    (np.float64(4.0), 4),
    (torch.tensor(2.5), 2.5),
    (1.0 + 1e-9, 1.0),  # inside atol + rtol |expected|
])
def test_assert_close_accepts_equal_values(actual, expected):
    assert_close(actual, expected)


def test_assert_close_reports_worst_entry_with_errors():
    expected = np.zeros((3, 4))
    actual = expected.copy()
    actual[1, 2], actual[0, 0] = 0.5, 0.01
    text = message(assert_close, actual, expected, name="path")
    assert text.startswith("path at index (1, 2): expected 0, got 0.5")
    assert "abs error 0.5" in text and "2 of 12 entries differ" in text


def test_assert_close_reports_relative_error_for_scalars():
    text = message(assert_close, 4.0, 1.0, name="L")
    assert text.startswith("L: expected 1, got 4") and "abs error 3" in text
    assert "rel error 3" in text and "rtol=1e-06" in text


def test_assert_close_respects_tolerances():
    assert_close(1.001, 1.0, rtol=1e-2)
    assert "rtol=0.0001" in message(assert_close, 1.001, 1.0, rtol=1e-4)


def test_assert_close_names_shapes_in_words():
    text = message(assert_close, np.zeros(10), np.zeros((11, 2)), name="gd(...)")
    assert text == ("gd(...) is an array of shape (10,), but it should be an array of shape "
                    "(11, 2).")
    text = message(assert_close, np.array([4.0]), 4.0, name="L")
    assert "array of shape (1,), but it should be a single number" in text
    text = message(assert_close, 4.0, [4.0, 4.0], name="path")
    assert "path is a single number, but it should be an array of shape (2,)" in text


def test_assert_close_on_none_asks_about_return():
    assert message(assert_close, None, [1.0], name="gd") == (
        "gd: got None: did you forget to return?")


def test_assert_close_on_non_numbers_complex_and_ragged():
    assert "should be a single number, got str 'abc'" in message(assert_close, "abc", 1.0)
    assert "should be real" in message(assert_close, np.array([2.0 + 0j]), [2.0])
    assert "could not be read as numbers" in message(assert_close, [[1.0], [1.0, 2.0]],
                                                     np.zeros((2, 2)))


def test_assert_close_reports_nan():
    text = message(assert_close, [1.0, np.nan], [1.0, 2.0], name="w")
    assert text.startswith("w at index 1: expected 2, got nan")


def test_assert_close_names_the_matching_mistake_and_adds_hint():
    expected = np.arange(11.0)[:, None]
    mistakes = {"the path without w_0": expected[1:], "gradient ascent": -expected}
    text = message(assert_close, expected[1:], expected, name="gd", mistakes=mistakes,
                   hint="one row per iterate")
    assert "a common mistake gives: the path without w_0." in text
    assert "gradient ascent" not in text and text.endswith("one row per iterate")
    text = message(assert_close, -expected, expected, mistakes=mistakes)
    assert "a common mistake gives: gradient ascent." in text
    assert "common mistake" not in message(assert_close, 2 * expected, expected,
                                           mistakes=mistakes)


# ---------------------------------------------------------------------------- assert_finite


def test_assert_finite():
    assert_finite(np.ones(3))
    text = message(assert_finite, np.array([[1.0, 2.0], [np.inf, np.nan]]), name="path")
    assert text.startswith("path is not finite at index (1, 0): got inf (2 of 4 entries")
    assert "learning rate" in text
    assert "did you forget to return" in message(assert_finite, None)


# ---------------------------------------------------------------------------- grad_check

A = np.array([[3.0, 1.0, 0.0], [1.0, 2.0, 0.5], [0.0, 0.5, 1.0]])
W = np.array([0.3, -1.2, 2.0])


def quadratic(w):
    return 0.5 * w @ A @ w + np.sin(w).sum()


def quadratic_grad(w):
    return A @ w + np.cos(w)


def test_grad_check_accepts_the_right_gradient():
    err = grad_check(quadratic, quadratic_grad, W)
    assert isinstance(err, float) and err < 1e-8


def test_grad_check_agrees_with_torch_autograd():
    w = torch.tensor(W, requires_grad=True)
    (0.5 * w @ torch.tensor(A) @ w + torch.sin(w).sum()).backward()
    assert grad_check(quadratic, lambda _: w.grad, W) < 1e-8


def test_grad_check_names_the_worst_coordinate():
    def grad(w):
        g = quadratic_grad(w)
        g[1] += 0.1
        return g

    text = message(grad_check, quadratic, grad, W)
    assert text.startswith("grad(w) disagrees with central differences at coordinate 1:")
    numerical = quadratic_grad(W)[1]
    assert f"grad(w)[1] = {numerical + 0.1:.6g}" in text and f"{numerical:.6g}" in text
    assert re.search(r"relative error \S+ > rtol = 0.0001", text)


def test_grad_check_spots_sign_and_factor_mistakes():
    assert "check the sign" in message(grad_check, quadratic, lambda w: -quadratic_grad(w), W)
    text = message(grad_check, quadratic, lambda w: 2 * quadratic_grad(w), W)
    assert "2 times the numerical gradient" in text and "constant factor" in text


def test_grad_check_on_bad_return_values():
    assert "returned None" in message(grad_check, quadratic, lambda w: None, W)
    assert "shape of w, (3,), got (2,)" in message(grad_check, quadratic, lambda w: w[:2], W)


def test_grad_check_does_not_let_grad_change_w():
    def grad(w):
        g = quadratic_grad(w)
        w[:] = 0  # a careless gradient that overwrites its input
        return g

    w = W.copy()
    assert grad_check(quadratic, grad, w) < 1e-8  # differences taken around the original w
    np.testing.assert_array_equal(w, W)


# ---------------------------------------------------------------------------- assert_partition


def test_assert_partition_accepts_one_epoch():
    perm = np.random.default_rng(0).permutation(10)
    assert_partition([perm[:4], perm[4:8], perm[8:]], 10)
    assert_partition(torch.randperm(7).split(3), 7)


def test_assert_partition_reports_repeats_and_missing():
    text = message(assert_partition, [np.array([0, 1, 2]), np.array([2, 3])], 6)
    assert "index 2 appears 2 times (in batches [0, 1])" in text
    assert "2 of the 6 indices never appear, e.g. [4, 5]" in text


def test_assert_partition_reports_out_of_range_and_bad_dtype():
    assert "index 5 is outside range(n) for n = 5" in message(
        assert_partition, [np.array([0, 1, 2, 3, 5])], 5)
    assert "integer indices" in message(assert_partition, [np.array([0.0, 1.0])], 2)
