"""The batch contract and the one LightningDataModule family every dataset belongs to.

A dataset provides three splits of (C, *S) float32 images. Training batches are random patches that
carry only the keys the method declared (`noisy`; plus `clean` for supervised, `noisy2` for
Noise2Noise): the training dataset is built from those arrays alone, so a self-supervised method has
no path to a clean image. Validation and test batches are whole images with `noisy` and `clean`,
scored by the dataset's protocol; a dataset without clean validation images (BSD68's archive) has
no validation.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Callable, ClassVar, Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from pydantic import PositiveInt
from torch import distributed
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from benchmark.registry import ConfigError
from datamodules.evaluation import PSNRProtocol
from datamodules.noise import Gaussian, NoiseModel

Array = np.ndarray


@dataclass
class Split:
    """The images of one split, each (C, *S) float32; `clean` / `noisy2` are None where none exist.
    Each field is a list, or any sequence that makes its images on demand (large datasets)."""

    noisy: Sequence[Array]
    ids: Sequence[str]
    clean: Sequence[Array] | None = None
    noisy2: Sequence[Array] | None = None

    def arrays(self, keys: frozenset[str], owner: str) -> dict[str, Sequence[Array]]:
        """The image lists of the given keys; a key this split lacks is a ConfigError."""
        available = {key: getattr(self, key) for key in ("noisy", "clean", "noisy2") if getattr(self, key) is not None}
        missing = sorted(keys - set(available))
        if missing:
            raise ConfigError(f"{owner} has no {', '.join(missing)} images; methods that need them do not apply to it")
        return {key: available[key] for key in sorted(keys)}


def _augment(image: Array, rotation: int, flip: bool) -> Array:
    """rot90 by `rotation` quarter turns in the last two axes, then a flip of the last axis if `flip`."""
    image = np.rot90(image, rotation, axes=(-2, -1))
    return np.ascontiguousarray(image[..., ::-1] if flip else image)


class PatchDataset(Dataset):
    """Item i: a random patch of a random image with a random rot90 and flip, the same for every key.

    The draw depends only on (seed, i), so an epoch is reproducible whatever the loader's workers.
    """

    def __init__(self, arrays: dict[str, Sequence[Array]], patch: tuple[int, ...], length: int, seed: int) -> None:
        self.arrays = arrays
        self.patch = patch
        self.length = length
        self.seed = seed
        self.n_images = len(next(iter(arrays.values())))

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        rng = np.random.default_rng([self.seed, index])
        which = int(rng.integers(self.n_images))
        images = {key: arrays[which] for key, arrays in self.arrays.items()}  # each made once if lazy
        shape = next(iter(images.values())).shape[1:]
        if any(s < p for s, p in zip(shape, self.patch)):
            raise ConfigError(f"patch size {self.patch} is larger than an image of shape {shape}; "
                              "choose a smaller patch_size")
        corner = [int(rng.integers(0, s - p + 1)) for s, p in zip(shape, self.patch)]
        window = (slice(None), *[slice(c, c + p) for c, p in zip(corner, self.patch)])
        rotation, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
        return {key: torch.from_numpy(_augment(image[window], rotation, flip)) for key, image in images.items()}


class ImageDataset(Dataset):
    """Whole images of a split with `noisy`, `clean` and `id`, for validation and test."""

    def __init__(self, split: Split, owner: str) -> None:
        self.arrays = split.arrays(frozenset({"noisy", "clean"}), owner)
        self.ids = split.ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        item: dict = {key: torch.from_numpy(images[index]) for key, images in self.arrays.items()}
        item["id"] = self.ids[index]
        return item


class MissingDataError(ConfigError):
    """A dataset's files are not under the data folder; the message says which and where they come from."""


class DataFileError(ConfigError):
    """A data file that is present but cannot be read (corrupt, truncated, unexpected content, unsafe)."""

    @classmethod
    def about(cls, path: Path, reason: object, source: str) -> DataFileError:
        """The one-line error for `path`: why it cannot be read and where a good copy comes from."""
        return cls(f"cannot read {path}: {' '.join(str(reason).split())} (source: {source})")


