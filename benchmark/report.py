"""Reports: the stored cells of a table pivoted into results/<table>.csv and .md, the paper's number
beside ours."""

from __future__ import annotations

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


def collect(cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """One row per cell: dataset, method, seed and its mean PSNR (NaN where the cell has not finished)."""
    rows = []
    for cell in cells:
        result = store.load(cell.id)
        rows.append({"dataset": cell.dataset, "method": cell.method, "seed": cell.seed, "id": cell.id,
                     "psnr": result["psnr_mean"] if result else float("nan")})
    return pd.DataFrame(rows)


def pivot(spec: TableSpec, cells: list[Cell], store: ResultStore) -> pd.DataFrame:
    """Methods as rows; for each dataset a column of our PSNR (mean over seeds) and one of the paper's."""
    per_cell = collect(cells, store)
    ours = per_cell.groupby(["method", "dataset"], sort=False)["psnr"].mean().unstack("dataset")
    methods = [m for m in spec.methods if m in ours.index]
    datasets = [d for d in spec.datasets if d in ours.columns]
    reference = paper_numbers(spec.name)
    table = pd.DataFrame(index=pd.Index(methods, name="method"))
    for dataset in datasets:
        table[dataset] = ours.loc[methods, dataset]
        column = DATASETS.get(dataset).paper_column
        if column and column in reference.columns:
            table[f"{dataset} paper ({column})"] = reference[column].reindex(methods)
    return table


def _markdown(spec: TableSpec, preset: str, table: pd.DataFrame, missing: int) -> str:
    lines = [f"# {spec.title}", "",
             f"Preset `{preset}`. Ours: mean over test images of the per-image PSNR, by each dataset's protocol. "
             "Paper: the published number of the column named in brackets.", ""]
    header = ["method", *table.columns]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in table.iterrows():
        cells = ["" if pd.isna(value) else f"{value:.2f}" for value in row]
        lines.append("| " + " | ".join([method, *cells]) + " |")
    lines += ["", "Datasets:"]
    for dataset in [c for c in table.columns if c in spec.datasets]:
        cls = DATASETS.get(dataset)
        role = f"stand-in for the paper's {cls.paper_column}" if cls.stand_in else f"the paper's {cls.paper_column}"
        lines.append(f"- `{dataset}`: {cls.description}; {role}.")
    if missing:
        lines += ["", f"{missing} cell(s) have not finished; their fields are empty."]
    return "\n".join(lines) + "\n"


def write_report(spec: TableSpec, preset: str, cells: list[Cell], store: ResultStore, results_dir: Path) -> pd.DataFrame:
    """Write results/<table>.csv and .md for the given cells and return the table."""
    table = pivot(spec, cells, store)
    missing = sum(not store.has(cell.id) for cell in cells)
    results_dir.mkdir(parents=True, exist_ok=True)
    table.round(2).to_csv(results_dir / f"{spec.name}.csv")
    (results_dir / f"{spec.name}.md").write_text(_markdown(spec, preset, table, missing))
    return table
