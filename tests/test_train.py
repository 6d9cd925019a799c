"""sgdkit.train.fit: reaches the optimum, is reproducible, records what it says it records."""

import copy
import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from sgdkit.optim import DivergenceError
from sgdkit.train import History, accuracy, fit


def regression_data(n=256, d=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, d, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5])[:d] + 0.3 + 0.1 * torch.randn(n, generator=g)
    return X, y


def linear_model(d=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, 1), nn.Flatten(0))  # (n, d) -> (n,)


def test_linear_fit_reaches_least_squares_loss():
    X, y = regression_data()
    A = torch.cat([X, torch.ones(len(X), 1)], dim=1).double()
    coef = torch.linalg.lstsq(A, y.double().unsqueeze(1)).solution
    best = F.mse_loss((A @ coef).squeeze(1), y.double()).item()

    model = linear_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.8)  # shrink the noise
    history = fit(model, F.mse_loss, optimizer, (X, y), num_epochs=30, batch_size=16,
                  eval_data=(X, y), scheduler=scheduler, progress=False)
    assert isinstance(history, History)
    first = F.mse_loss(linear_model()(X), y).item()
    assert history["eval_loss"][-1] == pytest.approx(best, rel=1e-4), (first, best)
    assert first > 10 * best  # it did have a long way to go


def test_same_seed_same_history_and_other_seed_other_order():
    X, y = regression_data(n=100)
    model = linear_model()

    def run(seed):
        m = copy.deepcopy(model)
        return fit(m, F.mse_loss, torch.optim.SGD(m.parameters(), lr=0.05), (X, y),
                   num_epochs=3, batch_size=8, seed=seed, progress=False), m

    (h1, m1), (h2, m2), (h3, _) = run(0), run(0), run(1)
    assert h1 == h2
    assert all(torch.equal(a, b) for a, b in zip(m1.parameters(), m2.parameters()))
    assert h1["loss"] != h3["loss"]  # the seed changes the shuffle


def test_epoch_loss_is_example_weighted_mean():
    X, y = regression_data(n=10)
    model = linear_model()
    # lr=0: the parameters stay put, so the epoch's mean loss over examples is the full loss
    history = fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.0), (X, y),
                  num_epochs=2, batch_size=4, progress=False)  # batches of 4, 4 and 2
    assert len(history["loss"]) == 6
    with torch.no_grad():
        full = F.mse_loss(model(X), y).item()
    a, b, c = history["loss"][:3]
    assert history["epoch_loss"][0] == pytest.approx((4 * a + 4 * b + 2 * c) / 10, rel=1e-6)
    assert history["epoch_loss"][0] == pytest.approx(full, rel=1e-5)
    assert history["epoch_loss"][0] != pytest.approx((a + b + c) / 3, rel=1e-3)  # unweighted


def test_divergence_raises_with_step_epoch_and_lr():
    X, y = regression_data(n=64)
    model = linear_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=50.0)
    with pytest.raises(DivergenceError, match=r"at step \d+ \(epoch \d+\).*learning rate 50"):
        fit(model, F.mse_loss, optimizer, (X, y), num_epochs=100, batch_size=64, progress=False)
    assert issubclass(DivergenceError, FloatingPointError)
    assert all(torch.isfinite(p).all() for p in model.parameters())  # no nan step was taken


def test_dataloader_input():
    X, y = regression_data(n=50)
    loader = DataLoader(TensorDataset(X, y), batch_size=7, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    eval_loader = DataLoader(TensorDataset(X, y), batch_size=20)
    model = linear_model()
    history = fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), loader,
                  num_epochs=4, eval_data=eval_loader, progress=False)
    assert len(history["loss"]) == 4 * math.ceil(50 / 7)
    assert len(history["epoch_loss"]) == len(history["eval_loss"]) == 4
    assert history["eval_loss"][-1] < history["eval_loss"][0]
    with torch.no_grad():
        assert history["eval_loss"][-1] == pytest.approx(F.mse_loss(model(X), y).item(), rel=1e-5)


def test_list_of_batches_and_one_shot_iterator():
    X, y = regression_data(n=30)
    batches = [(X[:10], y[:10]), (X[10:], y[10:])]
    model = linear_model()
    history = fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), batches,
                  num_epochs=2, progress=False)
    assert len(history["loss"]) == 4
    with pytest.raises(ValueError, match="one-shot iterator"):
        fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), iter(batches),
            num_epochs=2, progress=False)


class Probe(nn.Module):
    """A classifier that records, per forward pass, whether it was training and had grads on."""

    def __init__(self, d, k):
        super().__init__()
        self.linear = nn.Linear(d, k)
        self.seen = []

    def forward(self, X):
        self.seen.append((self.training, torch.is_grad_enabled()))
        return self.linear(X)


def classification_data(n=200, seed=0):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    X = 0.5 * torch.randn(n, 2, generator=g) + 3 * torch.eye(3)[y, :2] - 1.5 * (y == 2)[:, None]
    return X, y


