"""Experiment specs (YAML under benchmark/specs/) and their resolution into cells.

A cell is one (dataset, method, seed) under a preset; its config holds every hyperparameter with
defaults filled in, and its id is a hash of that config, so an unchanged cell keeps its id and a
changed default gives a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from importlib import resources
from typing import Any

import yaml

from benchmark.registry import ConfigError, UnknownNameError, resolve_kwargs
from datamodules import DATASETS
from methods import METHODS
from methods.unet import UNetConfig

# Keyword arguments the runner sets itself; a spec's method / dataset sections may not.
RUNNER_METHOD_ARGS = frozenset({"in_channels", "spatial_dims", "backbone", "seed", "gaussian_sigma",
                                "lr", "lr_halving_steps"})
RUNNER_DATA_ARGS = frozenset({"data_dir", "train_keys", "batch_size", "patch_size", "train_samples", "seed",
                              "num_workers"})


@dataclass(frozen=True)
class TrainConfig:
    """One training run: optimiser steps, batch size, patch size (one int, or one per spatial axis),
    Adam's learning rate and the steps after which it halves, validation interval in steps and
    Lightning precision."""

    steps: int = 1000
    batch_size: int = 16
    patch_size: int | list[int] = 64
    lr: float = 4e-4
    lr_halving_steps: int = 5000
    val_every: int = 250
    precision: str = "32-true"


@dataclass(frozen=True)
class Cell:
    """One unit of work: a fully resolved config, its id and where it comes from; `not_applicable` says
    why the method cannot run on the dataset (the table shows n/a), None when it can."""

    table: str
    preset: str
    config: dict[str, Any]
    not_applicable: str | None = None

    @property
    def id(self) -> str:
        digest = hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:12]
        return f"{self.dataset}--{self.method}--{digest}"

    @property
    def dataset(self) -> str:
        return self.config["dataset"]["name"]

    @property
    def method(self) -> str:
        return self.config["method"]["name"]

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def trainable(self) -> bool:
        return "train" in self.config


def _merge(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Later layers override earlier ones key by key (one level deep)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return merged


@dataclass(frozen=True)
class TableSpec:
    """A table: its methods and presets, loaded from benchmark/specs/<name>.yaml. Each preset's
    `datasets` section names the datasets (columns) it runs, in order, with their settings."""

    name: str
    title: str
    methods: list[str]
    presets: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, name: str) -> "TableSpec":
        """The spec shipped as benchmark/specs/<name>.yaml; an unknown name lists the known ones."""
        specs = resources.files("benchmark") / "specs"
        known = sorted(p.name.removesuffix(".yaml") for p in specs.iterdir() if p.name.endswith(".yaml"))
        if name not in known:
            raise UnknownNameError(f"unknown table {name!r}; valid tables: {', '.join(known)}")
        raw = yaml.safe_load((specs / f"{name}.yaml").read_text())
        return cls(name=name, title=raw.get("title", name), methods=list(raw["methods"]), presets=raw["presets"])

    def preset(self, name: str) -> dict[str, Any]:
        if name not in self.presets:
            raise UnknownNameError(f"unknown preset {name!r} for {self.name}; valid presets: {', '.join(self.presets)}")
        return self.presets[name]

    def datasets(self, preset: str) -> list[str]:
        """The datasets (columns) of the table under `preset`, in order."""
        return list(self.preset(preset).get("datasets", {}))

    def cells(self, preset: str, methods: list[str] | None = None, datasets: list[str] | None = None,
              seeds: list[int] | None = None) -> list[Cell]:
        """The cells of this table under `preset`, optionally restricted; every name is checked first."""
        settings = self.preset(preset)
        for name in methods or []:
            METHODS.get(name)
            if name not in self.methods:
                raise ConfigError(f"method {name!r} is not in {self.name}; its methods: {', '.join(self.methods)}")
        columns = self.datasets(preset)
        for name in datasets or []:
            DATASETS.get(name)
            if name not in columns:
                raise ConfigError(f"dataset {name!r} is not in {self.name} under preset {preset!r}; "
                                  f"its datasets: {', '.join(columns)}")
        cells = []
        for dataset in datasets or columns:
            for method in methods or self.methods:
                for seed in seeds or settings.get("seeds", [0]):
                    config = resolve_config(settings, dataset, method, seed, preset)
                    data = DATASETS.get(dataset)(**{k: v for k, v in config["dataset"].items() if k != "name"})
                    cells.append(Cell(self.name, preset, config, METHODS.get(method).not_applicable_to(data)))
        return cells


def resolve_config(settings: dict[str, Any], dataset: str, method: str, seed: int, preset: str) -> dict[str, Any]:
    """The full config of one cell: dataset and method keyword arguments with their defaults, and,
    for a trainable method, the training run and backbone."""
    dataset_cls, method_cls = DATASETS.get(dataset), METHODS.get(method)
    where = f"preset {preset!r}"
    per_dataset = settings.get("datasets", {}).get(dataset, {}) or {}
    unknown = sorted(set(per_dataset) - {"dataset", "train", "backbone", "methods"})
    if unknown:
        raise ConfigError(f"{where}, dataset {dataset}: unknown section(s) {', '.join(unknown)}; "
                          "valid sections: dataset, train, backbone, methods")
    method_args = _merge(settings.get("methods", {}).get(method), per_dataset.get("methods", {}).get(method))
    config: dict[str, Any] = {
        "dataset": {"name": dataset, **resolve_kwargs(dataset_cls, per_dataset.get("dataset", {}),
                                                      f"{where}, dataset {dataset}", RUNNER_DATA_ARGS)},
        "method": {"name": method, **resolve_kwargs(method_cls, method_args, f"{where}, method {method}",
                                                    RUNNER_METHOD_ARGS)},
        "seed": seed,
    }
    if method_cls.trainable:
        config["train"] = asdict(_build(TrainConfig, _merge(settings.get("train"), per_dataset.get("train")),
                                        f"{where}, train"))
        config["backbone"] = asdict(_build(UNetConfig, _merge(settings.get("backbone"), per_dataset.get("backbone")),
                                           f"{where}, backbone"))
    return config


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """A dataclass from spec values; unknown keys raise ConfigError naming the valid ones."""
    valid = sorted(f.name for f in fields(cls))
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")
    return cls(**values)
