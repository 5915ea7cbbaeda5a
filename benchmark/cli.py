"""Command line: python -m benchmark {run,report,methods,datasets}."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmark.registry import ConfigError
from benchmark.report import write_report
from benchmark.runner import run_cells
from benchmark.spec import TableSpec
from benchmark.store import ResultStore
from datamodules import DATASETS
from methods import METHODS


def _names(text: str | None) -> list[str] | None:
    return [name.strip() for name in text.split(",") if name.strip()] if text else None


def _table_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("table", help="table to run, e.g. table3 (specs in benchmark/specs/)")
    parser.add_argument("--preset", default="cpu", help="preset of the spec (default: cpu)")
    parser.add_argument("--methods", help="comma-separated subset of the table's methods")
    parser.add_argument("--datasets", help="comma-separated subset of the table's datasets")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="folder for the report; the store and run logs go to <results>/runs (default: results)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmark",
                                     description="Noise2Same benchmark suite: run and report the paper's tables.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a table's missing cells, then write its report")
    _table_args(run)
    run.add_argument("--accelerator", default="auto", help="Lightning accelerator: auto, cpu, gpu (default: auto)")
    report = commands.add_parser("report", help="write a table's report from the cells already stored")
    _table_args(report)
    commands.add_parser("methods", help="list the registered methods")
    commands.add_parser("datasets", help="list the registered datasets")
    return parser


def _select(args: argparse.Namespace) -> tuple[TableSpec, list]:
    spec = TableSpec.load(args.table)
    seeds = [int(s) for s in _names(args.seeds)] if args.seeds else None
    return spec, spec.cells(args.preset, _names(args.methods), _names(args.datasets), seeds)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "methods":
            for name in METHODS.names():
                cls = METHODS.get(name)
                kind = "trained on " + ", ".join(sorted(cls.train_keys)) if cls.trainable else "classical"
                print(f"{name:<20} {kind:<28} {METHODS.origin(name)}")
            return 0
        if args.command == "datasets":
            for name in DATASETS.names():
                cls = DATASETS.get(name)
                print(f"{name:<16} {cls.description}")
            return 0
        spec, cells = _select(args)
        store = ResultStore(args.results / "runs" / "cells")
        failed = []
        if args.command == "run":
            failed = run_cells(cells, store, args.results / "runs", args.accelerator)
        table = write_report(spec, args.preset, cells, store, args.results)
        print(table.to_string())
        print(f"wrote {args.results / (spec.name + '.md')} and {args.results / (spec.name + '.csv')}")
        if failed:
            print(f"{len(failed)} cell(s) failed: {', '.join(failed)}; run again to retry them", file=sys.stderr)
            return 1
        return 0
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
