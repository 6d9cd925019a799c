"""How fast can we serve minibatches from a data set that is already in memory?

Three ways to run one shuffled epoch over X (60,000 x 64 float32) in batches of 64:

- ``DataLoader(TensorDataset(X, y), batch_size=64, shuffle=True)``: the sampler yields 64
  indices, the dataset is indexed once *per example*, and ``default_collate`` stacks the 64 rows;
- ``sgdkit.data.minibatches(X, y, 64)``: one ``randperm`` per epoch, one gather ``X[idx]`` per
  batch;
- the raw loop ``perm = torch.randperm(n); X[perm[i:i + 64]]``, the floor for any iterator,
  also written with ``X.index_select(0, idx)``, which is what ``minibatches`` calls: advanced
  indexing ``X[idx]`` splits even 64 rows across threads, which is slow on a busy CPU.

Each is timed over whole epochs, taking turns, and reported as samples per second and as
ratios (targets: minibatches >= 10x DataLoader, >= 0.5x the raw loop). No assertions: timings
depend on the machine. Run: ``python benchmarks/bench_minibatches.py`` (about 30 s).
"""

import statistics
import time

import torch
from torch.utils.data import DataLoader, TensorDataset

from sgdkit.data import minibatches

N, D, BATCH_SIZE = 60_000, 64, 64


def epoch_dataloader(loader):
    for X_b, y_b in loader:
        pass


def epoch_minibatches(X, y, generator):
    for X_b, y_b in minibatches(X, y, BATCH_SIZE, generator=generator):
        pass


def epoch_raw(X, y, generator):
    perm = torch.randperm(len(X), generator=generator)
    for start in range(0, len(X), BATCH_SIZE):
        idx = perm[start:start + BATCH_SIZE]
        X[idx], y[idx]


def epoch_raw_index_select(X, y, generator):
    perm = torch.randperm(len(X), generator=generator)
    for start in range(0, len(X), BATCH_SIZE):
        idx = perm[start:start + BATCH_SIZE]
        X.index_select(0, idx), y.index_select(0, idx)


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main(rounds: int = 5, fast_epochs: int = 5) -> dict[str, float]:
    g = torch.Generator().manual_seed(0)
    X = torch.randn(N, D, generator=g)
    y = torch.randint(0, 10, (N,), generator=g)
    loader = DataLoader(TensorDataset(X, y), batch_size=BATCH_SIZE, shuffle=True, generator=g)
    fast = {"minibatches": lambda: epoch_minibatches(X, y, g),
            "raw X[idx]": lambda: epoch_raw(X, y, g),
            "raw X.index_select(0, idx)": lambda: epoch_raw_index_select(X, y, g)}
    times = {"DataLoader": [], **{name: [] for name in fast}}
    for run in fast.values():  # warm up the allocator and the code paths
        run()
    for _ in range(rounds):  # take turns, so a busy moment on the machine hits them all
        times["DataLoader"].append(seconds(lambda: epoch_dataloader(loader)))
        for _ in range(fast_epochs):
            for name, run in fast.items():
                times[name].append(seconds(run))
    rate = {name: N / statistics.median(t) for name, t in times.items()}
    print(f"one epoch of {N:,} x {D} float32 in batches of {BATCH_SIZE}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; median over "
          f"{rounds} / {rounds * fast_epochs} epochs")
    for name, r in rate.items():
        print(f"  {name:28s} {r / 1e6:8.2f} M samples/s")
    raw = max(rate["raw X[idx]"], rate["raw X.index_select(0, idx)"])  # the faster floor
    ratios = {"minibatches / DataLoader": rate["minibatches"] / rate["DataLoader"],
              "minibatches / raw X[idx]": rate["minibatches"] / rate["raw X[idx]"],
              "minibatches / fastest raw loop": rate["minibatches"] / raw}
    targets = {"minibatches / DataLoader": "(target >= 10x)",
               "minibatches / fastest raw loop": "(target >= 0.5x)"}
    for name, r in ratios.items():
        print(f"  {name:32s} {r:7.2f}x  {targets.get(name, '')}")
    return ratios


if __name__ == "__main__":
    main()