def test_eval_metrics_under_no_grad_and_eval_mode():
    X, y = classification_data()
    torch.manual_seed(0)
    model = Probe(2, 3)
    history = fit(model, F.cross_entropy, torch.optim.SGD(model.parameters(), lr=0.5), (X, y),
                  num_epochs=5, batch_size=20, eval_data=(X, y), metrics={"accuracy": accuracy},
                  progress=False)
    assert len(history["accuracy"]) == 5 and history["accuracy"][-1] > 0.9
    assert model.training  # train mode restored
    train_calls = [s for s in model.seen if s == (True, True)]
    eval_calls = [s for s in model.seen if s == (False, False)]
    assert len(train_calls) == 5 * 10 and len(eval_calls) == 5 * 10
    assert len(model.seen) == 100  # nothing ran in a third mode
    with torch.no_grad():
        assert history["accuracy"][-1] == accuracy(model.linear(X), y)


def test_scheduler_steps_once_per_epoch():
    X, y = regression_data(n=40)
    model = linear_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    history = fit(model, F.mse_loss, optimizer, (X, y), num_epochs=3, batch_size=8,
                  scheduler=scheduler, progress=False)
    assert history["lr"] == pytest.approx([0.2, 0.1, 0.05])
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.025)


def test_reduce_on_plateau_gets_the_loss():
    X, y = regression_data(n=40)
    model = linear_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    # mode="max" while the loss falls: every epoch after the first counts as "no better"
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", patience=0)
    history = fit(model, F.mse_loss, optimizer, (X, y), num_epochs=3, batch_size=8,
                  eval_data=(X, y), scheduler=scheduler, progress=False)
    assert history["eval_loss"][2] < history["eval_loss"][1] < history["eval_loss"][0]
    assert history["lr"] == pytest.approx([0.1, 0.1, 0.01])


def test_progress_bar_on_stdout_only_when_asked(capfd):
    X, y = regression_data(n=32)
    model = linear_model()
    fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), (X, y), num_epochs=2,
        batch_size=8, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), (X, y), num_epochs=2,
        batch_size=8, progress=True)
    out, err = capfd.readouterr()
    assert "8/8" in out  # the bar counts steps: 2 epochs x 4 batches
    assert err == "", "the bar must stay off stderr: nbgrader scores a test cell with stderr as 0"


def test_progress_is_one_final_line_in_a_built_page(capfd, monkeypatch):
    monkeypatch.setenv("SGDKIT_PROGRESS", "final")  # what the book's Sphinx extension sets
    X, y = regression_data(n=32)
    model = linear_model()
    fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), (X, y), num_epochs=3,
        batch_size=8, progress=True)
    out, err = capfd.readouterr()
    assert "\r" not in out and out.count("\n") == 1, f"not one line: {out!r}"
    assert "100%" in out and "12/12" in out and "loss=" in out
    assert err == ""


def test_device_argument():
    X, y = regression_data(n=16)
    model = linear_model()
    history = fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), (X, y),
                  batch_size=4, device="cpu", progress=False)
    assert len(history["loss"]) == 4


def test_accuracy():
    logits = torch.tensor([[2.0, 1.0, 0.0], [0.0, 3.0, 1.0], [0.0, 0.0, 1.0], [5.0, 0.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 2, 1])) == 0.75
    assert accuracy(torch.tensor([2.0, -1.0, 0.5]), torch.tensor([1, 0, 0])) == pytest.approx(2 / 3)
    assert accuracy(torch.tensor([[2.0], [-1.0]]), torch.tensor([1.0, 1.0])) == 0.5
    with pytest.raises(ValueError, match="same length"):
        accuracy(logits, torch.tensor([0, 1]))


@pytest.mark.parametrize("kwargs, message", [
    ({"batch_size": 0}, "batch_size must be a positive int, got 0"),
    ({"batch_size": 2.5}, "batch_size must be a positive int"),
    ({"num_epochs": 0}, "num_epochs must be an int >= 1, got 0"),
    ({"metrics": {"accuracy": accuracy}}, "metrics are computed on eval_data"),
])
def test_bad_arguments(kwargs, message):
    X, y = regression_data(n=16)
    model = linear_model()
    with pytest.raises(ValueError, match=message):
        fit(model, F.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1), (X, y),
            progress=False, **kwargs)


def test_bad_data():
    X, y = regression_data(n=16)
    model = linear_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="X and y must have the same length.*16 and 15"):
        fit(model, F.mse_loss, opt, (X, y[:15]), progress=False)
    with pytest.raises(ValueError, match="X and y must have the same length"):
        fit(model, F.mse_loss, opt, (X, y), eval_data=(X[:3], y), progress=False)
    with pytest.raises(ValueError, match="torch.as_tensor"):
        fit(model, F.mse_loss, opt, (X.numpy(), y.numpy()), progress=False)
    with pytest.raises(ValueError, match="no batches"):
        fit(model, F.mse_loss, opt, [], progress=False)
    with pytest.raises(ValueError, match="iterable of"):
        fit(model, F.mse_loss, opt, 3, progress=False)
