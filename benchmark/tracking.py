"""wandb as a view of the runs: one run per trained cell and one per table command, offline unless the
user is logged in."""

from __future__ import annotations

import netrc
import os
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import wandb
from pytorch_lightning.loggers import WandbLogger

from benchmark.figures import bar_chart
from benchmark.report import METRICS, build_report
from benchmark.spec import Cell, TableSpec
from benchmark.store import ResultStore, TestScores
from datamodules.evaluation import Evaluation

PROJECT = "noise2same-bench"
TEST_SAMPLES = 3  # test images of a cell shown whole (noisy, denoised, clean) in its per-image table


def logged_in() -> bool:
    """Whether wandb has credentials: WANDB_API_KEY, or an entry for its host (WANDB_BASE_URL, default
    api.wandb.ai) in the netrc file that `wandb login` writes ($NETRC, else ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).netloc
    try:
        credentials = netrc.netrc(os.environ.get("NETRC") or str(Path("~/.netrc").expanduser()))
    except (OSError, netrc.NetrcParseError):
        return False
    return credentials.authenticators(host) is not None


def wandb_mode() -> str:
    """WANDB_MODE if set ('online', 'offline', 'disabled'); else 'online' when the user is logged in and
    'offline' when not: no account is needed."""
    return os.environ.get("WANDB_MODE") or ("online" if logged_in() else "offline")


def cell_logger(cell: Any, save_dir: Path) -> WandbLogger | None:
    """A WandbLogger on a new run for a trained cell (group = dataset, job_type = method, tags = preset
    and seed, config = the cell's resolved config, summary of val/psnr = its best value), or None when
    wandb is disabled."""
    mode = wandb_mode()
    if mode == "disabled":
        return None
    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=PROJECT, name=cell.id, dir=str(save_dir), group=cell.dataset, job_type=cell.method,
                     tags=[cell.preset, f"seed={cell.seed}"], config={"cell_id": cell.id, **cell.config},
                     mode=mode, reinit="finish_previous")
    run.define_metric("val/psnr", summary="max")
    return WandbLogger(experiment=run)


def log_test(run: Any, evaluations: dict[str, Evaluation], tests: dict[str, TestScores]) -> None:
    """Log a cell's test results on its run, then finish it: each test set's mean PSNR and SSIM (and D(f)
    where measured) in the summary; `test/images`, a table with one row per test image (test set, id,
    PSNR, SSIM, and noisy, denoised and clean for the first few); those few as noisy | denoised | clean
    strips, `test/samples`."""
    for name, test in tests.items():
        run.summary[f"{name}/psnr"] = test.psnr_mean
        run.summary[f"{name}/ssim"] = test.ssim_mean
        if test.d_f is not None:
            run.summary[f"{name}/d_f"] = test.d_f
    table = wandb.Table(columns=["test set", "id", "psnr", "ssim", "noisy", "denoised", "clean"])
    strips = []
    for name, evaluation in evaluations.items():
        for image_id, psnr, ssim in zip(evaluation.ids, evaluation.psnr, evaluation.ssim):
            panels = evaluation.samples.get(image_id)
            table.add_data(name, image_id, psnr, ssim, *([wandb.Image(p) for p in panels] if panels else [None] * 3))
            if panels:
                strips.append(wandb.Image(np.concatenate(panels, axis=1),
                                          caption=f"{name} {image_id}: noisy | denoised | clean, PSNR {psnr:.2f} dB"))
    run.log({"test/images": table, "test/samples": strips})
    run.finish()


def log_table(spec: TableSpec, preset: str, cells: list[Cell], store: ResultStore, results: Path,
              save_dir: Path) -> None:
    """One run for a table command (group = the table, job_type 'table', tag = preset): the finished
    table as a wandb table and our numbers as a bar chart grouped by method; for a figure, the data
    behind it and its plot (results/<name>.csv and .png)."""
    mode = wandb_mode()
    if mode == "disabled":
        return
    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=PROJECT, name=f"{spec.name}-{preset}", dir=str(save_dir), group=spec.name,
                     job_type="table", tags=[preset], config={"table": spec.name, "preset": preset,
                                                             "cells": [cell.id for cell in cells]},
                     mode=mode, reinit="finish_previous")
    if spec.kind == "table":
        report = build_report(spec, cells, store)
        ours = report.table[[column for column in report.table.columns if column not in report.paper_columns]]
        scale = [METRICS[metric].scale for metric in ours.index.get_level_values("metric")]
        values = ours.mul(scale, axis=0).rename(index=lambda metric: METRICS[metric].label, level="metric")
        run.log({spec.name: wandb.Table(dataframe=report.text().reset_index()),
                 "chart": wandb.Image(bar_chart(values, spec.title))})
    else:
        run.log({spec.name: wandb.Table(dataframe=pd.read_csv(results / f"{spec.name}.csv")),
                 "chart": wandb.Image(str(results / f"{spec.name}.png"))})
    run.finish()
