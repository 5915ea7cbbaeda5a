"""Experiment specs (YAML under benchmark/specs/) and their resolution into cells.

A cell is one (dataset, method, seed) under a preset; its config holds every hyperparameter with
defaults filled in, and its id is a hash of that config, so an unchanged cell keeps its id and a
changed default gives a new one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, get_type_hints

import yaml
from pydantic import AfterValidator, Field, PositiveFloat, PositiveInt

from benchmark.registry import ConfigError, UnknownNameError, checked, resolve_kwargs
from datamodules import DATASETS
from methods import METHODS
from methods.unet import UNetConfig

# Keyword arguments the runner sets itself; a spec's method / dataset sections may not.
RUNNER_METHOD_ARGS = frozenset({"in_channels", "spatial_dims", "backbone", "seed", "gaussian_sigma",
                                "lr", "lr_halving_steps"})
PRESET_SECTIONS = frozenset({"seeds", "train", "backbone", "methods", "datasets", "evaluation", "speed",
                             "batch_scale", "resources", "notes"})
RUNNER_DATA_ARGS = frozenset({"data_dir", "train_keys", "batch_size", "patch_size", "train_samples", "seed",
                              "num_workers"})
SPEC_KEYS = frozenset({"title", "kind", "metrics", "methods", "presets"})
# A seed seeds numpy's and torch's generators, which take values in [0, 2^32).
Seed = Annotated[int, Field(ge=0, lt=2 ** 32)]
# Lightning's precision names (its `Trainer(precision=...)`).
Precision = Literal["32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true"]


@dataclass(frozen=True)
class TrainConfig:
    """One training run: optimiser steps, batch size, patch size (one int, or one per spatial axis),
    Adam's learning rate and the steps after which it halves, validation interval in steps and
    Lightning precision."""

    steps: PositiveInt = 1000
    batch_size: PositiveInt = 16
    patch_size: PositiveInt | list[PositiveInt] = 64
    lr: PositiveFloat = 4e-4
    lr_halving_steps: PositiveInt = 5000
    val_every: PositiveInt = 250
    precision: Precision = "32-true"


@dataclass(frozen=True)
class EvaluationConfig:
    """What a cell measures besides the test PSNR: d_f, the J-invariance metric D(f) of the trained
    network (paper, eq. 5); test_every, the test PSNR every so many training steps (a curve)."""

    d_f: bool = False
    test_every: PositiveInt | None = None
    # Test standardisation of a trained network: "image", each image by its own mean and std (the
    # official code everywhere but HanZi); "set", one mean and std over the whole noisy test set (the
    # official HanZi notebook). Added later: left out of a cell's config at its default (`config_section`).
    test_statistics: Literal["image", "set"] = field(default="image", metadata={"added_later": True})


def config_section(config: Any) -> dict[str, Any]:
    """A config dataclass as a cell's config section, without the fields marked `added_later` that hold
    their default, so that the cells stored before such a field existed keep their ids."""
    return {key: value for key, value in asdict(config).items()
            if not (config.__dataclass_fields__[key].metadata.get("added_later")
                    and value == config.__dataclass_fields__[key].default)}


def compile_backend(name: str) -> str:
    """A torch.compile backend's name, checked against those torch registers (ValueError otherwise)."""
    import torch._dynamo  # slow to import: only when a spec names a backend

    backends = torch._dynamo.list_backends(exclude_tags=())
    if name not in backends:
        raise ValueError(f"unknown torch.compile backend; valid backends: {', '.join(backends)}")
    return name


@dataclass(frozen=True)
class SpeedConfig:
    """Ways to train faster that leave the maths alone: channels_last memory format for the network's
    weights and inputs, and torch.compile of the network (true: the default backend, inductor; or a
    backend's name); bf16 is `train.precision: bf16-mixed`."""

    channels_last: bool = False
    compile: bool | Annotated[str, AfterValidator(compile_backend)] = False


