"""Command line: python -m benchmark {run,report,rescore,methods,datasets,data,bench,denoise,export}."""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

import torch

from benchmark import denoise, export
from benchmark.bench import SECTIONS, BenchConfig, parse_sections, run_bench
from benchmark.console import whole_numbers
from benchmark.figures import FIGURES, write_figure
from benchmark.html_report import write_index
from benchmark.launchers import LaunchOptions
from benchmark.registry import ConfigError
from benchmark.report import reference_row, write_report
from benchmark.rescore import check_device, rescore_cells
from benchmark.runner import dry_run, run_cells
from benchmark.spec import Cell, TableSpec
from benchmark.store import ResultStore
from benchmark.tracking import log_table
from datamodules import DATASETS
from methods import METHODS


DEFAULT_PRESET = "cpu"  # the preset whose full tables are the committed results


def _names(text: str | None, option: str) -> list[str] | None:
    """The comma-separated names of an option; None when it was not given. A given option that names
    nothing (an empty shell variable) is an error, not 'everything'."""
    if text is None:
        return None
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"{option} {text!r} selects nothing; name at least one, or leave {option} out for all")
    return names


def _seeds(text: str | None) -> list[int] | None:
    """--seeds as whole numbers (their range and duplicates are checked with the spec's seeds)."""
    seeds = []
    for name in _names(text, "--seeds") or []:
        try:
            seeds.append(int(name))
        except ValueError:
            raise ConfigError(f"--seeds: {name!r} is not a whole number; give seeds such as 0,1,2") from None
    return seeds or None


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("DATA_DIR", "data")),
                        help="folder holding the real datasets (default: $DATA_DIR, else ./data)")


def _table_args(parser: argparse.ArgumentParser) -> None:
    """The cells of a table (see `_cell_args`) and the row a comparison is made against."""
    _cell_args(parser)
    parser.add_argument("--reference", help="row the comparison table <table>_vs_<reference>.md sets every method "
                        "against (default: noise2same, where the table has it)")


def _cell_args(parser: argparse.ArgumentParser) -> None:
    """Which cells of a table a command takes: table, preset, rows, datasets, seeds and the options that
    change cells, and the results folder that holds them."""
    parser.add_argument("table", help="table to run, e.g. table3 (specs in benchmark/specs/), or a spec file's path")
    parser.add_argument("--preset", default=DEFAULT_PRESET, help=f"preset of the spec (default: {DEFAULT_PRESET})")
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error, and of each failed cell")
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


def _launch_args(parser: argparse.ArgumentParser) -> None:
    """Where the cells run (launcher, devices and nodes per cell, SLURM settings) and which are retried."""
    group = parser.add_argument_group("launching", "where the cells run (README: Running at scale)")
    group.add_argument("--launcher", default="local",
                       help="local: one cell after another in this process (default); gpus: one cell per GPU of "
                            "this machine at a time; slurm: SLURM job arrays (all through the same store)")
    group.add_argument("--workers", type=_positive, default=1,
                       help="local launcher: cells run side by side, each in its own process with an equal share "
                            "of the cores (default: 1, one cell at a time with every core; make sets the "
                            "machine's core count)")
    group.add_argument("--devices", type=_positive, help="devices (GPUs) per node for each trained cell; more than one "
                       "trains it with DDP, tested on one device (default: the preset's, else 1)")
    group.add_argument("--nodes", type=_positive, help="nodes per trained cell, with --launcher slurm (default: 1)")
    group.add_argument("--gpus", type=whole_numbers("GPU ids", "0,1"),
                       help="GPU ids the gpus launcher uses, e.g. 0,1,2,3 (default: every visible GPU)")
    group.add_argument("--partition", help="SLURM partition (default: the cluster's)")
    group.add_argument("--time", type=_positive, default=24 * 60,
                       help="time limit of a cell in minutes under gpus and slurm; past it the cell is requeued "
                            "and resumes from its checkpoint (default: 1440)")
    group.add_argument("--array-parallelism", type=_positive,
                       help="SLURM array tasks running at once (default: the cluster's)")
    group.add_argument("--requeues", type=int, default=3, help="times a SLURM job that reaches --time is requeued "
                       "to resume from its checkpoint before the cell is stored as failed (default: 3)")
    group.add_argument("--retry-failed", action="store_true", help="run the cells stored as failed again")


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (what was wrong, where to look) and exit status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {message}; see `{self.prog} --help`\n")


