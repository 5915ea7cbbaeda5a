"""Applying a trained cell to new images: `python -m benchmark denoise`.

A cell is found by its table, preset, method and dataset, by its id, or by its checkpoint
(<results>/runs/lightning/<cell id>/checkpoints/last.ckpt, whose config is the store's record
<results>/runs/cells/<cell id>.json). Each image is denoised by the method's own inference, as in
`TrainableDenoiser.denoise`: standardised with its whole-image mean and std per channel (computed in
float64 slice by slice), passed through `denoise_standardized` (Laine's posterior included) window by
window with the backbone's receptive radius as overlap, and brought back to the data's units. Only
the input (memory-mapped where the file allows), the output and one window are in memory.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from benchmark.cell import build_method
from benchmark.console import whole_numbers
from benchmark.registry import ConfigError
from benchmark.spec import Cell, TableSpec
from benchmark.store import ResultStore
from datamodules import DATASETS
from datamodules.image_io import (SUFFIXES, ImageFileError, channels_first, channels_last_as, guess_axes,
                                  in_dtype_range, read_image, spatial_dims, write_image)
from methods import METHODS
from methods.tiling import tile_count, tiled

CHECKPOINT = Path("checkpoints") / "last.ckpt"


@dataclass(frozen=True)
class TrainedCell:
    """A trained cell: its resolved config and its final checkpoint."""

    cell: Cell
    checkpoint: Path


def stored_cell(results: Path, cell_id: str) -> TrainedCell:
    """The cell of a store record <results>/runs/cells/<cell_id>.json and its checkpoint."""
    store = ResultStore(results / "runs" / "cells")
    record = store.record(cell_id)
    if record is None:
        raise ConfigError(f"no record of cell {cell_id!r} in {store.root}; run its table first, or give --results "
                          "the folder it was run with")
    if "train" not in record.config:
        raise ConfigError(f"cell {cell_id} is {record.method}, a classical method: there is no trained network to apply")
    checkpoint = results / "runs" / "lightning" / cell_id / CHECKPOINT
    if not checkpoint.is_file():
        raise ConfigError(f"{checkpoint} is missing: cell {cell_id} has not trained (run its table first)")
    return TrainedCell(Cell(record.table, record.preset, record.config), checkpoint)


def find_cell(results: Path, cell_id: str | None = None, checkpoint: Path | None = None, table: str | None = None,
              preset: str = "cpu", method: str | None = None, dataset: str | None = None,
              seed: int | None = None) -> TrainedCell:
    """The trained cell named by exactly one of: its id, its checkpoint path, or table + method + dataset
    (under `preset`, the first seed unless `seed` is given)."""
    if sum(x is not None for x in (cell_id, checkpoint, table)) != 1:
        raise ConfigError("name one trained cell: --cell ID, --checkpoint PATH, or --table T --method M --dataset D")
    if checkpoint is not None:
        if checkpoint.parent.name != "checkpoints" or len(checkpoint.parents) < 4:
            raise ConfigError(f"{checkpoint}: expected <results>/runs/lightning/<cell id>/checkpoints/last.ckpt "
                              "(its config is read from <results>/runs/cells/<cell id>.json)")
        return stored_cell(checkpoint.parents[3].parent, checkpoint.parents[1].name)
    if cell_id is not None:
        return stored_cell(results, cell_id)
    if method is None or dataset is None:
        raise ConfigError("--table needs --method and --dataset (a row and a column of the table)")
    cells = TableSpec.load(str(table)).cells(preset, [method], [dataset], [seed] if seed is not None else None)
    cells = [cell for cell in cells if seed is not None or cell.seed == cells[0].seed]
    if len(cells) != 1:
        raise ConfigError(f"{method} on {dataset} names {len(cells)} rows of {table}: "
                          f"{', '.join(c.row for c in cells)}; give the row label as --method")
    return stored_cell(results, cells[0].id)


def network_shape(state: dict[str, Tensor]) -> tuple[int, int]:
    """(input channels, spatial dims) of a network, from its first convolution's weight (out, in, *kernel)."""
    weight = next(value for key, value in state.items() if key.endswith("weight") and value.dim() in (4, 5))
    return weight.shape[1], weight.dim() - 2


def load_method(trained: TrainedCell, device: str | torch.device = "cpu", sigma: float | None = None) -> Any:
    """The cell's method with its trained weights, in eval mode on `device`. `sigma`: the Gaussian noise
    std in the data's units for methods that need it (default: the cell's dataset's)."""
    cell = Cell(trained.cell.table, trained.cell.preset, {k: v for k, v in trained.cell.config.items() if k != "speed"})
    state = torch.load(trained.checkpoint, map_location="cpu", weights_only=True)["state_dict"]
    channels, dims = network_shape(state)
    if METHODS.get(cell.method).requires_gaussian_sigma and sigma is None:
        sigma = dataset_sigma(cell)
    data = SimpleNamespace(channels=channels, spatial_dims=dims, gaussian_sigma=sigma)
    method = build_method(cell, data)
    method.load_state_dict(state)
    return method.to(device).eval()


