"""Command line: python -m benchmark {run,report,methods,datasets,data,bench}."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

from benchmark.bench import BenchConfig, run_bench
from benchmark.figures import FIGURES, write_figure
from benchmark.launchers import LaunchOptions
from benchmark.registry import ConfigError
from benchmark.report import write_report
from benchmark.runner import dry_run, run_cells
from benchmark.spec import TableSpec
from benchmark.store import ResultStore
from benchmark.tracking import log_table
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
    parser.add_argument("--methods", help="comma-separated subset of the table's rows; +NAME adds a row for any "
                        "registered method, e.g. a plugin's (+NAME alone: every row and NAME's)")
    parser.add_argument("--datasets", help="comma-separated subset of the table's datasets")
    parser.add_argument("--seeds", help="comma-separated seeds (default: the preset's)")
    parser.add_argument("--results", type=Path, default=Path("results"),
                        help="folder for the report; the store and run logs go to <results>/runs (default: results)")
    parser.add_argument("--d-f", action="store_true",
                        help="also measure D(f), the J-invariance metric, on every trained cell and report it")
    parser.add_argument("--precision", help="Lightning precision of every trained cell, e.g. bf16-mixed (a new cell id)")
    parser.add_argument("--channels-last", action="store_true", help="train in channels_last memory format")
    parser.add_argument("--compile", nargs="?", const=True, default=False, metavar="BACKEND",
                        help="train a torch.compile'd network (default backend inductor, or the one named)")


def _gpu_ids(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(name) for name in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"GPU ids are comma-separated whole numbers, e.g. 0,1; got {text!r}") from None


def _launch_args(parser: argparse.ArgumentParser) -> None:
    """Where the cells run (launcher, devices and nodes per cell, SLURM settings) and which are retried."""
    group = parser.add_argument_group("launching", "where the cells run (README: Running at scale)")
    group.add_argument("--launcher", default="local",
                       help="local: one cell after another in this process (default); gpus: one cell per GPU of "
                            "this machine at a time; slurm: SLURM job arrays (all through the same store)")
    group.add_argument("--devices", type=int, help="devices (GPUs) per node for each trained cell; more than one "
                       "trains it with DDP, tested on one device (default: the preset's, else 1)")
    group.add_argument("--nodes", type=int, help="nodes per trained cell, with --launcher slurm (default: 1)")
    group.add_argument("--gpus", type=_gpu_ids, help="GPU ids the gpus launcher uses, e.g. 0,1,2,3 (default: every visible GPU)")
    group.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    group.add_argument("--time", type=int, default=24 * 60,
                       help="time limit of a cell in minutes under gpus and slurm; past it the cell is requeued "
                            "and resumes from its checkpoint (default: 1440)")
    group.add_argument("--array-parallelism", type=int, help="SLURM array tasks running at once (default: the cluster's)")
    group.add_argument("--retry-failed", action="store_true", help="run the cells stored as failed again")


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
    _launch_args(run)
    report = commands.add_parser("report", help="write a table's report from the cells already stored")
    _table_args(report)
    commands.add_parser("methods", help="list the registered methods")
    commands.add_parser("datasets", help="list the registered datasets")
    bench = commands.add_parser("bench", help="measure training and inference speed and memory; write results/bench.{md,json}")
    bench.add_argument("--quick", action="store_true", help="a tiny network and short windows (seconds; for tests)")
    bench.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="torch device to measure on (default: cuda if available, else cpu)")
    bench.add_argument("--results", type=Path, default=Path("results"), help="folder for bench.md and bench.json")
    data = commands.add_parser("data", help="which datasets are present under the data folder, and what is missing")
    _data_dir_arg(data)
    return parser


def _select(args: argparse.Namespace) -> tuple[TableSpec, list]:
    """The spec (with D(f) among its metrics if asked) and the cells the arguments pick."""
    spec, methods = TableSpec.load(args.table).with_added_rows(_names(args.methods))
    overrides: dict[str, dict] = {"train": {"precision": args.precision} if args.precision else {},
                                  "speed": {k: getattr(args, k) for k in ("channels_last", "compile") if getattr(args, k)}}
    if args.d_f:
        if spec.kind != "table":
            raise ConfigError(f"--d-f applies to tables; {spec.name} is a figure")
        overrides["evaluation"] = {"d_f": True}
        spec = replace(spec, metrics=list(dict.fromkeys([*spec.metrics, "d_f"])))
    seeds = [int(s) for s in _names(args.seeds)] if args.seeds else None
    return spec, spec.cells(args.preset, methods, _names(args.datasets), seeds, overrides)


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
        if args.command == "bench":
            config = BenchConfig.quick() if args.quick else BenchConfig()
            run_bench(config, torch.device(args.device), args.results)
            print(f"wrote {args.results / 'bench.md'} and {args.results / 'bench.json'}")
            return 0
        spec, cells = _select(args)
        if args.command == "run" and args.dry_run:
            return dry_run(cells, args.data_dir)
        store = ResultStore(args.results / "runs" / "cells")
        failed = []
        if args.command == "run":
            launch = LaunchOptions(args.launcher, args.gpus, args.time, args.partition, args.array_parallelism)
            failed = run_cells(cells, store, args.results / "runs", args.accelerator, args.data_dir,
                               resources=spec.resources(args.preset, args.devices, args.nodes), launch=launch,
                               retry_failed=args.retry_failed)
        write_outputs(spec, args.preset, cells, store, args.results)
        if args.command == "run":  # the table command's own wandb run: the finished table
            log_table(spec, args.preset, cells, store, args.results, args.results / "runs" / "wandb")
        if failed:
            print(f"{len(failed)} cell(s) did not finish: {', '.join(failed)}; run again to resume interrupted ones, "
                  "with --retry-failed to rerun failed ones", file=sys.stderr)
            return 1
        return 0
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
