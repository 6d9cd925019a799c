"""Probes for 05_pytorch: the grader's own checks of the student's code, on models and data of
their own; the grader compares the results with the solution's outside the student's kernel.

make_loader is random, and the tests accept any loader whose order is set by seed alone (a
DataLoader with its own generator, a sampler with one, ...), which give different orders: its
probes record what every correct loader shares (batch sizes, the examples used, whether orders
change or repeat), never one particular order."""
import numbers

import torch
from torch import nn

from sgdkit.grading.probes import probe

TOL = dict(rtol=1e-5, atol=1e-6)  # float32 training runs, as the tests compare them
data_probe = torch.Generator().manual_seed(12345)


# -- make_loader: a shuffling DataLoader whose order is set by seed alone ----------------------
# Example i has the features (i, -i) and the target 10 i + 3, so each batch shows its indices.
N_LOAD = 17
X_load = torch.stack([torch.arange(N_LOAD, dtype=torch.float32),
                      -torch.arange(N_LOAD, dtype=torch.float32)], dim=1)
y_load = 10 * torch.arange(N_LOAD) + 3


def epoch_of(loader):
    """The indices of each batch of one pass over loader, and whether every pair matched."""
    batches, paired = [], True
    for X_b, y_b in loader:
        idx = X_b[:, 0].long()
        paired = paired and bool(torch.equal(y_b, 10 * idx + 3)) and bool(
            torch.equal(X_b[:, 1], -X_b[:, 0]))
        batches.append(idx)
    return batches, paired


def same_batches(run_a, run_b):
    return len(run_a) == len(run_b) and all(torch.equal(a, b) for a, b in zip(run_a, run_b))


def loader_summary(batch_size, seed):
    """Batch sizes, the indices of one epoch sorted, and whether the pairs stayed together."""
    batches, paired = epoch_of(make_loader(X_load, y_load, batch_size, seed))
    seen = torch.cat(batches) if batches else torch.zeros(0, dtype=torch.long)
    return [len(b) for b in batches], torch.sort(seen).values, paired


def first_epoch_shuffled(batch_size, seed):
    batches, _ = epoch_of(make_loader(X_load, y_load, batch_size, seed))
    return bool(torch.cat(batches).tolist() != list(range(N_LOAD)))


def second_epoch_differs(batch_size, seed):
    loader = make_loader(X_load, y_load, batch_size, seed)
    (first, _), (second, _) = epoch_of(loader), epoch_of(loader)
    seen = torch.sort(torch.cat(second)).values if second else None
    return bool(seen is not None and torch.equal(seen, torch.arange(N_LOAD))
                and not same_batches(first, second))


def reproducible_whatever_the_global_seed(batch_size, seed):
    """Three epochs of two loaders with one seed, the global generator reseeded differently
    before each: the same batches."""
    runs = []
    for global_seed in (5, 6):
        loader = make_loader(X_load, y_load, batch_size, seed)
        torch.manual_seed(global_seed)
        runs.append([b for _ in range(3) for b in epoch_of(loader)[0]])
    return bool(same_batches(*runs))


def seeds_give_different_runs(batch_size, seed_a, seed_b):
    run_a, run_b = ([b for _ in range(3) for b in epoch_of(
        make_loader(X_load, y_load, batch_size, s))[0]] for s in (seed_a, seed_b))
    return bool(not same_batches(run_a, run_b))


def fresh_loaders_agree(batch_size, seed):
    first_a, _ = epoch_of(make_loader(X_load, y_load, batch_size, seed))
    first_b, _ = epoch_of(make_loader(X_load, y_load, batch_size, seed))
    return bool(same_batches(first_a, first_b))


X_feat, y_feat = torch.randn(19, 4, generator=data_probe), torch.randn(19, generator=data_probe)


def pairs_kept_with_float_targets(batch_size, seed):
    """For float targets and 4 features: the examples seen (sorted), whether every batch has
    the right shapes and every example its own target."""
    seen, ok = [], True
    for X_b, y_b in make_loader(X_feat, y_feat, batch_size, seed):
        ok = ok and tuple(X_b.shape[1:]) == (4,) and tuple(y_b.shape) == (len(X_b),)
        for x, t in zip(X_b, y_b):
            i = int(torch.nonzero((X_feat == x).all(dim=1))[0])
            ok = ok and bool(torch.equal(y_feat[i], t))
            seen.append(i)
    return sorted(seen), bool(ok)


for B_p, seed_p in [(5, 1), (40, 2), (1, 3), (17, 4)]:
    probe("test_make_loader", f"make_loader(n = 17, batch_size={B_p}): batch sizes, the "
          f"examples of one epoch, pairs kept", lambda B_p=B_p, seed_p=seed_p:
          loader_summary(B_p, seed_p))
probe("test_make_loader", "make_loader shuffles the first epoch",
      lambda: first_epoch_shuffled(5, 7))
probe("test_make_loader", "a second pass over the loader: all examples, a new order",
      lambda: second_epoch_differs(5, 8))