@dataclass(frozen=True)
class Resources:
    """What each trained cell runs on: `devices` per node and `nodes`. More than one device in all trains
    it with DDP, every device on an equal share of the batch, so the cell (and its id) stays the same
    experiment; testing always runs on one device. A run's setting, not part of any cell's config."""

    devices: int = 1
    nodes: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.devices, int) and isinstance(self.nodes, int) and self.devices >= 1 and self.nodes >= 1):
            raise ConfigError(f"devices and nodes must be whole numbers of at least 1, got devices={self.devices!r}, "
                              f"nodes={self.nodes!r}")

    @property
    def world_size(self) -> int:
        """Training processes of a cell: devices x nodes."""
        return self.devices * self.nodes

    def per_device_batch(self, batch_size: int) -> int:
        """The batch each device trains on; a ConfigError unless the devices split the batch evenly."""
        if batch_size % self.world_size:
            raise ConfigError(f"a batch of {batch_size} does not split over {self.world_size} devices; "
                              "choose devices x nodes that divides it")
        return batch_size // self.world_size


@dataclass(frozen=True)
class Cell:
    """One unit of work: a fully resolved config, its id and where it comes from; `not_applicable` says
    why the method cannot run on the dataset (the table shows n/a), None when it can. `row` and
    `column` are the labels the table shows it under."""

    table: str
    preset: str
    config: dict[str, Any]
    not_applicable: str | None = None
    row: str = ""
    column: str = ""

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

    @property
    def train(self) -> TrainConfig:
        """The training run of a trained cell (a classical cell has none: KeyError)."""
        return TrainConfig(**self.config["train"])

    @property
    def backbone(self) -> UNetConfig:
        """The backbone of a trained cell."""
        return UNetConfig(**self.config["backbone"])

    @property
    def method_kwargs(self) -> dict[str, Any]:
        """The method's keyword arguments (every hyperparameter, defaults filled in)."""
        return {k: v for k, v in self.config["method"].items() if k != "name"}

    @property
    def dataset_kwargs(self) -> dict[str, Any]:
        """The dataset's keyword arguments (every setting, defaults filled in)."""
        return {k: v for k, v in self.config["dataset"].items() if k != "name"}

    @property
    def speed(self) -> SpeedConfig:
        return SpeedConfig(**self.config.get("speed", {}))

    @property
    def evaluation(self) -> EvaluationConfig:
        return EvaluationConfig(**self.config.get("evaluation", {}))


@dataclass(frozen=True)
class Row:
    """A row of a table: its label, the registered method, and what the row sets on top of the preset
    (method keyword arguments, training run, evaluation)."""

    label: str
    method: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    evaluation: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Note:
    """A footnote of a preset's table: on a row's label, or, with `column` (a paper column such as
    BSD68), on the paper's number of that row there."""

    row: str
    text: str
    column: str | None = None


def theorem2_rows(values: list[float], method: str = "noise2same") -> list[Row]:
    """Figure 4's sweep: for each sigma_loss, Noise2Same on unstandardised images with
    lambda_inv = 2 * sigma_loss, the invariance weight Theorem 2 gives for Gaussian noise of std sigma_loss."""
    return [Row(f"sigma_loss={value:g}", method, {"lambda_inv": 2 * value, "standardize": False}) for value in values]


ROW_GENERATORS = {"theorem2": theorem2_rows}
# What a spec produces: a table (benchmark.report), one of the paper's figures or the training-budget
# curves (benchmark.figures).
KINDS = ("table", "figure3", "figure4", "budget")


