"""Data-parallel SGD with ``torch.distributed``: ``W`` processes ("workers"), one model copy each.

Every step the ``W`` workers split one batch of ``B`` examples into shards of ``b = B / W``.
Worker ``r`` computes the mean gradient ``g_r`` of the loss over its own shard, then::

    dist.all_reduce(g, op=dist.ReduceOp.SUM)   # every worker now holds sum_r g_r
    g /= W                                     # ... and then 1/W sum_r g_r

The shards have the same size, so ``1/W sum_r g_r = 1/B sum_{i in batch} nabla f_i``: the
gradient of the whole batch. Every worker applies the same update to the same parameters, the
copies stay equal, and ``W`` workers with ``b`` examples each run SGD with batch ``W b``.

The module is a script, because a function defined in a notebook cannot be sent to another
process. From a shell (a launcher starts the ``W`` workers and waits for them)::

    python -m sgdkit.parallel grad-check --world-size 2 --out grad.json
    python -m sgdkit.parallel train --world-size 2 --num-epochs 20 --out train.json

or from Python, ``run(2, "grad-check")``, which returns the result as a dict. A worker learns
who it is from the environment variables ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR`` and
``MASTER_PORT``; ``run`` sets them, and so does ``torchrun``, which runs the same module as a
worker on one machine or many::

    torchrun --standalone --nproc-per-node 2 -m sgdkit.parallel grad-check --out grad.json

The problem: the breast cancer training split (455 x 30), a small MLP with one tanh layer,
the mean logistic loss, all in float64 so that rounding shows as ``1e-16``, not ``1e-7``.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

from sgdkit.data import load_breast_cancer_split, minibatches

ADDRESS = "127.0.0.1"
# Who a worker is: the environment variables that run() and torchrun set for each process
ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR",
               "MASTER_PORT")
# Each task's options and their defaults; the command line spells them --batch-size etc.
TASKS = {
    "grad-check": {"batch_size": 64, "seed": 0, "timing_widths": ""},
    "train": {"num_epochs": 20, "batch_size": 64, "lr": 0.1, "seed": 0, "ddp": False},
    "step-times": {"widths": "16,1024", "batch_size": 448, "num_steps": 10, "seed": 0},
}


# ---------------------------------------------------------------------------------------------
# The problem, the same in every process


_saved_data: tuple[torch.Tensor, torch.Tensor] | None = None  # what --data gave a worker


def load_data() -> tuple[torch.Tensor, torch.Tensor]:
    """The breast cancer training split: ``X`` (455, 30) and ``y`` (455,) in {0, 1}, float64.

    A worker started by ``run`` reads the launcher's copy from a file instead (``--data``),
    which spares each worker the second or more it takes to import scikit-learn.
    """
    if _saved_data is not None:
        return _saved_data
    split = load_breast_cancer_split()
    return torch.from_numpy(split.X_train), torch.from_numpy(split.y_train)


def make_model(seed: int = 0, hidden: int = 16) -> nn.Module:
    """A 30 -> ``hidden`` -> 1 MLP with a tanh hidden layer, float64, initialized from
    ``seed``."""
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(30, hidden), nn.Tanh(), nn.Linear(hidden, 1),
                          nn.Flatten(0))
    torch.random.set_rng_state(generator_state)  # leave the caller's global generator alone
    return model.double()


def loss_fn(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean logistic loss ``1/b sum_i log(1 + exp(z_i)) - y_i z_i`` over a batch."""
    return F.binary_cross_entropy_with_logits(logits, y)


def flat_grad(model: nn.Module) -> torch.Tensor:
    """Every parameter's ``.grad`` in one vector (parameter order)."""
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def batch_gradient(model: nn.Module, X: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The gradient of the mean loss over the rows ``X``, ``y``, in this one process."""
    model.zero_grad()
    loss_fn(model(X), y).backward()
    return flat_grad(model)


def fixed_batch(batch_size: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` rows of the training data, drawn at random from ``seed`` (one batch)."""
    X, y = load_data()
    if not 1 <= batch_size <= len(X):
        raise ValueError(f"batch_size must be between 1 and {len(X)}, got {batch_size}")
    idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(seed))[:batch_size]
    return X[idx], y[idx]


