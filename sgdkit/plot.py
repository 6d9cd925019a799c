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

import base64
import io
import re
from collections.abc import Mapping
from html import escape
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.animation import FuncAnimation
from matplotlib.axes import Axes
from matplotlib.colors import BoundaryNorm
from PIL import Image

if TYPE_CHECKING:
    from IPython.display import HTML

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


def _in_view(path: np.ndarray, xlim: tuple[float, float], ylim: tuple[float, float]) -> np.ndarray:
    """The path up to its first point far outside the box (more than a box width beyond it),
    or up to its last finite point.

    A diverging run flies off to 1e100 and zig-zags across the whole picture on every step;
    drawing one segment out of the box shows that it left, and keeps the PNGs small.
    """
    (x0, x1), (y0, y1) = sorted(xlim), sorted(ylim)
    w, h = x1 - x0, y1 - y0
    with np.errstate(invalid="ignore"):  # nan compares False: it counts as "out"
        inside = ((path[:, 0] >= x0 - w) & (path[:, 0] <= x1 + w)
                  & (path[:, 1] >= y0 - h) & (path[:, 1] <= y1 + h))
    if inside.all():
        return path
    first_out = int(np.argmin(inside))
    return path[: first_out + 1] if np.isfinite(path[first_out]).all() else path[:first_out]


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

    Levels ``z_min + geomspace(g, z_max - z_min)`` put many bands in the flat valley near the
    minimum, where the iterates spend their time. The lowest gap ``g`` is the gap above the
    minimum that 1% of the grid points fall under, so a narrow valley (Rosenbrock) and a
    round bowl both get bands there. Spacing the *gap* above the minimum also works when the
    loss is negative (a quadratic with a linear term).
    """
    finite = Z[np.isfinite(Z)]
    if not log or finite.size == 0 or finite.max() == finite.min():
        return levels
    gap = finite - finite.min()
    lowest = max(np.quantile(gap, 0.01), 1e-9 * gap.max())
    return finite.min() + np.geomspace(lowest, gap.max(), levels)


def contour(objective, xlim: tuple[float, float], ylim: tuple[float, float], ax: Axes | None = None,
            levels: int = 30, log: bool = True) -> Axes:
    """Filled contours of a 2-D loss ``f(w_1, w_2)`` over the box ``xlim x ylim``.

    The loss is evaluated on a 100 x 100 grid; ``levels`` bands, log-spaced when ``log``
    (see ``_levels``), in pale colours with thin lines between them, so that trajectories in
    any colour stand out. Returns the Axes drawn on (a new figure when ``ax`` is None).
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4), layout="constrained")
    W1, W2 = np.meshgrid(np.linspace(*xlim, GRID), np.linspace(*ylim, GRID))
    Z = _grid_loss(objective, W1, W2)
    bounds = _levels(Z, levels, log)
    # one colour step per band, not per unit of loss: log-spaced bands would otherwise all get
    # the colour of the minimum. extend="both" also fills below the lowest level (the minimum).
    norm = BoundaryNorm(bounds, 256, extend="both") if np.ndim(bounds) else None
    ax.contourf(W1, W2, Z, levels=bounds, cmap="viridis", norm=norm, alpha=0.4, extend="both",
                antialiased=True)  # soft band edges: smoother, and smaller as JPEG frames
    ax.contour(W1, W2, Z, levels=bounds, colors="0.3", linewidths=0.4, alpha=0.4)
    ax.set(xlim=xlim, ylim=ylim, xlabel="$w_1$", ylabel="$w_2$")
    return ax


def _mark_w_star(objective, ax: Axes) -> None:
    w_star = getattr(objective, "w_star", None)
    if w_star is not None:
        ax.plot(*np.asarray(w_star, dtype=float)[:2], marker="*", ms=14, color="black",
                ls="none", label="$w^*$", zorder=5)


