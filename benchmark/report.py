"""Reports: the stored cells of a table pivoted into results/<table>.csv and .md, the paper's number
beside ours."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from benchmark.spec import Cell, TableSpec
from benchmark.store import ResultStore
from datamodules import DATASETS


def paper_numbers(table: str) -> pd.DataFrame:
    """The paper's published table (methods x paper columns), empty if the paper has none for `table`."""
    path = resources.files("benchmark") / "reference" / f"paper_{table}.csv"
    if not path.is_file():
        return pd.DataFrame()
    return pd.read_csv(path, index_col="method")


def table_columns(dataset: str) -> list[tuple[str, str]]:
    """(test set, column label) of a dataset: its name, or '<name> <test set>' when it has several."""
    test_sets = DATASETS.get(dataset).test_sets
    return [(name, dataset if len(test_sets) == 1 else f"{dataset} {name}") for name in test_sets]


def collect(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """One row per cell and test set: method, column label, seed and mean PSNR (NaN until it has finished)."""
    rows = []
    for cell in cells:
        result = store.load(cell.id)
        for test_set, label in table_columns(cell.dataset):
            psnr = result["tests"][test_set]["psnr_mean"] if result else float("nan")
            rows.append({"method": cell.method, "column": label, "seed": cell.seed, "psnr": psnr})
    return pd.DataFrame(rows)


@dataclass
class Report:
    """Methods as rows; per test set our PSNR (mean over seeds) and the paper's; n/a notes by (method, column)."""

    table: pd.DataFrame
    not_applicable: dict[tuple[str, str], str]
    missing: int
    paper_columns: frozenset[str]
    dataset_notes: list[str]

    def cell_text(self, method: str, column: str, value: float) -> str:
        """A field: the number; 'n/a' for a cell that does not apply; '' for one not yet run; '-' where
        the paper has no number."""
        if (method, column) in self.not_applicable:
            return "n/a"
        if pd.isna(value):
            return "-" if column in self.paper_columns else ""
        return f"{value:.2f}"


def build_report(spec: TableSpec, cells: list[Cell], store: ResultStore) -> Report:
    """The report of the given cells of `spec`, with the paper's column beside each of ours."""
    ours = collect(cells, store).groupby(["method", "column"], sort=False)["psnr"].mean().unstack("column")
    methods = [m for m in spec.methods if m in ours.index]
    reference = paper_numbers(spec.name)
    table = pd.DataFrame(index=pd.Index(methods, name="method"))
    paper_columns = set()
    for dataset in dict.fromkeys(cell.dataset for cell in cells):
        for test_set, label in table_columns(dataset):
            table[label] = ours.loc[methods, label]
            column = DATASETS.get(dataset).paper_columns.get(test_set)
            if column and column in reference.columns:
                paper_columns.add(f"{label} paper ({column})")
                table[f"{label} paper ({column})"] = reference[column].reindex(methods)
    reasons = {(cell.method, label): f"{cell.method} on {cell.dataset}: {cell.not_applicable}"
               for cell in cells if cell.not_applicable for _, label in table_columns(cell.dataset)}
    missing = sum(not cell.not_applicable and not store.has(cell.id) for cell in cells)
    return Report(table, reasons, missing, frozenset(paper_columns), dataset_notes(cells))


def dataset_notes(cells: list[Cell]) -> list[str]:
    """One line per dataset of the cells: what it is and which dataset of the paper it is or stands in for."""
    notes = []
    for cell in {cell.dataset: cell for cell in cells}.values():
        dataset = DATASETS.get(cell.dataset)(**{k: v for k, v in cell.config["dataset"].items() if k != "name"})
        paper = " / ".join(dict.fromkeys(dataset.paper_columns.values()))
        role = f"stand-in for the paper's {paper}" if dataset.stand_in else f"the paper's {paper}"
        notes.append(f"- `{cell.dataset}`: {dataset.description}; {role}.")
    return notes


def _markdown(spec: TableSpec, preset: str, report: Report) -> str:
    table = report.table
    lines = [f"# {spec.title}", "",
             f"Preset `{preset}`. Ours: mean over test images of the per-image PSNR, by each dataset's protocol. "
             "Paper: the published number of the column named in brackets.", ""]
    header = ["method", *table.columns]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes: list[str] = []  # one per (method, dataset), shared by the dataset's test-set columns
    for method, row in table.iterrows():
        fields = []
        for column, value in row.items():
            text = report.cell_text(method, column, value)
            if text == "n/a":
                note = report.not_applicable[(method, column)] + "."
                if note not in footnotes:
                    footnotes.append(note)
                text = f"n/a [{footnotes.index(note) + 1}]"
            fields.append(text)
        lines.append("| " + " | ".join([method, *fields]) + " |")
    if footnotes:
        lines += ["", "Not applicable:"] + [f"{i}. {note}" for i, note in enumerate(footnotes, start=1)]
    lines += ["", "Datasets:", *report.dataset_notes]
    if report.missing:
        lines += ["", f"{report.missing} cell(s) have not finished; their fields are empty."]
    return "\n".join(lines) + "\n"


def write_report(spec: TableSpec, preset: str, cells: list[Cell], store: ResultStore, results_dir: Path) -> pd.DataFrame:
    """Write results/<table>.csv and .md for the given cells; returns the table as printed (text fields)."""
    report = build_report(spec, cells, store)
    printed = pd.DataFrame({column: [report.cell_text(method, column, value) for method, value in series.items()]
                            for column, series in report.table.items()}, index=report.table.index)
    results_dir.mkdir(parents=True, exist_ok=True)
    printed.to_csv(results_dir / f"{spec.name}.csv")
    (results_dir / f"{spec.name}.md").write_text(_markdown(spec, preset, report))
    return printed