def parse_rows(entries: list[Any], table: str) -> list[Row]:
    """Rows from a spec's `methods` list: a method name; {label: {method: name, train: {...},
    evaluation: {...}, <keyword arguments>}}; or {generate: <generator>, <its arguments>}."""
    rows: list[Row] = []
    for entry in entries:
        if isinstance(entry, str):
            rows.append(Row(entry, entry))
        elif not isinstance(entry, dict):
            raise ConfigError(f"{table}: methods: {entry!r} is not a row; a row is a method name or "
                              "{label: {method: name, <its keyword arguments>}}")
        elif "generate" in entry:
            arguments = {k: v for k, v in entry.items() if k != "generate"}
            if entry["generate"] not in ROW_GENERATORS:
                raise UnknownNameError(f"{table}: unknown row generator {entry['generate']!r}; "
                                       f"valid generators: {', '.join(ROW_GENERATORS)}")
            try:
                rows += ROW_GENERATORS[entry["generate"]](**arguments)
            except TypeError as error:
                raise ConfigError(f"{table}: row generator {entry['generate']}: {error}") from None
        else:
            if len(entry) != 1 or not isinstance(next(iter(entry.values())), dict):
                raise ConfigError(f"{table}: methods: {entry!r} is not a row; a labelled row is "
                                  "{label: {method: name, <its keyword arguments>}}")
            (label, body), = entry.items()
            body = dict(body)
            rows.append(Row(label, body.pop("method", label), body, body.pop("train", {}),
                            body.pop("evaluation", {})))
    for row in rows:
        METHODS.get(row.method)
    return rows


def _merge(*layers: dict[str, Any] | None) -> dict[str, Any]:
    """Later layers override earlier ones key by key (one level deep)."""
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(layer or {})
    return merged


def packaged_tables() -> list[str]:
    """The names of the specs shipped in benchmark/specs/."""
    specs = resources.files("benchmark") / "specs"
    return sorted(p.name.removesuffix(".yaml") for p in specs.iterdir() if p.name.endswith(".yaml"))


def shared_cells(cells: list[Cell], data_dir: Path | None = None) -> dict[str, list[str]]:
    """Cell id -> where else the same cell appears ("table1 'UPS 5x5'"): in the other packaged tables
    under the cells' preset, their columns resolved for `data_dir`. One config is one cell of the store,
    trained once for every table."""
    where: dict[str, list[str]] = {}
    own = {cell.id for cell in cells}
    for preset in dict.fromkeys(cell.preset for cell in cells):
        for name in packaged_tables():
            spec = TableSpec.load(name)
            if name in {cell.table for cell in cells} or preset not in spec.presets:
                continue
            for other in spec.cells(preset, seeds=sorted({cell.seed for cell in cells}), data_dir=data_dir):
                if other.id in own:
                    where.setdefault(other.id, []).append(f"{name} {other.row!r}")
    return where


