"""The results store: one JSON file per finished or failed cell, written atomically, validated on read,
and a lock per cell so that one process at a time runs it.

The store owns the cell record, a typed record (`DoneRecord` or `FailedRecord`) that every other module
reads by attribute. A file that does not parse or does not validate is moved aside as
`<id>.corrupt-<time>` with one warning naming it, and its cell counts as missing (the next run
recomputes it); a file of another format version counts as missing and is left in place.

Beside a record, `<id>.crops.npz` holds the crops of the cell's first test images that the gallery shows
(datamodules.crops); one that cannot be read counts as absent, with a warning, and is left in place.
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from filelock import FileLock
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from benchmark.registry import ConfigError

if TYPE_CHECKING:
    from datamodules.crops import ImageCrop
    from datamodules.evaluation import Evaluation

# Version of the result layout; a stored result of another version counts as not finished (rerun).
FORMAT = 2
CROPS_SUFFIX = ".crops.npz"
CROP_ARRAYS = ("noisy", "prediction", "clean")  # an ImageCrop's arrays, stored as `<k>.<name>` for the k-th crop


class StoreError(ConfigError):
    """The store cannot be written (read-only, full disk, a file where the folder should be)."""


class StoreWarning(UserWarning):
    """A stored file that was moved aside (corrupt) or a checkpoint that could not be read."""


class TestScores(BaseModel):
    """What a cell scored on one test set: the per-image PSNR and SSIM by image id, their means, and D(f)
    where it was measured (paper, eq. 5). Records written before SSIM was kept have None (`python -m
    benchmark rescore` adds it)."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    psnr_mean: float
    psnr: dict[str, float]
    ssim_mean: float | None = None
    ssim: dict[str, float] | None = None
    d_f: float | None = None


class Timings(BaseModel):
    """Seconds spent training, testing and in all."""

    model_config = ConfigDict(frozen=True)
    train_s: float
    test_s: float
    total_s: float


class Training(BaseModel):
    """How a trained cell ran: the step it resumed from (0: from the start), devices, nodes, strategy."""

    model_config = ConfigDict(frozen=True)
    resumed_from_step: int
    devices: int
    nodes: int
    strategy: str


class Environment(BaseModel):
    """What computed a record: package versions, Python, host, device and git commit, and what a CPU run's
    numbers depend on besides them: torch's intra-op thread count (the order of its float reductions),
    the instruction set whose kernels ATen dispatched to (`torch.backends.cpu.get_cpu_capability()`),
    the CPU model and its vector-instruction flags (oneDNN and MKL choose their kernels by them), and the
    environment variables that pin those choices where set (ATEN_CPU_CAPABILITY, ONEDNN_MAX_CPU_ISA,
    MKL_CBWR, OMP_NUM_THREADS). Records written before these were kept have None."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    versions: dict[str, str | None]
    python: str
    host: str
    device: str
    cuda_visible_devices: str | None = None
    git_sha: str | None = None
    torch_threads: int | None = None
    cpu_capability: str | None = None
    cpu_model: str | None = None
    cpu_flags: list[str] | None = None
    kernel_env: dict[str, str] | None = None


class Provenance(Environment):
    """The fields every record has: what the cell is (identity and full config), when it ended, and
    what computed it."""

    format: Literal[2] = FORMAT
    id: str
    table: str
    preset: str
    dataset: str
    method: str
    seed: int
    config: dict[str, Any]
    finished: str


class DoneRecord(Provenance):
    """A finished cell: its scores on each test set, the test curve (Figure 3) where it was recorded,
    how it trained and how long it took."""

    status: Literal["done"] = "done"
    tests: dict[str, TestScores]
    curve: list[dict[str, float]] | None = None
    training: Training | None = None
    timings: Timings
    started: str

    def mean(self, test_set: str, metric: str = "psnr_mean") -> float | None:
        """One stored number of a test set (`psnr_mean`, `ssim_mean`, `d_f`), None where it was not measured."""
        return getattr(self.tests[test_set], metric)


class FailedRecord(Provenance):
    """A cell whose run raised: the reason in one line and the traceback's tail."""

    status: Literal["failed"] = "failed"
    error: str
    traceback: str


Record = Annotated[DoneRecord | FailedRecord, Field(discriminator="status")]
RECORD = TypeAdapter(Record)


def now() -> str:
    """The current UTC time in ISO format, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def validation_summary(error: ValidationError) -> str:
    """A pydantic error in one line: the first problem's location and message (and how many more)."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the record"
    more = len(error.errors()) - 1
    return f"{where}: {first['msg']}" + (f" (and {more} more)" if more else "")


