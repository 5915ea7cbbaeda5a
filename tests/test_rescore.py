"""SSIM beside PSNR end to end on the smoke preset: a cell stores each image's SSIM; a record from before
SSIM was kept shows an empty SSIM field with a footnote, and `rescore` adds the SSIM without training
(trained cells from their checkpoints, classical ones by denoising again), keeping the stored PSNR; a
PSNR it does not reproduce is refused, and a trained cell without its checkpoint is left alone."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from benchmark.cli import main
from benchmark.spec import TableSpec
from benchmark.store import ResultStore

METHODS = "noise2same,noise2void,input,bm3d"
SELECT = ["table3", "--preset", "smoke", "--methods", METHODS, "--datasets", "natural-gray"]


@pytest.fixture(scope="module")
def scored(tmp_path_factory) -> Path:
    """A results folder holding table3's smoke cells of four methods on natural-gray."""
    results = tmp_path_factory.mktemp("scored")
    assert main(["run", *SELECT, "--results", str(results), "--accelerator", "cpu"]) == 0
    return results


def cell_ids() -> dict[str, str]:
    """method -> cell id of the selected cells."""
    return {cell.method: cell.id for cell in TableSpec.load("table3").cells("smoke", METHODS.split(","), ["natural-gray"])}


def stored_before_ssim(scored: Path, results: Path) -> ResultStore:
    """A copy of the scored results whose records have no SSIM, as records written before it was kept."""
    shutil.copytree(scored, results, dirs_exist_ok=True)
    store = ResultStore(results / "runs" / "cells")
    for cell_id in cell_ids().values():
        record = store.load(cell_id)
        tests = {name: scores.model_copy(update={"ssim_mean": None, "ssim": None}) for name, scores in record.tests.items()}
        store.write(record.model_copy(update={"tests": tests}))
        assert '"ssim' not in store.path(cell_id).read_text()
        store.crops_path(cell_id).unlink()  # nor the gallery's crops
    return store


def test_a_cell_stores_each_images_ssim_beside_its_psnr(scored):
    store = ResultStore(scored / "runs" / "cells")
    for method, cell_id in cell_ids().items():
        scores = store.load(cell_id).tests["test"]
        assert scores.ssim.keys() == scores.psnr.keys() and len(scores.ssim) == 4, method
        assert scores.ssim_mean == pytest.approx(np.mean(list(scores.ssim.values())))
        assert all(-1 < value < 1 for value in scores.ssim.values())
    bm3d, noisy = (store.load(cell_ids()[m]).tests["test"].ssim_mean for m in ("bm3d", "input"))
    assert bm3d > noisy + 0.2  # BM3D's estimate is far closer in structure than the noisy input
    page = (scored / "smoke" / "partial" / "table3.md").read_text()
    assert "| bm3d | SSIM | 0." in page and "SSIM not stored" not in page


def test_a_report_says_why_a_cells_ssim_is_empty(scored, tmp_path):
    stored_before_ssim(scored, tmp_path)
    assert main(["report", *SELECT, "--results", str(tmp_path)]) == 0
    page = (tmp_path / "smoke" / "partial" / "table3.md").read_text()
    assert "| noise2same | SSIM | [1] | - |" in page and "| input | SSIM | [1] | - |" in page
    assert "| noise2same | PSNR | " in page  # PSNR as before
    assert (f"1. SSIM not stored for this cell; `python -m benchmark rescore table3 --preset smoke --results {tmp_path}` "
            "computes it.") in page


def test_rescore_adds_the_ssim_and_keeps_the_stored_psnr(scored, tmp_path, capsys):
    store = stored_before_ssim(scored, tmp_path)
    before = {cell_id: store.load(cell_id).tests["test"] for cell_id in cell_ids().values()}
    assert main(["rescore", *SELECT, "--results", str(tmp_path), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "4 stored cell(s) lack SSIM or gallery crops" in out and out.count(", PSNR as stored, crops written") == 4
    original = ResultStore(scored / "runs" / "cells")
    for method, cell_id in cell_ids().items():
        crops, first = store.crops(cell_id)["test"], original.crops(cell_id)["test"]
        assert [c.image for c in crops] == [c.image for c in first] and np.array_equal(crops[0].clean, first[0].clean)
        scores = store.load(cell_id).tests["test"]
        assert scores.psnr == before[cell_id].psnr and scores.psnr_mean == before[cell_id].psnr_mean
        expected = original.load(cell_id).tests["test"].ssim
        # Deterministic methods give the same SSIM to the bit; BM3D's threads sum in no fixed order.
        assert scores.ssim == pytest.approx(expected, abs=0 if method != "bm3d" else 1e-4), method
    assert main(["report", *SELECT, "--results", str(tmp_path)]) == 0
    assert "SSIM not stored" not in (tmp_path / "smoke" / "partial" / "table3.md").read_text()
    assert main(["rescore", *SELECT, "--results", str(tmp_path), "--device", "cpu"]) == 0
    assert "0 stored cell(s) lack SSIM or gallery crops" in capsys.readouterr().out  # nothing left to do


def test_rescore_refuses_another_psnr_and_leaves_a_cell_without_checkpoint(scored, tmp_path, capsys):
    store = stored_before_ssim(scored, tmp_path)
    ids = cell_ids()
    record = store.load(ids["noise2same"])
    scores = record.tests["test"]
    image = next(iter(scores.psnr))
    changed = scores.model_copy(update={"psnr": {**scores.psnr, image: scores.psnr[image] + 0.01}})
    store.write(record.model_copy(update={"tests": {"test": changed}}))  # as if another checkpoint had been scored
    refused = store.path(ids["noise2same"]).read_bytes()
    shutil.rmtree(tmp_path / "runs" / "lightning" / ids["noise2void"])
    assert main(["rescore", *SELECT, "--results", str(tmp_path), "--device", "cpu"]) == 1
    out, err = capsys.readouterr()
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]  # stderr also has progress bars
    assert line.startswith("error: [") and ids["noise2same"] in line and f"image {image} scores PSNR" in line
    assert "the checkpoint is not the one that was scored" in line and "Traceback" not in err
    assert store.path(ids["noise2same"]).read_bytes() == refused  # left as it was
    assert "no checkpoint at" in out and "1 trained cell(s) left without SSIM" in out and ids["noise2void"] in out
    assert store.load(ids["noise2void"]).tests["test"].ssim is None
    assert store.load(ids["input"]).tests["test"].ssim is not None and store.load(ids["bm3d"]).tests["test"].ssim


@pytest.mark.parametrize("argv, message", [
    (["rescore", "table3", "--preset", "nope"], "error: unknown preset"),
    (["rescore", "table3", "--preset", "smoke", "--device", "gpu0"], "error: --device 'gpu0' is not a torch device"),
])
def test_bad_rescore_input_is_one_line(argv, message, tmp_path, capsys):
    assert main([*argv, "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and len(err.splitlines()) == 1
