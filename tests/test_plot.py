"""sgdkit.plot: runs on Agg, returns Axes / HTML, fixed colours, small offline animations."""

import base64
import io
import re

import matplotlib

matplotlib.use("Agg")  # before pyplot: the tests must run without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from IPython.display import HTML  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.colors import to_hex  # noqa: E402

from sgdkit import objectives, optim, plot  # noqa: E402


class Bowl:
    """f(w) = 1/2 w^T A w, written so that it does NOT vectorise over a grid (w @ A @ w)."""

    def __init__(self, cond: float = 10.0):
        self.A = np.diag([1.0, cond])
        self.w_star = np.zeros(2)
        self.calls = 0

    def loss(self, w):
        self.calls += 1
        return 0.5 * w @ self.A @ w

    def grad(self, w):
        return self.A @ w


class Banana:
    """Rosenbrock, written elementwise so that it vectorises over a (2, m, m) grid."""

    w_star = np.array([1.0, 1.0])

    def __init__(self):
        self.calls = 0

    def loss(self, w):
        self.calls += 1
        return (1 - w[0]) ** 2 + 100 * (w[1] - w[0] ** 2) ** 2


def gd_path(objective, w0, lr, num_steps):
    w = np.array(w0, dtype=float)
    path = [w]
    for _ in range(num_steps):
        w = w - lr * objective.grad(w)
        path.append(w)
    return np.array(path)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def line_colors(ax):
    return [to_hex(line.get_color()) for line in ax.get_lines()]


@pytest.mark.parametrize("objective", [Bowl(), Banana()])
def test_grid_loss_matches_pointwise_loop(objective):
    W1, W2 = np.meshgrid(np.linspace(-2, 2, 7), np.linspace(-1, 3, 5))
    Z = plot._grid_loss(objective, W1, W2)
    expected = [[objective.loss(np.array([a, b])) for a, b in zip(row1, row2)]
                for row1, row2 in zip(W1, W2)]
    np.testing.assert_allclose(Z, expected, rtol=1e-12)


def test_grid_loss_vectorises_when_it_can():
    banana, bowl = Banana(), Bowl()
    W1, W2 = np.meshgrid(np.linspace(-2, 2, 100), np.linspace(-1, 3, 100))
    plot._grid_loss(banana, W1, W2)
    plot._grid_loss(bowl, W1, W2)
    assert banana.calls < 10  # one grid call plus a few probes
    assert bowl.calls >= 100 * 100  # fell back to the loop


def test_contour_returns_axes_with_log_spaced_levels():
    ax = plot.contour(Bowl(), (-2, 2), (-2, 2), levels=15)
    assert isinstance(ax, Axes)
    assert ax.get_xlim() == (-2, 2) and ax.get_ylim() == (-2, 2)
    levels = ax.collections[0].levels
    assert len(levels) == 15
    # levels z_min + a r^k: the gaps between them a r^k (r - 1) grow by the same factor r
    growth = np.diff(np.log(np.diff(levels)))
    np.testing.assert_allclose(growth, growth[0], rtol=1e-9)
    assert growth[0] > 0


def test_contour_linear_levels_and_given_axes():
    fig, ax = plt.subplots()
    out = plot.contour(Bowl(), (-1, 1), (-1, 1), ax=ax, levels=10, log=False)
    assert out is ax
    levels = ax.collections[0].levels
    np.testing.assert_allclose(np.diff(levels), np.diff(levels)[0], rtol=1e-9)


def test_contour_negative_loss_is_fine():
    class Tilted(Bowl):
        def loss(self, w):
            return super().loss(w) - 5.0  # minimum below zero

    ax = plot.contour(Tilted(), (-2, 2), (-2, 2))
    assert ax.collections[0].levels.min() < 0


