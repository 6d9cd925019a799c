"""Does the readable optimizer cost anything? ``sgdkit.optim.SGD`` against ``torch.optim.SGD``.

Both step an MLP of about 1M parameters (784 -> 1024 -> 256 -> 10, momentum 0.9) from the same
gradients; only ``optimizer.step()`` is timed (the gradients are computed once, outside the
timer, since they are the same for both). The two take turns; the report is the median step
time and the ratio (target: ours <= 1.5x torch's). On a CPU torch's default is the same
per-tensor loop as ours; on a GPU it switches to ``foreach`` kernels, which batch all tensors
into a few launches, and the ratio grows. Run: ``python benchmarks/bench_optim.py`` (~20 s).
"""

import statistics
import time

import torch

from sgdkit import device
from sgdkit.optim import SGD


def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(784, 1024), torch.nn.ReLU(),
                               torch.nn.Linear(1024, 256), torch.nn.ReLU(),
                               torch.nn.Linear(256, 10))


def sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize()


def step_seconds(optimizer, dev: torch.device, num_steps: int) -> float:
    """Mean seconds per ``optimizer.step()`` over ``num_steps`` steps."""
    sync(dev)
    start = time.perf_counter()
    for _ in range(num_steps):
        optimizer.step()
    sync(dev)
    return (time.perf_counter() - start) / num_steps


def main(rounds: int = 15, num_steps: int = 50) -> float:
    dev = device()
    models = {"torch.optim.SGD": mlp().to(dev), "sgdkit.optim.SGD": mlp().to(dev)}
    X = torch.randn(128, 784, device=dev)
    y = torch.randint(0, 10, (128,), device=dev)
    for model in models.values():  # same gradients for both, kept fixed while timing
        torch.nn.functional.cross_entropy(model(X), y).backward()
    optimizers = {"torch.optim.SGD": torch.optim.SGD(models["torch.optim.SGD"].parameters(),
                                                     lr=1e-3, momentum=0.9),
                  "sgdkit.optim.SGD": SGD(models["sgdkit.optim.SGD"].parameters(),
                                          lr=1e-3, momentum=0.9)}
    times = {name: [] for name in optimizers}
    for opt in optimizers.values():
        step_seconds(opt, dev, 5)  # warm-up: allocates the momentum buffers
    for _ in range(rounds):
        for name, opt in optimizers.items():
            times[name].append(step_seconds(opt, dev, num_steps))
    n_params = sum(p.numel() for p in models["torch.optim.SGD"].parameters())
    print(f"optimizer.step() on an MLP of {n_params:,} parameters, momentum 0.9, {dev}, "
          f"torch {torch.__version__}; median of {rounds} x {num_steps} steps")
    median = {name: statistics.median(t) for name, t in times.items()}
    for name, t in median.items():
        print(f"  {name:18s} {t * 1e3:8.3f} ms / step")
    ratio = median["sgdkit.optim.SGD"] / median["torch.optim.SGD"]
    print(f"  sgdkit / torch     {ratio:8.2f}x   (target <= 1.5x)")
    return ratio


if __name__ == "__main__":
    main()
