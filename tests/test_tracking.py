"""wandb: offline without an account, online when logged in, and one aggregate run per table command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from benchmark.cli import main
from benchmark.tracking import wandb_mode


@pytest.mark.parametrize("api_key, netrc_host, expected", [
    (None, None, "offline"),
    ("0123456789abcdef0123456789abcdef01234567", None, "online"),
    (None, "api.wandb.ai", "online"),
    (None, "example.org", "offline"),
])
def test_offline_unless_logged_in(api_key, netrc_host, expected, tmp_path, monkeypatch):
    netrc = tmp_path / "netrc"
    if netrc_host:
        netrc.write_text(f"machine {netrc_host}\n  login user\n  password secret\n")
    monkeypatch.setenv("NETRC", str(netrc))
    for name in ("WANDB_MODE", "WANDB_API_KEY", "WANDB_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    if api_key:
        monkeypatch.setenv("WANDB_API_KEY", api_key)
    assert wandb_mode() == expected
    monkeypatch.setenv("WANDB_MODE", "disabled")
    assert wandb_mode() == "disabled"


def test_a_table_command_logs_one_aggregate_run_with_the_table_and_a_chart(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "staging"))
    argv = ["run", "table3", "--preset", "smoke", "--methods", "input", "--datasets", "natural-gray,hanzi",
            "--results", str(tmp_path)]
    assert main(argv) == 0
    (run,) = (tmp_path / "runs" / "wandb" / "wandb").glob("offline-run-*")  # classical cells have no run of their own
    (table,) = run.glob("files/media/table/table3_*.table.json")
    content = json.loads(table.read_text())
    assert content["columns"] == ["method", "metric", "natural-gray", "natural-gray paper (BSD68)", "hanzi",
                                  "hanzi paper (HanZi)"]
    assert content["data"][0][:4] == ["input", "PSNR", "**20.21 +- 0.11**", "20.19 (+0.02)"]  # ties with itself
    assert content["data"][1][:2] == ["input", "SSIM"] and content["data"][1][3] == "-"  # the paper has no SSIM
    (chart,) = run.glob("files/media/images/chart_*.png")
    assert np.asarray(Image.open(chart)).std() > 1
    record = next(run.glob("run-*.wandb")).read_bytes()
    assert b"table3-smoke" in record and b"natural-gray--input--" in record  # its name and its cells' ids
