"""wandb as a view of the runs: one run per trained cell, offline unless the user chose otherwise."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import wandb
from pytorch_lightning.loggers import WandbLogger

PROJECT = "noise2same-bench"


def wandb_mode() -> str:
    """WANDB_MODE if set ('online', 'offline', 'disabled'), else 'offline': no account is needed."""
    return os.environ.get("WANDB_MODE", "offline")


def cell_logger(cell: Any, save_dir: Path) -> WandbLogger | None:
    """A WandbLogger on a new run for a trained cell (group = dataset, job_type = method, tags = preset
    and seed, config = the cell's resolved config), or None when wandb is disabled."""
    mode = wandb_mode()
    if mode == "disabled":
        return None
    save_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=PROJECT, name=cell.id, dir=str(save_dir), group=cell.dataset, job_type=cell.method,
                     tags=[cell.preset, f"seed={cell.seed}"], config={"cell_id": cell.id, **cell.config},
                     mode=mode, reinit="finish_previous")
    return WandbLogger(experiment=run)
