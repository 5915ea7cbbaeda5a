"""folder: the user's own images, read from a directory.

Layout: <path>/train, <path>/val (optional: without it, or without clean validation images, there is no
validation) and <path>/test, each holding `noisy/` and, where the user has them, `clean/` (ground
truth) and `noisy2/` (a second independent noisy shot), under the same file names. Files: TIFF, PNG or
NPY; 2-D grey, 2-D multi-channel or 3-D, every file with the same axes (guessed from the first
training image, or given as `axes`). Instead of noisy images, clean ones only plus a `noise` recipe of
the suite's noise models, applied in order and drawn with the fixed `noise_seed`:
"gaussian:SIGMA", "poisson:PEAK", "bernoulli:P" (each value lost with probability P), joined by "+",
e.g. "poisson:30+gaussian:0.235+bernoulli:0.2" (ImageNet's recipe on [0, 1] images).

Protocol: PSNR with data range `data_range` (default: 255 for 8-bit files, else max - min of the
clean test images), the prediction min-maxed (`minmax`) and clipped (`clip`) as asked. Training
reads patches from memory-mapped files; whole images are read when scored.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, partial
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from torch.utils.data import DataLoader

from benchmark.registry import ConfigError
from datamodules.base import DenoisingDataModule, LazyImages, Split, lazy_noisy_split
from datamodules.evaluation import PSNRProtocol
from datamodules.image_io import AXES, SUFFIXES, ImageFileError, channels_first, guess_axes, image_shape, read_image
from datamodules.image_io import spatial_dims as axes_dims
from datamodules.noise import BernoulliPixelLoss, Compose, Gaussian, NoiseModel, Poisson
from datamodules.registry import register_dataset

SPLITS = ("train", "val", "test")
KINDS = ("noisy", "clean", "noisy2")
NOISE_STEPS = {"gaussian": Gaussian, "poisson": Poisson, "bernoulli": BernoulliPixelLoss}
NO_PSNR = "no clean test images: no PSNR can be computed"


class FolderError(ConfigError):
    """A folder that is not laid out as `folder` expects; one line naming the file or folder."""


def parse_noise(recipe: str) -> Compose:
    """The noise model of a recipe such as "poisson:30+gaussian:0.1" (steps applied left to right)."""
    steps: list[NoiseModel] = []
    for step in recipe.split("+"):
        name, _, value = step.strip().partition(":")
        try:
            steps.append(NOISE_STEPS[name.strip()](float(value)))
        except (KeyError, ValueError):
            raise FolderError(f"noise recipe {recipe!r}: cannot read step {step.strip()!r}; expected NAME:VALUE "
                              f"with NAME one of {', '.join(NOISE_STEPS)}, joined by '+', e.g. 'poisson:30+gaussian:0.1'"
                              ) from None
    return Compose(tuple(steps))


@dataclass(frozen=True)
class Float32View:
    """A (C, *S) channels-first view of a memory-mapped file whose slices are read as float32 (training
    patches come from the window alone, not from the whole image)."""

    array: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return self.array.shape

    def __getitem__(self, key: Any) -> np.ndarray:
        return np.asarray(self.array[key], dtype=np.float32)


def _view(paths: Sequence[Path], axes: str, index: int) -> Float32View:
    return Float32View(channels_first(read_image(paths[index]), axes))


def _whole(paths: Sequence[Path], axes: str, index: int) -> np.ndarray:
    """Image `index` as a whole (C, *S) float32 array."""
    return np.asarray(channels_first(read_image(paths[index]), axes), dtype=np.float32)


@dataclass(frozen=True)
class SplitFiles:
    """The files of one split folder: kind (noisy, clean, noisy2) -> paths, in the order of `names`."""

    folder: Path
    names: list[str]
    kinds: dict[str, list[Path]]


def image_files(folder: Path) -> list[Path]:
    """The image files of a folder, sorted; anything else in it is a FolderError."""
    files = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for path in files:
        if path.is_dir() or path.suffix.lower() not in SUFFIXES:
            raise FolderError(f"{path}: unexpected {'folder' if path.is_dir() else 'file'}; {folder} holds only "
                              f"images ({', '.join(SUFFIXES)})")
    if not files:
        raise FolderError(f"{folder}: no images; expected {', '.join(SUFFIXES)} files")
    return files


def scan_split(folder: Path, recipe: bool) -> SplitFiles:
    """The kinds of images of a split folder, checked to hold the same file names."""
    if not folder.is_dir():
        raise FolderError(f"{folder}: missing; expected a folder with noisy/ (and optionally clean/, noisy2/)")
    for entry in folder.iterdir():
        if not entry.name.startswith(".") and entry.name not in KINDS:
            raise FolderError(f"{entry}: unexpected; a split folder holds only {', '.join(f'{k}/' for k in KINDS)}")
    kinds = {kind: image_files(folder / kind) for kind in KINDS if (folder / kind).is_dir()}
    if recipe and set(kinds) != {"clean"}:
        raise FolderError(f"{folder}: with a noise recipe the split holds clean/ only (the recipe draws the noisy "
                          f"images), found {', '.join(f'{k}/' for k in kinds) or 'nothing'}")
    if not recipe and "noisy" not in kinds:
        raise FolderError(f"{folder / 'noisy'}: missing; expected noisy images there (or clean/ only plus a `noise` "
                          "recipe in the spec)")
    reference = "clean" if recipe else "noisy"
    names = [path.name for path in kinds[reference]]
    for kind, paths in kinds.items():
        extra = sorted({p.name for p in paths} ^ set(names))
        if extra:
            raise FolderError(f"{folder / kind}: file names differ from {folder / reference} ({', '.join(extra[:3])}); "
                              "every kind of image of a split has the same file names")
    return SplitFiles(folder, names, kinds)


@register_dataset("folder")
class Folder(DenoisingDataModule):
    """Your images from a folder (`path`); see the module's docstring for the layout and options."""

    description = "your own images from a folder: train/, val/, test/, each with noisy/ (clean/, noisy2/)"

    def __init__(self, path: str | None = None, axes: str | None = None, noise: str | None = None,
                 noise_seed: int = 0, noise_sigma: float | None = None, data_range: float | None = None,
                 minmax: bool = False, clip: bool = False, tile: int | None = 256, **common: Any) -> None:
        super().__init__(**common)
        self.path, self.axes_option, self.recipe, self.noise_seed = path, axes, noise, noise_seed
        self.noise_model = parse_noise(noise) if noise else None
        self.noise_sigma, self.data_range, self.minmax, self.clip, self.tile = noise_sigma, data_range, minmax, clip, tile
        if axes is not None and axes not in AXES:
            raise FolderError(f"axes {axes!r} is not one of {', '.join(AXES)}")
        self.files: dict[str, SplitFiles] = {}
        if path is not None:
            self.scan(Path(path))

    def scan(self, root: Path) -> None:
        """Check the layout and every file's shape (headers only), and set the dataset's facts from them."""
        if not root.is_dir():
            raise FolderError(f"{root}: not a folder; expected one holding train/, val/ (optional) and test/")
        self.files = {split: scan_split(root / split, self.noise_model is not None)
                      for split in SPLITS if split != "val" or (root / split).exists()}
        first = self.files["train"].kinds["clean" if self.noise_model else "noisy"][0]
        try:
            shape = image_shape(first)
            self.axes = self.axes_option or guess_axes(shape, first.suffix.lower())
        except (ImageFileError, ValueError) as error:
            raise FolderError(f"{first}: {error}") from None
        self.spatial_dims = axes_dims(self.axes)
        self.channels = shape[self.axes.index("C")] if "C" in self.axes else 1
        self.inference_tile = None if self.tile is None else (*[None] * (self.spatial_dims - 2), self.tile, self.tile)
        for split in self.files.values():
            self.check_shapes(split, len(shape))
        train = self.files["train"].kinds
        self.provides = frozenset(KINDS) if self.noise_model else frozenset(train)
        tests = self.files["test"].kinds
        self.description = (f"your images in {root} ({self.axes}, {self.channels} channel(s); "
                            f"{' / '.join(f'{len(f.names)} {s}' for s, f in self.files.items())}); "
                            + (f"noise drawn by the recipe {self.recipe}" if self.recipe else "noise in the files")
                            + ("" if "clean" in tests or self.noise_model else f"; {NO_PSNR}"))

    def check_shapes(self, split: SplitFiles, ndim: int) -> None:
        """Every file has `ndim` dimensions and the dataset's channels; a file's kinds share one shape."""
        for index, name in enumerate(split.names):
            shapes = {}
            for kind, paths in split.kinds.items():
                try:
                    shapes[kind] = shape = image_shape(paths[index])
                except ImageFileError as error:
                    raise FolderError(str(error)) from None
                channels = shape[self.axes.index("C")] if "C" in self.axes and len(shape) == ndim else 1
                if len(shape) != ndim or channels != self.channels:
                    raise FolderError(f"{paths[index]}: shape {shape}, expected {len(self.axes)} axes {self.axes} with "
                                      f"{self.channels} channel(s) like {self.files.get('train', split).folder}'s images")
            if len(set(shapes.values())) > 1:
                raise FolderError(f"{split.folder}/*/{name}: shapes differ between kinds ({shapes}); "
                                  "the noisy, clean and noisy2 copies of an image have one shape")

    @property
    def gaussian_sigma(self) -> float | None:
        """noise_sigma if given, else the recipe's sigma when it is Gaussian alone, else None."""
        if self.noise_sigma is not None:
            return self.noise_sigma
        steps = self.noise_model.steps if self.noise_model else ()
        return steps[0].sigma if len(steps) == 1 and isinstance(steps[0], Gaussian) else None

    @cached_property
    def protocol(self) -> PSNRProtocol:  # type: ignore[override]
        """PSNR with `data_range` (default: 255 for 8-bit files, else max - min over the clean test images)."""
        data_range = self.data_range
        if data_range is None:
            split = self.files["test"]
            paths = split.kinds.get("clean", [])
            if paths and all(read_image(p).dtype == np.uint8 for p in paths):
                data_range = 255.0
            else:
                images = LazyImages(partial(_whole, paths, self.axes), len(paths))
                data_range = float(max(im.max() for im in images) - min(im.min() for im in images)) if paths else 1.0
        return PSNRProtocol(data_range=data_range, clip=self.clip, minmax=self.minmax)

    def load_splits(self) -> dict[str, Split]:
        if not self.files:
            raise FolderError("folder: no `path` given; set it in the spec's dataset section, e.g. "
                              "datasets: {mine: {name: folder, dataset: {path: /data/my_images}}}")
        splits = {name: self.split(name, tag) for tag, name in enumerate(SPLITS) if name in self.files}
        splits.setdefault("val", Split(noisy=[], ids=[]))
        return splits

    def split(self, name: str, tag: int) -> Split:
        """A split's images, made on demand: memory-mapped views for training, whole arrays otherwise."""
        files = self.files[name]
        make = _view if name == "train" else _whole
        kinds = {kind: LazyImages(partial(make, paths, self.axes), len(paths)) for kind, paths in files.kinds.items()}
        if self.noise_model is not None:
            clean = LazyImages(partial(_whole, files.kinds["clean"], self.axes), len(files.names))
            return lazy_noisy_split(clean, files.names, self.noise_model, self.noise_seed, tag)
        return Split(noisy=kinds["noisy"], ids=files.names, clean=kinds.get("clean"), noisy2=kinds.get("noisy2"))

    def test_noise(self, test_set: str) -> tuple[NoiseModel, int, int] | None:
        """The recipe's noise, seed and the test split's tag (more test draws can be made); None for noisy files."""
        return (self.noise_model, self.noise_seed, SPLITS.index("test")) if self.noise_model else None

    def unscored(self, test_set: str) -> str | None:
        """NO_PSNR for a test folder without clean images (and no recipe to draw the noisy ones from clean)."""
        return NO_PSNR if self.files and "clean" not in self.files[test_set].kinds and not self.noise_model else None

    def eval_dataloader(self, split: str) -> DataLoader:
        """As the base's; a test set without clean images stops with a line saying that no PSNR can be computed."""
        if split in self.test_sets and self.unscored(split):
            raise FolderError(f"{self.files[split].folder}: {NO_PSNR} for this column (the trained network is kept; "
                              "apply it with `python -m benchmark denoise`)")
        return super().eval_dataloader(split)