class DenoisingDataModule(pl.LightningDataModule):
    """Base of every dataset: subclasses set the class facts below and implement `load_splits`.

    Common keyword arguments (set by the runner, not by a spec's dataset section): data_dir (the
    folder real datasets are read from), train_keys, batch_size, patch_size (one int for every spatial
    axis, or one per axis), train_samples (patches per epoch), seed (patch draws; the dataset's own
    noise has its own fixed seed), num_workers. Set by a spec's dataset section: test_draws (each clean
    test image scored under that many fixed noise draws, ids `<id>@draw<k>`, as Laine et al. score Kodak
    x10; only for datasets whose test noise is synthetic, see `test_draw`).
    """

    channels: ClassVar[int] = 1
    spatial_dims: ClassVar[int] = 2
    protocol: ClassVar[PSNRProtocol]
    eval_batch_size: ClassVar[int] = 1
    # Names of the test sets, each scored separately (a column of the table each).
    test_sets: ClassVar[tuple[str, ...]] = ("test",)
    # Test set -> the column of the paper's Table 3 it reproduces or stands in for.
    paper_columns: ClassVar[dict[str, str]] = {}
    # True for embedded data standing in for a dataset of the paper.
    stand_in: ClassVar[bool] = False
    description: ClassVar[str] = ""
    # Image kinds the training split holds (methods declaring other keys do not apply).
    provides: ClassVar[frozenset[str]] = frozenset({"noisy", "clean", "noisy2"})
    # Real data on disk: the paths under data_dir that must exist, and where they come from.
    expected_files: ClassVar[tuple[str, ...]] = ()
    source: ClassVar[str] = ""
    # Window per spatial axis for tiled test inference (None: whole images).
    inference_tile: ClassVar[tuple[int | None, ...] | None] = None

    def __init__(self, *, data_dir: str | Path = "data", train_keys: frozenset[str] = frozenset({"noisy"}),
                 batch_size: int = 16, patch_size: int | tuple[int, ...] = 64, train_samples: int = 1024,
                 seed: int = 0, num_workers: int = 0, test_draws: PositiveInt = 1) -> None:
        super().__init__()
        self.data_dir = Path(data_dir)
        self.train_keys = frozenset(train_keys)
        self.batch_size = batch_size
        self.patch = (patch_size,) * self.spatial_dims if isinstance(patch_size, int) else tuple(patch_size)
        self.train_samples = train_samples
        self.seed = seed
        self.num_workers = num_workers
        self.test_draws = test_draws
        self._splits: dict[str, Split] | None = None

    @property
    def name(self) -> str:
        return type(self).registered_name

    @property
    def gaussian_sigma(self) -> float | None:
        """The std of the noise, in the data's units, when the noise is purely additive Gaussian; else None."""
        return None

    @classmethod
    def missing_under(cls, data_dir: Path) -> list[Path]:
        """The expected files that are not under `data_dir` (none for embedded data)."""
        return [data_dir / name for name in cls.expected_files if not (data_dir / name).exists()]

    def missing_files(self) -> list[Path]:
        """The expected files that are not under data_dir (none for embedded data)."""
        return self.missing_under(self.data_dir)

    def check_files(self) -> None:
        """Raise MissingDataError naming the missing files, the folder and where the data comes from."""
        missing = self.missing_files()
        if missing:
            raise MissingDataError(
                f"{self.name}: missing {', '.join(str(p) for p in missing)} "
                f"(expected under {self.data_dir}: {', '.join(self.expected_files)}; source: {self.source}); "
                "set DATA_DIR or --data-dir to the folder that holds them")

    @abstractmethod
    def load_splits(self) -> dict[str, Split]:
        """The 'train' and 'val' splits and one split per name in `test_sets`."""

    def unscored(self, test_set: str) -> str | None:
        """Why a test set cannot be scored (it has no clean images), or None: the table says so in its column."""
        return None

    def known_noise(self, test_set: str) -> NoiseModel | None:
        """The noise of a test set's noisy images where the dataset knows it (its synthetic recipe, or
        Gaussian noise of known std), for methods that use the noise level; None where it is unknown."""
        drawn = self.test_noise(test_set)
        if drawn is not None:
            return drawn[0]
        return None if self.gaussian_sigma is None else Gaussian(self.gaussian_sigma)

    def test_noise(self, test_set: str) -> tuple[NoiseModel, int, int] | None:
        """(noise model, seed, split tag) that made the noisy images of `test_set` by `noisy_draw`, so that
        further draws can be made (draw k >= 1 of image i is noisy_draw(..., i, k + 1): never the noisy or
        noisy2 draw); None (the default) where the test images' noise is fixed (real noisy photographs)."""
        return None

    @property
    def splits(self) -> dict[str, Split]:
        if self._splits is None:
            self.check_files()
            splits = self.load_splits()
            if self.test_draws > 1:
                splits.update({name: self._repeated(name, splits[name]) for name in self.test_sets})
            self._splits = splits
        return self._splits

    def _repeated(self, test_set: str, split: Split) -> Split:
        """The test split with each clean image under `test_draws` noise draws: draw 0 is the split's own
        noisy image, draws 1 to test_draws - 1 are further draws of the same noise model."""
        noise = self.test_noise(test_set)
        if noise is None or split.clean is None:
            raise ConfigError(f"{self.name}: test_draws {self.test_draws} needs test noise this dataset can draw "
                              "again (natural-gray, natural-rgb can); leave test_draws at 1 here")
        count = len(split.ids) * self.test_draws
        return Split(noisy=LazyImages(partial(_repeated_noisy, split.noisy, split.clean, noise, self.test_draws), count),
                     ids=[draw_id(image_id, k) for image_id in split.ids for k in range(self.test_draws)],
                     clean=LazyImages(partial(_repeated_clean, split.clean, self.test_draws), count))

    def train_dataloader(self) -> DataLoader:
        """Training patches in a fixed order. Under DDP each process takes every world-size-th patch, so
        the processes' batches of a step together hold the patches one process would train on. A run
        resumed after step s starts with the patches of step s + 1 (the order is rotated and keeps its
        length, so the run ends where an uninterrupted one would, having seen the same patches)."""
        arrays = self.splits["train"].arrays(self.train_keys, f"the {self.name} training split")
        dataset: Dataset = PatchDataset(arrays, self.patch, self.train_samples, self.seed)
        processes = distributed.get_world_size() if distributed.is_available() and distributed.is_initialized() else 1
        done = self.trainer.global_step * self.batch_size * processes if self.trainer is not None else 0
        if done:
            dataset = Subset(dataset, [*range(done, self.train_samples), *range(done)])
        sampler = DistributedSampler(dataset, shuffle=False, drop_last=True) if processes > 1 else None
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler, shuffle=False, drop_last=True,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def eval_dataloader(self, split: str) -> DataLoader:
        """Whole images of 'val' or a test set, in a fixed order."""
        dataset = ImageDataset(self.splits[split], f"the {self.name} {split} split")
        return DataLoader(dataset, batch_size=self.eval_batch_size, shuffle=False, num_workers=self.num_workers)

    def val_dataloader(self) -> DataLoader | list:
        """Whole validation images; none (Lightning then skips validation) when the val split has no
        clean images to score against."""
        return [] if self.splits["val"].clean is None else self.eval_dataloader("val")


