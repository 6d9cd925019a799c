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


# -- MySGD: step for step torch.optim.SGD, with every option, param groups, frozen layers -----
X_opt = torch.randn(24, 5, generator=data_probe)
y_opt = torch.randint(0, 2, (24,), generator=data_probe)


def opt_run(options, *, groups=None, freeze_first=False, num_steps=5, set_to_none=True,
            scheduler=None):
    """The parameters after each of num_steps steps of MySGD(params, **options) on a small
    network, and the optimizer."""
    torch.manual_seed(41)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 2))
    if freeze_first:
        model[0].requires_grad_(False)
    params = model.parameters() if groups is None else groups(model)
    optimizer = MySGD(params, **options)
    lr_scheduler = scheduler(optimizer) if scheduler else None
    history = [flat(model)]
    for step in range(num_steps):
        batch = slice(6 * (step % 4), 6 * (step % 4) + 6)
        optimizer.zero_grad(set_to_none=set_to_none)
        nn.functional.cross_entropy(model(X_opt[batch]), y_opt[batch]).backward()
        optimizer.step()
        if lr_scheduler:
            lr_scheduler.step()
        history.append(flat(model))
    return torch.stack(history), optimizer


def path_of(options, **how):
    return opt_run(options, **how)[0]


probe("test_MySGD_options", "MySGD subclasses torch.optim.Optimizer",
      lambda: bool(issubclass(MySGD, torch.optim.Optimizer)))
for options_p in [dict(lr=0.2), dict(lr=0.1, momentum=0.8),
                  dict(lr=0.1, momentum=0.8, dampening=0.4),
                  dict(lr=0.1, momentum=0.8, nesterov=True), dict(lr=0.15, weight_decay=0.2),
                  dict(lr=0.1, maximize=True), dict(lr=0.1, momentum=0.8, weight_decay=0.2), {},
                  dict(lr=0.2, weight_decay=0.2, maximize=True),
                  dict(lr=0.05, momentum=0.7, dampening=0.2, weight_decay=0.05, maximize=True),
                  dict(lr=0.05, momentum=0.7, nesterov=True, weight_decay=0.05, maximize=True)]:
    probe("test_MySGD_options", f"MySGD({options_p}): the parameters after each of 5 steps",
          lambda options_p=options_p: path_of(options_p), **TOL)
probe("test_MySGD_options", "MySGD(lr=0.1, momentum=0.9, dampening=0.8): 9 steps",
      lambda: path_of(dict(lr=0.1, momentum=0.9, dampening=0.8), num_steps=9), **TOL)
probe("test_MySGD_options", "MySGD(lr=0.1, momentum=0.8) with zero_grad(set_to_none=False)",
      lambda: path_of(dict(lr=0.1, momentum=0.8), set_to_none=False), **TOL)


def grads_after_two_steps():
    """p.grad after two MySGD steps without zero_grad (step must not change it)."""
    torch.manual_seed(42)
    layer = nn.Linear(4, 3)
    layer(torch.linspace(-1, 1, 20).reshape(5, 4)).pow(2).sum().backward()
    optimizer = MySGD(layer.parameters(), lr=0.1, momentum=0.8, weight_decay=0.3,
                      maximize=True)
    optimizer.step()
    optimizer.step()
    return [p.grad for p in layer.parameters()]


def rejects(options):
    """What MySGD(params, **options) does: 'ValueError' or 'accepted'."""
    try:
        MySGD(nn.Linear(2, 2).parameters(), **options)
    except ValueError:
        return "ValueError"
    return "accepted"


probe("test_MySGD_options", "p.grad after two MySGD steps (it must not change)",
      grads_after_two_steps, **TOL)
for options_p in [dict(lr=0.2, nesterov=True), dict(lr=0.2, momentum=0.5, dampening=0.2,
                                                    nesterov=True)]:
    probe("test_MySGD_options", f"MySGD(params, {options_p}) raises ValueError",
          lambda options_p=options_p: rejects(options_p))


def two_groups(model):
    return [{"params": model[0].parameters(), "lr": 0.03},
            {"params": model[2].parameters(), "momentum": 0.3}]


def frozen_have_no_state():
    _, optimizer = opt_run(dict(lr=0.1, momentum=0.8), freeze_first=True)
    frozen = optimizer.param_groups[0]["params"][:2]
    return bool(not any(optimizer.state.get(p) for p in frozen))


def momentum_buffers():
    """state[p]['momentum_buffer'] of each parameter after 3 steps, and whether a
    torch.optim.SGD loads MySGD's state_dict."""
    _, optimizer = opt_run(dict(lr=0.1, momentum=0.8), num_steps=3)
    params = optimizer.param_groups[0]["params"]
    buffers = [optimizer.state[p].get("momentum_buffer", "missing") for p in params]
    resumed = torch.optim.SGD(params, lr=0.1, momentum=0.8)
    resumed.load_state_dict(optimizer.state_dict())
    return buffers + ["loaded"]


def closure_step():
    """(the loss MySGD.step(closure) returns, the parameters after it)."""
    torch.manual_seed(43)
    layer = nn.Linear(3, 1)
    optimizer = MySGD(layer.parameters(), lr=0.1, momentum=0.8)

    def closure():
        optimizer.zero_grad()
        loss = (layer(torch.linspace(-1, 2, 9).reshape(3, 3)) - 0.5).pow(2).mean()
        loss.backward()
        return loss

    loss = optimizer.step(closure)
    return loss.item(), flat(layer)  # as the test reads it (None has no .item())


probe("test_MySGD_groups", "MySGD with param groups [{layer 0, lr=0.03}, {layer 2, "
      "momentum=0.3}]", lambda: path_of(dict(lr=0.1, momentum=0.8), groups=two_groups), **TOL)
probe("test_MySGD_groups", "MySGD(lr=0.1, weight_decay=0.2) with the first layer frozen",
      lambda: path_of(dict(lr=0.1, weight_decay=0.2), freeze_first=True), **TOL)
probe("test_MySGD_groups", "MySGD keeps no state for frozen parameters", frozen_have_no_state)
probe("test_MySGD_groups", "MySGD(lr=0.1, momentum=0.8) under ExponentialLR(gamma=0.6)",
      lambda: path_of(dict(lr=0.1, momentum=0.8), scheduler=lambda opt:
                      torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.6)), **TOL)
probe("test_MySGD_groups", "state[p]['momentum_buffer'] after 3 steps; SGD loads the state",
      momentum_buffers, **TOL)
probe("test_MySGD_groups", "MySGD.step(closure): the loss it returns, the parameters after",
      closure_step, **TOL)