probe("test_make_loader", "the same seed, the same batches, whatever the global generator",
      lambda: reproducible_whatever_the_global_seed(5, 9))
probe("test_make_loader", "seeds 10 and 11 give different batches",
      lambda: seeds_give_different_runs(5, 10, 11))
probe("test_make_loader", "two fresh loaders with one seed give the same first epoch",
      lambda: fresh_loaders_agree(4, 12))
probe("test_make_loader", "make_loader with 4 features and float targets: pairs kept",
      lambda: pairs_kept_with_float_targets(6, 13))


# -- train_epoch: zero_grad, loss, backward, step per batch; the mean loss per example ---------
def flat(model):
    return torch.cat([p.detach().flatten() for p in model.parameters()])


X_cls = torch.randn(45, 4, generator=data_probe)
y_cls = torch.randint(0, 3, (45,), generator=data_probe)
batches_cls = [(X_cls[i:j], y_cls[i:j]) for i, j in [(0, 20), (20, 40), (40, 45)]]
X_reg = torch.randn(27, 3, generator=data_probe)
y_reg = X_reg @ torch.tensor([[0.5], [-1.0], [2.0]]) + 0.2 * torch.randn(27, 1,
                                                                         generator=data_probe)


def train_once(make_model, batches, loss_fn, lr, *, seed, eval_first=False, stale=False):
    """(parameters after train_epoch, the loss it returned, whether that is a real number)."""
    torch.manual_seed(seed)
    model = make_model()
    if stale:  # .grad holds an old gradient when train_epoch starts
        X_all = torch.cat([X_b for X_b, _ in batches])
        y_all = torch.cat([y_b for _, y_b in batches])
        (5 * loss_fn(model(X_all), y_all)).backward()
    if eval_first:
        model.eval()
    result = train_epoch(model, loss_fn, torch.optim.SGD(model.parameters(), lr=lr),
                         batches)
    is_real = bool(isinstance(result, numbers.Real))
    if torch.is_tensor(result):  # a wrong answer, but its value still counts
        result = result.detach()
    return flat(model), result, is_real


def mlp():
    return nn.Sequential(nn.Linear(4, 7), nn.Tanh(), nn.Linear(7, 3))


def mlp_bn():
    return nn.Sequential(nn.Linear(4, 7), nn.BatchNorm1d(7), nn.Tanh(), nn.Linear(7, 3))


probe("test_train_epoch", "train_epoch, cross entropy, batches of 20, 20, 5 (parameters, loss, "
      "a float)", lambda: train_once(mlp, batches_cls, nn.CrossEntropyLoss(), 0.4, seed=21),
      **TOL)
probe("test_train_epoch", "train_epoch on a batch-norm model handed over in eval() mode",
      lambda: train_once(mlp_bn, batches_cls, nn.CrossEntropyLoss(), 0.4, seed=22,
                         eval_first=True), **TOL)
probe("test_train_epoch", "train_epoch on a model whose .grad holds old gradients",
      lambda: train_once(mlp, batches_cls, nn.CrossEntropyLoss(), 0.4, seed=23, stale=True),
      **TOL)
probe("test_train_epoch", "train_epoch with MSELoss and a DataLoader (batches 8, 8, 8, 3)",
      lambda: train_once(lambda: nn.Linear(3, 1), torch.utils.data.DataLoader(
          torch.utils.data.TensorDataset(X_reg, y_reg), batch_size=8), nn.MSELoss(), 0.1,
          seed=24), **TOL)

g_pub = torch.Generator().manual_seed(0)  # the public test's data and model
X_pub, y_pub = torch.randn(50, 3, generator=g_pub), torch.randint(0, 3, (50,), generator=g_pub)
probe("test_train_epoch", "train_epoch on the public test's data (batches 16, 16, 16, 2)",
      lambda: train_once(lambda: nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 3)),
                         [(X_pub[i:i + 16], y_pub[i:i + 16]) for i in range(0, 50, 16)],
                         nn.CrossEntropyLoss(), 0.5, seed=0), **TOL)


# -- evaluate: the fraction classified correctly, in eval mode, without autograd --------------
class ModeRecorder(nn.Module):
    """Runs model, and records whether each forward pass was in training mode or recorded
    gradients."""

    def __init__(self, model):
        super().__init__()
        self.model, self.training_seen, self.grad_seen = model, False, False

    def forward(self, x):
        self.training_seen = self.training_seen or self.training
        self.grad_seen = self.grad_seen or torch.is_grad_enabled()
        return self.model(x)


X_eval = torch.randn(41, 4, generator=data_probe)
y_eval = torch.randint(0, 3, (41,), generator=data_probe)
batches_eval = [(X_eval[i:j], y_eval[i:j]) for i, j in [(0, 16), (16, 32), (32, 38), (38, 41)]]


