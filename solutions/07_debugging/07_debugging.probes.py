"""Probes for 07_debugging: each fixed function run by the grader on models and data of its own;
the results are compared with the solution's outside the student's kernel. Like the tests, they
check behaviour only: values, gradients, parameters after steps, modes, learning rates."""
import numbers
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from sgdkit.grading.probes import probe

TOL = dict(rtol=1e-4, atol=1e-6)
data_probe = torch.Generator().manual_seed(777)


# -- batch_loss: the mean cross entropy of the logits, finite for confident models -------------
def loss_and_grads(scale, seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 9), nn.Tanh(), nn.Linear(9, 10))
    with torch.no_grad():
        net[2].weight.mul_(scale)
    X_b, y_b = torch.randn(13, 64, generator=data_probe), torch.randint(0, 10, (13,),
                                                                       generator=data_probe)
    loss = batch_loss(net, X_b, y_b)  # noqa: F821
    loss.backward()
    return [loss.detach().reshape(1)] + [p.grad for p in net.parameters()]


probe("test_batch_loss", "batch_loss and its gradients, a batch of 13", lambda: loss_and_grads(
    4.0, 11), **TOL)
probe("test_batch_loss", "batch_loss and its gradients, logits in the hundreds",
      lambda: loss_and_grads(400.0, 12), rtol=1e-4, atol=1e-4)


# -- train_step: zero_grad, loss, backward, step; the loss before the step as a float --------
def probe_loss(model, X_b, y_b):
    return F.cross_entropy(model(X_b), y_b)


def steps(seed, stale):
    """For each of 3 steps: the returned loss (and whether a float), .grad, the parameters."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 8), nn.Tanh(), nn.Linear(8, 10))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2, momentum=0.8)
    X_all = torch.randn(3, 11, 64, generator=data_probe)
    y_all = torch.randint(0, 10, (3, 11), generator=data_probe)
    if stale:
        probe_loss(model, X_all[0], y_all[0]).mul(2).backward()
    record = []
    for X_b, y_b in zip(X_all, y_all):
        loss = train_step(model, optimizer, probe_loss, X_b, y_b)  # noqa: F821
        is_real = isinstance(loss, numbers.Real)
        loss = float(loss.detach() if torch.is_tensor(loss) else loss)
        record.append(torch.tensor([loss, float(is_real)]))
        record += [p.grad.clone() if p.grad is not None else torch.full_like(p, float("nan"))
                   for p in model.parameters()]
        record += [p.detach().clone() for p in model.parameters()]
    return record


probe("test_train_step", "3 steps: losses, .grad and parameters after each",
      lambda: steps(21, stale=False), **TOL)
probe("test_train_step", "3 steps from a model with a stale .grad", lambda: steps(22, stale=True),
      **TOL)


# -- batches: a shuffled partition per epoch, from the generator alone ------------------------
N = 23
X_i, y_i = torch.arange(N, dtype=torch.float32)[:, None].repeat(1, 2), 7 * torch.arange(N)


def epoch_of(batch_iter, y=y_i):
    out, paired = [], True
    for X_b, y_b in batch_iter:
        idx = X_b[:, 0].long()
        paired = paired and tuple(X_b.shape[1:]) == (2,) and bool(torch.equal(y_b, y[idx]))
        out.append(idx)
    return out, paired


def summary(batch_size, seed):
    run, paired = epoch_of(batches(X_i, y_i, batch_size,  # noqa: F821
                                   torch.Generator().manual_seed(seed)))
    seen = torch.sort(torch.cat(run)).values if run else torch.zeros(0)
    return [len(b) for b in run], seen, paired


def shuffled_and_new_each_epoch(seed):
    gen = torch.Generator().manual_seed(seed)
    first, _ = epoch_of(batches(X_i, y_i, 5, gen))  # noqa: F821
    second, _ = epoch_of(batches(X_i, y_i, 5, gen))  # noqa: F821
    first, second = torch.cat(first).tolist(), torch.cat(second).tolist()
    return [first != list(range(N)), first != second, sorted(second) == list(range(N))]


def same_whatever_the_global_generator(seed):
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append(torch.cat(epoch_of(batches(X_i, y_i, 4,  # noqa: F821
                                               torch.Generator().manual_seed(seed)))[0]))
    return bool(torch.equal(*runs))


def float_targets(seed):
    y_float = torch.linspace(-1, 1, N)
    return epoch_of(batches(X_i, y_float, 6, torch.Generator().manual_seed(seed)),  # noqa: F821
                    y_float)[1]


for B_p, seed_p in [(5, 31), (40, 32), (1, 33), (23, 34)]:
    probe("test_batches", f"batches(n = 23, batch_size={B_p}): sizes, the examples, pairs",
          lambda B_p=B_p, seed_p=seed_p: summary(B_p, seed_p))
probe("test_batches", "shuffled, a new order in the next epoch, all examples",
      lambda: shuffled_and_new_each_epoch(35))
probe("test_batches", "the same seed, the same batches, whatever the global generator",
      lambda: same_whatever_the_global_generator(36))
probe("test_batches", "float targets keep their pairs", lambda: float_targets(37))


# -- evaluate: eval mode, no gradients, every submodule left in its mode ----------------------
X_eval = torch.randn(50, 64, generator=data_probe)
y_eval = torch.randint(0, 10, (50,), generator=data_probe)


def evaluated(seed, mode):
    """[accuracy, a float, modes after == before, state unchanged, no .grad] of a network."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(64, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.4),
                        nn.Linear(16, 10))
    with torch.no_grad():
        for _ in range(2):
            net(3 * X_eval - 1)
    if mode == "eval":
        net.eval()
    elif mode == "frozen_bn":
        net[1].eval()
    modes = [m.training for m in net.modules()]
    state = {k: v.clone() for k, v in net.state_dict().items()}
    result = evaluate(net, X_eval, y_eval)  # noqa: F821
    is_float = isinstance(result, float)
    result = float(result.detach() if torch.is_tensor(result) else result)
    same_state = all(torch.equal(v, state[k]) for k, v in net.state_dict().items())
    return [result, float(is_float), float([m.training for m in net.modules()] == modes),
            float(same_state), float(all(p.grad is None for p in net.parameters()))]


for mode_p, seed_p in [("train", 41), ("eval", 42), ("frozen_bn", 43)]:
    probe("test_evaluate", f"evaluate, a network in {mode_p} mode: accuracy, float, modes "
          f"kept, state kept, no gradients", lambda m=mode_p, s=seed_p: evaluated(s, m), **TOL)


# -- run_epochs: scheduler.step() after each epoch -------------------------------------------------
def lrs(make_scheduler, num_epochs):
    layer = nn.Linear(2, 1)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.3)
    scheduler = make_scheduler(optimizer)
    seen = []

    def run_epoch():
        optimizer.zero_grad()
        layer(torch.ones(3, 2)).pow(2).mean().backward()
        optimizer.step()
        seen.append(optimizer.param_groups[0]["lr"])
        return 10 * len(seen)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = run_epochs(optimizer, scheduler, run_epoch, num_epochs)  # noqa: F821
    return [seen, list(results)]


probe("test_fit", "learning rates and results under StepLR(step_size=3, gamma=0.2), 7 epochs",
      lambda: lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=3, gamma=0.2), 7))
probe("test_fit", "learning rates under MultiStepLR([2], 0.5), 4 epochs",
      lambda: lrs(lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [2], 0.5), 4))
probe("test_fit", "no epoch for num_epochs = 0",
      lambda: lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size=1), 0))