def test_plot_paths_colours_start_and_w_star():
    bowl = Bowl()
    paths = {"lr=0.05": gd_path(bowl, [1.5, 1.0], 0.05, 20),
             "lr=0.15": gd_path(bowl, [1.5, 1.0], 0.15, 20)}
    ax = plot.plot_paths(bowl, paths, (-2, 2), (-2, 2))
    assert isinstance(ax, Axes)
    colors = line_colors(ax)
    assert colors[:2] == plot.COLORS[:2]  # i-th method gets COLORS[i]
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels == ["lr=0.05", "lr=0.15", "start", "$w^*$"]
    start, star = ax.get_lines()[2], ax.get_lines()[3]
    np.testing.assert_allclose(np.column_stack(start.get_data()), [[1.5, 1.0]])  # shared start
    np.testing.assert_allclose(np.column_stack(star.get_data()), [[0.0, 0.0]])
    # the same methods in the same order get the same colours in a new picture
    assert line_colors(plot.plot_paths(bowl, paths, (-2, 2), (-2, 2)))[:2] == colors[:2]


def test_plot_paths_keeps_limits_and_cuts_a_diverging_path():
    bowl = Bowl()
    path = gd_path(bowl, [1.5, 1.0], 0.25, 300)  # 0.25 > 2/L = 0.2: w_2 grows like 1.5^t
    assert np.abs(path).max() > 1e50
    ax = plot.plot_paths(bowl, {"diverges": path}, (-2, 2), (-2, 2))
    assert ax.get_xlim() == (-2, 2) and ax.get_ylim() == (-2, 2)
    drawn = np.column_stack(ax.get_lines()[0].get_data())
    # drawn up to and including the first point more than a box width (4) outside the box
    assert np.all(np.abs(drawn[:-1]) <= 6) and np.abs(drawn[-1]).max() > 6
    np.testing.assert_array_equal(drawn, path[: len(drawn)])


def test_in_view_stops_before_non_finite_points():
    path = np.array([[0.0, 0.0], [1.0, 1.0], [np.inf, 0.0], [np.nan, np.nan]])
    np.testing.assert_array_equal(plot._in_view(path, (-2, 2), (-2, 2)), path[:2])
    np.testing.assert_array_equal(plot._in_view(path[:2], (-2, 2), (-2, 2)), path[:2])


def test_plot_paths_without_w_star_and_trajectory_like_input():
    class NoStar:
        def loss(self, w):
            return float(w @ w)

    class Traj:  # anything with .path, like sgdkit.optim.Trajectory
        path = np.array([[1.0, 1.0], [0.5, 0.5]])

    ax = plot.plot_paths(NoStar(), {"gd": Traj()}, (-2, 2), (-2, 2))
    assert [line.get_label() for line in ax.get_lines()] == ["gd", "start"]


def test_plot_paths_rejects_bad_shape():
    with pytest.raises(ValueError, match=r"shape \(T, 2\).*\(5, 3\)"):
        plot.plot_paths(Bowl(), {"bad": np.zeros((5, 3))}, (-1, 1), (-1, 1))


def test_loss_curves():
    curves = {"a": np.geomspace(1, 1e-6, 50), "b": np.linspace(1, 0.1, 30)}
    ax = plot.loss_curves(curves, xlabel="epoch")
    assert isinstance(ax, Axes)
    assert ax.get_yscale() == "log" and ax.get_xlabel() == "epoch"
    lines = ax.get_lines()
    np.testing.assert_allclose(lines[0].get_ydata(), curves["a"])
    np.testing.assert_allclose(lines[1].get_xdata(), np.arange(30))
    assert line_colors(ax) == plot.COLORS[:2]
    assert plot.loss_curves(curves, log=False).get_yscale() == "linear"
    with pytest.raises(ValueError, match="1-D"):
        plot.loss_curves({"bad": np.zeros((3, 3))})


