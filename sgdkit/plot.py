"""Pictures of optimization: contours of a 2-D loss, trajectories on them, loss curves, and
trajectory animations that play in a static web page (no kernel needed).

Every function draws with matplotlib only, works on the non-interactive Agg backend, and never
calls ``plt.show()``: the notebook shows the figure, a script saves it. Methods keep the same
colour in every picture: the i-th entry of a ``paths`` or ``curves`` dict always gets
``COLORS[i]``, so pass methods in the same order each time ("GD", "SGD", "momentum", ...).

An objective is anything with ``loss(w) -> float`` for ``w`` of shape ``(2,)``; ``w_star`` is
marked when the objective has one. A path is an array of shape ``(T, 2)``, the iterates
``w_0, ..., w_{T-1}``; an ``sgdkit.optim.Trajectory`` may stand in for its ``path``.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes

# tab10 spelled out, not "C0".."C9": a notebook that changes the colour cycle must not change
# which colour a method gets.
COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

GRID = 100  # contour grid points per axis: smooth enough, and 10^4 loss calls at worst


def _color(i: int) -> str:
    return COLORS[i % len(COLORS)]


def _as_path(path) -> np.ndarray:
    """A ``(T, 2)`` float array from an array, a list of points, a tensor or a Trajectory."""
    path = getattr(path, "path", path)  # a Trajectory(path, losses)
    if hasattr(path, "detach"):  # a torch tensor
        path = path.detach().cpu().numpy()
    path = np.asarray(path, dtype=float)
    if path.ndim != 2 or path.shape[1] != 2:
        raise ValueError(f"a path must have shape (T, 2), one 2-D point per step; "
                         f"got shape {path.shape}")
    return path


def _grid_loss(objective, W1: np.ndarray, W2: np.ndarray) -> np.ndarray:
    """The loss at every grid point: ``Z[i, j] = f((W1[i, j], W2[i, j]))``, shape ``(m, m)``.

    A loss written elementwise (Rosenbrock: ``(a - w[0])**2 + b (w[1] - w[0]**2)**2``) accepts
    the whole grid as one ``(2, m, m)`` array, which is 100x faster than a Python loop. Others
    (``w @ A @ w``) fail or silently compute something else on it, so the fast answer is kept
    only if it has the right shape and matches point-by-point calls at a few grid points.
    """
    def pointwise(i: int, j: int) -> float:
        return float(objective.loss(np.array([W1[i, j], W2[i, j]])))

    m1, m2 = W1.shape
    probes = [(0, 0), (m1 - 1, m2 - 1), (m1 // 3, 2 * m2 // 3), (m1 - 1, 0)]
    try:
        Z = np.asarray(objective.loss(np.stack([W1, W2])), dtype=float)
        if Z.shape == W1.shape and all(np.isclose(Z[i, j], pointwise(i, j), rtol=1e-9,
                                                  atol=1e-12, equal_nan=True)
                                       for i, j in probes):
            return Z
    except Exception:  # not vectorisable: any error here just means "use the loop"
        pass
    return np.array([[pointwise(i, j) for j in range(m2)] for i in range(m1)])


def _levels(Z: np.ndarray, levels: int, log: bool) -> np.ndarray | int:
    """Contour levels: ``levels`` of them, log-spaced above the grid minimum when ``log``.

    Log spacing, ``z_min + geomspace(10^-3 range, range)``, puts many lines in the flat valley
    near the minimum, where the iterates spend their time; it also works when the loss is
    negative (a quadratic with a linear term), because it spaces the *gap* above the minimum.
    """
    finite = Z[np.isfinite(Z)]
    if not log or finite.size == 0 or finite.max() == finite.min():
        return levels
    lo, span = finite.min(), finite.max() - finite.min()
    return lo + np.geomspace(1e-3 * span, span, levels)


def contour(objective, xlim: tuple[float, float], ylim: tuple[float, float], ax: Axes | None = None,
            levels: int = 30, log: bool = True) -> Axes:
    """Contour lines of a 2-D loss ``f(w_1, w_2)`` over the box ``xlim x ylim``.

    The loss is evaluated on a 100 x 100 grid; ``levels`` lines, log-spaced when ``log``
    (see ``_levels``). Returns the Axes drawn on (a new figure when ``ax`` is None).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4))
    W1, W2 = np.meshgrid(np.linspace(*xlim, GRID), np.linspace(*ylim, GRID))
    Z = _grid_loss(objective, W1, W2)
    ax.contour(W1, W2, Z, levels=_levels(Z, levels, log), cmap="viridis", linewidths=0.8)
    ax.set(xlim=xlim, ylim=ylim, xlabel="$w_1$", ylabel="$w_2$")
    return ax


def _mark_w_star(objective, ax: Axes) -> None:
    w_star = getattr(objective, "w_star", None)
    if w_star is not None:
        ax.plot(*np.asarray(w_star, dtype=float)[:2], marker="*", ms=14, color="black",
                ls="none", label="$w^*$", zorder=5)