DRAW_SUFFIX = "@draw"


def draw_id(image_id: str, draw: int) -> str:
    """The id of noise draw `draw` of a test image: `<id>@draw<k>`."""
    return f"{image_id}{DRAW_SUFFIX}{draw}"


def clean_id(image_id: str) -> str:
    """The clean image a scored id belongs to: `<id>` of `<id>@draw<k>`, the id itself otherwise."""
    stem, suffix, draw = image_id.rpartition(DRAW_SUFFIX)
    return stem if suffix and draw.isdigit() else image_id


def _repeated_noisy(noisy: Sequence[Array], clean: Sequence[Array], noise: tuple[NoiseModel, int, int], draws: int,
                    j: int) -> Array:
    index, draw = divmod(j, draws)
    model, seed, split_tag = noise
    return noisy[index] if draw == 0 else noisy_draw(clean[index], model, seed, split_tag, index, draw + 1)


def _repeated_clean(clean: Sequence[Array], draws: int, j: int) -> Array:
    return clean[j // draws]


def noisy_draw(clean: Array, noise: NoiseModel, seed: int, split_tag: int, index: int, draw: int) -> Array:
    """Draw `draw` (0: noisy, 1: noisy2) of image `index`: noise(clean) with the generator seeded by
    (seed, split_tag, index, draw), so each image's noise is fixed whatever else changes."""
    return noise(clean, np.random.default_rng([seed, split_tag, index, draw])).astype(np.float32)


def noisy_copies(clean: list[Array], noise: NoiseModel, seed: int, split_tag: int) -> tuple[list[Array], list[Array]]:
    """Two independent noisy draws (noisy, noisy2) of each clean image, by `noisy_draw`."""
    draws = [[noisy_draw(image, noise, seed, split_tag, i, k) for i, image in enumerate(clean)] for k in (0, 1)]
    return draws[0], draws[1]


@dataclass(frozen=True)
class LazyImages(Sequence[Array]):
    """images[i] = make(i) for 0 <= i < length, made on each access (splits too large for memory)."""

    make: Callable[[int], Array]
    length: int

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> Array:  # type: ignore[override]
        if not -self.length <= index < self.length:
            raise IndexError(f"image {index} of {self.length}")
        return self.make(index % self.length)


def _lazy_draw(clean: Callable[[int], Array], noise: NoiseModel, seed: int, split_tag: int, draw: int,
               index: int) -> Array:
    return noisy_draw(clean(index), noise, seed, split_tag, index, draw)


def lazy_noisy_split(clean: LazyImages, ids: Sequence[str], noise: NoiseModel, seed: int, split_tag: int) -> Split:
    """The lazy counterpart of noisy_copies: clean images made on demand, and their two noisy draws made
    from them on demand with the same seeding, so memory holds no image of the split."""
    noisy, noisy2 = (LazyImages(partial(_lazy_draw, clean.make, noise, seed, split_tag, draw), len(clean))
                     for draw in (0, 1))
    return Split(noisy=noisy, ids=ids, clean=clean, noisy2=noisy2)
