"""The paper's figures from stored cells: the data behind each as a CSV, and the plot as a PNG.

Figure 3: test PSNR against training cost (one unit = 50 steps), one curve per method.
Figure 4: test PSNR against sigma_loss = lambda_inv / 2 (Theorem 2), one curve per noise level, each
curve's best point starred.
"""

from __future__ import annotations

import textwrap
from importlib import resources
from pathlib import Path
from typing import Callable

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server or in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmark.spec import Cell, TableSpec  # noqa: E402
from benchmark.store import ResultStore  # noqa: E402

STEPS_PER_UNIT = 50  # the paper's unit of training cost in Figure 3


def figure3_data(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """One row per finished cell, test set and evaluation point: method (row label), its batch size,
    column, test set, step, units (= step / 50) and the test PSNR there."""
    records = []
    for cell in cells:
        result = store.load(cell.id)
        for point in (result or {}).get("curve", []):
            for test_set, psnr in point.items():
                if test_set != "step":
                    records.append({"method": cell.row, "batch": cell.config["train"]["batch_size"],
                                    "column": cell.column, "test_set": test_set, "step": point["step"],
                                    "units": point["step"] / STEPS_PER_UNIT, "psnr": psnr})
    return pd.DataFrame(records, columns=["method", "batch", "column", "test_set", "step", "units", "psnr"])


def figure4_data(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """One row per finished cell: sigma_noise (the column's Gaussian noise std), sigma_loss
    (= lambda_inv / 2, Theorem 2), the test PSNR, and whether it is the best sigma_loss of its curve."""
    records = []
    for cell in cells:
        result = store.load(cell.id)
        if result:
            (test,) = result["tests"].values()
            records.append({"sigma_noise": cell.config["dataset"]["sigma"],
                            "sigma_loss": round(cell.config["method"]["lambda_inv"] / 2, 6), "psnr": test["psnr_mean"]})
    data = pd.DataFrame(records, columns=["sigma_noise", "sigma_loss", "psnr"])
    data = data.groupby(["sigma_noise", "sigma_loss"], as_index=False)["psnr"].mean()  # over seeds
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
        axes.plot(curve["units"], curve["psnr"], marker="o", markersize=3, label=label)
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