def test_animate_paths_html_is_small_offline_and_closes_its_figure():
    bowl = Bowl()
    paths = {"GD": gd_path(bowl, [1.5, 1.0], 0.15, 300),
             "slow": gd_path(bowl, [1.5, 1.0], 0.02, 300),
             "short": gd_path(bowl, [1.5, 1.0], 0.1, 40)}  # a path that stops early
    open_before = plt.get_fignums()
    html = plot.animate_paths(bowl, paths, (-2, 2), (-2, 2), frames=60)
    assert isinstance(html, HTML)
    assert plt.get_fignums() == open_before  # no static copy left for the notebook to show
    text = html.data
    assert text.count("data:image/png;base64") == 60  # subsampled to 60 frames
    for control in ["anim-slider", "play_animation", "pause_animation", 'value="once"']:
        assert control in text
    assert 'value="once" id' in text and "checked" in text.split('value="once"')[1][:80]
    assert "font-awesome" not in text and 'class="fa ' not in text  # no CDN icons
    assert text.count("<svg") == 9 and "&#x23" not in text  # no symbols Debian's fonts lack
    assert re.search(r'<img id="_anim_img\w+" alt="Animation of GD, slow and short [^"]+">',
                     text)
    assert re.search(r'class="anim-slider" aria-label="[^"]+"', text)  # a labelled slider
    assert "input[type=range].anim-slider { width: 100%" in text  # it shrinks to a phone
    width, height = first_frame_size(text)
    assert (width, height) == (640, 440)  # as wide as the book's other figures
    size = len(text.encode())
    assert size < 60 * 50e3, f"animation HTML is {size / 1e6:.2f} MB; keep it under 50 kB a frame"


def first_frame_size(html: str) -> tuple[int, int]:
    from PIL import Image

    data = re.search(r"data:image/png;base64,([A-Za-z0-9+/=\\\n]+)", html).group(1)
    return Image.open(io.BytesIO(base64.b64decode(data.replace("\\\n", "")))).size


def test_animation_alt_text_can_be_given():
    bowl = Bowl()
    html = plot.animate_paths(bowl, {"GD": gd_path(bowl, [1, 1], 0.1, 5)}, (-2, 2), (-2, 2),
                              alt='GD "zig-zags" to the minimum').data
    assert 'alt="GD &quot;zig-zags&quot; to the minimum"' in html


def test_busy_animation_of_sgdkit_trajectories_stays_small():
    """The chapter's picture: four step sizes on a rotated bowl, one diverging (zig-zag lines
    across the whole frame are the worst case for the frame size)."""
    bowl = objectives.quadratic(cond=10.0, angle=0.5)
    w0 = np.array([-1.5, 1.0])
    paths = {f"lr={lr}": optim.gd(bowl, w0, lr, 60) for lr in [0.05, 0.1, 0.19]}
    paths["lr=0.21"] = optim.gd(bowl, w0, 0.21, 300, stop_on_divergence=False)  # 0.21 > 2/L
    html = plot.animate_paths(bowl, paths, (-2, 2), (-2, 2))
    assert html.data.count("data:image/png;base64") == 60
    size = len(html.data.encode())
    assert size < 60 * 50e3, f"animation HTML is {size / 1e6:.2f} MB; keep it under 50 kB a frame"
    ax = plot.plot_paths(bowl, paths, (-2, 2), (-2, 2))  # Trajectory objects work as paths
    np.testing.assert_array_equal(ax.get_lines()[0].get_xydata(), paths["lr=0.05"].path)
    curves = plot.loss_curves({name: t for name, t in paths.items()})
    np.testing.assert_array_equal(curves.get_lines()[1].get_ydata(), paths["lr=0.1"].losses)


def test_animate_paths_short_path_and_bad_frames():
    bowl = Bowl()
    html = plot.animate_paths(bowl, {"gd": gd_path(bowl, [1, 1], 0.1, 5)}, (-2, 2), (-2, 2))
    assert html.data.count("data:image/png;base64") == 6  # fewer steps than frames: one each
    with pytest.raises(ValueError, match="frames"):
        plot.animate_paths(bowl, {"gd": np.zeros((3, 2))}, (-1, 1), (-1, 1), frames=0)
    with pytest.raises(ValueError, match="empty"):
        plot.animate_paths(bowl, {}, (-1, 1), (-1, 1))
