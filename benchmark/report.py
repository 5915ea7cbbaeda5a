"""Reports: the stored cells of a table pivoted into results/<table>.csv and .md, the paper's number
beside ours."""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

from benchmark.spec import Cell, TableSpec
from benchmark.store import ResultStore
from datamodules import DATASETS


@dataclass(frozen=True)
class Metric:
    """A measurement a table shows: its key in a stored test set, its label, display scale and decimals."""

    key: str
    label: str
    scale: float = 1.0
    decimals: int = 2


METRICS = {"psnr": Metric("psnr_mean", "PSNR"), "d_f": Metric("d_f", "D(f) x1e-3", 1e3, 3)}


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


def collect(cells: list[Cell], store: ResultStore, metrics: list[str]) -> pd.DataFrame:
    """One row per cell, test set and metric: row and column labels, seed and value (NaN until the
    cell has finished)."""
    records = []
    for cell in cells:
        result = store.load(cell.id)
        for test_set, label in table_columns(cell):
            for metric in metrics:
                value = result["tests"][test_set].get(METRICS[metric].key) if result else None
                records.append({"row": cell.row, "metric": metric, "column": label, "seed": cell.seed,
                                "value": float("nan") if value is None else value})
    return pd.DataFrame(records)


@dataclass
class Report:
    """Rows (row label, metric) by columns: ours (mean over seeds) and, beside each, the paper's;
    n/a notes and failure reasons by (row label, column)."""

    table: pd.DataFrame
    not_applicable: dict[tuple[str, str], str]
    missing: int
    paper_columns: frozenset[str]
    dataset_notes: list[str]
    failed: dict[tuple[str, str], str] = field(default_factory=dict)

    def cell_text(self, key: tuple[str, str], column: str, value: float) -> str:
        """A field: the number; 'n/a' for a cell that does not apply; 'failed' for one whose run (of
        any seed) failed; '' for one not yet run; '-' where the paper has no number."""
        if (key[0], column) in self.not_applicable:
            return "n/a"
        if (key[0], column) in self.failed:
            return "failed"
        if pd.isna(value):
            return "-" if column in self.paper_columns else ""
        metric = METRICS[key[1]]
        return f"{value * metric.scale:.{metric.decimals}f}"

    def text(self) -> pd.DataFrame:
        """The table as printed, with the metric level dropped when there is only one metric."""
        printed = pd.DataFrame({column: [self.cell_text(key, column, value) for key, value in series.items()]
                                for column, series in self.table.items()}, index=self.table.index)
        if printed.index.get_level_values("metric").nunique() == 1:
            return printed.droplevel("metric")
        return printed.rename(index=lambda key: METRICS[key].label if key in METRICS else key, level="metric")


def build_report(spec: TableSpec, cells: list[Cell], store: ResultStore) -> Report:
    """The report of the given cells of `spec`, with the paper's column beside each of ours."""
    values = collect(cells, store, spec.metrics)
    ours = values.groupby(["row", "metric", "column"], sort=False)["value"].mean().unstack("column")
    index = pd.MultiIndex.from_tuples([(row.label, metric) for row in spec.rows for metric in spec.metrics
                                       if (row.label, metric) in ours.index], names=["method", "metric"])
    reference = paper_numbers(spec.name)
    table = pd.DataFrame(index=index)
    paper_columns = set()
    for cell in {cell.column: cell for cell in cells}.values():
        for test_set, label in table_columns(cell):
            table[label] = ours.reindex(index)[label]
            column = DATASETS.get(cell.dataset).paper_columns.get(test_set)
            if column and column in reference.columns:
                paper_columns.add(f"{label} paper ({column})")
                table[f"{label} paper ({column})"] = reference[column].reindex(index)
    reasons = {(cell.row, label): f"{cell.row} on {cell.column}: {cell.not_applicable}"
               for cell in cells if cell.not_applicable for _, label in table_columns(cell)}
    failures = [(cell, store.failure(cell.id)) for cell in cells if not cell.not_applicable]
    failed = {(cell.row, label): f"{cell.row} on {cell.column} (seed {cell.seed}): {reason}"
              for cell, reason in failures if reason for _, label in table_columns(cell)}
    missing = sum(not cell.not_applicable and not store.has(cell.id) for cell in cells)
    return Report(table, reasons, missing, frozenset(paper_columns), dataset_notes(cells), failed)


def dataset_notes(cells: list[Cell]) -> list[str]:
    """One line per column of the cells: what its dataset is and which dataset of the paper it is or
    stands in for."""
    notes = []
    for cell in {cell.column: cell for cell in cells}.values():
        dataset = DATASETS.get(cell.dataset)(**{k: v for k, v in cell.config["dataset"].items() if k != "name"})
        paper = " / ".join(dict.fromkeys(dataset.paper_columns.values()))
        role = f"stand-in for the paper's {paper}" if dataset.stand_in else f"the paper's {paper}"
        name = f"`{cell.column}`" + (f" (`{cell.dataset}`)" if cell.column != cell.dataset else "")
        notes.append(f"- {name}: {dataset.description}; {role}.")
    return notes


def _markdown(spec: TableSpec, preset: str, report: Report) -> str:
    printed = report.text()
    lines = [f"# {spec.title}", "",
             f"Preset `{preset}`. Ours: mean over test images of the per-image value, by each dataset's protocol. "
             "Paper: the published number of the column named in brackets.", ""]
    header = [*printed.index.names, *printed.columns]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    # One footnote per (row, column), shared by a dataset's test-set columns, numbered across both kinds.
    notes = {"n/a": report.not_applicable, "failed": report.failed}
    footnotes: list[tuple[str, str]] = []
    for key, row in printed.iterrows():
        keys = list(key) if isinstance(key, tuple) else [key]
        fields = []
        for column, text in row.items():
            if text in notes:
                note = (text, notes[text][(keys[0], column)] + ".")
                if note not in footnotes:
                    footnotes.append(note)
                text = f"{text} [{footnotes.index(note) + 1}]"
            fields.append(text)
        lines.append("| " + " | ".join([*keys, *fields]) + " |")
    for kind, heading in (("n/a", "Not applicable:"), ("failed", "Failed (`--retry-failed` runs them again):")):
        if any(k == kind for k, _ in footnotes):
            lines += ["", heading] + [f"{i}. {note}" for i, (k, note) in enumerate(footnotes, start=1) if k == kind]
    lines += ["", "Datasets:", *report.dataset_notes]
    if report.missing:
        lines += ["", f"{report.missing} cell(s) have not finished; their fields are empty."]
    return "\n".join(lines) + "\n"


def write_report(spec: TableSpec, preset: str, cells: list[Cell], store: ResultStore, results_dir: Path) -> pd.DataFrame:
    """Write results/<table>.csv and .md for the given cells; returns the table as printed (text fields)."""
    report = build_report(spec, cells, store)
    printed = report.text()
    results_dir.mkdir(parents=True, exist_ok=True)
    printed.to_csv(results_dir / f"{spec.name}.csv")
    (results_dir / f"{spec.name}.md").write_text(_markdown(spec, preset, report))
    return printed
