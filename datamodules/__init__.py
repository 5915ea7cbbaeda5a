"""Datasets, noise models and evaluation protocols: one LightningDataModule family."""

from datamodules.registry import DATASETS, register_dataset
from datamodules import hanzi, natural  # noqa: F401  (registers the built-ins)

__all__ = ["DATASETS", "register_dataset"]