class ResultStore:
    """Files <root>/<cell id>.json, one per cell that finished (DoneRecord) or failed (FailedRecord).
    A file is written to a temporary name in the same folder, flushed to disk and renamed over the final
    name, so readers, and writers running at the same time, only ever see whole files. Locks live in
    <root>/.locks/<cell id>.lock."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, cell_id: str) -> Path:
        return self.root / f"{cell_id}.json"

    def check_writable(self) -> None:
        """Raise StoreError (one line) unless a record can be written here: checked before any cell runs."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".probe.", suffix=".tmp") as probe:
                probe.write(b"{}")
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as error:
            raise StoreError(f"cannot write results under {self.root}: {error.strerror or error}; "
                             "choose a writable folder with --results") from error

    def record(self, cell_id: str) -> DoneRecord | FailedRecord | None:
        """The stored record of a cell, finished or failed; None if there is none, one in an older format,
        or one that was corrupt (moved aside with a warning)."""
        path = self.path(cell_id)
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            return self._set_aside(path, f"it is not valid JSON ({error})")
        if isinstance(raw, dict) and raw.get("format", FORMAT) != FORMAT:
            return None
        try:
            record = RECORD.validate_python(raw)
        except ValidationError as error:
            return self._set_aside(path, f"it is not a cell record ({validation_summary(error)})")
        if record.id != cell_id:
            return self._set_aside(path, f"it holds cell {record.id!r}")
        return record

    def _set_aside(self, path: Path, reason: str) -> None:
        """Move a damaged record out of the way (kept for inspection) and warn once, naming it."""
        aside = path.with_name(f"{path.stem}.corrupt-{datetime.now(timezone.utc):%Y%m%dT%H%M%S%f}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # another process moved it first
            return None
        warnings.warn(f"{path} was moved aside to {aside.name}: {reason}; its cell will be computed again",
                      StoreWarning, stacklevel=3)
        return None

    def load(self, cell_id: str) -> DoneRecord | None:
        """The stored result of a cell, or None if it has not finished (not run, failed, older format, corrupt)."""
        record = self.record(cell_id)
        return record if isinstance(record, DoneRecord) else None

    def failure(self, cell_id: str) -> str | None:
        """Why a cell failed (one line), or None if it has no failed record."""
        record = self.record(cell_id)
        return record.error if isinstance(record, FailedRecord) else None

    def has(self, cell_id: str, retry_failed: bool = False) -> bool:
        """Whether the cell needs no run: it finished, or it failed and failures are not being retried."""
        record = self.record(cell_id)
        return record is not None and not (retry_failed and isinstance(record, FailedRecord))

    def cell_ids(self) -> list[str]:
        """The ids of every record file in the store (not validated)."""
        return sorted(path.stem for path in self.root.glob("*.json")) if self.root.is_dir() else []

    @contextmanager
    def lock(self, cell_id: str, wait: bool = True) -> Iterator[None]:
        """Hold the cell's lock while the block runs: an OS file lock, released when the block ends or the
        process dies. With wait=False, raise filelock.Timeout at once if another process holds it."""
        folder = self.root / ".locks"
        folder.mkdir(parents=True, exist_ok=True)
        with FileLock(folder / f"{cell_id}.lock", timeout=-1 if wait else 0):
            yield

    def write(self, record: DoneRecord | FailedRecord) -> Path:
        """Store a cell's record atomically (readers see the old state or the whole new file); a failure
        never replaces a finished result (the same cell may have finished in another process). An OSError
        (disk full, folder removed) propagates after the temporary file is removed."""
        self.root.mkdir(parents=True, exist_ok=True)
        target = self.path(record.id)
        if isinstance(record, FailedRecord) and self.load(record.id) is not None:
            return target
        text = record.model_dump_json(indent=1, exclude_none=True)
        return self._replace(target, lambda stream: stream.write(text.encode()))

    def _replace(self, target: Path, write: Callable[[IO[bytes]], Any]) -> Path:
        """Write a file through `write` to a temporary name in its folder, flush it to disk and rename it
        over `target`; an OSError propagates after the temporary file is removed."""
        handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            os.chmod(temporary, 0o644)  # mkstemp makes it private; a result is for everyone to read
            with os.fdopen(handle, "wb") as stream:
                write(stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return target

    def crops_path(self, cell_id: str) -> Path:
        return self.root / f"{cell_id}{CROPS_SUFFIX}"

    def write_crops(self, cell_id: str, evaluations: Mapping[str, Evaluation]) -> Path | None:
        """Store the crops that each test set's evaluation kept (`evaluate(..., crops=n)`) atomically as
        <id>.crops.npz (compressed uint8 arrays and a JSON index of test set, image, views, corner and the
        noisy image's PSNR), under the cell's lock. The crops are a view of the record: one that cannot be
        written (disk full) is a warning, and None, not the cell's failure."""
        index, arrays = [], {}
        for test_set, evaluation in evaluations.items():
            for crop in evaluation.crops:
                arrays.update({f"{len(index)}.{name}": getattr(crop, name) for name in CROP_ARRAYS})
                index.append({"test_set": test_set, "image": crop.image, "views": crop.views, "corner": crop.corner,
                              "noisy_psnr": crop.noisy_psnr})
        arrays["index"] = np.array(json.dumps(index))
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return self._replace(self.crops_path(cell_id), lambda stream: np.savez_compressed(stream, **arrays))
        except OSError as error:
            warnings.warn(f"the crops of cell {cell_id} could not be stored in {self.root} ({error.strerror or error}); "
                          "its gallery panels show as not stored", StoreWarning, stacklevel=2)
            return None

    def crops(self, cell_id: str) -> dict[str, list[ImageCrop]]:
        """A cell's stored crops by test set; empty if it has none, or if its file cannot be read (a
        warning names it; the file is left as it is)."""
        from datamodules.crops import ImageCrop  # here: importing datamodules loads every dataset

        path = self.crops_path(cell_id)
        crops: dict[str, list[ImageCrop]] = {}
        try:
            with np.load(path, allow_pickle=False) as stored:
                for k, entry in enumerate(json.loads(str(stored["index"]))):
                    crops.setdefault(entry["test_set"], []).append(ImageCrop(
                        entry["image"], tuple(entry["views"]), tuple(entry["corner"]),
                        *(stored[f"{k}.{name}"] for name in CROP_ARRAYS), float(entry["noisy_psnr"])))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as error:
            warnings.warn(f"{path} could not be read ({type(error).__name__}: {error}); the gallery shows its "
                          "panels as not stored", StoreWarning, stacklevel=2)
            return {}
        return crops