def _mark_starts(ax: Axes, arrays: list[np.ndarray]) -> None:
    if arrays:  # one marker per distinct start point: comparisons usually share one
        starts = np.unique(np.round([p[0] for p in arrays], 12), axis=0)
        ax.plot(starts[:, 0], starts[:, 1], "o", ms=8, mfc="none", mec="black", mew=1.5,
                ls="none", label="start", zorder=5)


def plot_paths(objective, paths: Mapping[str, np.ndarray], xlim: tuple[float, float],
               ylim: tuple[float, float], ax: Axes | None = None) -> Axes:
    """Several methods' iterates on one contour plot.

    ``paths`` maps a method name to its iterates, shape ``(T, 2)``; the i-th method is drawn in
    ``COLORS[i]``. Start points are marked with a black circle, ``w_star`` (when the objective
    has one) with a star. The axes stay at ``xlim x ylim``; a path that diverges is drawn up to
    its first point far outside them.
    """
    ax = contour(objective, xlim, ylim, ax=ax)
    arrays = [_as_path(p) for p in paths.values()]
    for i, (name, path) in enumerate(zip(paths, arrays)):
        path = _in_view(path, xlim, ylim)
        ax.plot(path[:, 0], path[:, 1], "o-", color=_color(i), ms=2.5, lw=1.2, label=name)
    _mark_starts(ax, arrays)
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
        _, ax = plt.subplots(figsize=(5, 3.5), layout="constrained")
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


# matplotlib's player draws its buttons with Font Awesome icons loaded from a CDN: blank buttons
# on an offline page, and Unicode media symbols (U+23EE...) are empty boxes with the fonts Debian
# ships. Small inline SVG shapes need neither a download nor a font.
def _svg(path: str) -> str:
    return ('<svg viewBox="0 0 16 16" width="14" height="14" aria-hidden="true" '
            f'focusable="false"><path fill="currentColor" d="{path}"/></svg>')


_ICONS = {"fa-minus": _svg("M2 7h12v2H2z"),
          "fa-fast-backward": _svg("M2 2h2v12H2zM15 2v12L5 8z"),
          "fa-step-backward": _svg("M3 3h2v10H3zM13 3v10L6 8z"),
          "fa-play fa-flip-horizontal": _svg("M13 2v12L3 8z"),
          "fa-pause": _svg("M3 2h4v12H3zM9 2h4v12H9z"),
          "fa-play": _svg("M3 2v12l10-6z"),
          "fa-step-forward": _svg("M11 3h2v10h-2zM3 3v10l7-5z"),
          "fa-fast-forward": _svg("M12 2h2v12h-2zM1 2v12l10-6z"),
          "fa-plus": _svg("M7 2h2v5h5v2H9v5H7V9H2V7h5z")}

# The player's own style gives the slider a fixed 374 px and the buttons one row: on a phone
# both overflow. These rules let the picture, slider and buttons shrink to the screen.
_STYLE = """
.animation { display: block; max-width: 100%; text-align: center; }
.animation img { width: 100%; max-width: 640px; height: auto; }
input[type=range].anim-slider { width: 100%; max-width: 640px; }
.anim-buttons { display: flex; flex-wrap: wrap; justify-content: center; gap: 2px; }
.anim-buttons button { display: inline-flex; align-items: center; justify-content: center;
                       width: 36px; height: 28px; }
.anim-state { display: flex; flex-wrap: wrap; justify-content: center; }
</style>"""


def _offline_controls(html: str, alt: str = "") -> str:
    """The player's HTML, accessible and offline: Font Awesome icons replaced by SVG, the
    frame image described by ``alt``, the slider labelled, and styles that fit a phone."""
    html = re.sub(r'<link rel="stylesheet"\s+href="[^"]*font-awesome[^"]*">', "", html)
    html = re.sub(r'<i class="fa ([a-z -]+)"></i>',
                  lambda m: _ICONS.get(m.group(1), m.group(0)), html)
    alt = escape(alt, quote=True)
    html = re.sub(r'<img id="(_anim_img\w+)">',
                  rf'<img id="\1" alt="{alt}">', html)
    html = html.replace('class="anim-slider"',
                        'class="anim-slider" aria-label="Step of the animation"')
    return html.replace("</style>", _STYLE, 1)


