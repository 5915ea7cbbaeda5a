"""Own data end to end: a user spec over a `folder` dataset trains a smoke cell; `denoise` applies it to
files (equal to the method's own `denoise`); `export` writes TorchScript and ONNX that match it to 1e-4.
Every trainable method exports (random weights, 2-D grey, 2-D RGB, 3-D)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch

from benchmark.bench_volume import VolumeBenchConfig, markdown, measure
from benchmark.cli import main
from benchmark.denoise import denoise_array, find_cell, load_method
from benchmark.export_bmz import INSTALL, package
from benchmark.export import check_input, example_input, run_onnx, to_onnx, to_torchscript
from datamodules.image_io import write_image
from methods import METHODS
from methods.unet import UNetConfig
from tests.data_fixtures import folder as fixture

SPEC = """
title: my table
methods: [noise2same, laine_bayes, input]
presets:
  smoke:
    train: {{steps: 2, batch_size: 2, patch_size: 16, val_every: 2}}
    backbone: {{depth: 2, base_channels: 4}}
    datasets:
      mine: {{name: folder, dataset: {{path: {path}, noise: "gaussian:300"}}}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A results folder holding the smoke cells of a user spec over a clean-plus-recipe folder."""
    root = tmp_path_factory.mktemp("own")
    data = fixture.write(root / "data", "grey-recipe")
    spec = root / "my.yaml"
    spec.write_text(SPEC.format(path=data))
    assert main(["run", str(spec), "--preset", "smoke", "--results", str(root / "results"), "--accelerator", "cpu"]) == 0
    return root, spec


def test_denoise_writes_what_the_method_computes(trained, tmp_path, capsys):
    root, spec = trained
    noisy = np.random.default_rng(0).uniform(0, 4000, (45, 38)).astype(np.uint16)
    write_image(tmp_path / "in" / "a.tif", noisy)
    np.save(tmp_path / "in" / "b.npy", noisy.astype(np.float32))
    args = ["denoise", str(tmp_path / "in"), "--table", str(spec), "--preset", "smoke", "--method", "noise2same",
            "--dataset", "mine", "--results", str(root / "results"), "--output", str(tmp_path / "out"), "--tile", "32"]
    assert main(args) == 0
    method = load_method(find_cell(root / "results", table=str(spec), preset="smoke", method="noise2same", dataset="mine"))
    expected = method.denoise(torch.from_numpy(noisy.astype(np.float32))[None, None])[0, 0].numpy()
    as_float = np.load(tmp_path / "out" / "b.npy")
    assert as_float.shape == noisy.shape and as_float.dtype == np.float32
    np.testing.assert_allclose(as_float, expected, rtol=1e-5, atol=1e-5 * np.ptp(expected))
    as_tiff = tifffile.imread(tmp_path / "out" / "a.tif")  # same format, dtype: rounded and clipped to uint16
    assert as_tiff.dtype == np.uint16 and as_tiff.shape == noisy.shape
    np.testing.assert_array_less(np.abs(as_tiff - np.clip(np.rint(expected), 0, 65535)), 1.01)


def test_cells_are_found_by_id_and_checkpoint_and_laine_gets_its_sigma(trained, capsys):
    root, spec = trained
    by_table = find_cell(root / "results", table=str(spec), preset="smoke", method="laine_bayes", dataset="mine")
    by_id = find_cell(root / "results", cell_id=by_table.cell.id)
    by_checkpoint = find_cell(root / "results", checkpoint=by_table.checkpoint)
    assert by_id == by_checkpoint == by_table and by_table.checkpoint.is_file()
    assert load_method(by_table).gaussian_sigma == 300.0  # the recipe's
    assert load_method(by_table, sigma=12.0).gaussian_sigma == 12.0
    assert main(["denoise", "x.tif", "--table", str(spec), "--preset", "smoke", "--method", "input",
                 "--dataset", "mine", "--results", str(root / "results")]) == 2
    assert "classical" in capsys.readouterr().err
    assert main(["export", "--cell", "nope", "--results", str(root / "results")]) == 2
    assert "no record of cell 'nope'" in capsys.readouterr().err


def test_exports_of_the_trained_cell_match_the_method(trained, tmp_path, capsys):
    root, spec = trained
    cell = find_cell(root / "results", table=str(spec), preset="smoke", method="laine_bayes", dataset="mine")
    assert main(["export", "--cell", cell.cell.id, "--results", str(root / "results"), "--output", str(tmp_path)]) == 0
    info = json.loads((tmp_path / f"{cell.cell.id}.json").read_text())
    assert set(info["exports"]) == {"torchscript", "onnx"}
    method = load_method(cell)
    noisy = torch.from_numpy(np.random.default_rng(1).uniform(0, 4000, (3, 1, 29, 52)).astype(np.float32))
    expected = method.denoise(noisy)
    scripted = torch.jit.load(str(tmp_path / f"{cell.cell.id}.pt"))
    assert (scripted(noisy) - expected).abs().max() <= 1e-4 * expected.abs().max()
    onnx = run_onnx(tmp_path / f"{cell.cell.id}.onnx", noisy)
    assert (onnx - expected).abs().max() <= 1e-4 * expected.abs().max()


@pytest.mark.parametrize("name", [n for n in METHODS.names() if METHODS.get(n).trainable])
@pytest.mark.parametrize("channels, dims", [(1, 2), (3, 2), (1, 3)])
def test_every_trainable_method_exports(name, channels, dims, tmp_path):
    cls = METHODS.get(name)
    method = cls(**({"gaussian_sigma": 0.3} if cls.requires_gaussian_sigma else {}), in_channels=channels,
                 spatial_dims=dims, backbone=UNetConfig(depth=2, base_channels=4)).eval()
    example, probe = example_input(channels, dims, method.size_multiple), check_input(method, channels)
    expected = method.denoise(probe)
    with torch.no_grad():
        assert (to_torchscript(method, example, tmp_path / "m.pt")(probe) - expected).abs().max() <= 1e-4
    to_onnx(method, example, tmp_path / "m.onnx")
    assert (run_onnx(tmp_path / "m.onnx", probe) - expected).abs().max() <= 1e-4
    assert probe.shape[0] != example.shape[0] and probe.shape[2:] != example.shape[2:]


@pytest.mark.parametrize("name, shape, tile", [("noise2same", (1, 8, 40, 36), (32, 32)),
                                               ("laine_bayes", (3, 40, 70), (None, 64))])
def test_tiled_denoise_equals_the_whole_image(name, shape, tile):
    """Windows with the receptive margin (noise2same 11, a depth-2 blind-spot network 2 * 11 + 4 = 26) give
    the whole image's result, 3-D and Laine's posterior included."""
    cls = METHODS.get(name)
    method = cls(**({"gaussian_sigma": 0.5} if cls.requires_gaussian_sigma else {}), in_channels=shape[0],
                 spatial_dims=len(shape) - 1, backbone=UNetConfig(depth=2, base_channels=4)).eval()
    image = np.random.default_rng(2).normal(5, 2, shape).astype(np.float32)
    whole = method.denoise(torch.from_numpy(image)[None])[0].numpy()
    np.testing.assert_allclose(denoise_array(method, image, tile=tile), whole, rtol=1e-5, atol=1e-5)


def test_bioimageio_package_passes_the_zoos_own_test(tmp_path):
    """Runs where bioimageio.core is installed (not a requirement: see benchmark/export_bmz.py)."""
    pytest.importorskip("bioimageio.core", reason=f"bioimageio.core is not installed ({INSTALL})")
    method = METHODS.get("laine")(in_channels=1, spatial_dims=2, backbone=UNetConfig(depth=2, base_channels=4)).eval()
    example, probe = example_input(1, 2, method.size_multiple), check_input(method, 1)[:1]
    to_torchscript(method, example, tmp_path / "m.pt")
    to_onnx(method, example, tmp_path / "m.onnx")
    zipped = package("laine test", "a test model", tmp_path / "m.pt", tmp_path / "m.onnx", probe, method.denoise(probe),
                     tmp_path / "m.zip")
    assert zipped.is_file()


def test_volume_bench_measures_a_volume_through_denoise(tmp_path):
    result = measure(VolumeBenchConfig.quick(), tmp_path)
    assert result["output_equal_shape"] and result["windows"] == 6 and result["overlap"] == 11
    assert 0 < result["throughput_ratio"] < 2
    assert result["peak_rss_mib"] >= result["rss_before_mib"] > 0  # a process's peak may predate the measurement
    assert "| throughput ratio (target >= 0.8) |" in markdown(result)


def test_a_column_without_clean_test_images_says_no_psnr_and_keeps_the_network(tmp_path, capsys):
    data = fixture.write(tmp_path / "data", "volume-noisy")
    spec = tmp_path / "mine.yaml"
    spec.write_text(SPEC.format(path=data).replace("[noise2same, laine_bayes, input]", "[noise2void, input]")
                    .replace(', noise: "gaussian:300"', "").replace("patch_size: 16", "patch_size: [4, 16, 16]"))
    assert main(["run", str(spec), "--preset", "smoke", "--results", str(tmp_path / "results")]) == 0
    table = (tmp_path / "results" / "smoke" / "mine.md").read_text()
    assert "| noise2void | PSNR | no PSNR [1] |" in table and "| input | PSNR | no PSNR [1] |" in table
    assert "| noise2void | SSIM | no SSIM [1] |" in table  # one footnote for both
    assert "1. mine: no clean test images: no PSNR can be computed." in table
    assert "no PSNR can be computed." in table.split("Datasets:")[1]  # no paper's column to name
    assert "folder x noise2void: no PSNR (no clean test images)" in capsys.readouterr().out
    cell = find_cell(tmp_path / "results", table=str(spec), preset="smoke", method="noise2void", dataset="mine")
    assert cell.checkpoint.is_file()