def shard(batch_size: int, rank: int, world_size: int) -> slice:
    """The rows of a batch of ``batch_size`` that worker ``rank`` of ``world_size`` takes:
    ``rank b, ..., (rank + 1) b - 1`` with ``b = batch_size / world_size``.

    Shards must be the same size: the mean of the shards' mean gradients is the batch's mean
    gradient only then (otherwise a small shard would count as much as a big one).
    """
    if batch_size % world_size:
        raise ValueError(f"batch_size {batch_size} is not divisible by world_size {world_size}: "
                         f"each worker must get the same number of examples; use a multiple of "
                         f"{world_size}")
    b = batch_size // world_size
    return slice(rank * b, (rank + 1) * b)


# ---------------------------------------------------------------------------------------------
# What a worker does


def _world() -> tuple[int, int]:
    """``(rank, world_size)``: from the process group, or ``(0, 1)`` in a single process."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def average_gradients(model: nn.Module) -> None:
    """Replace each ``.grad`` by its mean over the workers: ``g <- 1/W sum_r g_r``.

    All gradients travel in one flat buffer, one message per step instead of one per tensor
    (``DistributedDataParallel`` does the same with its buckets). Sum, then divide by ``W``:
    the formula as written (``op=ReduceOp.AVG`` does both in one call).
    """
    _, world_size = _world()
    grads = [p.grad for p in model.parameters()]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= world_size
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def grad_check(batch_size: int = 64, seed: int = 0, timing_widths: str = "") -> dict:
    """Each worker takes its shard of one fixed batch; compare the all-reduced mean of the
    shards' gradients with the gradient of the whole batch computed in one process.

    Returns (all on every worker) ``grad_full`` (the whole batch, one process), ``grad_avg``
    (the averaged shard gradients), ``shard_grads`` (each worker's own, before averaging),
    ``max_abs_diff = max |grad_avg - grad_full|`` and ``max_diff_between_workers``. With
    ``timing_widths`` (e.g. ``"16,1024"``) the same workers then also run
    ``step_times(timing_widths)``, returned as ``step_times``: starting processes costs
    seconds, so one launch does both.
    """
    rank, world_size = _world()
    X, y = fixed_batch(batch_size, seed)
    rows = shard(batch_size, rank, world_size)
    model = make_model(seed)
    grad_full = batch_gradient(model, X, y)  # the reference: one process, the whole batch

    batch_gradient(model, X[rows], y[rows])  # this worker's shard only
    mine = flat_grad(model).clone()
    if world_size > 1:
        average_gradients(model)
    grad_avg = flat_grad(model)

    shard_grads = _gather(mine, world_size)
    averages = _gather(grad_avg, world_size)
    timings = step_times(timing_widths, seed=seed) if timing_widths else None
    return {
        "task": "grad-check", "world_size": world_size, "batch_size": batch_size,
        "shard_size": rows.stop - rows.start, "num_parameters": len(grad_avg),
        "grad_full": grad_full.tolist(), "grad_avg": grad_avg.tolist(),
        "shard_grads": [g.tolist() for g in shard_grads],
        "max_abs_diff": (grad_avg - grad_full).abs().max().item(),
        "max_diff_between_workers": max((a - grad_avg).abs().max().item() for a in averages),
        "step_times": timings,
    }


def step_times(widths: str = "16,1024", batch_size: int = 448, num_steps: int = 10,
               seed: int = 0) -> dict:
    """Time data-parallel SGD steps on one fixed batch, for models of each hidden width in
    ``widths`` (comma-separated): when does splitting the work over ``W`` workers pay?

    Each step is split into *compute* (forward and backward on this worker's shard of
    ``batch_size / W`` rows) and *communication* (``average_gradients``). Compute is timed
    in CPU seconds of this thread (``time.thread_time``), which other programs on a busy
    machine do not inflate; communication in wall seconds, of which the fastest step is
    the cost of the all-reduce itself (slower steps include waiting for a worker that the
    operating system had paused; 30 more all-reduces of the gradient alone add samples).
    After 2 warm-up steps, ``num_steps`` steps are timed.
    Returns, per width, the number of parameters, the median ``compute``, the fastest
    ``communicate`` and the median wall-clock ``step`` (seconds, worker 0's).
    """
    rank, world_size = _world()
    X, y = fixed_batch(batch_size, seed)
    rows = shard(batch_size, rank, world_size)
    X, y = X[rows], y[rows]
    results = []
    for hidden in (int(width) for width in widths.split(",")):
        model = make_model(seed, hidden)
        compute, communicate, step_wall = [], [], []
        for step in range(2 + num_steps):
            if world_size > 1:
                dist.barrier()  # start together: time the step, not the other's lateness
            start, start_cpu = time.perf_counter(), time.thread_time()
            model.zero_grad()
            loss_fn(model(X), y).backward()
            middle, end_cpu = time.perf_counter(), time.thread_time()
            if world_size > 1:
                average_gradients(model)
            averaged = time.perf_counter()
            _sgd_step(model, 1e-3)
            if step >= 2:
                compute.append(end_cpu - start_cpu)
                communicate.append(averaged - middle)
                step_wall.append(time.perf_counter() - start)
        if world_size > 1:  # more samples of the all-reduce alone, for a reliable fastest
            flat = flat_grad(model).clone()
            for _ in range(30):
                dist.barrier()
                start = time.perf_counter()
                dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                communicate.append(time.perf_counter() - start)
        results.append({
            "hidden": hidden, "num_parameters": sum(p.numel() for p in model.parameters()),
            "compute": torch.tensor(compute).median().item(),
            "communicate": min(communicate),
            "step": torch.tensor(step_wall).median().item()})
    return {"task": "step-times", "world_size": world_size, "batch_size": batch_size,
            "shard_size": rows.stop - rows.start, "num_steps": num_steps, "sizes": results}


def _gather(tensor: torch.Tensor, world_size: int) -> list[torch.Tensor]:
    if world_size == 1:
        return [tensor.clone()]
    parts = [torch.empty_like(tensor) for _ in range(world_size)]
    dist.all_gather(parts, tensor)
    return parts


@torch.no_grad()
def _sgd_step(model: nn.Module, lr: float) -> None:
    """``w <- w - lr * grad``: what ``torch.optim.SGD(params, lr).step()`` does (chapter 7).

    Written out because building a ``torch.optim`` optimizer imports ``torch._dynamo``, which
    costs every freshly started worker a few seconds.
    """
    for p in model.parameters():
        p -= lr * p.grad


def train(num_epochs: int = 20, batch_size: int = 64, lr: float = 0.1, seed: int = 0,
          ddp: bool = False) -> dict:
    """Minibatch SGD with batch ``batch_size``, data-parallel over the process group if there
    is one (each of the ``W`` workers computes on ``batch_size / W`` rows of every batch), in
    this process alone if not.

    Every worker draws the same batches (``minibatches`` with the same seeded generator,
    ``drop_last=True`` so that every batch splits evenly) and takes its shard of each. The
    gradients are averaged by ``average_gradients`` after ``backward``, or, with ``ddp=True``,
    by ``DistributedDataParallel`` during ``backward``. Returns ``epoch_loss`` (the loss on
    the whole training set at the start and after each epoch, ``num_epochs + 1`` values) and
    ``params`` (the final parameters, flat).
    """
    rank, world_size = _world()
    X, y = load_data()
    rows = shard(batch_size, rank, world_size)  # checks divisibility before any work
    model = make_model(seed)
    net = model
    if world_size > 1:
        if ddp:  # broadcasts rank 0's parameters, then averages gradients during backward
            net = nn.parallel.DistributedDataParallel(model)
        else:  # start from rank 0's parameters (make_model(seed) already agrees; be sure)
            for p in model.parameters():
                dist.broadcast(p.data, src=0)
    generator = torch.Generator().manual_seed(seed)  # the same batches in every worker

    def full_loss() -> float:
        with torch.no_grad():
            return loss_fn(model(X), y).item()

    epoch_loss = [full_loss()]
    for _ in range(num_epochs):
        for X_b, y_b in minibatches(X, y, batch_size, generator=generator, drop_last=True):
            model.zero_grad()
            loss = loss_fn(net(X_b[rows]), y_b[rows])
            loss.backward()  # with DDP, the gradients are averaged here
            if world_size > 1 and not ddp:
                average_gradients(model)
            _sgd_step(model, lr)
        epoch_loss.append(full_loss())
    flat = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    return {"task": "train", "world_size": world_size, "batch_size": batch_size,
            "shard_size": rows.stop - rows.start, "lr": lr, "num_epochs": num_epochs,
            "ddp": ddp, "epoch_loss": epoch_loss, "params": flat.tolist()}


def _worker(task: str, options: dict, out: str | None, timeout: float,
            data: str | None = None) -> None:
    """The body of one process: join the group named by the environment, do ``task``, and
    (rank 0) write the result as JSON to ``out``, or print it when ``out`` is None."""
    global _saved_data
    torch.set_num_threads(1)  # W workers share the cores: one thread each
    if data is not None:
        _saved_data = torch.load(data)
    start = time.perf_counter()
    dist.init_process_group("gloo", init_method="env://", timeout=timedelta(seconds=timeout))
    try:
        init_seconds = time.perf_counter() - start
        result = {"grad-check": grad_check, "train": train,
                  "step-times": step_times}[task](**options)
        result["init_seconds"] = init_seconds
        # what the launcher told each worker (run() and torchrun set the same variables)
        mine = {name: os.environ.get(name) for name in ENVIRONMENT}
        result["environment"] = [None] * dist.get_world_size()
        dist.all_gather_object(result["environment"], mine)
        if dist.get_rank() == 0:
            text = json.dumps(result)
            if out is None:
                print(text)
            else:  # write, then rename: a reader never sees half a file
                Path(out + ".part").write_text(text)
                os.replace(out + ".part", out)
    finally:
        dist.destroy_process_group()


# ---------------------------------------------------------------------------------------------
# The launcher: start W workers on this machine, a small torchrun


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((ADDRESS, 0))
        return s.getsockname()[1]


def _check_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((ADDRESS, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise RuntimeError(f"port {port} on {ADDRESS} is already in use (another distributed "
                               f"job, or a crashed one that still holds it): pass port=None "
                               f"(--port 0) to pick a free port, or choose another") from None


def _options(task: str, options: dict) -> dict:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; the tasks are {', '.join(TASKS)}")
    unknown = set(options) - set(TASKS[task])
    if unknown:
        raise TypeError(f"task {task!r} takes the options {', '.join(TASKS[task])}; "
                        f"got unknown {', '.join(sorted(unknown))}")
    return TASKS[task] | options


def _argv(options: dict) -> list[str]:
    argv = []
    for name, value in options.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            argv += [flag] if value else []
        else:
            argv += [flag, str(value)]
    return argv


def run(world_size: int = 2, task: str = "grad-check", *, port: int | None = None,
        timeout: float = 60.0, **options) -> dict:
    """Start ``world_size`` worker processes on this machine, wait for them, return rank 0's
    result (a dict; see ``grad_check`` and ``train`` for what it holds).

    Each worker is ``python -m sgdkit.parallel TASK ...`` with ``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR=127.0.0.1`` and ``MASTER_PORT`` set, what ``torchrun`` sets.
    ``port=None`` picks a free port (and another one if something takes it before worker 0
    listens). ``options`` are the task's (``TASKS``), e.g. ``run(2, "train", num_epochs=5,
    lr=0.2)``. If a worker fails, the others are stopped and a ``RuntimeError`` shows its
    output; after ``timeout`` seconds in all, a ``TimeoutError``.
    """
    if not isinstance(world_size, int) or world_size < 1:
        raise ValueError(f"world_size is the number of processes, an int >= 1; got {world_size!r}")
    options = _options(task, options)
    if "batch_size" in options:  # fail here, not in every worker
        shard(options["batch_size"], 0, world_size)
    if port is not None and port != 0:
        _check_port(port)
        return _launch(world_size, task, options, port, timeout)
    for attempt in range(3):
        try:
            return _launch(world_size, task, options, free_port(), timeout)
        except _PortTaken:  # another program took the free port first: pick another
            if attempt == 2:
                raise


class _PortTaken(RuntimeError):
    """Worker 0 could not listen on ``MASTER_PORT``: another program holds it."""


def _launch(world_size: int, task: str, options: dict, port: int, timeout: float) -> dict:
    with tempfile.TemporaryDirectory(prefix="sgdkit-parallel-") as tmp:
        out, data = os.path.join(tmp, "result.json"), os.path.join(tmp, "data.pt")
        torch.save(load_data(), data)
        command = [sys.executable, "-m", "sgdkit.parallel", task, "--out", out, "--data", data,
                   "--timeout", str(timeout), *_argv(options)]
        environment = {"MASTER_ADDR": ADDRESS, "MASTER_PORT": str(port),
                       "WORLD_SIZE": str(world_size), "LOCAL_WORLD_SIZE": str(world_size),
                       "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
        logs, workers = [], []
        try:
            for rank in range(world_size):
                logs.append(open(os.path.join(tmp, f"rank{rank}.log"), "w+"))
                env = os.environ | environment | {"RANK": str(rank), "LOCAL_RANK": str(rank)}
                workers.append(subprocess.Popen(command, env=env, stdout=logs[-1],
                                                stderr=subprocess.STDOUT))
            _wait(workers, logs, timeout)
        finally:
            for worker in workers:
                if worker.poll() is None:
                    worker.kill()
                    worker.wait()
            for log in logs:
                log.close()
        return json.loads(Path(out).read_text())


def _tail(log, lines: int = 25) -> str:
    log.flush()
    log.seek(0)
    return "".join(log.readlines()[-lines:]).rstrip()


def _wait(workers: list[subprocess.Popen], logs: list, timeout: float) -> None:
    """Wait until every worker exits; raise as soon as one fails, or when time is up."""
    deadline = time.monotonic() + timeout
    while True:
        codes = [w.poll() for w in workers]
        failed = [r for r, code in enumerate(codes) if code not in (None, 0)]
        if failed:
            rank = failed[0]
            output = _tail(logs[rank])
            error = _PortTaken if "EADDRINUSE" in output else RuntimeError
            raise error(f"worker {rank} of {len(workers)} failed with exit code {codes[rank]}; "
                        f"its last output:\n{output}")
        if all(code == 0 for code in codes):
            return
        if time.monotonic() > deadline:
            waiting = [r for r, code in enumerate(codes) if code is None]
            raise TimeoutError(f"workers {waiting} still running after {timeout:g} s; rank 0's "
                               f"last output:\n{_tail(logs[0])}\nraise timeout if the job is "
                               f"just slow")
        time.sleep(0.02)


# ---------------------------------------------------------------------------------------------
# The command line


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m sgdkit.parallel",
        description="Data-parallel SGD with torch.distributed (gloo). Without RANK in the "
                    "environment this starts --world-size workers on this machine; with it "
                    "(set by the launcher or by torchrun) it is one of the workers.")
    tasks = parser.add_subparsers(dest="task", required=True)
    for task, defaults in TASKS.items():
        sub = tasks.add_parser(task)
        sub.add_argument("--world-size", type=int, default=2,
                         help="number of workers to start (launcher only; default 2)")
        sub.add_argument("--out", help="write the result as JSON here (default: print it)")
        sub.add_argument("--port", type=int, default=0, help="MASTER_PORT (default: a free one)")
        sub.add_argument("--timeout", type=float, default=60.0,
                         help="seconds to wait for the workers (default 60)")
        sub.add_argument("--data", help="(X, y) saved with torch.save (default: load the "
                                         "breast cancer split)")
        for name, default in defaults.items():
            flag = "--" + name.replace("_", "-")
            if isinstance(default, bool):
                sub.add_argument(flag, action="store_true")
            else:
                sub.add_argument(flag, type=type(default), default=default)
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    options = {name: getattr(args, name) for name in TASKS[args.task]}
    if "RANK" in os.environ:  # a worker, started by run() or by torchrun
        _worker(args.task, options, args.out, args.timeout, args.data)
        return
    try:
        result = run(args.world_size, args.task, port=args.port, timeout=args.timeout,
                     **options)
    except (ValueError, RuntimeError, TimeoutError) as err:  # say what, without a traceback
        parser.exit(1, f"{parser.prog}: error: {err}\n")
    text = json.dumps(result)
    if args.out is None:
        print(text)
    else:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