def _positive(text: str) -> int:
    """A whole number of at least 1 (an argparse type)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="python -m benchmark",
                           description="Noise2Same benchmark suite: run and report the paper's tables.")
    parser.add_argument("--verbose", action="store_true", help="show the traceback of an error")
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
    _data_dir_arg(report)  # which columns fall back is decided by the data present, as for `run`
    rescore = commands.add_parser("rescore", help="add SSIM to a table's stored cells that lack it, without training: "
                                  "trained cells from their kept checkpoints, classical ones by denoising again")
    _cell_args(rescore)
    _data_dir_arg(rescore)
    rescore.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                         help="torch device to score on; the one the cells were scored on (default: cuda if "
                              "available, else cpu)")
    commands.add_parser("methods", help="list the registered methods")
    commands.add_parser("datasets", help="list the registered datasets")
    bench = commands.add_parser("bench", help="measure training and inference speed and memory; "
                                "write results/bench.{md,json}")
    bench.add_argument("--quick", action="store_true", help="a tiny network and short windows (seconds; for tests)")
    bench.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                       help="torch device to measure on (default: cuda if available, else cpu)")
    bench.add_argument("--results", type=Path, default=Path("results"), help="folder for bench.md and bench.json")
    bench.add_argument("--sections", help=f"re-measure only these sections of the last whole run in --results "
                       f"(comma-separated: {', '.join(SECTIONS)}); the others are kept")
    denoise.add_parser(commands)
    export.add_parser(commands)
    data = commands.add_parser("data", help="which datasets are present under the data folder, and what is missing")
    _data_dir_arg(data)
    return parser


def _select(args: argparse.Namespace) -> tuple[TableSpec, list]:
    """The spec (with D(f) among its metrics if asked) and the cells the arguments pick."""
    spec, methods = TableSpec.load(args.table).with_added_rows(_names(args.methods, "--methods"))
    overrides: dict[str, dict] = {"train": {"precision": args.precision} if args.precision else {},
                                  "speed": {k: getattr(args, k) for k in ("channels_last", "compile") if getattr(args, k)}}
    if args.d_f:
        if spec.kind != "table":
            raise ConfigError(f"--d-f applies to tables; {spec.name} is a figure")
        overrides["evaluation"] = {"d_f": True}
        spec = replace(spec, metrics=list(dict.fromkeys([*spec.metrics, "d_f"])))
    return spec, spec.cells(args.preset, methods, _names(args.datasets, "--datasets"), _seeds(args.seeds), overrides,
                            args.data_dir)


def report_folder(args: argparse.Namespace, spec: TableSpec) -> Path:
    """Where a table command writes its report: the results folder itself only for the full table of
    the default preset (the committed results; more seeds than the preset's are still the full table);
    results/<preset>/ for the full table of another preset; results/<preset>/partial/ for a subset,
    other seeds, extra rows or options that change cells."""
    preset_seeds = set(spec.preset(args.preset).get("seeds", [0]))
    other_seeds = args.seeds is not None and not preset_seeds <= set(_seeds(args.seeds) or [])
    partial = other_seeds or any(getattr(args, key) for key in ("methods", "datasets", "d_f", "precision",
                                                                "channels_last", "compile"))
    if partial:
        return args.results / args.preset / "partial"
    return args.results if args.preset == DEFAULT_PRESET else args.results / args.preset


def check_accelerator(name: str) -> None:
    """A Lightning accelerator name this machine can use (auto, cpu, gpu or cuda with a GPU visible, ...)."""
    from pytorch_lightning.accelerators import AcceleratorRegistry

    valid = ["auto", "gpu", *AcceleratorRegistry.available_accelerators()]
    if name not in valid:
        raise ConfigError(f"unknown accelerator {name!r}; valid accelerators: {', '.join(valid)}")
    if name in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--accelerator {name}: no CUDA GPU is visible here; use --accelerator cpu (or auto)")


def check_stored(spec: TableSpec, preset: str, cells: list[Cell], store: ResultStore) -> None:
    """A report needs at least one stored cell of its table (finished or failed)."""
    if not any(store.record(cell.id) for cell in cells if not cell.not_applicable):
        raise ConfigError(f"no cell of {spec.name} (preset {preset}) is stored in {store.root}; run "
                          f"`python -m benchmark run {spec.name} --preset {preset}` first, or point --results at "
                          "the folder that holds its runs/")


def write_outputs(spec: TableSpec, preset: str, cells: list, store: ResultStore, results: Path,
                  reference: str | None = None) -> None:
    """Write and print the table (.md, .csv, its forest plot .png, galleries and the comparison with
    `reference`) or the figure (.png and the .csv behind it); then the folder's page, index.html."""
    if spec.kind in FIGURES:
        print(write_figure(spec, cells, store, results).to_string(index=False))
        print(f"wrote {results / (spec.name + '.png')} and {results / (spec.name + '.csv')}")
    else:
        print(write_report(spec, preset, cells, store, results, reference).to_string())
        print(f"wrote {results / (spec.name + '.md')} and {results / (spec.name + '.csv')}")
    print(f"wrote {write_index(results, store, preset)}")


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


def run_table(args: argparse.Namespace) -> int:
    """`run` and `report`: resolve and check everything, run the missing cells (run), write the report."""
    spec, cells = _select(args)
    if spec.kind == "table":
        reference_row(spec, args.reference)  # an unknown --reference fails before any cell runs
    store = ResultStore(args.results / "runs" / "cells")
    if args.command == "run":
        check_accelerator(args.accelerator)
        launch = LaunchOptions(args.launcher, args.gpus, args.time, args.partition, args.array_parallelism,
                               args.requeues, args.workers)
        resources = spec.resources(args.preset, args.devices, args.nodes)
        if args.dry_run:
            return dry_run(cells, args.data_dir, store)
        failed = run_cells(cells, store, args.results / "runs", args.accelerator, args.data_dir, resources=resources,
                           launch=launch, retry_failed=args.retry_failed, verbose=args.verbose)
    else:
        check_stored(spec, args.preset, cells, store)
        failed = []
    folder = report_folder(args, spec)
    write_outputs(spec, args.preset, cells, store, folder, args.reference)
    if args.command == "run":  # the table command's own wandb run: the finished table
        log_table(spec, args.preset, cells, store, folder, args.results / "runs" / "wandb")
    if failed:
        print(f"{len(failed)} cell(s) did not finish: {', '.join(failed)}; run again to resume interrupted ones, "
              "with --retry-failed to rerun failed ones", file=sys.stderr)
        return 1
    return 0


def rescore_table(args: argparse.Namespace) -> int:
    """`rescore`: add SSIM to the selected stored cells that lack it (the store only; `report` rewrites the
    table)."""
    device = check_device(args.device)
    spec, cells = _select(args)
    store = ResultStore(args.results / "runs" / "cells")
    check_stored(spec, args.preset, cells, store)
    return rescore_cells(cells, store, args.results / "runs", args.data_dir, device)


def main(argv: list[str] | None = None) -> int:
    """Run a command; a user's mistake (ConfigError: bad name, value, spec, data or store) is one line on
    stderr and exit status 2, with the traceback only under --verbose."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stop:  # --help, or a malformed command line (already told in one line)
        return int(stop.code or 0)
    try:
        if args.command == "methods":
            return list_methods()
        if args.command == "datasets":
            return list_datasets()
        if args.command == "data":
            return show_data(args.data_dir)
        if args.command in ("denoise", "export"):
            return {"denoise": denoise.command, "export": export.command}[args.command](args)
        if args.command == "bench":
            config = BenchConfig.quick() if args.quick else BenchConfig()
            sections = parse_sections(args.sections) if args.sections else SECTIONS
            run_bench(config, torch.device(args.device), args.results, sections=sections)
            print(f"wrote {args.results / 'bench.md'} and {args.results / 'bench.json'}")
            return 0
        if args.command == "rescore":
            return rescore_table(args)
        return run_table(args)
    except ConfigError as error:
        if getattr(args, "verbose", False):
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        return 2