@dataclass(frozen=True)
class TableSpec:
    """A table: its rows (methods, or labelled variants of them) and presets, loaded from
    benchmark/specs/<name>.yaml. Each preset's `datasets` section names the columns it runs, in order:
    a registered dataset, or a label with `name:` the dataset and its settings."""

    name: str
    title: str
    rows: list[Row]
    presets: dict[str, dict[str, Any]]
    metrics: list[str] = field(default_factory=lambda: ["psnr"])
    kind: str = "table"

    @classmethod
    def load(cls, name: str) -> "TableSpec":
        """A spec: one shipped as benchmark/specs/<name>.yaml, or a YAML file given by its path (anything
        ending in .yaml or .yml, or naming a file); an unknown name lists the known ones."""
        path = Path(name)
        if name.endswith((".yaml", ".yml")) or path.is_file():
            if not path.is_file():
                raise ConfigError(f"spec file {name} does not exist; give the path of a YAML spec, or a packaged "
                                  "table name such as table3")
            raw, name = read_yaml(path, str(path)), path.stem
        else:
            specs = resources.files("benchmark") / "specs"
            known = packaged_tables()
            if name not in known:
                raise UnknownNameError(f"unknown table {name!r}; valid tables: {', '.join(known)} "
                                       "(or the path of a spec file, e.g. ./my.yaml)")
            raw = read_yaml(specs / f"{name}.yaml", f"benchmark/specs/{name}.yaml")
        if raw.get("kind", "table") not in KINDS:
            raise ConfigError(f"{name}: unknown kind {raw['kind']!r}; valid kinds: {', '.join(KINDS)}")
        return cls(name=name, title=raw.get("title", name), rows=parse_rows(raw["methods"], name),
                   presets=raw["presets"], metrics=raw.get("metrics", ["psnr"]), kind=raw.get("kind", "table"))

    @property
    def methods(self) -> list[str]:
        """The registered methods of the rows, each once, in order."""
        return list(dict.fromkeys(row.method for row in self.rows))

    def with_added_rows(self, methods: list[str] | None) -> tuple["TableSpec", list[str] | None]:
        """Read a --methods selection, where '+name' adds a row for any registered method (a plugin's)
        that is not a row yet: this table with those rows added, and the rows to run (the named ones
        and the added; None, every row, when only additions are named)."""
        added = [name[1:] for name in methods or [] if name.startswith("+")]
        chosen = [name for name in methods or [] if not name.startswith("+")]
        for name in added:
            METHODS.get(name)
        labels = {row.label for row in self.rows}
        rows = [*self.rows, *(Row(name, name) for name in dict.fromkeys(added) if name not in labels)]
        return replace(self, rows=rows), [*chosen, *added] if chosen else None

    def preset(self, name: str) -> dict[str, Any]:
        if name not in self.presets:
            raise UnknownNameError(f"unknown preset {name!r} for {self.name}; valid presets: {', '.join(self.presets)}")
        return self.presets[name]

    def notes(self, preset: str) -> list[Note]:
        """The preset's footnotes (`notes:`, a list of {row, column (optional), text})."""
        entries = self.preset(preset).get("notes") or []
        where = f"{self.name}, preset {preset!r}, notes"
        if not isinstance(entries, list):
            raise ConfigError(f"{where}: expected a list of {{row: label, column: paper column, text: ...}}")
        notes = [_build(Note, entry, where) for entry in entries]
        labels = [row.label for row in self.rows]
        for note in notes:
            if note.row not in labels:
                raise ConfigError(f"{where}: row {note.row!r} is not a row of {self.name}; its rows: {', '.join(labels)}")
        return notes

    def resources(self, preset: str, devices: int | None = None, nodes: int | None = None) -> Resources:
        """The devices and nodes each trained cell gets under `preset` (its `resources` section), with
        the given values (the command line's) taking precedence."""
        given = {key: value for key, value in {"devices": devices, "nodes": nodes}.items() if value is not None}
        return _build(Resources, {**(self.preset(preset).get("resources") or {}), **given},
                      f"preset {preset!r}, resources")

    def columns(self, preset: str, data_dir: Path | None = None) -> dict[str, dict[str, Any]]:
        """Column label -> its settings (with `name`, the registered dataset), in order, under `preset`.
        A column with a `fallback` (name and dataset settings) takes the fallback's dataset where its own
        dataset's files are missing under `data_dir` (the paper's HanZi: the official tiles, else the
        rendered set), keeping the column's other sections."""
        columns = {}
        given = self.preset(preset).get("datasets")
        if not isinstance(given, dict) or not given:
            raise ConfigError(f"{self.name}, preset {preset!r}: datasets: must map each column to its dataset "
                              f"settings, e.g. {{natural-gray: {{}}}}, got {given!r}")
        for label, settings in given.items():
            where = f"{self.name}, preset {preset!r}, datasets.{label}"
            settings = _column_settings(settings, label, where)
            fallback = settings.pop("fallback", None)
            if fallback is not None:
                fallback = _column_settings(fallback, label, f"{where}.fallback")
                if data_dir is not None and DATASETS.get(settings["name"]).missing_under(data_dir):
                    # The fallback's dataset replaces the column's; the other sections stay the column's.
                    settings = {**{k: v for k, v in settings.items() if k not in ("name", "dataset")}, **fallback}
            columns[label] = settings
        return columns

    def datasets(self, preset: str) -> list[str]:
        """The column labels of the table under `preset`, in order."""
        return list(self.columns(preset))

    def cells(self, preset: str, methods: list[str] | None = None, datasets: list[str] | None = None,
              seeds: list[int] | None = None, overrides: dict[str, dict[str, Any]] | None = None,
              data_dir: Path | None = None) -> list[Cell]:
        """The cells of this table under `preset`, optionally restricted to some methods (names or row
        labels), columns and seeds; `overrides` ({"train" | "evaluation" | "speed": {...}}, e.g. from
        the command line) is laid over every trained cell's sections; `data_dir` decides the columns
        that fall back where their files are missing."""
        settings = self.preset(preset)
        columns = self.columns(preset, data_dir)
        labels = [row.label for row in self.rows]
        for name in methods or []:
            if name not in labels and name not in self.methods:
                METHODS.get(name)
                raise ConfigError(f"method {name!r} is not in {self.name}; its rows: {', '.join(labels)}; "
                                  f"add it as a row with --methods +{name}")
        for name in datasets or []:
            if name not in columns:
                DATASETS.get(name)
                raise ConfigError(f"dataset {name!r} is not in {self.name} under preset {preset!r}; "
                                  f"its datasets: {', '.join(columns)}")
        rows = [row for row in self.rows if not methods or row.label in methods or row.method in methods]
        all_seeds = check_seeds(seeds or settings.get("seeds", [0]), f"{self.name}, preset {preset!r}, seeds")
        cells = []
        for column in datasets or columns:
            for row in rows:
                # A classical method draws nothing: its first seed stands for all of them.
                for seed in all_seeds if METHODS.get(row.method).trainable else all_seeds[:1]:
                    config = resolve_config(settings, columns[column], row, seed, f"{self.name}, preset {preset!r}",
                                            overrides)
                    data = DATASETS.get(config["dataset"]["name"])(
                        **{k: v for k, v in config["dataset"].items() if k != "name"})
                    cells.append(Cell(self.name, preset, config, METHODS.get(row.method).not_applicable_to(data),
                                      row=row.label, column=column))
        return cells


