"""Probes for 08_data_parallel: the grader's own batches, models and shard sizes, in float64;
the results are compared with the solution's outside the student's kernel."""
import copy

import torch
import torch.nn.functional as F
from torch import nn

from sgdkit.grading.probes import probe

TOL = dict(rtol=1e-8, atol=1e-10)
data_probe = torch.Generator().manual_seed(888)
X_p = torch.randn(37, 6, generator=data_probe, dtype=torch.float64)
y_p = torch.randint(0, 4, (37,), generator=data_probe)


def net(seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.Tanh(), nn.Linear(5, 4)).double()


# -- shard_sizes ---------------------------------------------------------------------------
for n_p, w_p in [(10, 4), (8, 4), (3, 5), (0, 3), (7, 1), (1437, 7), (101, 10)]:
    probe("test_shard_sizes", f"shard_sizes({n_p}, {w_p})",
          lambda n_p=n_p, w_p=w_p: [int(s) for s in shard_sizes(n_p, w_p)])  # noqa: F821


# -- worker_gradients ------------------------------------------------------------------------
def workers(seed, n, sizes, stale=False):
    """The workers' gradients, and whether the model's parameters and .grad stayed as they
    were."""
    model = net(seed)
    if stale:
        F.cross_entropy(model(X_p), y_p).mul(5).backward()
    before = [p.detach().clone() for p in model.parameters()]
    grads_before = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    grads = worker_gradients(model, F.cross_entropy, X_p[:n], y_p[:n], sizes)  # noqa: F821
    kept = all(torch.equal(p.detach(), q) for p, q in zip(model.parameters(), before)) and all(
        (p.grad is None and g is None) or (p.grad is not None and g is not None
                                            and torch.equal(p.grad, g))
        for p, g in zip(model.parameters(), grads_before))
    return [torch.stack([torch.as_tensor(g, dtype=torch.float64).reshape(-1) for g in grads]),
            torch.tensor([float(kept)])]


probe("test_worker_gradients", "4 workers x 9 examples", lambda: workers(1, 36, [9, 9, 9, 9]),
      **TOL)
probe("test_worker_gradients", "37 examples over 3 workers (13, 12, 12)",
      lambda: workers(2, 37, [13, 12, 12]), **TOL)
probe("test_worker_gradients", "4 examples over 6 workers (two empty)",
      lambda: workers(3, 4, [1, 1, 1, 1, 0, 0]), **TOL)
probe("test_worker_gradients", "one worker, a model with a stale .grad",
      lambda: workers(4, 20, [20], stale=True), **TOL)
probe("test_worker_gradients", "a model with a stale .grad, (8, 7, 7)",
      lambda: workers(5, 22, [8, 7, 7], stale=True), **TOL)


# -- all_reduce_mean -------------------------------------------------------------------------
def shard_grads(model, n, sizes):
    out, start = [], 0
    for size in sizes:
        if size == 0:
            out.append(torch.zeros(sum(p.numel() for p in model.parameters()),
                                   dtype=torch.float64))
            continue
        replica = copy.deepcopy(model)
        F.cross_entropy(replica(X_p[start:start + size]), y_p[start:start + size]).backward()
        out.append(torch.cat([p.grad.reshape(-1) for p in replica.parameters()]))
        start += size
    return out


def reduced(seed, n, sizes):
    grads = shard_grads(net(seed), n, sizes)
    copies = [g.clone() for g in grads]
    got = all_reduce_mean(grads, sizes)  # noqa: F821
    untouched = all(torch.equal(g, c) for g, c in zip(grads, copies))
    return [torch.as_tensor(got, dtype=torch.float64).reshape(-1),
            torch.tensor([float(untouched)])]


for sizes_p, seed_p in [([9, 9, 9, 9], 11), ([13, 12, 12], 12), ([30, 7], 13),
                        ([1, 1, 1, 0, 0], 14), ([25], 15)]:
    probe("test_all_reduce_mean", f"all_reduce_mean, shard sizes {sizes_p}",
          lambda s=sizes_p, seed=seed_p: reduced(seed, sum(s), s), **TOL)


# -- data_parallel_step ------------------------------------------------------------------------
def step(seed, n, num_workers, lr):
    """Every replica's parameters after the step, whether they are distinct copies, and
    whether the model stayed as it was."""
    model = net(seed)
    before = [p.detach().clone() for p in model.parameters()]
    replicas = data_parallel_step(model, F.cross_entropy, X_p[:n], y_p[:n],  # noqa: F821
                                  num_workers, lr)
    distinct = len({id(r) for r in replicas} | {id(model)}) == len(replicas) + 1
    kept = all(torch.equal(p.detach(), q) for p, q in zip(model.parameters(), before))
    params = torch.stack([torch.cat([p.detach().reshape(-1) for p in r.parameters()])
                          for r in replicas])
    return [params, torch.tensor([float(distinct), float(kept), float(len(replicas))])]


for n_p, w_p, lr_p, seed_p in [(36, 4, 0.5, 21), (37, 5, 0.5, 22), (3, 6, 0.2, 23),
                               (20, 1, 0.3, 24), (37, 7, 1.0, 25)]:
    probe("test_data_parallel_step", f"data_parallel_step(n = {n_p}, num_workers={w_p}, "
          f"lr={lr_p}): every replica, distinct copies, model unchanged",
          lambda n=n_p, w=w_p, lr=lr_p, s=seed_p: step(s, n, w, lr), **TOL)
