"""Datasets, noise models and evaluation protocols: one LightningDataModule family."""

from datamodules.registry import DATASETS, register_dataset
from datamodules import hanzi, hanzi_tiles, natural, bsd68, imagenet, planaria, synthetic3d  # noqa: F401  (registers the built-ins)
from datamodules import folder  # noqa: F401, E402  (your own images)

__all__ = ["DATASETS", "register_dataset"]