def _column_settings(settings: Any, label: str, where: str) -> dict[str, Any]:
    """A column's settings as a new mapping with `name` (its registered dataset; the label by default)."""
    if settings is not None and not isinstance(settings, dict):
        raise ConfigError(f"{where}: expected a mapping, got {settings!r}")
    settings = dict(settings or {})
    settings.setdefault("name", label)
    DATASETS.get(settings["name"])
    return settings


def resolve_config(settings: dict[str, Any], column: dict[str, Any], row: Row, seed: int, where: str,
                   overrides: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """The full config of one cell: dataset and method keyword arguments with their defaults, and,
    for a trainable method, the training run (preset, column, the method's own entry of each, row),
    backbone and (when asked) extra evaluation and speed options; `overrides` comes last."""
    overrides = overrides or {}
    dataset, method = column["name"], row.method
    dataset_cls, method_cls = DATASETS.get(dataset), METHODS.get(method)
    unknown = sorted(set(column) - {"name", "dataset", "train", "backbone", "methods", "evaluation"})
    if unknown:
        raise ConfigError(f"{where}, dataset {dataset}: unknown section(s) {', '.join(unknown)}; "
                          "valid sections: name, dataset, train, backbone, methods, evaluation, fallback")
    unknown = sorted(set(settings) - PRESET_SECTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {', '.join(unknown)}; "
                          f"valid sections: {', '.join(sorted(PRESET_SECTIONS))}")
    for section, values in [*((key, settings.get(key)) for key in PRESET_SECTIONS - {"seeds", "batch_scale", "notes"}),
                            *((f"datasets.{column['name']}.{key}", column.get(key)) for key in ("dataset", "train",
                                                                                             "backbone", "methods",
                                                                                             "evaluation"))]:
        if values is not None and not isinstance(values, dict):
            raise ConfigError(f"{where}, {section}: expected a mapping (key: value), got {values!r}")
    # A `methods.<name>` entry (of the preset or of the column) holds the method's keyword arguments and,
    # under `train`, that method's own training run there (the paper trains Noise2Same longer on BSD68).
    method_layers = [dict((layer.get("methods") or {}).get(method) or {}) for layer in (settings, column)]
    method_train = [layer.pop("train", None) for layer in method_layers]
    method_args = _merge(*method_layers, row.kwargs)
    config: dict[str, Any] = {
        "dataset": {"name": dataset, **resolve_kwargs(dataset_cls, column.get("dataset") or {},
                                                      f"{where}, dataset {dataset}", RUNNER_DATA_ARGS)},
        "method": {"name": method, **resolve_kwargs(method_cls, method_args, f"{where}, method {method}",
                                                    RUNNER_METHOD_ARGS)},
        "seed": seed,
    }
    if method_cls.trainable:
        train = _build(TrainConfig, _merge(settings.get("train"), column.get("train"), *method_train, row.train,
                                           overrides.get("train")), f"{where}, train")
        if "batch_scale" in settings:  # one factor for every row's batch (Figure 3 on a CPU)
            scale = checked(PositiveFloat, settings["batch_scale"], f"{where}.batch_scale")
            train = replace(train, batch_size=max(1, round(train.batch_size * scale)))
        config["train"] = asdict(train)
        config["backbone"] = asdict(_build(UNetConfig, _merge(settings.get("backbone"), column.get("backbone")),
                                           f"{where}, backbone"))
        # Optional sections are only present when asked for, so plain cells keep their ids.
        for name, cls, layers in (("evaluation", EvaluationConfig, (column.get("evaluation"), row.evaluation)),
                                  ("speed", SpeedConfig, ())):
            values = _merge(settings.get(name), *layers, overrides.get(name))
            if values:
                config[name] = config_section(_build(cls, values, f"{where}, {name}"))
    return config


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    """A dataclass from spec values, each checked against its field's type and range; unknown keys and
    bad values raise ConfigError naming the key (`<where>.steps: -4 is not valid: ...`)."""
    valid = sorted(f.name for f in fields(cls))
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of {', '.join(valid)}, got {values!r}")
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    if absent := [name for name in required if name not in values]:
        raise ConfigError(f"{where}: missing key(s) {', '.join(absent)} in {values!r}")
    hints = get_type_hints(cls, include_extras=True)
    return cls(**{key: checked(hints[key], value, f"{where}.{key}") for key, value in values.items()})


def check_seeds(seeds: Any, where: str) -> list[int]:
    """Seeds as given, each a whole number in [0, 2^32), duplicates dropped; an empty list is an error."""
    if not isinstance(seeds, list) or not seeds:
        raise ConfigError(f"{where}: {seeds!r} is not a non-empty list of seeds, e.g. [0, 1, 2]")
    return list(dict.fromkeys(checked(Seed, seed, f"{where}") for seed in seeds))


def read_yaml(path: Path | Any, shown: str) -> dict[str, Any]:
    """A spec file's mapping; a YAML error, an empty file or another top-level type gives one ConfigError
    line naming the file (and the line, for a syntax error or a tag safe_load refuses)."""
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.MarkedYAMLError as error:
        line = f", line {error.problem_mark.line + 1}" if error.problem_mark else ""
        raise ConfigError(f"{shown}{line}: {error.problem or error.context}; fix the YAML") from None
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{shown}: not a YAML spec ({str(error).splitlines()[0]})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{shown}: a spec is a YAML mapping with methods: and presets:, got "
                          f"{'an empty file' if raw is None else type(raw).__name__}")
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise ConfigError(f"{shown}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(SPEC_KEYS))}")
    for key, kind in (("methods", list), ("presets", dict)):
        if not isinstance(raw.get(key), kind) or not raw[key]:
            example = "a list of rows, e.g. [noise2same, noise2void]" if key == "methods" else "a mapping of presets"
            raise ConfigError(f"{shown}: {key}: must be {example}, got {raw.get(key)!r}")
    for preset, settings in raw["presets"].items():
        if not isinstance(settings, dict):
            raise ConfigError(f"{shown}: preset {preset!r} must be a mapping of sections, got {settings!r}")
    return raw
