"""The paper's figures from stored cells: the data behind each as a CSV, and the plot as a PNG.

Figure 3: test PSNR against training cost (one unit = 50 steps), one curve per method.
Figure 4: test PSNR against sigma_loss = lambda_inv / 2 (Theorem 2), one curve per noise level, each
curve's best point starred.
Budget: test PSNR against training steps and against training cost (steps x network passes per step),
one curve per method, one panel per column.
With several seeds a point is the mean over seeds, drawn with its 95% Student-t band over seeds.
A table's forest plot: one panel per column, each method's mean with its 95% CI over test images.
"""

from __future__ import annotations

import textwrap
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark import statistics  # noqa: E402
from benchmark.report import METRICS  # noqa: E402
from benchmark.spec import Cell, TableSpec  # noqa: E402
from benchmark.store import ResultStore  # noqa: E402
from methods import METHODS  # noqa: E402

if TYPE_CHECKING:
    from benchmark.report import Report

STEPS_PER_UNIT = 50  # the paper's unit of training cost in Figure 3


def over_seeds(data: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The seeds of each point (rows sharing `keys`) reduced to psnr (their mean), ci_low and ci_high (the
    95% Student-t interval over seeds; empty with one seed) and n_seeds."""
    def reduce(points: pd.DataFrame) -> pd.Series:
        interval = statistics.seed_interval(points["psnr"].to_numpy())
        return pd.Series({"psnr": interval.mean, "ci_low": interval.low, "ci_high": interval.high,
                          "n_seeds": len(points)})

    rows = [{**dict(zip(keys, key)), **reduce(points)} for key, points in data.groupby(keys, sort=False)]
    frame = pd.DataFrame(rows, columns=[*keys, "psnr", "ci_low", "ci_high", "n_seeds"])
    return frame.astype({"n_seeds": int})


CURVE_KEYS = ("step", "seconds")  # a curve point's coordinates; its other keys are test sets


def curve_points(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """Every stored curve point of the cells, one row per test set: method (row label), batch, column,
    seed, test_set, step, seconds (training time so far, where recorded), psnr."""
    records = []
    for cell in cells:
        result = store.load(cell.id)
        for point in (result.curve or []) if result else []:
            for test_set, psnr in point.items():
                if test_set not in CURVE_KEYS:
                    records.append({"method": cell.row, "batch": cell.train.batch_size, "column": cell.column,
                                    "seed": cell.seed, "test_set": test_set, "step": point["step"],
                                    "seconds": point.get("seconds", np.nan), "psnr": psnr})
    return pd.DataFrame(records, columns=["method", "batch", "column", "seed", "test_set", "step", "seconds", "psnr"])


def figure3_data(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """One row per method, column, test set and evaluation point: method (row label), its batch size,
    column, test set, step, units (= step / 50), the test PSNR there (mean over seeds) with its band."""
    points = curve_points(cells, store)
    points["units"] = points["step"] / STEPS_PER_UNIT
    return over_seeds(points, ["method", "batch", "column", "test_set", "step", "units"])


def budget_data(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """One row per method, column, test set and step: cost = step x the method's network passes per step
    (training time in one-pass steps, independent of the machine's load), seconds (training time as the
    clock ran, mean over seeds) and the test PSNR there (mean over seeds, with its band)."""
    points = curve_points(cells, store)
    passes = {cell.row: METHODS.get(cell.method).forward_passes for cell in cells}
    points["cost"] = points["step"] * points["method"].map(passes)
    keys = ["method", "column", "test_set", "step", "cost"]
    data = over_seeds(points, keys)
    seconds = points.groupby(keys, sort=False)["seconds"].mean().reset_index()
    return data.merge(seconds, on=keys)[[*keys, "seconds", "psnr", "ci_low", "ci_high", "n_seeds"]]


def figure4_data(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """One row per (sigma_noise, sigma_loss): sigma_noise (the column's Gaussian noise std), sigma_loss
    (= lambda_inv / 2, Theorem 2), the test PSNR (mean over seeds) with its band over seeds, and whether
    it is the best sigma_loss of its curve."""
    records = []
    for cell in cells:
        result = store.load(cell.id)
        if result:
            (test,) = result.tests.values()
            records.append({"sigma_noise": cell.dataset_kwargs["sigma"],
                            "sigma_loss": round(cell.method_kwargs["lambda_inv"] / 2, 6), "psnr": test.psnr_mean})
    data = over_seeds(pd.DataFrame(records, columns=["sigma_noise", "sigma_loss", "psnr"]), ["sigma_noise", "sigma_loss"])
    data["best"] = data["psnr"] == data.groupby("sigma_noise")["psnr"].transform("max")
    return data.sort_values(["sigma_noise", "sigma_loss"], ascending=[False, True], ignore_index=True)


def paper_points(name: str) -> pd.DataFrame:
    """The paper's published points of a figure (benchmark/reference/paper_<name>.csv), or none."""
    path = resources.files("benchmark") / "reference" / f"paper_{name}.csv"
    return pd.read_csv(path) if path.is_file() else pd.DataFrame()


def plot_figure3(data: pd.DataFrame, title: str, path: Path) -> None:
    """Test PSNR against units of 50 steps, one line per method (and test set, if several)."""
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    for (method, batch, test_set), curve in data.groupby(["method", "batch", "test_set"], sort=False):
        label = f"{method}, batch {batch}" + ("" if data["test_set"].nunique() == 1 else f" ({test_set})")
        (line,) = axes.plot(curve["units"], curve["psnr"], marker="o", markersize=3, label=label)
        _band(axes, curve["units"], curve, line.get_color())
    axes.set_xlabel(f"training cost (units of {STEPS_PER_UNIT} steps)")
    axes.set_ylabel("test PSNR (dB)")
    _finish(figure, axes, title, path)


def plot_figure4(data: pd.DataFrame, title: str, path: Path, paper: pd.DataFrame) -> None:
    """Test PSNR against sigma_loss, one line per sigma_noise with its best point starred; the paper's
    published points, where it gives some, as hollow markers of the same colour."""
    figure, axes = plt.subplots(figsize=(6.4, 4.4))
    for sigma_noise, curve in data.groupby("sigma_noise", sort=False):
        (line,) = axes.plot(curve["sigma_loss"], curve["psnr"], marker="o", markersize=3,
                            label=f"sigma_noise = {sigma_noise:g}")
        _band(axes, curve["sigma_loss"], curve, line.get_color())
        best = curve[curve["best"]]
        axes.plot(best["sigma_loss"], best["psnr"], marker="*", markersize=14, color=line.get_color(), linestyle="")
        axes.axvline(sigma_noise, color=line.get_color(), linestyle=":", linewidth=0.8)
        published = paper[paper["sigma_noise"] == sigma_noise] if len(paper) else paper
        if len(published):
            axes.plot(published["sigma_loss"], published["psnr"], marker="s", markerfacecolor="none",
                      linestyle="--", linewidth=0.8, color=line.get_color(), label=f"paper, sigma_noise = {sigma_noise:g}")
    axes.set_xlabel("sigma_loss (lambda_inv = 2 sigma_loss)")
    axes.set_ylabel("test PSNR (dB)")
    _finish(figure, axes, title + "\n(star: best sigma_loss of each curve; dotted: sigma_loss = sigma_noise)", path)


def plot_budget(data: pd.DataFrame, title: str, path: Path) -> None:
    """Two rows of panels, one column of panels per dataset column (and test set): test PSNR against
    training steps (top) and against training cost in one-pass steps (bottom), one line per method, its
    colour the same in every panel."""
    panels = list(dict.fromkeys(zip(data["column"], data["test_set"])))
    colours = {method: f"C{i}" for i, method in enumerate(dict.fromkeys(data["method"]))}
    figure, axes = plt.subplots(2, len(panels), figsize=(5.2 * len(panels), 8.0), squeeze=False)
    for index, (column, test_set) in enumerate(panels):
        panel = data[(data["column"] == column) & (data["test_set"] == test_set)]
        name = column if data["test_set"].nunique() == 1 else f"{column} ({test_set})"
        for method, curve in panel.groupby("method", sort=False):
            for axis, x in zip(axes[:, index], (curve["step"], curve["cost"])):
                axis.plot(x, curve["psnr"], marker="o", markersize=2.5, color=colours[method], label=method)
                _band(axis, x, curve, colours[method])
        costs = ("training steps", "training cost (one-pass steps: steps x network passes per step)")
        for axis, label in zip(axes[:, index], costs):
            axis.set_title(name, fontsize=9)
            axis.set_xlabel(label)
            axis.set_ylabel("test PSNR (dB)")
            axis.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=7, loc="lower right")
    figure.suptitle(textwrap.fill(title, 120), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _band(axes: plt.Axes, x: pd.Series, curve: pd.DataFrame, color: str) -> None:
    """Shade a curve's 95% band over seeds, where it has one."""
    if curve["ci_low"].notna().any():
        axes.fill_between(x, curve["ci_low"], curve["ci_high"], color=color, alpha=0.2, linewidth=0)


def plot_forest(report: Report, title: str, path: Path) -> None:
    """One panel per column of a table and per-image metric (a row of panels for PSNR, one for SSIM): each
    method's mean with its 95% CI over test images as an error bar (filled: ties with the column's best;
    hollow: significantly below it), the paper's number as a red cross."""
    metrics = list(report.images)
    stats = report.stats[report.stats.index.get_level_values("metric").isin(metrics)]
    columns = list(dict.fromkeys(stats.index.get_level_values("column")))
    methods = list(dict.fromkeys(stats.index.get_level_values("method")))
    figure, axes = plt.subplots(len(metrics), len(columns), sharey=True, squeeze=False,
                                figsize=(2.6 * len(columns) + 1.6, (0.32 * len(methods) + 1.2) * len(metrics) + 0.4))
    positions = {method: -i for i, method in enumerate(methods)}
    for metric, axes_row in zip(metrics, axes):
        for axis, column in zip(axes_row, columns):
            for (method, shown, where), row in stats.iterrows():
                if (shown, where) != (metric, column):
                    continue
                y = positions[method]
                error = None if pd.isna(row["ci_low"]) else [[row["mean"] - row["ci_low"]], [row["ci_high"] - row["mean"]]]
                axis.errorbar(row["mean"], y, xerr=error, fmt="o", color="C0" if row["tie"] else "0.45", capsize=2,
                              markersize=4, markerfacecolor="C0" if row["tie"] else "white")
                if not pd.isna(row["paper"]):
                    axis.plot(row["paper"], y, marker="x", color="C3", linestyle="", markersize=5)
            axis.set_title(textwrap.fill(column, 22), fontsize=8)
            axis.set_xlabel(METRICS[metric].label + (" (dB)" if metric == "psnr" else ""), fontsize=8)
            axis.tick_params(labelsize=7)
            axis.grid(alpha=0.3, axis="x")
    for axes_row in axes:
        axes_row[0].set_yticks(list(positions.values()), list(positions), fontsize=8)
    figure.suptitle(textwrap.fill(title + " (dot and bar: mean and 95% CI over test images; filled: ties with the "
                                  "column's best; x: the paper)", 130), fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def _finish(figure: plt.Figure, axes: plt.Axes, title: str, path: Path) -> None:
    axes.set_title("\n".join(textwrap.fill(line, 90) for line in title.split("\n")), fontsize=9)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def bar_chart(values: pd.DataFrame, title: str) -> np.ndarray:
    """A table's numbers as grouped bars, rendered to an RGB uint8 picture: one group per method (the
    index's first level), one bar per column, one panel per metric (the index's second level, its
    label); a missing value has no bar."""
    metrics = list(dict.fromkeys(values.index.get_level_values(1)))
    methods = list(dict.fromkeys(values.index.get_level_values(0)))
    figure, axes = plt.subplots(len(metrics), 1, figsize=(max(6.4, 0.7 * len(methods) + 2), 3.6 * len(metrics)),
                                squeeze=False)
    width = 0.8 / max(1, values.shape[1])
    positions = np.arange(len(methods))
    for axis, metric in zip(axes[:, 0], metrics):
        panel = values.xs(metric, level=1).reindex(methods)
        for index, column in enumerate(panel.columns):
            axis.bar(positions + index * width, panel[column], width, label=column)
        axis.set_xticks(positions + 0.4 - width / 2, methods, rotation=30, ha="right", fontsize=8)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3, axis="y")
        axis.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    axes[0, 0].set_title(title, fontsize=9)
    figure.tight_layout()
    figure.canvas.draw()
    picture = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    return picture


FIGURES: dict[str, tuple[Callable[[list[Cell], ResultStore], pd.DataFrame], Callable[..., None]]] = {
    "figure3": (figure3_data, lambda data, title, path, paper: plot_figure3(data, title, path)),
    "figure4": (figure4_data, plot_figure4),
    "budget": (budget_data, lambda data, title, path, paper: plot_budget(data, title, path)),
}


def write_figure(spec: TableSpec, cells: list[Cell], store: ResultStore, results_dir: Path) -> pd.DataFrame:
    """Write results/<name>.csv (the data behind the plot) and results/<name>.png from the finished
    cells; returns the data. Unfinished cells are left out of both."""
    build, plot = FIGURES[spec.kind]
    data = build(cells, store)
    results_dir.mkdir(parents=True, exist_ok=True)
    data.to_csv(results_dir / f"{spec.name}.csv", index=False)
    plot(data, spec.title, results_dir / f"{spec.name}.png", paper_points(spec.name))
    return data
