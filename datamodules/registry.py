"""The dataset registry: every dataset is looked up here by name."""

from __future__ import annotations

from benchmark.registry import Registry

DATASETS: Registry[type] = Registry("dataset")
register_dataset = DATASETS.register
