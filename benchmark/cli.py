"""Command line: python -m benchmark {run,report,methods,datasets,data}."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

from benchmark.figures import FIGURES, write_figure
from benchmark.registry import ConfigError
from benchmark.report import write_report
from benchmark.runner import dry_run, run_cells
from benchmark.spec import TableSpec
from benchmark.store import ResultStore
from datamodules import DATASETS
from methods import METHODS


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "data")),
                        help="folder holding the real datasets (default: $DATA_DIR, else ./data)")


def _table_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", help="table to run, e.g. table3 (specs in benchmark/specs/)")
    parser.add_argument("--preset", default="cpu", help="preset of the spec (default: cpu)")
    parser.add_argument("--methods", help="comma-separated subset of the table's methods")
    parser.add_argument("--datasets", help="comma-separated subset of the table's datasets")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="folder for the report; the store and run logs go to <results>/runs (default: results)")
    parser.add_argument("--d-f", action="store_true",
                        help="also measure D(f), the J-invariance metric, on every trained cell and report it")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark",
                                     description="Noise2Same benchmark suite: run and report the paper's tables.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a table's missing cells, then write its report")
    _table_args(run)
    _data_dir_arg(run)
    run.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu (default: auto)")
    run.add_argument("--dry-run", action="store_true",
                     help="print every cell with its resolved config and cost, check the data, run nothing")
    report = commands.add_parser("report", help="write a table's report from the cells already stored")
    _table_args(report)
    commands.add_parser("methods", help="list the registered methods")
    commands.add_parser("datasets", help="list the registered datasets")
    data = commands.add_parser("data", help="which datasets are present under the data folder, and what is missing")
    _data_dir_arg(data)
    return parser


def _select(args: argparse.Namespace) -> tuple[TableSpec, list]:
    """The spec (with D(f) among its metrics if asked) and the cells the arguments pick."""
    spec = TableSpec.load(args.table)
    evaluation = None
    if args.d_f:
        if spec.kind != "table":
            raise ConfigError(f"--d-f applies to tables; {spec.name} is a figure")
        evaluation = {"d_f": True}
        spec = replace(spec, metrics=list(dict.fromkeys([*spec.metrics, "d_f"])))
    seeds = [int(s) for s in _names(args.seeds)] if args.seeds else None
    return spec, spec.cells(args.preset, _names(args.methods), _names(args.datasets), seeds, evaluation)


def write_outputs(spec: TableSpec, preset: str, cells: list, store: ResultStore, results: Path) -> None:
    """Write and print the table (.md, .csv) or the figure (.png and the .csv behind it)."""
    if spec.kind in FIGURES:
        print(write_figure(spec, cells, store, results).to_string(index=False))
        print(f"wrote {results / (spec.name + '.png')} and {results / (spec.name + '.csv')}")
        return
    print(write_report(spec, preset, cells, store, results).to_string())
    print(f"wrote {results / (spec.name + '.md')} and {results / (spec.name + '.csv')}")


def list_methods() -> int:
    for name in METHODS.names():
        cls = METHODS.get(name)
        kind = "trained on " + ", ".join(sorted(cls.train_keys)) if cls.trainable else "classical"
        print(f"{name:<20} {kind:<28} {METHODS.origin(name)}")
    return 0


def list_datasets() -> int:
    for name in DATASETS.names():
        print(f"{name:<16} {DATASETS.get(name).description}")
    return 0


def show_data(data_dir: Path) -> int:
    """One block per dataset: embedded, present, or the files missing and where they come from."""
    print(f"data folder: {data_dir.resolve()}")
    for name in DATASETS.names():
        dataset = DATASETS.get(name)(data_dir=data_dir)
        if not dataset.expected_files:
            print(f"{name:<16} embedded (nothing to download)")
            continue
        missing = dataset.missing_files()
        print(f"{name:<16} {'present' if not missing else 'MISSING'}")
        for file in dataset.expected_files:
            print(f"    {'ok     ' if data_dir / file not in missing else 'missing'} {data_dir / file}")
        if missing:
            print(f"    source: {dataset.source}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "methods":
            return list_methods()
        if args.command == "datasets":
            return list_datasets()
        if args.command == "data":
            return show_data(args.data_dir)
        spec, cells = _select(args)
        if args.command == "run" and args.dry_run:
            return dry_run(cells, args.data_dir)
        store = ResultStore(args.results / "runs" / "cells")
        failed = []
        if args.command == "run":
            failed = run_cells(cells, store, args.results / "runs", args.accelerator, args.data_dir)
        write_outputs(spec, args.preset, cells, store, args.results)
        if failed:
            print(f"{len(failed)} cell(s) failed: {', '.join(failed)}; run again to retry them", file=sys.stderr)
            return 1
        return 0
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