def evaluate_dropout_net(seed):
    """(accuracy, a float?, ran in training mode?, ran with autograd?) of a dropout network
    handed over in training mode."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 24), nn.ReLU(), nn.Dropout(0.5), nn.Linear(24, 3))
    recorder = ModeRecorder(net).train()
    result = evaluate(recorder, batches_eval)
    return (result, f"real={isinstance(result, numbers.Real)} "
            f"training={recorder.training_seen} grad={recorder.grad_seen}")


def bn_net_in_training_mode(seed):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 10), nn.BatchNorm1d(10), nn.ReLU(), nn.Linear(10, 3))
    net.train()
    for _ in range(3):  # move the running statistics away from their start
        net(2 * X_eval - 1)
    return net


def evaluate_bn_net(seed, batch_size):
    """(accuracy, the parameters after, whether a parameter has a .grad) on a DataLoader."""
    net = bn_net_in_training_mode(seed)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(X_eval, y_eval),
                                         batch_size=batch_size)
    result = evaluate(net, loader)
    return result, flat(net), bool(any(p.grad is not None for p in net.parameters()))


probe("test_evaluate", "evaluate, a dropout network, batches 16, 16, 6, 3 (accuracy; a float, "
      "training mode, autograd)", lambda: evaluate_dropout_net(31))
probe("test_evaluate", "evaluate, a batch-norm network in training mode, a DataLoader of 8s",
      lambda: evaluate_bn_net(32, 8))
probe("test_evaluate", "evaluate, a batch-norm network, batches of one example",
      lambda: evaluate(bn_net_in_training_mode(32),
                       [(X_eval[i:i + 1], y_eval[i:i + 1]) for i in range(41)]))


# -- accumulate_step: one step with the whole batch's gradient, from micro-batches --------------
def split(X, y, sizes):
    out, start = [], 0
    for size in sizes:
        out.append((X[start:start + size], y[start:start + size]))
        start += size
    return out


def accumulate_run(make_model, X, y, sizes, loss_fn, *, seed, num_steps=3, generator=False,
                   stale=False, eval_first=False, momentum=0.9, lr=0.5):
    """Parameters and returned losses after num_steps calls of accumulate_step, and whether
    each loss is a Python number and the model is in training mode after."""
    torch.manual_seed(seed)
    model = make_model()
    if stale:
        (10 * loss_fn(model(X), y)).backward()
    if eval_first:
        model.eval()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    losses, numbers_ok = [], True
    for _ in range(num_steps):
        micro = split(X, y, sizes)
        torch.manual_seed(seed + 1)  # the same dropout masks for every correct solution
        loss = accumulate_step(model, loss_fn, optimizer, iter(micro) if generator else micro)
        numbers_ok = numbers_ok and isinstance(loss, numbers.Real)
        losses.append(float(loss))
    return flat(model), torch.tensor(losses), numbers_ok, model.training


def mlp5():
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 3))


def mlp5_dropout():
    return nn.Sequential(nn.Linear(5, 16), nn.Dropout(0.5), nn.Tanh(), nn.Linear(16, 3))


g_acc = torch.Generator().manual_seed(0)  # the tests' data
X_acc, y_acc = torch.randn(40, 5, generator=g_acc), torch.randint(0, 3, (40,), generator=g_acc)
g_mse = torch.Generator().manual_seed(3)
X_mse = torch.randn(30, 4, generator=g_mse)
y_mse = X_mse @ torch.tensor([[1.0], [-2.0], [0.5], [0.0]]) + 0.1 * torch.randn(30, 1,
                                                                                 generator=g_mse)
X_own = torch.randn(37, 5, generator=data_probe)
y_own = torch.randint(0, 3, (37,), generator=data_probe)
ce, A = nn.CrossEntropyLoss(), "test_accumulate_step"
for sizes in ([16, 16, 8], [1, 7, 2, 30], [40], [3, 37]):
    probe(A, f"accumulate_step, 3 calls, micro-batches {sizes} of the tests' data",
          lambda s=sizes: accumulate_run(mlp5, X_acc, y_acc, s, ce, seed=0), **TOL)
probe(A, "accumulate_step with MSELoss and a generator of micro-batches (4, 20, 6)",
      lambda: accumulate_run(lambda: nn.Linear(4, 1), X_mse, y_mse, [4, 20, 6], nn.MSELoss(),
                             seed=3, generator=True), **TOL)
probe(A, "accumulate_step on a model whose .grad holds old gradients (10, 30)",
      lambda: accumulate_run(mlp5, X_acc, y_acc, [10, 30], ce, seed=4, num_steps=1, stale=True),
      **TOL)
probe(A, "accumulate_step on a dropout model handed over in eval() mode",
      lambda: accumulate_run(mlp5_dropout, X_acc, y_acc, [40], ce, seed=5, num_steps=1,
                             eval_first=True), **TOL)
probe(A, "accumulate_step, micro-batches 5, 1, 31 of other data, no momentum, 4 calls",
      lambda: accumulate_run(mlp5, X_own, y_own, [5, 1, 31], ce, seed=7, num_steps=4,
                             momentum=0.0, lr=0.3), **TOL)
probe(A, "accumulate_step, micro-batches 30, 7 of other data, a generator",
      lambda: accumulate_run(mlp5, X_own, y_own, [30, 7], ce, seed=8, generator=True), **TOL)