def dataset_sigma(cell: Cell) -> float:
    """The Gaussian noise std of the cell's dataset (a ConfigError saying to pass --sigma if it has none)."""
    try:
        sigma = DATASETS.get(cell.dataset)(**cell.dataset_kwargs).gaussian_sigma
    except ConfigError as error:
        raise ConfigError(f"{cell.method} needs the noise std and the cell's dataset cannot give it ({error}); "
                          "pass --sigma") from None
    if sigma is None:
        raise ConfigError(f"{cell.method} needs the Gaussian noise std and {cell.dataset} has none; pass --sigma")
    return sigma


def channel_stats(x: np.ndarray, standardizes: bool, device: torch.device) -> tuple[Tensor, Tensor]:
    """Per-channel mean and std (ddof 0, floored at 1e-6) of a (1, C, *S) array, accumulated in float64
    over slices of the first spatial axis; 0 and 1 for a method on raw values."""
    shape = (1, x.shape[1], *[1] * (x.ndim - 2))
    if not standardizes:
        return torch.zeros(shape, device=device), torch.ones(shape, device=device)
    sums = np.zeros((2, x.shape[1]))
    for start in range(0, x.shape[2], 8):
        chunk = np.asarray(x[:, :, start:start + 8], dtype=np.float64)
        axes = (0, *range(2, chunk.ndim))
        sums += [chunk.sum(axis=axes), np.square(chunk).sum(axis=axes)]
    count = x.size / x.shape[1]
    mean = sums[0] / count
    std = np.sqrt(np.maximum(sums[1] / count - mean ** 2, 0)).clip(min=1e-6)
    return (torch.tensor(mean, dtype=torch.float32, device=device).view(shape),
            torch.tensor(std, dtype=torch.float32, device=device).view(shape))


def full_tile(tile: Sequence[int | None] | None, dims: int) -> tuple[int | None, ...]:
    """A window per spatial axis: the given ones for the last axes, the whole axis for the others."""
    tile = tuple(tile or ())
    if len(tile) > dims:
        raise ConfigError(f"--tile gives {len(tile)} sizes for {dims}-D images")
    return (*[None] * (dims - len(tile)), *tile)


@torch.no_grad()
def denoise_array(method: Any, image: np.ndarray, tile: Sequence[int | None] | None = None,
                  overlap: int | None = None, progress: bool = False) -> np.ndarray:
    """The method's estimate of a (C, *S) image (any numeric dtype, memory-mapped or not), float32,
    computed window by window (`tile`: window sizes of the last axes; overlap: the method's receptive
    margin by default, which makes the result equal the whole image's up to rounding)."""
    device = method.device
    x = image[None]
    mean, std = channel_stats(x, method.standardizes, device)
    tile = full_tile(tile, x.ndim - 2)
    margin = method.receptive_margin if overlap is None else overlap
    bar = tqdm(total=tile_count(x.shape[2:], tile, margin, method.size_multiple), desc="tiles", unit="tile",
               disable=not progress, leave=False)

    def window(piece: np.ndarray) -> Tensor:
        z = (torch.from_numpy(np.array(piece, dtype=np.float32)).to(device) - mean) / std  # a copy: files are read-only
        estimate = method.denoise_standardized(z, None, std=std) * std + mean
        bar.update()
        return estimate.float().cpu()

    try:
        return tiled(window, x, tile, margin, method.size_multiple)[0].numpy()  # type: ignore[arg-type]
    except ValueError as error:  # a window smaller than twice the overlap
        raise ConfigError(f"--tile {tile}: {error}; choose larger windows or a smaller --overlap") from None
    finally:
        bar.close()


def denoise_file(method: Any, source: Path, target: Path, axes: str | None = None,
                 tile: Sequence[int | None] | None = None, overlap: int | None = None, progress: bool = False) -> None:
    """Denoise one image file into `target`: same shape, dtype (integers rounded and clipped to its range)
    and format."""
    try:
        array = read_image(source)
        axes = axes or guess_axes(array.shape, source.suffix.lower())
    except (ImageFileError, ValueError) as error:
        raise ConfigError(f"{source}: {error}") from None
    channels = array.shape[axes.index("C")] if "C" in axes else 1
    expected, dims = network_shape(method.state_dict())
    if len(axes) != array.ndim or spatial_dims(axes) != dims or channels != expected:
        raise ConfigError(f"{source}: shape {array.shape} read as axes {axes}, but the network takes {dims}-D images "
                          f"of {expected} channel(s); give --axes if the guess is wrong")
    estimate = denoise_array(method, channels_first(array, axes), tile, overlap, progress)
    write_image(target, in_dtype_range(channels_last_as(estimate, axes), array.dtype))


