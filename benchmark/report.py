"""Reports: the stored cells of a table as results/<table>.md and .csv, each number with its uncertainty,
the paper's number and our difference to it beside ours, the methods that tie with each column's best
marked, a comparison with a reference method (<table>_vs_<reference>.md) and a forest plot (<table>.png).

Every table that shows PSNR shows SSIM beside it (a row of each per method). A cell's per-image PSNR
and SSIM over its seeds and noise draws are first averaged per clean test image; the statistics
(benchmark.statistics) then treat the test images as the sample, for each metric on its own.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark import statistics
from benchmark.registry import ConfigError
from benchmark.spec import Cell, Note, TableSpec
from benchmark.store import ResultStore, TestScores
from datamodules import DATASETS
from datamodules.base import DenoisingDataModule, clean_id
from datamodules.evaluation import SSIM_SIGMA, SSIM_WINDOW
from methods.noise_level import known_noise

DEFAULT_REFERENCE = "noise2same"
STATS = ["mean", "ci_low", "ci_high", "n_images", "n_seeds", "seed_std"]


@dataclass(frozen=True)
class Metric:
    """A measurement a table shows: its mean's key in a stored test set, its label, display scale and
    decimals, and the key of its per-image values (None for a per-cell metric such as D(f))."""

    key: str
    label: str
    scale: float = 1.0
    decimals: int = 2
    per_image: str | None = None


METRICS = {"psnr": Metric("psnr_mean", "PSNR", per_image="psnr"),
           "ssim": Metric("ssim_mean", "SSIM", decimals=3, per_image="ssim"),
           "d_f": Metric("d_f", "D(f) x1e-3", 1e3, 3)}


def table_metrics(metrics: list[str]) -> list[str]:
    """The metrics a table shows: the spec's, with SSIM right after PSNR (every table that shows PSNR
    shows SSIM beside it)."""
    return list(dict.fromkeys(shown for metric in metrics for shown in ([metric, "ssim"] if metric == "psnr" else [metric])))


def paper_numbers(table: str) -> pd.DataFrame:
    """The paper's published table, indexed by row label (and metric, where the file has a `metric`
    column; PSNR otherwise), one column per paper column; empty if the paper has none for `table`."""
    path = resources.files("benchmark") / "reference" / f"paper_{table}.csv"
    if not path.is_file():
        return pd.DataFrame()
    numbers = pd.read_csv(path)
    if "metric" not in numbers.columns:
        numbers["metric"] = "psnr"
    return numbers.set_index(["method", "metric"])


def table_columns(cell: Cell) -> list[tuple[str, str]]:
    """(test set, column label) of a cell: its column, or '<column> <test set>' when it has several."""
    test_sets = DATASETS.get(cell.dataset).test_sets
    return [(name, cell.column if len(test_sets) == 1 else f"{cell.column} {name}") for name in test_sets]


def stored_tests(cells: list[Cell], store: ResultStore) -> Iterator[tuple[Cell, str, TestScores]]:
    """(cell, column label, scores) of every scored test set of the finished cells."""
    for cell in cells:
        result = store.load(cell.id)
        for test_set, label in table_columns(cell) if result else []:
            scores = result.tests.get(test_set)  # None: a test set without clean images
            if scores is not None:
                yield cell, label, scores


def collect(cells: list[Cell], store: ResultStore, metrics: list[str]) -> pd.DataFrame:
    """One row per finished cell, test set, metric and scored image: row and column labels, seed, the
    clean image's id (`image`; None for a per-cell metric such as D(f)) and the value; a metric a record
    lacks (SSIM before it was kept, D(f) where not measured) has no rows."""
    records = []
    for cell, label, scores in stored_tests(cells, store):
        for metric in metrics:
            base = {"row": cell.row, "metric": metric, "column": label, "seed": cell.seed}
            if (per_image := METRICS[metric].per_image) is not None:
                values = getattr(scores, per_image) or {}
                records += [{**base, "image": clean_id(image), "value": value} for image, value in values.items()]
            elif (value := getattr(scores, METRICS[metric].key)) is not None:
                records.append({**base, "image": None, "value": value})
    return pd.DataFrame(records, columns=["row", "metric", "column", "seed", "image", "value"])


def missing_ssim(spec: TableSpec, cells: list[Cell], store: ResultStore) -> dict[tuple[str, str], str]:
    """(row label, column) -> why its SSIM field is empty, for each finished cell stored before SSIM was
    kept: the `rescore` command that computes it without training."""
    lacking = [(cell, label) for cell, label, scores in stored_tests(cells, store) if scores.ssim is None]
    if not lacking:
        return {}
    preset = lacking[0][0].preset
    seeds = sorted({cell.seed for cell, _ in lacking})
    options = f" --seeds {','.join(map(str, seeds))}" if not set(seeds) <= set(spec.preset(preset).get("seeds", [0])) else ""
    results = store.root.parent.parent
    options += f" --results {results}" if results != Path("results") else ""
    note = f"SSIM not stored for this cell; `python -m benchmark rescore {spec.name} --preset {preset}{options}` computes it"
    return {(cell.row, label): note for cell, label in lacking}


def per_image(values: pd.DataFrame) -> pd.Series:
    """One cell's image scores: each clean image's mean over its seeds and noise draws."""
    return values.groupby("image", sort=True)["value"].mean()


def cell_statistics(values: pd.DataFrame) -> dict[str, float]:
    """mean, 95% bootstrap CI over images, n_images, n_seeds and the between-seed std of one cell's values
    (a per-cell metric: the mean over seeds, no CI)."""
    seeds = values.groupby("seed")["value"].mean()
    images = per_image(values) if values["image"].notna().all() else pd.Series(dtype=float)
    interval = statistics.mean_ci(images.to_numpy()) if len(images) else statistics.Interval(
        float(seeds.mean()), float("nan"), float("nan"))
    return {"mean": interval.mean, "ci_low": interval.low, "ci_high": interval.high, "n_images": len(images),
            "n_seeds": len(seeds), "seed_std": statistics.seed_std(seeds.to_numpy())}


def compare(images: dict[str, pd.Series], against: str) -> pd.DataFrame:
    """Each other row against row `against` on their common images: mean paired difference (row minus
    `against`), its CI, the test, its p-value and the Holm-adjusted p-value over these comparisons."""
    records = []
    for row, scores in images.items():
        if row == against:
            continue
        common = scores.index.intersection(images[against].index)
        paired = statistics.paired_difference(scores[common].to_numpy(), images[against][common].to_numpy())
        records.append({"row": row, "difference": paired.interval.mean, "ci_low": paired.interval.low,
                        "ci_high": paired.interval.high, "n_images": paired.n_images, "test": paired.test,
                        "p": paired.p_value})
    frame = pd.DataFrame(records, columns=["row", "difference", "ci_low", "ci_high", "n_images", "test", "p"])
    frame["p_holm"] = statistics.holm(frame["p"].tolist())
    return frame.set_index("row")


def ties_with_best(images: dict[str, pd.Series]) -> set[str]:
    """The rows whose image scores are not significantly below the row with the highest mean (paired test, Holm
    over the column's comparisons, alpha 0.05); the best row itself included."""
    images = {row: scores for row, scores in images.items() if len(scores)}
    if not images:
        return set()
    best = max(images, key=lambda row: images[row].mean())
    comparisons = compare(images, best)
    return {best, *comparisons.index[~(comparisons["p_holm"] < statistics.ALPHA)]}


def undecided_columns(columns: dict[str, dict[str, pd.Series]]) -> dict[str, tuple[int, int]]:
    """column -> (n, m), the fewest images of its rows and its comparisons (rows - 1), for each column of
    one metric where so few can make no paired test significant (it gets no marks; its note says why)."""
    counts = {column: (min(len(scores) for scores in rows.values()), len(rows) - 1) for column, rows in columns.items()}
    return {column: (n, m) for column, (n, m) in counts.items() if not statistics.can_separate(n, m)}


# A printed field that carries a footnote -> the kind of footnote (its heading) it gets.
FIELD_NOTES = {"n/a": "n/a", "failed": "failed", "no PSNR": "unscored", "no SSIM": "unscored"}
NOTE_HEADINGS = {"n/a": "Not applicable:", "failed": "Failed (`--retry-failed` runs them again):",
                 "unscored": "No PSNR or SSIM (the trained networks are kept; `python -m benchmark denoise` applies them):",
                 "rescore": "No SSIM (the cells were stored before SSIM was kept; nothing needs training again):"}


@dataclass
class Report:
    """Rows (row label, metric) by columns: ours (mean over images of the seed-averaged image scores) and,
    beside each, the paper's; `stats`: one row per (row label, metric, column) with the mean, CI, counts,
    between-seed std, paper number, delta and whether it ties with the column's best in that metric; n/a
    notes, failure reasons and why SSIM is missing (`no_ssim`) by (row label, column); `images`: the
    image scores by metric, column and row label; `undecided`: the columns whose (images, comparisons)
    are too few for any paired test to be significant (by PSNR's rows)."""

    table: pd.DataFrame
    not_applicable: dict[tuple[str, str], str]
    missing: int
    paper_columns: frozenset[str]
    dataset_notes: list[str]
    failed: dict[tuple[str, str], str] = field(default_factory=dict)
    stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    images: dict[str, dict[str, dict[str, pd.Series]]] = field(default_factory=dict)
    undecided: dict[str, tuple[int, int]] = field(default_factory=dict)
    unscored: dict[tuple[str, str], str] = field(default_factory=dict)
    no_ssim: dict[tuple[str, str], str] = field(default_factory=dict)

    def cell_text(self, key: tuple[str, str], column: str, value: float) -> str:
        """A field: `mean +- half-width of the 95% CI` (bold when it ties with the column's best), the
        paper's number with our difference to it in brackets, 'n/a' for a cell that does not apply,
        'failed' for one whose run (of any seed) failed, 'no PSNR' ('no SSIM') in a column without clean
        test images, '' for one not yet run or without SSIM stored, '-' where the paper has no number."""
        if (key[0], column) in self.not_applicable:
            return "n/a"
        if (key[0], column) in self.unscored:
            return "no SSIM" if key[1] == "ssim" else "no PSNR"
        if (key[0], column) in self.failed:
            return "failed"
        if pd.isna(value):
            return "-" if column in self.paper_columns else ""
        metric = METRICS[key[1]]
        number = f"{value * metric.scale:.{metric.decimals}f}"
        if column in self.paper_columns:
            ours = self.rows.get((*key, column.rsplit(" paper (", 1)[0]))
            if ours is None:
                return number
            return f"{number} ({(ours['mean'] - value) * metric.scale:+.{metric.decimals}f})"
        row = self.rows[(*key, column)]
        if not pd.isna(row["ci_low"]):
            number += f" +- {(row['ci_high'] - row['ci_low']) / 2 * metric.scale:.{metric.decimals}f}"
        return f"**{number}**" if row["tie"] else number

    def footnote(self, key: tuple[str, str], column: str, text: str) -> tuple[str, str] | None:
        """(kind, reason) of the footnote a printed field carries, None for none: the reason it says
        'n/a', 'failed', 'no PSNR' or 'no SSIM', or why its SSIM is missing (kind 'rescore')."""
        reasons = {"n/a": self.not_applicable, "failed": self.failed, "unscored": self.unscored}
        if text in FIELD_NOTES:
            return FIELD_NOTES[text], reasons[FIELD_NOTES[text]][(key[0], column)]
        if key[1] == "ssim" and (key[0], column) in self.no_ssim:
            return "rescore", self.no_ssim[(key[0], column)]
        return None

    @cached_property
    def rows(self) -> dict[tuple[str, str, str], pd.Series]:
        """The statistics by (row label, metric, column)."""
        return {key: row for key, row in self.stats.iterrows()}

    def text(self) -> pd.DataFrame:
        """The table as printed, with the metric level dropped when there is only one metric."""
        printed = pd.DataFrame({column: [self.cell_text(key, column, value) for key, value in series.items()]
                                for column, series in self.table.items()}, index=self.table.index)
        if printed.index.get_level_values("metric").nunique() == 1:
            return printed.droplevel("metric")
        return printed.rename(index=lambda key: METRICS[key].label if key in METRICS else key, level="metric")

    def csv(self) -> pd.DataFrame:
        """The statistics as a long table in the units shown: method, metric, column, mean, ci_low, ci_high,
        n_images, n_seeds, seed_std, tie_with_best, paper, delta (ours minus the paper's)."""
        frame = self.stats.reset_index()
        scale = frame["metric"].map(lambda metric: METRICS[metric].scale)
        for name in ("mean", "ci_low", "ci_high", "seed_std", "paper", "delta"):
            frame[name] = (frame[name] * scale).round(4)
        frame["metric"] = frame["metric"].map(lambda metric: METRICS[metric].label)
        return frame.rename(columns={"tie": "tie_with_best"})


def build_report(spec: TableSpec, cells: list[Cell], store: ResultStore) -> Report:
    """The report of the given cells of `spec`, with the paper's column beside each of ours. SSIM is left
    out of a (row, column) where any of its cells has none stored, so that it covers the seeds PSNR covers."""
    metrics = table_metrics(spec.metrics)
    values = collect(cells, store, metrics)
    no_ssim = missing_ssim(spec, cells, store)
    lacking = [metric == "ssim" and (row, column) in no_ssim
               for row, metric, column in zip(values["row"], values["metric"], values["column"])]
    values = values[~np.array(lacking, dtype=bool)]
    groups = {key: group for key, group in values.groupby(["row", "metric", "column"], sort=False)}
    stats = pd.DataFrame.from_dict({key: cell_statistics(group) for key, group in groups.items()}, orient="index",
                                   columns=STATS)
    stats.index = pd.MultiIndex.from_tuples(stats.index, names=["method", "metric", "column"]) if len(stats) else \
        pd.MultiIndex.from_tuples([], names=["method", "metric", "column"])
    ours = stats["mean"].unstack("column") if len(stats) else pd.DataFrame()
    shown = {cell.row for cell in cells}
    index = pd.MultiIndex.from_tuples([(row.label, metric) for row in spec.rows for metric in metrics
                                       if row.label in shown], names=["method", "metric"])
    reference = paper_numbers(spec.name)
    table = pd.DataFrame(index=index)
    paper_columns = set()
    paper: dict[tuple[str, str, str], float] = {}
    for cell in {cell.column: cell for cell in cells}.values():
        for test_set, label in table_columns(cell):
            table[label] = ours.reindex(index)[label] if label in ours else np.nan
            column = DATASETS.get(cell.dataset).paper_columns.get(test_set)
            if column and column in reference.columns:
                paper_columns.add(f"{label} paper ({column})")
                table[f"{label} paper ({column})"] = reference[column].reindex(index)
                paper.update({(*key, label): number for key, number in reference[column].reindex(index).dropna().items()})
    stats["paper"] = [paper.get(key, np.nan) for key in stats.index]
    stats["delta"] = stats["mean"] - stats["paper"]
    images: dict[str, dict[str, dict[str, pd.Series]]] = {}
    for (row, metric, column), group in groups.items():
        if METRICS[metric].per_image:
            images.setdefault(metric, {}).setdefault(column, {})[row] = per_image(group)
    undecided = {metric: undecided_columns(columns) for metric, columns in images.items()}
    tied = {(row, metric, column) for metric, columns in images.items() for column, rows in columns.items()
            if column not in undecided[metric] for row in ties_with_best(rows)}
    stats["tie"] = [key in tied for key in stats.index]
    reasons = {(cell.row, label): f"{cell.row} on {cell.column}: {cell.not_applicable}"
               for cell in cells if cell.not_applicable for _, label in table_columns(cell)}
    failures = [(cell, store.failure(cell.id)) for cell in cells if not cell.not_applicable]
    failed = {(cell.row, label): f"{cell.row} on {cell.column} (seed {cell.seed}): {reason}"
              for cell, reason in failures if reason for _, label in table_columns(cell)}
    datasets = column_datasets(cells)
    unscored_columns = {label: f"{cell.column}: {reason}" for cell, dataset in datasets.values()
                        for test_set, label in table_columns(cell) if (reason := dataset.unscored(test_set))}
    unscored = {(cell.row, label): unscored_columns[label] for cell in cells if not cell.not_applicable
                for _, label in table_columns(cell) if label in unscored_columns}
    missing = sum(not cell.not_applicable and not store.has(cell.id) for cell in cells)
    order = {label: i for i, label in enumerate(table.columns)}
    stats = stats.reindex(sorted(stats.index, key=lambda key: (index.get_loc(key[:2]), order.get(key[2], 0))))
    methods = {cell.method for cell in cells}
    return Report(table, reasons, missing, frozenset(paper_columns), dataset_notes(datasets, methods), failed, stats,
                  images, undecided.get("psnr", {}), unscored, no_ssim)


def column_datasets(cells: list[Cell]) -> dict[str, tuple[Cell, DenoisingDataModule]]:
    """Column -> a cell of it and its dataset, built once (without loading data)."""
    return {column: (cell, DATASETS.get(cell.dataset)(**cell.dataset_kwargs))
            for column, cell in {cell.column: cell for cell in cells}.items()}


def dataset_notes(datasets: dict[str, tuple[Cell, DenoisingDataModule]], methods: set[str]) -> list[str]:
    """One line per column: what its dataset is, which dataset of the paper it is or stands in for,
    and, where the table has NLM or BM3D, the noise level they use there."""
    notes = []
    for cell, dataset in datasets.values():
        paper = " / ".join(dict.fromkeys(dataset.paper_columns.values()))
        role = "" if not paper else f"; stand-in for the paper's {paper}" if dataset.stand_in else f"; the paper's {paper}"
        name = f"`{cell.column}`" + (f" (`{cell.dataset}`)" if cell.column != cell.dataset else "")
        draws = f", each test image under {dataset.test_draws} fixed noise draws" if dataset.test_draws > 1 else ""
        filters = f"; {classical_noise_note(dataset)}" if {"nlm", "bm3d"} & methods else ""
        notes.append(f"- {name}: {dataset.description}{draws}{role}{filters}.")
    return notes


def classical_noise_note(dataset: DenoisingDataModule) -> str:
    """Which noise level NLM and BM3D (with noise_level 'known') filter a dataset's test sets at."""
    described = {}
    for test_set in dataset.test_sets:
        view = known_noise(noise) if (noise := dataset.known_noise(test_set)) is not None else None
        described[test_set] = view.describe() if view else "a sigma estimated from each noisy image (wavelet MAD)"
    if len(set(described.values())) == 1:
        return f"NLM and BM3D use {next(iter(described.values()))}"
    return "NLM and BM3D use " + "; ".join(f"on {test_set}, {text}" for test_set, text in described.items())


def uncertainty_note(report: Report) -> list[str]:
    """What the fields, marks and counts of a table mean, with the seeds and images behind them."""
    if report.stats.empty:
        return []
    metrics = report.stats.index.get_level_values("metric")
    psnr = report.stats.xs("psnr", level="metric") if "psnr" in metrics else None
    lines = ["Uncertainty: `mean +- h`, the mean over test images of each image's PSNR (or SSIM) averaged over seeds "
             "and noise draws, and h the half-width of its 95% bootstrap confidence interval over test images "
             f"({statistics.RESAMPLES} seeded resamples; none with one image). **Bold**: not significantly below the "
             "column's best in that metric (paired per-image test against the best: exact sign-flip up to "
             f"{statistics.EXACT_MAX_IMAGES} images, Wilcoxon signed-rank above; Holm over the column's comparisons; "
             f"alpha {statistics.ALPHA}). The paper's field holds its number and, in brackets, ours minus it."]
    if "ssim" in metrics:
        lines += ["", f"SSIM: torchmetrics' structural similarity with the standard Gaussian window ({SSIM_WINDOW} taps, "
                  f"sigma {SSIM_SIGMA}; K1 0.01, K2 0.03), on the arrays PSNR scores (the same data range and transform), "
                  "a volume in 3-D, the border of half a window left out as scikit-image leaves it out."]
    if psnr is not None and len(psnr):
        counts = psnr.groupby("column", sort=False)[["n_images", "n_seeds"]].max()
        lines += ["", "Seeds and images per column: " + "; ".join(
            f"{column}: {int(row.n_seeds)} seed(s), {int(row.n_images)} image(s)" for column, row in counts.iterrows())
            + "."]
    if report.undecided:
        lines += ["", "No marks in " + "; ".join(
            f"{column} ({n} images, {m} comparisons: the sign-flip test's smallest p, 2/2^{n} = "
            f"{statistics.smallest_p(n):.3g}, times {m} exceeds {statistics.ALPHA})"
            for column, (n, m) in report.undecided.items())
            + ": with so few test images no paired test can separate any two methods there, however far apart."]
    return lines


NOTE_MARKS = "abcdefghijklmnopqrstuvwxyz"


def note_marks(notes: list[Note], columns: list[str]) -> dict[tuple[str, str | None], str]:
    """(row label, printed column, or None for the label itself) -> the marks ' [a]' of the notes on it:
    a note with a paper column (e.g. BSD68) marks the paper's number of its row in that column."""
    marks: dict[tuple[str, str | None], str] = {}
    for mark, note in zip(NOTE_MARKS, notes):
        targets = [None] if note.column is None else [c for c in columns if c.endswith(f" paper ({note.column})")]
        for target in targets:
            marks[(note.row, target)] = marks.get((note.row, target), "") + f" [{mark}]"
    return marks


def table_markdown(spec: TableSpec, preset: str, report: Report) -> str:
    """The table's Markdown page: the fields, their footnotes and notes, the uncertainty note, the datasets."""
    printed = report.text()
    lines = [f"# {spec.title}", "",
             f"Preset `{preset}`. Ours: mean over test images of the per-image value, by each dataset's protocol. "
             "Paper: the published number of the column named in brackets.", ""]
    header = [*printed.index.names, *printed.columns]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # One footnote per (kind, reason), shared by the fields it explains, numbered across the kinds.
    footnotes: list[tuple[str, str]] = []
    marks = note_marks(spec.notes(preset), list(printed.columns))
    for table_key, (key, row) in zip(report.table.index, printed.iterrows()):
        keys = list(key) if isinstance(key, tuple) else [key]
        fields = []
        for column, text in row.items():
            if (footnote := report.footnote(table_key, column, text)) is not None:
                note = (footnote[0], footnote[1] + ".")
                if note not in footnotes:
                    footnotes.append(note)
                text = f"{text} [{footnotes.index(note) + 1}]".lstrip()
            fields.append(text + marks.get((keys[0], column), ""))
        label = keys[0] + marks.get((keys[0], None), "")
        lines.append("| " + " | ".join([label, *keys[1:], *fields]) + " |")
    for kind, heading in NOTE_HEADINGS.items():
        if any(k == kind for k, _ in footnotes):
            lines += ["", heading] + [f"{i}. {note}" for i, (k, note) in enumerate(footnotes, start=1) if k == kind]
    if spec.notes(preset):
        lines += ["", "Notes:"] + [f"{mark}. {note.text}" for mark, note in zip(NOTE_MARKS, spec.notes(preset))]
    note = uncertainty_note(report)
    if note:
        lines += ["", *note]
    lines += ["", "Datasets:", *report.dataset_notes]
    if report.missing:
        lines += ["", f"{report.missing} cell(s) have not finished; their fields are empty."]
    return "\n".join(lines) + "\n"


def reference_row(spec: TableSpec, reference: str | None) -> str | None:
    """The row label a comparison is made against: `reference` (a row label or method name of the
    table; an unknown one is a ConfigError), else the default `noise2same` where the table has it."""
    for row in spec.rows:
        if (reference or DEFAULT_REFERENCE) in (row.label, row.method):
            return row.label
    if reference is not None:
        raise ConfigError(f"--reference {reference!r} is not a row of {spec.name}; its rows: "
                          + ", ".join(row.label for row in spec.rows))
    return None


def comparison(spec: TableSpec, report: Report, against: str) -> pd.DataFrame:
    """Every other row against `against` in every column, in each per-image metric (`metric`: its label):
    the mean paired per-image difference (PSNR in dB, SSIM), its 95% CI, the test and the Holm-adjusted
    p-value within the column and metric."""
    frames = []
    for metric, columns in report.images.items():
        for column, rows in columns.items():
            images = {row: scores for row, scores in rows.items() if len(scores)}
            if against in images:
                frames.append(compare(images, against).assign(metric=METRICS[metric].label, column=column))
    if not frames:
        return pd.DataFrame()
    order = {"metric": {METRICS[metric].label: i for i, metric in enumerate(report.images)},
             "row": {row.label: i for i, row in enumerate(spec.rows)},
             "column": {column: i for i, column in enumerate(report.table.columns)}}
    frame = pd.concat(frames).reset_index()
    frame = frame.sort_values(["metric", "row", "column"], key=lambda values: values.map(order[values.name]),
                              kind="stable")
    return frame[["row", "metric", "column", "difference", "ci_low", "ci_high", "n_images", "test", "p", "p_holm"]]


def comparison_markdown(spec: TableSpec, preset: str, against: str, frame: pd.DataFrame) -> str:
    """The comparison as one table per metric: one row per method, one field per column
    `+d [low, high] p=...`."""
    decimals = {metric.label: metric.decimals for metric in METRICS.values()}

    def field_text(row: pd.Series) -> str:
        places = decimals[row["metric"]]
        if pd.isna(row["ci_low"]):
            return f"{row['difference']:+.{places}f} (n={row['n_images']})"
        mark = "**" if row["p_holm"] < statistics.ALPHA else ""
        return (f"{mark}{row['difference']:+.{places}f} [{row['ci_low']:+.{places}f}, {row['ci_high']:+.{places}f}] "
                f"p={row['p_holm']:.3g}{mark}")

    lines = [f"# {spec.title}: each method minus {against}", "",
             f"Preset `{preset}`. Field: mean over test images of the paired difference (method minus {against}) of "
             "each image's PSNR (dB) or SSIM, first averaged over seeds and noise draws; in brackets its 95% paired "
             "bootstrap interval; p: the paired test's p-value (exact sign-flip up to "
             f"{statistics.EXACT_MAX_IMAGES} images, Wilcoxon signed-rank above), Holm-adjusted over the column's "
             f"comparisons; **bold**: significant at alpha {statistics.ALPHA}."]
    for metric, block in frame.groupby("metric", sort=False):
        columns = list(dict.fromkeys(block["column"]))
        lines += ["", f"{metric}{' (dB)' if metric == METRICS['psnr'].label else ''}:", "",
                  "| method | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 1)]
        for row, group in block.groupby("row", sort=False):
            by_column = {r["column"]: field_text(r) for _, r in group.iterrows()}
            lines.append(f"| {row} | " + " | ".join(by_column.get(column, "") for column in columns) + " |")
    return "\n".join(lines) + "\n"


def write_report(spec: TableSpec, preset: str, cells: list[Cell], store: ResultStore, results_dir: Path,
                 reference: str | None = None) -> pd.DataFrame:
    """Write results/<table>.md and .csv, the forest plot <table>.png, the galleries of the stored crops
    gallery_<table>_<column>.png and, where the table has the reference row, <table>_vs_<reference>.md and
    .csv; returns the table as printed (text fields)."""
    from benchmark.figures import plot_forest  # figures imports this module's helpers
    from benchmark.gallery import write_galleries  # so does the gallery

    against = reference_row(spec, reference)
    report = build_report(spec, cells, store)
    printed = report.text()
    results_dir.mkdir(parents=True, exist_ok=True)
    report.csv().to_csv(results_dir / f"{spec.name}.csv", index=False)
    (results_dir / f"{spec.name}.md").write_text(table_markdown(spec, preset, report))
    if report.images:  # per-image scores: PSNR, SSIM
        plot_forest(report, spec.title, results_dir / f"{spec.name}.png")
    if against is not None:
        frame = comparison(spec, report, against)
        if not frame.empty:
            name = f"{spec.name}_vs_{against.replace(' ', '_')}"
            frame.round(4).to_csv(results_dir / f"{name}.csv", index=False)
            (results_dir / f"{name}.md").write_text(comparison_markdown(spec, preset, against, frame))
    write_galleries(spec, cells, store, results_dir)
    return printed