def plot_paths(objective, paths: Mapping[str, np.ndarray], xlim: tuple[float, float],
               ylim: tuple[float, float], ax: Axes | None = None) -> Axes:
    """Several methods' iterates on one contour plot.

    ``paths`` maps a method name to its iterates, shape ``(T, 2)``; the i-th method is drawn in
    ``COLORS[i]``. Start points are marked with a black circle, ``w_star`` (when the objective
    has one) with a star. The axes stay at ``xlim x ylim`` even if a path diverges out of them.
    """
    ax = contour(objective, xlim, ylim, ax=ax)
    starts = []
    for i, (name, path) in enumerate(paths.items()):
        path = _as_path(path)
        ax.plot(path[:, 0], path[:, 1], "o-", color=_color(i), ms=2.5, lw=1.2, label=name)
        starts.append(path[0])
    if starts:  # one marker per distinct start point: comparisons usually share one
        starts = np.unique(np.round(starts, 12), axis=0)
        ax.plot(starts[:, 0], starts[:, 1], "o", ms=8, mfc="none", mec="black", mew=1.5,
                label="start", zorder=5)
    _mark_w_star(objective, ax)
    ax.set(xlim=xlim, ylim=ylim)  # plotting a diverging path would otherwise zoom out
    ax.legend(loc="best", fontsize="small")
    return ax


def loss_curves(curves: Mapping[str, np.ndarray], ax: Axes | None = None, log: bool = True,
                xlabel: str = "step") -> Axes:
    """Loss against step (or epoch) for several methods, ``COLORS[i]`` for the i-th.

    ``curves`` maps a name to a 1-D array of losses (a Trajectory stands in for its ``losses``).
    With ``log`` the y axis is logarithmic, where linear convergence
    ``f(w_t) - f^* <= (1 - 1/\\kappa)^t (f(w_0) - f^*)`` is a straight line; pass ``f - f^*`` to
    see it.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 3.5))
    for i, (name, curve) in enumerate(curves.items()):
        curve = getattr(curve, "losses", curve)
        if hasattr(curve, "detach"):
            curve = curve.detach().cpu().numpy()
        curve = np.asarray(curve, dtype=float)
        if curve.ndim != 1:
            raise ValueError(f"curve {name!r} must be 1-D (one loss per {xlabel}); "
                             f"got shape {curve.shape}")
        ax.plot(np.arange(len(curve)), curve, color=_color(i), lw=1.5, label=name)
    if log:
        ax.set_yscale("log")
    ax.set(xlabel=xlabel, ylabel="loss")
    ax.legend(loc="best", fontsize="small")
    return ax


def animate_paths(objective, paths: Mapping[str, np.ndarray], xlim: tuple[float, float],
                  ylim: tuple[float, float], frames: int = 60, interval: int = 80):
    """An animation of ``plot_paths``: the iterates appear step by step. Returns IPython HTML.

    Frame k shows every path up to the same step ``s_k``, with ``s_0 = 0, ..., s_{F-1} = T-1``
    evenly spaced (``F = min(frames, T)``, T the longest path), so methods race fairly and a
    long run still makes a short animation. The frames are PNGs embedded in the page by
    ``FuncAnimation(...).to_jshtml()``, so it plays in the static site without a kernel; the
    figure is small (4 x 3.2 in at 72 dpi) to keep 60 frames well under 1 MB.
    """
    from IPython.display import HTML  # imported here: plotting a still needs no IPython

    if frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames}")
    arrays = [_as_path(p) for p in paths.values()]
    num_steps = max(len(p) for p in arrays)
    steps = np.unique(np.linspace(0, num_steps - 1, min(frames, num_steps)).round().astype(int))

    fig, ax = plt.subplots(figsize=(4, 3.2), dpi=72)
    contour(objective, xlim, ylim, ax=ax)
    lines = [ax.plot([], [], "o-", color=_color(i), ms=2.5, lw=1.2, label=name)[0]
             for i, name in enumerate(paths)]
    ax.plot(arrays[0][0, 0], arrays[0][0, 1], "o", ms=8, mfc="none", mec="black", mew=1.5,
            label="start")
    _mark_w_star(objective, ax)
    ax.legend(loc="upper right", fontsize="x-small")
    title = ax.set_title("", fontsize="small")
    fig.tight_layout()

    def draw(k: int):
        for line, path in zip(lines, arrays):
            shown = path[: steps[k] + 1]  # a shorter (diverged) path just stops growing
            line.set_data(shown[:, 0], shown[:, 1])
        title.set_text(f"step {steps[k]}")
        return [*lines, title]

    anim = FuncAnimation(fig, draw, frames=len(steps), interval=interval, repeat=False)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)  # otherwise the notebook also shows the last frame as a static figure
    return HTML(html)
