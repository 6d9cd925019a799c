"""sgdkit: the small helper package behind the course "SGD, from gradient descent to PyTorch".

Modules (import the one you need; nothing heavy is imported here):

- ``sgdkit.data``        datasets, synthetic generators, the minibatch iterator, the text corpus
- ``sgdkit.objectives``  test functions and losses with analytic gradients
- ``sgdkit.optim``       numpy GD / SGD loops and ``SGD``, a readable ``torch.optim.Optimizer``
- ``sgdkit.schedules``   step size schedules as plain functions of the step
- ``sgdkit.train``       one training loop, ``fit``
- ``sgdkit.plot``        contours, trajectories, loss curves, animations for static pages
- ``sgdkit.check``       checks with messages that say what was expected and what came back
- ``sgdkit.grading``     the instructor's batch grading wrapper around nbgrader
"""

__version__ = "0.1.0"


def device():
    """The device to compute on: ``cuda`` if present, then Apple's ``mps``, else ``cpu``.

    Every notebook runs on a laptop CPU; the same code runs unchanged on a GPU.
    """
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int) -> None:
    """Seed Python's, numpy's and torch's global generators in one call."""
    import random

    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