def image_pairs(inputs: list[Path], output: Path | None) -> Iterator[tuple[Path, Path]]:
    """(source, target) of every image file given or inside a given folder (recursively): targets keep
    the name (and path below the folder) inside `output`, or sit next to the source as NAME_denoised.EXT."""
    for given in inputs:
        if given.is_dir():
            sources = sorted(p for p in given.rglob("*") if p.suffix.lower() in SUFFIXES and p.is_file()
                             and not (output is None and p.stem.endswith("_denoised")))  # earlier results beside them
            base = given
        elif given.is_file():
            sources, base = [given], given.parent
        else:
            raise ConfigError(f"{given}: no such file or folder")
        if not sources:
            raise ConfigError(f"{given}: no images ({', '.join(SUFFIXES)})")
        for source in sources:
            if output is None:
                yield source, source.with_name(f"{source.stem}_denoised{source.suffix}")
            else:
                yield source, output / source.relative_to(base)


def denoise_files(trained: TrainedCell, inputs: list[Path], output: Path | None, device: str = "cpu",
                  axes: str | None = None, tile: Sequence[int | None] | None = None, overlap: int | None = None,
                  sigma: float | None = None, progress: bool = True) -> list[Path]:
    """Denoise every input image with the trained cell; returns the files written."""
    method = load_method(trained, device, sigma)
    written = []
    pairs = list(image_pairs(inputs, output))
    for source, target in tqdm(pairs, desc="images", unit="image", disable=not progress):
        denoise_file(method, source, target, axes, tile, overlap, progress)
        written.append(target)
    return written


def add_cell_args(parser: argparse.ArgumentParser) -> None:
    """The options that name one trained cell (see `find_cell`)."""
    group = parser.add_argument_group("trained cell", "one of --cell, --checkpoint, or --table with --method and --dataset")
    group.add_argument("--cell", help="cell id, e.g. natural-gray--noise2same--0123456789ab")
    group.add_argument("--checkpoint", type=Path, help="<results>/runs/lightning/<cell id>/checkpoints/last.ckpt")
    group.add_argument("--table", help="table name or spec file the cell belongs to")
    group.add_argument("--preset", default="cpu", help="preset of --table (default: cpu)")
    group.add_argument("--method", help="row of --table (method name or row label)")
    group.add_argument("--dataset", help="column of --table")
    group.add_argument("--seed", type=int, help="seed of the cell (default: the preset's first)")
    group.add_argument("--results", type=Path, default=Path("results"),
                       help="results folder it was run with (default: results)")


def cell_from_args(args: argparse.Namespace) -> TrainedCell:
    return find_cell(args.results, args.cell, args.checkpoint, args.table, args.preset, args.method, args.dataset,
                     args.seed)


def add_parser(commands: Any) -> None:
    """The `denoise` command's options."""
    parser = commands.add_parser("denoise", help="denoise image files or folders with a trained cell")
    parser.add_argument("inputs", nargs="+", type=Path, help="image files (.tif, .tiff, .png, .npy) or folders of them")
    add_cell_args(parser)
    parser.add_argument("--output", type=Path, help="folder for the results (default: NAME_denoised.EXT beside each input)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu",
                        help="torch device (default: cuda if available, else cpu)")
    parser.add_argument("--axes", help="axes of the files, e.g. YX, YXC, CYX, ZYX (default: guessed from each file's shape)")
    parser.add_argument("--tile", type=whole_numbers("window sizes", "256 or 32,256,256"), default=(256, 256),
                        help="window size of the last axes, e.g. 256 (Y and X) or 32,256,256 (default: 256,256)")
    parser.add_argument("--overlap", type=int, help="overlap of the windows in pixels (default: the backbone's receptive "
                        "radius, which gives the whole image's result)")
    parser.add_argument("--sigma", type=float, help="Gaussian noise std in the data's units, for methods that need it "
                        "(laine_bayes; default: the cell's dataset's)")


def command(args: argparse.Namespace) -> int:
    """Run `denoise`: print each file written."""
    tile = tuple(args.tile) * 2 if len(args.tile) == 1 else args.tile
    for path in denoise_files(cell_from_args(args), args.inputs, args.output, args.device, args.axes, tile,
                              args.overlap, args.sigma):
        print(f"wrote {path}")
    return 0