def _fewer_colors(html: str, colors: int = 64) -> str:
    """The player's PNG frames reduced to a palette of ``colors`` colours.

    Filled contours, a few lines and text need few colours: a 64-colour PNG is a sixth of the
    full-colour one and, unlike a JPEG of the same size, keeps the legend's letters sharp.
    """
    def reduce(match: re.Match) -> str:
        png = base64.b64decode(match.group(1).replace("\\\n", ""))
        out = io.BytesIO()
        Image.open(io.BytesIO(png)).convert("RGB").quantize(colors).save(out, "PNG",
                                                                          optimize=True)
        return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()

    return re.sub(r"data:image/png;base64,([A-Za-z0-9+/=\\\n]+)", reduce, html)


def _names(names: list[str]) -> str:
    """'GD', 'GD and SGD', 'GD, SGD and momentum'."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def animate_paths(objective, paths: Mapping[str, np.ndarray], xlim: tuple[float, float],
                  ylim: tuple[float, float], frames: int = 60, interval: int = 80,
                  alt: str | None = None) -> HTML:
    """An animation of ``plot_paths``: the iterates appear step by step. Returns IPython HTML.

    Frame k shows every path up to the same step ``s_k``, with ``s_0 = 0, ..., s_{F-1} = T-1``
    evenly spaced (``F = min(frames, T)``, T the longest path), so methods race fairly and a
    long run still makes a short animation. ``FuncAnimation(...).to_jshtml()`` embeds the
    frames in the page, so it plays in the static site without a kernel (its buttons are
    inline SVG, not web-font icons, so they show offline and with any font). The frames are
    PNGs with 64 colours, as wide as the book's other figures (6.4 x 4.4 in at 100 dpi,
    640 px): about 45 kB a frame in the page. ``alt``
    describes the animation for screen readers; by default it names the methods and steps.
    """
    from IPython.display import HTML  # imported here: plotting a still needs no IPython

    if frames < 1:
        raise ValueError(f"frames must be a positive int, got {frames}")
    if not paths:
        raise ValueError("paths is empty: pass a dict {method name: (T, 2) array}")
    arrays = [_as_path(p) for p in paths.values()]
    num_steps = max(len(p) for p in arrays)
    steps = np.unique(np.linspace(0, num_steps - 1, min(frames, num_steps)).round().astype(int))

    if alt is None:
        alt = (f"Animation of {_names(list(paths))} descending the loss contours, "
               f"step 0 to {steps[-1]}, with a slider and play buttons")

    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=100)
    contour(objective, xlim, ylim, ax=ax)
    lines = [ax.plot([], [], "o-", color=_color(i), ms=4, lw=1.5, label=name)[0]
             for i, name in enumerate(paths)]
    _mark_starts(ax, arrays)
    _mark_w_star(objective, ax)
    # legend above the axes, not inside: a legend inside would hide part of some path
    ax.legend(handles=lines, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False,
              ncols=min(len(lines), 3), fontsize="medium")  # 3 columns: long names fit
    counter = ax.text(0.98, 0.03, "", transform=ax.transAxes, ha="right", fontsize="medium",
                      bbox=dict(boxstyle="round", fc="white", ec="none", alpha=0.8))
    fig.tight_layout()

    visible = [_in_view(p, xlim, ylim) for p in arrays]

    def draw(k: int):
        for line, path in zip(lines, visible):
            shown = path[: steps[k] + 1]  # a shorter (diverged) path just stops growing
            line.set_data(shown[:, 0], shown[:, 1])
        counter.set_text(f"step {steps[k]}")
        return [*lines, counter]

    anim = FuncAnimation(fig, draw, frames=len(steps), interval=interval, repeat=False)
    try:
        with plt.rc_context({"animation.frame_format": "png"}):
            html = _offline_controls(_fewer_colors(anim.to_jshtml(default_mode="once")), alt)
    finally:
        plt.close(fig)  # otherwise the notebook also shows the last frame as a static figure
    return HTML(html)
